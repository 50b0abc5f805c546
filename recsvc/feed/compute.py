"""One user's feed: choose the user vector, rank with the model, apply the rules, attach.

Pure computation on a snapshot and a user state (no I/O), so every rule is testable alone.
The user vector comes from, in order: the published vector (`cf`), a fold-in of the user's
recent events (`fold_in`), else the popularity of the user's segment, else global popularity
(then the user vector is zero and popularity is a video bias).
"""

from __future__ import annotations

import math
import random
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from recsvc.contract import vectors
from recsvc.contract.records import Source
from recsvc.contract.user_state import UserState
from recsvc.feed.attach import BLOCKED, ItemRules, UnknownRiskPolicy, choose_attachments
from recsvc.feed.campaigns import NOTHING, Applied, CampaignContext, with_pins
from recsvc.feed.foldin import fold_in, project
from recsvc.feed.freshness import Freshness
from recsvc.feed.model import ServingModel, score_spread
from recsvc.feed.placement import PLAIN, Placement, Surface
from recsvc.feed.ranker import Ranked

# the sources with a query vector: the user's, or a context item's
VECTOR_SOURCES = frozenset({Source.CF, Source.FOLD_IN, Source.CONTEXT})

# A page with a topic limit is chosen from this many times its size of the best candidates:
# where even these are nearly all of one topic, the page fills with the ones passed over.
# Each candidate costs the graph its product choice and the page its conversion: at ten pages
# bench/serve.py's feed throughput halved (ratio to /healthz 0.24 against 0.46 without); at
# two pages it fell by 14% (0.388 against 0.449 in the same pair of runs).
DIVERSITY_POOL = 2


@dataclass(frozen=True)
class FeedOptions:
    """How one request is served: the replica's settings (recsvc.service.batcher builds them),
    with an experiment variant's overrides."""

    ranker: str = "cf"  # "popular": global popularity, whatever the user's vector
    attach: bool = True
    max_attached: int = 3
    # (a, b) of the attach score a·(user·product) + b·(video·product); None: the model's
    attach_weights: tuple[float | None, float | None] = (None, None)
    daily_cap: int = 3
    model: str = "current"  # current, challenger or a version
    unknown_risk: UnknownRiskPolicy = UnknownRiskPolicy.LOWEST
    # at most this many videos of one topic before the page's other videos (0: no limit)
    max_per_topic: int = 0
    freshness: Freshness = Freshness()
    # rank the catalogue's videos the model does not know beside its own (recsvc.feed.fresh)
    fresh_videos: bool = True
    # this share of a page's slots shows fresh videos no viewer has placed yet (`explore`)
    exploration_share: float = 0.0
    # the blend of today's behaviour into published vectors (None: the model's weight)
    today_weight: float | None = None
    # the trending prior from the live counts (False: as exported with the model)
    live_trending: bool = True

    def with_overrides(self, overrides: dict[str, Any]) -> FeedOptions:
        """These options with a variant's parameters (recsvc.contract.experiments.Variant)
        applied."""
        if not overrides:
            return self
        user, video = self.attach_weights
        return FeedOptions(
            ranker=str(overrides.get("ranker", self.ranker)),
            attach=bool(overrides.get("attach", self.attach)),
            max_attached=int(overrides.get("max_attached_per_page", self.max_attached)),
            attach_weights=(
                _number(overrides.get("attach_user_weight", user)),
                _number(overrides.get("attach_video_weight", video)),
            ),
            daily_cap=int(overrides.get("daily_cap_per_product", self.daily_cap)),
            model=str(overrides.get("model", self.model)),
            unknown_risk=self.unknown_risk,
            max_per_topic=int(overrides.get("max_videos_per_topic", self.max_per_topic)),
            freshness=replace(
                self.freshness,
                weight=float(overrides.get("freshness_weight", self.freshness.weight)),
            ),
            fresh_videos=bool(overrides.get("fresh_videos", self.fresh_videos)),
            exploration_share=float(overrides.get("exploration_share", self.exploration_share)),
            today_weight=_number(overrides.get("today_weight", self.today_weight)),
            live_trending=bool(overrides.get("live_trending", self.live_trending)),
        )

    def on_surface(self, surface: Surface) -> FeedOptions:
        """These options on a surface: no cards where it carries none, and at most its number
        of cards per page."""
        attach = self.attach and surface.attach
        most = (
            self.max_attached
            if surface.max_attached is None
            else min(self.max_attached, surface.max_attached)
        )
        if attach == self.attach and most == self.max_attached:
            return self
        return replace(self, attach=attach, max_attached=most)

    @property
    def batch_key(self) -> tuple[str, tuple[float | None, float | None], int]:
        """Requests with equal keys can share a batch: one model, one set of attach weights
        (a graph input) and one daily cap (read with the users' state)."""
        return self.model, self.attach_weights, self.daily_cap


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True)
class Feed:
    source: Source
    items: list[dict[str, Any]]  # FeedItem-shaped
    attached: list[str]  # product ids attached on this page
    applied: Applied = NOTHING  # the campaign rules that applied to the page

    def without_products(self, products: set[str] | None) -> Feed:
        """The page with these products' cards removed (None: every card)."""
        if products is not None and products.isdisjoint(self.attached):
            return self
        items = [
            {**item, "product": None}
            if item["product"] and (products is None or item["product"]["product_id"] in products)
            else item
            for item in self.items
        ]
        kept = [p for p in self.attached if products is not None and p not in products]
        return Feed(self.source, items, kept, self.applied)


