"""Campaign rules (recsvc.contract.campaigns) applied to a batch's rows: pure, no I/O.

`CampaignRules` aligns a definition with one `ItemRules` (a model's video and product order,
its fresh table) once; per request, `for_user` says which rules apply to this user now and
what they change:

- boosts and buries, as score deltas on the matching videos and products (in units of the
  row's score spread, added beside the trending prior and freshness);
- exclusions, as videos hidden like seen ones and products blocked;
- pins, as (slot, video) pairs placed on the page after ranking (`with_pins`);
- category caps: the lowest cap on each category for this user today, the base caps of the
  settings included, whose reached categories are blocked, and which the counting script
  checks again atomically (recsvc.store.users).

The seller's rules stay blocks (−inf) that no delta lifts: a boost adds a finite number to
−inf. Pins only place a video the page could show (live, not seen, not excluded).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from recsvc.contract.campaigns import Campaign, Campaigns, Kind
from recsvc.feed.attach import ItemRules

COMPILED_KEPT = 8  # compiled (definition, rules) pairs held: a replica has a few rules at once
TARGETED_KEPT = 10_000  # kinds of user (profile, surface, variants) whose rules are kept
NO_DELTA: tuple[np.ndarray, np.ndarray] = (
    np.zeros(0, dtype=np.int64),
    np.zeros(0, dtype=np.float32),
)


@dataclass(frozen=True, eq=False)  # compared by identity: one per rule and compilation
class CompiledRule:
    campaign: Campaign
    videos: np.ndarray  # model video positions it matches
    fresh: np.ndarray  # fresh table positions it matches
    video_ids: frozenset[str]  # every video it matches (model and fresh)
    products: np.ndarray  # product positions it matches
    product_ids: frozenset[str]

    @property
    def name(self) -> str:
        return self.campaign.name


@dataclass(frozen=True)
class Pin:
    slot: int  # 1 = the top
    video_id: str
    rule: str


@dataclass(frozen=True, eq=False)  # holds arrays: compared by identity
class Applied:
    """What the campaigns do to one user's page now."""

    rules: tuple[CompiledRule, ...] = ()
    boosts: tuple[CompiledRule, ...] = ()  # boosts and buries
    hidden_videos: frozenset[str] = frozenset()  # excluded
    hidden_positions: np.ndarray = field(default_factory=lambda: NO_DELTA[0])  # of the model's
    hidden_fresh: frozenset[str] = frozenset()  # the excluded among the fresh table's
    blocked_products: tuple[int, ...] = ()  # excluded, or of a category at its cap
    pins: tuple[Pin, ...] = ()  # by priority, several may name one slot or video (with_pins)
    caps: Mapping[str, int] = field(default_factory=dict)  # category -> cards a day at most
    # category -> the rules whose cap holds (the lowest; none where the settings' is lower)
    cap_rules: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # the boosts' and buries' strengths summed per item: (positions, strengths) on the
    # model's videos, the fresh table's and the products (recsvc.feed.compute._boost)
    video_delta: tuple[np.ndarray, np.ndarray] = field(default_factory=lambda: NO_DELTA)
    # the same as one vector over the model's videos [V], where the deltas cover a third of
    # them or more (a topic's boost): one add per row beats an index of most of the videos
    video_dense: np.ndarray | None = None
    # the fresh table's and the products' deltas as vectors [n], [P] (None: none): short
    fresh_dense: np.ndarray | None = None
    product_dense: np.ndarray | None = None
    fresh_delta: tuple[np.ndarray, np.ndarray] = field(default_factory=lambda: NO_DELTA)
    product_delta: tuple[np.ndarray, np.ndarray] = field(default_factory=lambda: NO_DELTA)

    @property
    def boosting(self) -> bool:
        deltas = (self.video_delta, self.fresh_delta, self.product_delta)
        return any(len(positions) for positions, _ in deltas)

    def card_rules(self, product_id: str, category: str) -> tuple[str, ...]:
        """The rules that acted on this card: boosts or buries of its product, caps of its
        category."""
        names = [r.name for r in self.boosts if product_id in r.product_ids]
        return (*names, *self.cap_rules.get(category, ()))


