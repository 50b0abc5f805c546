"""A Redis configured so that it can lose accepted events or the catalogue is said out loud.

Eviction (`maxmemory-policy` other than `noeviction`) and no AOF are named at start-up (a
log warning), in /readyz (`warnings`, or `problems` with RECSVC_REQUIRE_DURABLE_REDIS=true)
and in `recsvc_redis_at_risk{risk}`. Checked against a real Redis reconfigured at run time.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import redis
from prometheus_client.parser import text_string_to_metric_families

from recsvc.store.durability import assess
from tests.http.builders import (
    PLANTED_VERSION,
    eventually,
    load_planted_catalog,
    publish_model,
    service_settings,
    serving,
)


@contextmanager
def redis_config(url: str, **values: str) -> Iterator[None]:
    """Set Redis settings for the test; the previous values come back afterwards."""
    with redis.Redis.from_url(url) as client:
        before = {name: client.config_get(name)[name] for name in values}
        try:
            for name, value in values.items():
                client.config_set(name, value)
            yield
        finally:
            for name, value in before.items():
                client.config_set(name, value)


def at_risk(client: httpx.Client) -> dict[str, float]:
    text = client.get("/metrics").text
    return {
        sample.labels["risk"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "recsvc_redis_at_risk"
    }


def warnings(client: httpx.Client) -> list[str]:
    return list(client.get("/readyz").json()["warnings"])


def test_a_redis_without_aof_is_a_warning_in_readiness_and_a_metric(service: httpx.Client) -> None:
    # The tests' private Redis runs with `--appendonly no` and the default noeviction
    assert eventually(lambda: at_risk(service).get("no_persistence") == 1.0), at_risk(service)
    assert at_risk(service)["eviction"] == 0.0
    ready = service.get("/readyz")
    assert ready.status_code == 200
    assert any("AOF" in warning for warning in ready.json()["warnings"]), ready.json()


def test_eviction_and_persistence_changes_are_picked_up_while_serving(
    service: httpx.Client, redis_url: str
) -> None:
    with redis_config(redis_url, **{"maxmemory-policy": "allkeys-lru"}):
        assert eventually(lambda: any("allkeys-lru" in w for w in warnings(service)))
        assert at_risk(service)["eviction"] == 1.0
    with redis_config(redis_url, appendonly="yes"):
        assert eventually(lambda: at_risk(service).get("no_persistence") == 0.0)
        assert eventually(lambda: not any("Redis" in w for w in warnings(service)))
        assert at_risk(service) == {"eviction": 0.0, "no_persistence": 0.0, "unknown": 0.0}


def test_with_durable_redis_required_a_redis_that_can_lose_data_is_not_ready(
    redis_url: str, models_dir: Path
) -> None:
    publish_model(redis_url, models_dir / PLANTED_VERSION)
    load_planted_catalog(redis_url)
    settings = service_settings(redis_url, models_dir, require_durable_redis=True)
    with serving(settings) as client:

        def refused_naming_aof() -> bool:
            ready = client.get("/readyz")
            problems = ready.json()["problems"]
            return ready.status_code == 503 and any("AOF" in p for p in problems)

        assert eventually(refused_naming_aof), client.get("/readyz").json()
        with redis_config(redis_url, appendonly="yes"):
            assert eventually(lambda: client.get("/readyz").status_code == 200)


def test_one_cluster_primary_at_risk_puts_the_whole_store_at_risk() -> None:
    durable = {"maxmemory_policy": "noeviction", "aof_enabled": 1}
    evicting = {"maxmemory_policy": "volatile-lru", "aof_enabled": 1}
    assert assess([durable, durable]).durable
    found = assess([durable, evicting])
    assert found.risks == ("eviction",)
    assert "volatile-lru" in found.problems[0]