def user_vector(
    model: ServingModel, state: UserState, today_weight: float | None = None
) -> tuple[np.ndarray | None, Source]:
    """The user's vector and where it came from; None for the popularity sources. A published
    vector is blended with the fold-in of the user's recent events by `today_weight` (None:
    the model's, training.models.today), so that today's behaviour moves the feed."""
    (published,) = published_vectors(model, [state])
    return _with_recent(model, state, published, today_weight)


def published_vectors(model: ServingModel, states: list[UserState]) -> list[np.ndarray | None]:
    """Each user's published vector, decoded; None where there is none, it is of another
    dimension (another model's) or it is zero."""
    size = vectors.SCALE_BYTES + model.ranking.manifest.dimension
    valid = [b for b, state in enumerate(states) if state.vector and len(state.vector) == size]
    found: list[np.ndarray | None] = [None] * len(states)
    if valid:
        packed = [states[b].vector or b"" for b in valid]
        decoded = vectors.decode_many(packed, model.ranking.manifest.dimension)
        nonzero = np.flatnonzero(decoded.any(axis=1)).tolist()
        for row in nonzero:
            found[valid[row]] = decoded[row]
    return found


def _with_recent(
    model: ServingModel, state: UserState, published: np.ndarray | None, today_weight: float | None
) -> tuple[np.ndarray | None, Source]:
    """`user_vector` from the user's published vector (None: none)."""
    if published is not None:
        weight = model.today_weight if today_weight is None else today_weight
        recent = recent_fold_in(model, state) if weight > 0 else None
        if recent is None:
            return published, Source.CF
        return ((1 - weight) * published + weight * recent).astype(np.float32), Source.CF
    folded = recent_fold_in(model, state)
    if folded is None:
        return None, Source.POPULARITY
    return folded, Source.FOLD_IN


def recent_fold_in(model: ServingModel, state: UserState) -> np.ndarray | None:
    """The fold-in of the user's recent events on items the model knows (None: none with a
    positive confidence)."""
    if not state.recent_raw:
        return None
    confidence: dict[int, float] = defaultdict(float)
    for event in state.recent:
        position = model.item_position.get(event.item_id)
        if position is None:
            continue
        weight = model.weights.get(event.action, 0.0)
        if event.action == "view" and event.watch_ratio is not None:
            weight *= min(event.watch_ratio, model.watch_ratio_cap)
        confidence[position] += weight
    positive = {i: c for i, c in confidence.items() if c > 0}
    if not positive:
        return None
    items = np.fromiter(positive.keys(), dtype=np.int64)
    values = np.fromiter(positive.values(), dtype=np.float64)
    ranking = model.ranking
    if model.projection is not None:  # EASE: the history times the projection, as trained
        return project(model.projection, items, values, ranking.manifest.params)
    return fold_in(ranking.item_factors, ranking.item_gram, items, values, ranking.manifest.params)


