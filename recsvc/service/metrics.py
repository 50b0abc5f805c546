"""Prometheus metrics of one replica (recsvc.edge.gate times every request into `latency`).

Exposed at GET /metrics. Each app gets its own registry (tests build several apps).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

DEGRADED_CAUSES = ("redis_error", "deadline", "breaker_open")
EVENT_OUTCOMES = (
    "accepted", "duplicate", "unavailable", "stream_full", "busy",
    "not_applied_unknown_product", "not_applied_state_full",
)  # fmt: skip
REFUSAL_REASONS = (
    "unauthenticated", "forbidden", "rate_limited", "auth_rate_limited", "body_too_large"
)  # fmt: skip
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.latency = Histogram(
            "recsvc_request_seconds", "Request latency by route.", ["route", "method", "status"],
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.redis_errors = Counter(
            "recsvc_redis_errors_total",
            "Failed Redis operations by kind: timeout, unreachable, refused (an error reply).",
            ["operation", "kind"],
            registry=r,
        )
        self.degraded = Counter(
            "recsvc_degraded_responses_total",
            "Feeds served without Redis, by cause: redis_error (a call failed), deadline (Redis "
            "did not answer in time), breaker_open (Redis recently found down: not asked).",
            ["cause"], registry=r,
        )  # fmt: skip
        self.feed_source = Counter(
            "recsvc_feed_responses_total", "Feeds by source of the ranking.", ["source"], registry=r
        )
        self.batch_size = Histogram(
            "recsvc_feed_batch_size", "Feed requests served together (dynamic batching).",
            buckets=(1, 2, 4, 8, 16, 32, 64), registry=r,
        )  # fmt: skip
        self.feed_items = Counter("recsvc_feed_items_total", "Videos served.", registry=r)
        self.attached = Counter(
            "recsvc_attached_products_total",
            "Products attached (attach rate = this / recsvc_feed_items_total).",
            registry=r,
        )
        self.model_info = Gauge(
            "recsvc_model_info", "The model version served (value 1).", ["version"], registry=r
        )
        self.model_created = Gauge(
            "recsvc_model_created_timestamp_seconds",
            "When the served model was exported (its manifest's created_at), Unix time.",
            registry=r,
        )
        self.reloads = Counter(
            "recsvc_model_reloads_total", "Model loads by outcome.", ["outcome"], registry=r
        )
        self.events = Counter(
            "recsvc_events_total",
            "Events received, by outcome: accepted, duplicate, unavailable, stream_full, busy "
            "(Redis too busy to start the batch in time: 503 with Retry-After); of the "
            "accepted, not_applied_unknown_product and not_applied_state_full were kept in the "
            "stream but not in the user's state.",
            ["outcome"], registry=r,
        )  # fmt: skip
        self.exposures = Counter(
            "recsvc_exposures_total", "Feeds served to experiment users, logged.",
            ["experiment", "variant"], registry=r,
        )  # fmt: skip
        self.streams = Gauge(
            "recsvc_stream_entries", "Entries waiting in Redis: events, exposures, cards' "
            "records, and events the nightly job has not drained yet (its lag).", ["stream"],
            registry=r,
        )  # fmt: skip
        self.trends_read = Gauge(
            "recsvc_trending_counts_read_timestamp_seconds",
            "When this replica last read the live trending counts from Redis, Unix time (0: "
            "never; a model without a trending prior needs none).", registry=r,
        )  # fmt: skip
        self.fresh_videos = Gauge(
            "recsvc_fresh_videos",
            "Live catalogue videos the served model does not know (published since it was "
            "trained), ranked from a second table, by where their vector comes from: metadata "
            "(the trainer's map) or collaborative (solved from their first viewers).",
            ["vector"], registry=r,
        )  # fmt: skip
        self.explored = Counter(
            "recsvc_explored_items_total",
            "Feed items shown in exploration slots (RECSVC_EXPLORATION_SHARE): new videos not "
            "ranked for the user, shown so that their first viewers place them.",
            registry=r,
        )  # fmt: skip
        self.fresh_views_lost = Counter(
            "recsvc_fresh_views_not_recorded_total",
            "Accepted events on fresh videos whose record for the videos' collaborative "
            "vectors failed (Redis): the events are kept; the videos learn from fewer viewers.",
            registry=r,
        )  # fmt: skip
        self.trending_live = Gauge(
            "recsvc_trending_prior_live",
            "1 when the served model's trending prior comes from the live counts, 0 while it "
            "is the exported one (the counts do not cover its window yet, or it has no prior).",
            registry=r,
        )  # fmt: skip
        self.exposures_dropped = Counter(
            "recsvc_exposures_dropped_total",
            "Exposures not logged: Redis unreachable, or the exposure stream full (undrained).",
            registry=r,
        )
        self.cards_dropped = Counter(
            "recsvc_cards_dropped_total",
            "Cards served whose compliance record was not logged: Redis unreachable, or the "
            "card stream full (undrained).",
            registry=r,
        )

        self.redis_at_risk = Gauge(
            "recsvc_redis_at_risk",
            "1 when Redis is configured so that data can be lost, by risk: eviction "
            "(maxmemory-policy not noeviction), no_persistence (no AOF), unknown (INFO refused).",
            ["risk"], registry=r,
        )  # fmt: skip
        self.connections = Gauge(
            "recsvc_open_connections", "HTTP connections open in this process.", registry=r
        )
        self.connections_closed = Counter(
            "recsvc_connections_closed_total",
            "Connections closed by the server before a response: header_timeout, body_timeout, "
            "over_limit (RECSVC_MAX_CONNECTIONS).",
            ["reason"], registry=r,
        )  # fmt: skip
        self.refused = Counter(
            "recsvc_refused_requests_total",
            "Requests refused before a route: unauthenticated, forbidden, rate_limited, "
            "auth_rate_limited (too many failed authentications from one address), "
            "body_too_large.", ["reason"], registry=r,
        )  # fmt: skip

        # Each known label value starts at 0, so that a first occurrence is an increase
        # (Prometheus' increase() and rate() cannot see a series' first sample) and a ratio
        # or comparison over a counter not yet incremented still has a series to read.
        for counter, values in (
            (self.degraded, DEGRADED_CAUSES),
            (self.events, EVENT_OUTCOMES),
            (self.reloads, ("loaded", "refused")),
            (self.refused, REFUSAL_REASONS),
            (self.connections_closed, ("header_timeout", "body_timeout", "over_limit")),
        ):
            for value in values:
                counter.labels(value)

    def model_loaded(self, version: str, outcome: str) -> None:
        self.reloads.labels(outcome).inc()
        if outcome == "loaded":
            self.model_info.clear()
            self.model_info.labels(version).set(1)