NOTHING = Applied()


class CampaignRules:
    """A campaign definition aligned with one model's items under a catalogue."""

    def __init__(
        self, campaigns: Campaigns, rules: ItemRules, base_caps: Mapping[str, int]
    ) -> None:
        self.campaigns = campaigns
        self.base_caps = dict(base_caps)
        fresh_topics = _fresh_index(rules)
        self.fresh_ids = rules.fresh.ids
        self.n_videos = len(rules.video_block)
        self.n_products = len(rules.products)
        self.compiled = {c.name: _compile(c, rules, fresh_topics) for c in campaigns.campaigns}
        categories = [r.category.value if r is not None else "" for r in rules.products]
        self.product_category = tuple(categories)
        self._by_category: dict[str, tuple[int, ...]] = {}
        for j, category in enumerate(categories):
            if category:
                self._by_category[category] = (*self._by_category.get(category, ()), j)
        self._active: tuple[CompiledRule, ...] = ()
        self._active_second: float | None = None
        # what the rules in force do to each kind of user (for_user), before their counts
        self._targeted: dict[tuple[Any, ...], Applied] = {}

    def __bool__(self) -> bool:
        return bool(self.compiled) or bool(self.base_caps)

    def active(self, at: float) -> tuple[CompiledRule, ...]:
        """The compiled rules that apply at `at`, by priority. Judged once per second (a
        schedule's edge takes effect within the second it falls in)."""
        second = math.floor(at)
        if second != self._active_second:
            active = tuple(self.compiled[c.name] for c in self.campaigns.active(second))
            if active != self._active:
                self._targeted.clear()  # what each kind of user gets changed
            self._active, self._active_second = active, second
        return self._active

    def for_user(
        self,
        active: Sequence[CompiledRule],
        segment: str | None,
        lifecycle: str | None,
        risk_tolerance: int | None,
        surface: str,
        variants: frozenset[str],
        category_counts: Mapping[str, int],
    ) -> Applied:
        """What the `active` rules (the last CampaignRules.active) do to this user's page on
        this surface, given today's cards per category. What the rules do to users alike
        (profile, surface, variants) is worked out once and kept until the rules in force
        change; only the caps reached are the user's own."""
        key = (segment, lifecycle, risk_tolerance, surface, variants)
        shared = self._targeted.get(key)
        if shared is None:
            if len(self._targeted) >= TARGETED_KEPT:
                self._targeted.clear()
            shared = self._shared(active, *key)
            self._targeted[key] = shared
        if not shared.caps or not category_counts:
            return shared
        reached = [c for c, cap in shared.caps.items() if category_counts.get(c, 0) >= cap]
        if not reached:
            return shared
        blocked = set(shared.blocked_products)
        for category in reached:
            blocked.update(self._by_category.get(category, ()))
        return replace(shared, blocked_products=tuple(sorted(blocked)))

    def _shared(
        self,
        active: Sequence[CompiledRule],
        segment: str | None,
        lifecycle: str | None,
        risk_tolerance: int | None,
        surface: str,
        variants: frozenset[str],
    ) -> Applied:
        """for_user before the user's own counts."""
        mine = tuple(
            r
            for r in active
            if r.campaign.targets(segment, lifecycle, risk_tolerance, surface, variants)
        )
        if not mine and not self.base_caps:
            return NOTHING
        caps = dict(self.base_caps)
        cap_rules: dict[str, tuple[str, ...]] = {}
        boosts: list[CompiledRule] = []
        pins: list[Pin] = []
        hidden: set[str] = set()
        hidden_positions: set[int] = set()
        hidden_fresh: set[str] = set()
        blocked: set[int] = set()
        for rule in mine:
            if rule.campaign.kind is Kind.EXCLUDE:  # first: an exclusion beats every pin
                hidden |= rule.video_ids
                hidden_positions.update(rule.videos.tolist())
                hidden_fresh.update(self.fresh_ids[i] for i in rule.fresh.tolist())
                blocked.update(rule.products.tolist())
        for rule in mine:
            campaign = rule.campaign
            if campaign.kind in (Kind.BOOST, Kind.BURY):
                boosts.append(rule)
            elif campaign.kind is Kind.PIN:
                video, slot = campaign.video, campaign.slot
                assert video is not None and slot is not None  # validated
                if video not in hidden:  # by priority: with_pins places the first it can
                    pins.append(Pin(slot, video, campaign.name))
            elif campaign.kind is Kind.CAP:
                assert campaign.daily_cap is not None
                for name in (c.value for c in campaign.categories):
                    caps[name] = min(caps.get(name, campaign.daily_cap), campaign.daily_cap)
        for rule in mine:  # the cap rules that hold: those at the lowest cap
            campaign = rule.campaign
            if campaign.kind is Kind.CAP:
                for name in (c.value for c in campaign.categories):
                    if campaign.daily_cap == caps[name]:
                        cap_rules[name] = (*cap_rules.get(name, ()), campaign.name)
        video_delta = _summed([(r.videos, r.campaign.signed_strength) for r in boosts])
        fresh_delta = _summed([(r.fresh, r.campaign.signed_strength) for r in boosts])
        product_delta = _summed([(r.products, r.campaign.signed_strength) for r in boosts])
        return Applied(
            rules=mine,
            boosts=tuple(boosts),
            hidden_videos=frozenset(hidden),
            hidden_positions=np.array(sorted(hidden_positions), dtype=np.int64),
            hidden_fresh=frozenset(hidden_fresh),
            blocked_products=tuple(sorted(blocked)),
            pins=tuple(pins),
            caps=caps,
            cap_rules=cap_rules,
            video_delta=video_delta,
            video_dense=_dense(video_delta, self.n_videos),
            fresh_dense=_dense(fresh_delta, len(self.fresh_ids), always=True),
            product_dense=_dense(product_delta, self.n_products, always=True),
            fresh_delta=fresh_delta,
            product_delta=product_delta,
        )