@dataclass(frozen=True)
class RankInputs:
    """The ranking graph's inputs for a batch of users, and where each user's vector came from."""

    users: np.ndarray  # [B, d]
    video_bias: np.ndarray  # [B, V]
    product_bias: np.ndarray  # [B, P]
    k: int
    weights: tuple[float, float]
    sources: list[Source]
    # each user's score spread (recsvc.feed.model.score_spread) where a prior or freshness
    # needed it, else None; and the instant whose freshness the biases hold
    spread: np.ndarray | None = None
    now: float = 0.0
    # each row's videos kept off its page (hidden_seen): the graph's biases, the fresh table
    # and exploration all leave them out
    seen: tuple[frozenset[str], ...] = ()
    # the campaigns' score deltas on the fresh table's videos [B, n] (None: none), and what
    # the campaigns do to each row (empty: no campaigns)
    fresh_bias: np.ndarray | None = None
    applied: tuple[Applied, ...] = ()
    # per row, the cards left today per capped category (None: no cap applies), which the
    # page's cards may not exceed (recsvc.feed.attach.choose_attachments)
    category_left: tuple[Mapping[str, int] | None, ...] = ()

    def rank(self, model: ServingModel) -> Ranked:
        return model.ranking.rank(
            self.users, self.video_bias, self.product_bias, self.k, self.weights
        )


def hidden_seen(
    states: Sequence[UserState], placements: Sequence[Placement] | None
) -> list[frozenset[str]]:
    """Each request's videos kept off its page: the user's seen ones, and its placement's
    (excluded, shown on the session's earlier pages, the context video)."""
    if placements is None:
        return [state.seen_videos() for state in states]
    return [
        state.seen_videos() | placement.hidden_videos
        if placement.hidden_videos
        else state.seen_videos()
        for state, placement in zip(states, placements, strict=True)
    ]


def context_vector(model: ServingModel, rules: ItemRules, item_id: str) -> np.ndarray | None:
    """A context item's vector: the model's (a video or a product), else a fresh video's;
    None for an item with none."""
    position = model.item_position.get(item_id)
    if position is not None:
        vector: np.ndarray = model.ranking.item_factors[position]
        return vector
    fresh = rules.fresh.position.get(item_id)
    return None if fresh is None else rules.fresh.vectors[fresh]


def with_context(
    vector: np.ndarray | None, context: np.ndarray | None, weight: float
) -> np.ndarray | None:
    """The query for a page related to an item: the user's and the item's directions blended
    by `weight` (the item's share), at the user's length, so that the rules' biases keep their
    scale; the item's own vector for a user without one."""
    if context is None or not context.any():
        return vector
    if vector is None:
        return context.astype(np.float32)
    length = float(np.linalg.norm(vector))
    if length == 0:
        return context.astype(np.float32)
    query = (1 - weight) * vector / length + weight * context / float(np.linalg.norm(context))
    size = float(np.linalg.norm(query))
    return (query * (length / size)).astype(np.float32) if size > 0 else vector


def rank_inputs(
    model: ServingModel,
    rules: ItemRules,
    states: list[UserState],
    sizes: list[int],
    options: list[FeedOptions],
    placements: Sequence[Placement] | None = None,
    campaigns: CampaignContext | None = None,
) -> RankInputs:
    """Vectors and rule biases for several users (requests with one `batch_key`). A state
    whose `capped` is None (unknown: Redis down) gets every product blocked; so does a
    request whose variant turns attach off. A placement (recsvc.feed.placement) blends its
    context item into the query, hides its videos and products, and blocks the cards its
    surface does not carry. Campaign rules (recsvc.feed.campaigns) hide, block and move
    scores on top of all that: they never lift a block."""
    now = time.time()
    dimension = model.ranking.manifest.dimension
    users = np.zeros((len(states), dimension), dtype=np.float32)
    video_bias = np.empty((len(states), model.ranking.n_videos), dtype=np.float32)
    video_bias[:] = rules.video_block  # retired videos; a user's seen ones below
    product_bias = np.empty((len(states), model.ranking.n_products), dtype=np.float32)
    sources = []
    published = published_vectors(model, states)
    seen_by_row = hidden_seen(states, placements)
    applied = _campaigns_applied(campaigns, states, placements)
    for b, (state, option) in enumerate(zip(states, options, strict=True)):
        placement = PLAIN if placements is None else placements[b]
        popular = option.ranker == "popular"
        vector, source = (
            (None, Source.POPULARITY)
            if popular
            else _with_recent(model, state, published[b], option.today_weight)
        )
        if placement.context is not None and not popular:
            context = context_vector(model, rules, placement.context)
            blended = with_context(vector, context, placement.surface.context_weight)
            if vector is None and blended is not None:
                source = Source.CONTEXT
            vector = blended
        seen = seen_by_row[b]
        if seen:
            rules.video_bias(seen, out=video_bias[b])
        if applied:  # the campaigns' exclusions: the model's videos here, fresh ones as seen
            if len(applied[b].hidden_positions):
                video_bias[b, applied[b].hidden_positions] = BLOCKED
            if applied[b].hidden_fresh:
                seen_by_row[b] = seen | applied[b].hidden_fresh
        if vector is None:
            # No vector: a zero user and popularity as the video bias. Products are then
            # chosen by their affinity with the video alone (the user term is zero).
            segment = None if popular else model.segment_popularity.get(state.segment or "")
            source = Source.POPULARITY if segment is None else Source.SEGMENT_POPULARITY
            video_bias[b] += model.video_popularity if segment is None else segment
        else:
            users[b] = vector
        sources.append(source)
        rules.product_bias(
            state.risk_tolerance,
            state.holdings,
            state.capped if option.attach else None,  # None blocks every product
            option.unknown_risk,
            out=product_bias[b],
        )
        if placement is not PLAIN:
            _place_products(rules, placement, product_bias[b])
        if applied and applied[b].blocked_products:
            product_bias[b, list(applied[b].blocked_products)] = BLOCKED
    # The trending prior, freshness and campaigns' boosts, in units of each user's score
    # spread (zero without a vector): the spread computed once for all, and for the fresh
    # table (with_fresh).
    fresh = np.array([o.freshness.weight for o in options], dtype=np.float32)
    boosted = [b for b, a in enumerate(applied) if a.boosting]
    spread = None
    if model.trending is not None or fresh.any() or boosted:
        spread = np.zeros(len(states), dtype=np.float32)
        with_vector = [b for b, source in enumerate(sources) if source in VECTOR_SOURCES]
        if with_vector:  # (row by row the same as over the whole batch)
            spread[with_vector] = score_spread(users[with_vector], model.video_covariance)
        trending = model.trending_bias(users, spread=spread)
        if trending is not None:
            exported = [b for b, o in enumerate(options) if not o.live_trending]
            if exported and model.trending_live:  # these rows get the prior as exported
                trending[exported] = model.trending_bias(
                    users[exported], live=False, spread=spread[exported]
                )
            video_bias += trending
        lifted = np.flatnonzero(fresh * spread)  # adding 0 changes no bias: skipped
        if len(lifted):
            decay = rules.freshness_decay(options[0].freshness, now)
            video_bias[lifted] += (fresh * spread)[lifted, None] * decay[None, :]
    user_weight, video_weight = options[0].attach_weights
    model_user, model_video = model.attach_weights
    weights = (
        model_user if user_weight is None else user_weight,
        model_video if video_weight is None else video_weight,
    )
    if weights[0] + weights[1] == 0:  # a setting zeroed the model's only weight: keep the model's
        weights = (model_user, model_video)
    fresh_bias = None
    if boosted:
        assert spread is not None
        fresh_bias = _boost(
            model, rules, applied, boosted, spread, sources, users, weights,
            video_bias, product_bias,
        )  # fmt: skip
    # a topic limit draws from more candidates than the page holds
    pool = max(
        (n * DIVERSITY_POOL for n, o in zip(sizes, options, strict=True) if o.max_per_topic),
        default=0,
    )
    k = max(max(sizes), min(pool, model.ranking.n_videos))
    return RankInputs(
        users,
        video_bias,
        product_bias,
        k,
        weights,
        sources,
        spread,
        now,
        tuple(seen_by_row),
        fresh_bias,
        tuple(applied),
        _category_left(applied, states),
    )


def _category_left(
    applied: Sequence[Applied], states: Sequence[UserState]
) -> tuple[Mapping[str, int] | None, ...]:
    """Each row's cards left today per capped category (caps less today's counts)."""
    if not applied:
        return ()
    return tuple(
        {c: cap - state.category_counts.get(c, 0) for c, cap in its.caps.items()}
        if its.caps
        else None
        for its, state in zip(applied, states, strict=True)
    )