def _dense(
    delta: tuple[np.ndarray, np.ndarray], size: int, always: bool = False
) -> np.ndarray | None:
    """The deltas as one vector of `size`, where they cover a third of it or more (or, with
    `always`, where there are any)."""
    positions, deltas = delta
    if not len(positions) or (not always and 3 * len(positions) < size):
        return None
    dense = np.zeros(size, dtype=np.float32)
    dense[positions] = deltas
    return dense


def _summed(parts: list[tuple[np.ndarray, float]]) -> tuple[np.ndarray, np.ndarray]:
    """Strengths summed per position (a boost and a bury of one item cancel: dropped)."""
    parts = [(positions, strength) for positions, strength in parts if len(positions)]
    if not parts:
        return NO_DELTA
    positions = np.concatenate([p for p, _ in parts])
    strengths = np.concatenate([np.full(len(p), s, dtype=np.float32) for p, s in parts])
    unique, inverse = np.unique(positions, return_inverse=True)
    summed = np.zeros(len(unique), dtype=np.float32)
    np.add.at(summed, inverse, strengths)
    kept = summed != 0
    return unique[kept], summed[kept]


def _fresh_index(rules: ItemRules) -> dict[str, list[int]]:
    """Per topic, the fresh table's videos of it."""
    index: dict[str, list[int]] = {}
    for position, topics in enumerate(rules.fresh.topics):
        for topic in topics:
            index.setdefault(topic, []).append(position)
    return index