def _campaigns_applied(
    campaigns: CampaignContext | None,
    states: Sequence[UserState],
    placements: Sequence[Placement] | None,
) -> list[Applied]:
    """What the campaigns do to each row (empty: no campaign rule and no category cap)."""
    if campaigns is None or not campaigns.rules:
        return []
    active = campaigns.rules.active(campaigns.at)
    return [
        campaigns.rules.for_user(
            active,
            state.segment,
            state.lifecycle,
            state.risk_tolerance,
            (PLAIN if placements is None else placements[b]).surface.name,
            campaigns.variants[b],
            state.category_counts,
        )
        for b, state in enumerate(states)
    ]


def boost_unit(model: ServingModel, spread: float, source: Source) -> float:
    """What a campaign's strength 1 adds to a row's video scores: its score spread, or for a
    row without a vector the spread of the model's video popularity."""
    return spread if source in VECTOR_SOURCES else model.popularity_spread


def product_unit(
    model: ServingModel, user: np.ndarray, source: Source, weights: tuple[float, float]
) -> float:
    """What a campaign's strength 1 adds to a row's attach scores: the spread over products of
    its user term a·(u·p); for a row without a vector (or a = 0), b times the spread of v·p
    over the model's videos and products (recsvc.feed.model.ServingModel.attach_spread)."""
    return float(product_units_of(model, user[None, :], [source], weights)[0])


def _boost(
    model: ServingModel,
    rules: ItemRules,
    applied: list[Applied],
    rows: list[int],
    spread: np.ndarray,
    sources: list[Source],
    users: np.ndarray,
    weights: tuple[float, float],
    video_bias: np.ndarray,
    product_bias: np.ndarray,
) -> np.ndarray | None:
    """Add the boosts' and buries' deltas (summed per item once per kind of user, Applied) to
    these rows' biases: on videos in units of each row's score spread (boost_unit), on
    products in units of its attach scores' (product_unit); the fresh table's deltas [B, n],
    None where no rule matches a fresh video. Rows whose users are alike share their deltas:
    each such group is one numpy step."""
    fresh_bias = None
    video_units = np.array([boost_unit(model, float(spread[b]), sources[b]) for b in rows])
    groups: dict[int, list[int]] = {}  # by the kind of user's deltas: rows' places in `rows`
    for place, b in enumerate(rows):
        groups.setdefault(id(applied[b].video_delta), []).append(place)
    scaled = np.empty(video_bias.shape[1], dtype=np.float32)  # one dense delta at a time
    for places in groups.values():
        its = applied[rows[places[0]]]
        positions, deltas = its.video_delta
        if its.video_dense is not None:
            for place in places:
                np.multiply(its.video_dense, np.float32(video_units[place]), out=scaled)
                video_bias[rows[place]] += scaled
        elif len(positions):
            at = np.array([rows[p] for p in places])[:, None]
            units = video_units[places].astype(np.float32)[:, None]
            video_bias[at, positions] += units * deltas
    # the short tables (fresh videos, products) in one step for the batch
    fresh = [(p, b, d) for p, b in enumerate(rows) if (d := applied[b].fresh_dense) is not None]
    if fresh:
        fresh_bias = np.zeros((len(video_bias), len(rules.fresh)), dtype=np.float32)
        units = video_units[[p for p, _, _ in fresh]].astype(np.float32)[:, None]
        fresh_bias[[b for _, b, _ in fresh]] = units * np.stack([d for _, _, d in fresh])
    products = [(b, d) for b in rows if (d := applied[b].product_dense) is not None]
    if products:
        on = [b for b, _ in products]
        units = product_units_of(model, users[on], [sources[b] for b in on], weights)
        product_bias[on] += units.astype(np.float32)[:, None] * np.stack([d for _, d in products])
    return fresh_bias


def product_units_of(
    model: ServingModel, users: np.ndarray, sources: list[Source], weights: tuple[float, float]
) -> np.ndarray:
    """product_unit for several rows at once."""
    user_weight, video_weight = weights
    fallback = video_weight * model.attach_spread
    units = np.full(len(users), fallback, dtype=np.float64)
    with_vector = [i for i, source in enumerate(sources) if source in VECTOR_SOURCES]
    if with_vector and user_weight > 0:
        products = model.ranking.item_factors[model.ranking.n_videos :]
        spreads = user_weight * (users[with_vector] @ products.T).std(axis=1)
        units[with_vector] = np.where(spreads > 0, spreads, fallback)
    return units


def _place_products(rules: ItemRules, placement: Placement, bias: np.ndarray) -> None:
    """Block in a row's product biases the excluded products and those of categories its
    surface does not carry."""
    categories = placement.surface.product_categories
    if categories is not None:
        bias[rules.outside(categories)] = BLOCKED
    hidden = [
        rules.product_position[p] for p in placement.hidden_products if p in rules.product_position
    ]
    if hidden:
        bias[hidden] = BLOCKED


def pages(
    rules: ItemRules,
    inputs: RankInputs,
    ranked: Ranked,
    sizes: list[int],
    options: list[FeedOptions],
) -> list[Feed]:
    """Each user's page from a batch's ranking: blocked videos dropped, the topic limit, the
    cards, then exploration's slots (`explored_videos`), then the campaigns' pins."""
    # Whole-batch conversions once; the per-user work is then plain Python on short lists.
    # Scores are float32: six decimals say all they hold, and round in one numpy call.
    video_index, product_index = ranked.video_index.tolist(), ranked.product_index.tolist()
    video_score = np.round(ranked.video_score.astype(np.float64), 6).tolist()
    product_score = np.round(ranked.product_score.astype(np.float64), 6).tolist()
    exploring = len(rules.fresh) > 0
    names, n_model = rules.video_names, len(rules.video_block)
    feeds = []
    for b, source in enumerate(inputs.sources):
        option = options[b]
        videos, scores = video_index[b], video_score[b]
        # Blocked videos (-inf) sort last: the page draws from the ones before them.
        live = scores.index(-math.inf) if scores and scores[-1] == -math.inf else len(scores)
        products, product_scores = product_index[b], product_score[b]
        chosen: Sequence[int]
        if option.max_per_topic:
            topics = list(map(rules.ranked_topics.__getitem__, videos[:live]))
            chosen = diversified(range(live), topics, option.max_per_topic, sizes[b])
            page_products = [products[j] for j in chosen]
            page_scores = [product_scores[j] for j in chosen]
        else:
            chosen = range(min(sizes[b], live))
            page_products, page_scores = products[: len(chosen)], product_scores[: len(chosen)]
        max_attached = option.max_attached if option.attach else 0
        left = inputs.category_left[b] if inputs.category_left else None
        attach = choose_attachments(
            page_products,
            page_scores,
            max_attached,
            rules.product_categories if left else None,
            left,
        )
        explored: dict[int, str] = {}
        if exploring and option.exploration_share:
            slots = exploration_slots(len(chosen), option.exploration_share)
            if slots:
                # what the draw must not repeat: the page's fresh videos (they follow the model's)
                shown = {names[videos[j]] for j in chosen if videos[j] >= n_model}
                drawn = explored_videos(rules, len(slots), shown, inputs.seen[b])
                explored = dict(zip(slots, drawn, strict=False))
        feed = _page(rules, source, chosen, videos, scores, attach, product_scores, explored)
        if inputs.applied:
            feed = _campaign_page(rules, inputs, b, feed, videos[:live], scores)
        feeds.append(feed)
    return feeds


def _campaign_page(
    rules: ItemRules,
    inputs: RankInputs,
    b: int,
    feed: Feed,
    ranked: list[int],
    scores: list[float],
) -> Feed:
    """The page with the campaigns that applied to it, its pins placed."""
    applied = inputs.applied[b]
    if not applied.pins:
        return Feed(feed.source, feed.items, feed.attached, applied)
    hidden = inputs.seen[b]
    names = rules.video_names

    def can_show(video: str) -> bool:
        if video in hidden:
            return False
        position = rules.video_position.get(video)
        if position is not None:
            return bool(rules.video_block[position] == 0)
        return video in rules.fresh.position

    pinned = {pin.video_id for pin in applied.pins}
    ranked_scores = {
        names[v]: s for v, s in zip(ranked, scores, strict=False) if names[v] in pinned
    }
    items, attached = with_pins(feed.items, feed.attached, applied.pins, ranked_scores, can_show)
    return Feed(feed.source, items, attached, applied)