def _compile(
    campaign: Campaign, rules: ItemRules, fresh_topics: Mapping[str, list[int]]
) -> CompiledRule:
    topics = set(campaign.topics)
    named = set(campaign.videos)
    if campaign.kind is Kind.PIN and campaign.video is not None:
        named.add(campaign.video)
    matched = rules.videos_of(topics)
    matched.update(rules.video_position[v] for v in named if v in rules.video_position)
    videos = sorted(matched)
    in_fresh = {i for topic in topics for i in fresh_topics.get(topic, ())}
    in_fresh.update(rules.fresh.position[v] for v in named if v in rules.fresh.position)
    fresh = sorted(in_fresh)
    categories = {c.value for c in campaign.categories}
    wanted = set(campaign.products)
    products = [
        j
        for j, record in enumerate(rules.products)
        if record is not None
        and (record.product_id in wanted or record.category.value in categories)
    ]
    if campaign.kind is Kind.CAP:
        products = []  # a cap blocks by its count, not by matching
    video_ids = {rules.video_names[i] for i in videos}
    video_ids |= {rules.fresh.ids[i] for i in fresh}
    return CompiledRule(
        campaign=campaign,
        videos=np.array(videos, dtype=np.int64),
        fresh=np.array(fresh, dtype=np.int64),
        video_ids=frozenset(video_ids),
        products=np.array(products, dtype=np.int64),
        product_ids=frozenset(rules.products[j].product_id for j in products),  # type: ignore[union-attr]
    )


_compiled: OrderedDict[tuple[int, int, int], tuple[Any, ...]] = OrderedDict()


def compiled_for(
    campaigns: Campaigns, rules: ItemRules, base_caps: Mapping[str, int]
) -> CampaignRules:
    """`CampaignRules` for this definition and these rules, compiled once (kept with the
    objects they came from, so that an id is never reused while its entry is held)."""
    key = (id(campaigns), id(rules), id(base_caps))
    held = _compiled.get(key)
    if held is not None:
        _compiled.move_to_end(key)
        compiled: CampaignRules = held[0]
        return compiled
    compiled = CampaignRules(campaigns, rules, base_caps)
    _compiled[key] = (compiled, campaigns, rules, base_caps)
    while len(_compiled) > COMPILED_KEPT:
        _compiled.popitem(last=False)
    return compiled


@dataclass(frozen=True)
class CampaignContext:
    """A batch's campaigns: the compiled rules, the instant they are judged at, and each
    row's experiment variants ("experiment:variant")."""

    rules: CampaignRules
    at: float
    variants: Sequence[frozenset[str]]


def with_pins(
    items: list[dict[str, Any]],
    attached: list[str],
    pins: Sequence[Pin],
    showable: Mapping[str, float] | None,
    can_show: Any,
) -> tuple[list[dict[str, Any]], list[str]]:
    """A page's items with each pin's video at its slot: moved there with its card when on
    the page, else put there (score `showable[video]` when ranked, else 0, no card) and the
    page's last item dropped with its card. `can_show(video)` says whether the page may show
    it (live, not seen, not excluded); a pin of a slot past the page is not on this page."""
    size = len(items)
    placed: dict[int, dict[str, Any]] = {}
    pinned: set[str] = set()
    on_page = {item["video_id"]: item for item in items}
    for pin in pins:
        if pin.slot > size or pin.slot in placed or pin.video_id in pinned:
            continue
        existing = on_page.get(pin.video_id)
        if existing is None and not can_show(pin.video_id):
            continue
        item = (
            dict(existing)
            if existing is not None
            else {
                "video_id": pin.video_id,
                "score": (showable or {}).get(pin.video_id, 0.0),
                "product": None,
            }
        )
        item["pinned"] = True
        item.pop("explored", None)
        placed[pin.slot] = item
        pinned.add(pin.video_id)
    if not placed:
        return items, attached
    rest = iter([item for item in items if item["video_id"] not in pinned])
    page = []
    for rank in range(1, size + 1):
        shown = placed.get(rank) or next(rest, None)
        if shown is None:
            break
        page.append(shown if shown.get("rank") == rank else {**shown, "rank": rank})
    cards = [shown["product"]["product_id"] for shown in page if shown["product"]]
    return page, [p for p in attached if p in cards]