def diversified(
    candidates: Sequence[int], topics: list[tuple[str, ...]], cap: int, size: int
) -> list[int]:
    """Up to `size` of `candidates` (best first): each in turn while every topic of it has
    fewer than `cap` videos on the page so far, then, where too few remain, the ones passed
    over, best first. A video without topics is never passed over."""
    chosen: list[int] = []
    passed: list[int] = []
    counts: dict[str, int] = {}
    for candidate, its_topics in zip(candidates, topics, strict=True):
        if len(chosen) == size:
            break
        for topic in its_topics:
            if counts.get(topic, 0) >= cap:
                passed.append(candidate)
                break
        else:
            chosen.append(candidate)
            for topic in its_topics:
                counts[topic] = counts.get(topic, 0) + 1
    return (chosen + passed)[:size]


def build_feeds(
    model: ServingModel,
    rules: ItemRules,
    states: list[UserState],
    sizes: list[int],
    options: list[FeedOptions],
    placements: Sequence[Placement] | None = None,
    campaigns: CampaignContext | None = None,
) -> list[Feed]:
    """Rank, filter and attach for several users (of one `batch_key`) in one model call;
    `placements` (None: every request on the home surface, plain) per request; `campaigns`
    (None: none) the campaign rules of the batch."""
    return ranked_pages(model, rules, states, sizes, options, placements, campaigns)[1]


def ranked_pages(
    model: ServingModel,
    rules: ItemRules,
    states: list[UserState],
    sizes: list[int],
    options: list[FeedOptions],
    placements: Sequence[Placement] | None = None,
    campaigns: CampaignContext | None = None,
) -> tuple[RankInputs, list[Feed]]:
    """build_feeds, with the graph's inputs the pages came from (recsvc.feed.explain)."""
    inputs = rank_inputs(model, rules, states, sizes, options, placements, campaigns)
    ranked = with_fresh(model, rules, inputs, inputs.rank(model), options)
    return inputs, pages(rules, inputs, ranked, sizes, options)


def exploration_slots(size: int, share: float) -> list[int]:
    """The 0-based slots of a page of `size` that exploration takes: round(share · size) of
    them, spread evenly, none at the top (slot i of m at ⌊(i + ½)·size/m⌋)."""
    count = min(size, math.floor(share * size + 0.5))
    return [math.floor((i + 0.5) * size / count) for i in range(count)]


def explored_videos(
    rules: ItemRules, count: int, shown: set[str], seen: frozenset[str]
) -> list[str]:
    """Up to `count` fresh videos no viewer has placed yet (still at their metadata vector),
    drawn at random among those the user has not seen and the page does not hold.

    The page gives its exploration slots to them: its own videos move down and its last ones
    drop out (their cards with them). An explored video carries `explored: true`, no product
    card, and score 0 (it was not ranked). Where too few such videos exist, the slots stay
    the page's own."""
    unplaced = rules.fresh.unplaced
    if not unplaced:
        return []
    # A few random draws usually find enough (the candidates are many next to the page and
    # the user's history); else every candidate is looked at.
    draws = random.sample(unplaced, min(len(unplaced), 2 * count))
    chosen = [v for v in draws if v not in shown and v not in seen][:count]
    if len(chosen) < count:
        candidates = [v for v in unplaced if v not in shown and v not in seen]
        chosen = random.sample(candidates, min(count, len(candidates)))
    return chosen


def with_fresh(
    model: ServingModel,
    rules: ItemRules,
    inputs: RankInputs,
    ranked: Ranked,
    options: list[FeedOptions],
) -> Ranked:
    """The graph's ranking merged with the fresh table's (recsvc.feed.fresh), by score, for
    the users with a vector whose options rank fresh videos; the others' rows as ranked. A
    fresh video's index follows the model's videos (rules.video_names). Its score and its
    product follow the graph's formulas: u · v plus the freshness bias (seen ones blocked),
    and the best of a·(u · p) + b·(v · p) + the product's bias."""
    fresh = rules.fresh
    rows = [
        b
        for b, (source, option) in enumerate(zip(inputs.sources, options, strict=True))
        if option.fresh_videos and source in VECTOR_SOURCES
    ]
    k = ranked.video_index.shape[1]
    if not len(fresh) or not rows or k == 0:
        return ranked
    users = inputs.users[rows]
    scores = users @ fresh.vectors.T  # [R, n]
    if inputs.fresh_bias is not None:
        scores += inputs.fresh_bias[rows]
    for r, b in enumerate(rows):
        seen = [fresh.position[v] for v in inputs.seen[b] if v in fresh.position]
        if seen:
            scores[r, seen] = -np.inf
    weights = np.array([options[b].freshness.weight for b in rows], dtype=np.float32)
    if weights.any():
        spread = (
            score_spread(users, model.video_covariance)
            if inputs.spread is None
            else inputs.spread[rows]
        )
        decay = fresh.freshness_decay(options[rows[0]].freshness, inputs.now)
        scores += (weights * spread)[:, None] * decay[None, :]
    # A fresh video enters a row's ranking only by beating its last video (the graph's k-th,
    # whose ties the graph keeps): the rows where none does stay as ranked.
    entering = np.flatnonzero(scores.max(axis=1) > ranked.video_score[rows, -1])
    if not len(entering):
        return ranked
    rows = [rows[r] for r in entering]
    users, scores = users[entering], scores[entering]
    count = min(k, len(fresh))
    if count < len(fresh):
        top = np.argpartition(-scores, count - 1, axis=1)[:, :count]
    else:
        top = np.broadcast_to(np.arange(count), (len(rows), count))
    by_row = np.arange(len(rows))[:, None]  # with a [R, m] index: each row's own entries
    n_videos = model.ranking.n_videos
    merged_index = np.concatenate([ranked.video_index[rows], top + n_videos], axis=1)
    merged_score = np.concatenate([ranked.video_score[rows], scores[by_row, top]], axis=1)
    order = np.argsort(-merged_score, axis=1, kind="stable")[:, :k]  # ties: the graph's first
    # The graph's product under each of its videos; one chosen here under each fresh video
    # that made the ranking (not under every fresh candidate)
    is_fresh = order >= k
    graph_order = np.where(is_fresh, 0, order)
    chosen_product = ranked.product_index[rows][by_row, graph_order]
    chosen_score = ranked.product_score[rows][by_row, graph_order]
    at_row, at_rank = np.nonzero(is_fresh)
    if len(at_row):
        products = model.ranking.item_factors[n_videos:]
        user_weight, video_weight = inputs.weights
        placed = top[at_row, order[at_row, at_rank] - k]  # rows of the fresh table
        user_part = user_weight * (users[at_row] @ products.T) + inputs.product_bias[rows][at_row]
        attach = video_weight * fresh.product_affinity[placed] + user_part  # [m, P]
        chosen_product[at_row, at_rank] = attach.argmax(axis=1)
        chosen_score[at_row, at_rank] = attach.max(axis=1)
    video_index, video_score = ranked.video_index.copy(), ranked.video_score.copy()
    product_index, product_score = ranked.product_index.copy(), ranked.product_score.copy()
    video_index[rows] = merged_index[by_row, order]
    video_score[rows] = merged_score[by_row, order]
    product_index[rows] = chosen_product
    product_score[rows] = chosen_score
    return Ranked(video_index, video_score, product_index, product_score)


def _page(
    rules: ItemRules,
    source: Source,
    chosen: Sequence[int],
    videos: list[int],
    scores: list[float],
    attach: list[int | None],
    product_scores: list[float],
    explored: dict[int, str],
) -> Feed:
    """The page in the FeedItem shape: the chosen positions of a user's ranking, each with the
    product `attach` puts under it, and the explored videos in their slots."""
    names, records = rules.video_names, rules.cards
    items: list[dict[str, Any]] = []
    attached: list[str] = []
    own = zip(chosen, attach, strict=True)
    # Plain dicts in the FeedItem shape: a page is built per request, and trusted values
    # need no validation (the route declares FeedResponse for the schema).
    for rank in range(1, len(chosen) + 1):
        video = explored.get(rank - 1) if explored else None
        if video is not None:
            item = {"rank": rank, "video_id": video, "score": 0.0, "product": None}
            item["explored"] = True
            items.append(item)
            continue
        j, p = next(own)
        card = None
        if p is not None:
            base = records[p]
            assert base is not None  # a product without a record is blocked
            card = {**base, "score": product_scores[j]}
            attached.append(card["product_id"])
        item = {"rank": rank, "video_id": names[videos[j]], "score": scores[j], "product": card}
        items.append(item)
    return Feed(source, items, attached)
