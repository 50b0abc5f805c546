"""The campaigns' dry run: how many users and feeds a definition would touch, before it goes
live (POST /v1/admin/campaigns/dry-run, the console's Dry run).

On a sample of users with a profile (up to `users`), it builds each user's page on each
surface the serving or the proposed rules name (home for a rule that names none) twice, with
the rules serving now and with the proposed ones, judged at one instant, on the model the
user's experiment variant is served, and compares them. Per proposed rule it counts the
users it targets (whatever its schedule) and the pages it acts on at that instant (shows or
hides one of its items; a cap: holds back a card of its categories); in all, the pages that
differ. Exploration is left out of both builds (its draws are random, not the rules').

Nothing is counted against a cap and nothing is logged: like explain, a read. The pages are
built off the event loop, a chunk of users at a time, so that feeds keep their deadlines
while it runs; it stops when its caller goes away. One at a time per replica (the route).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from recsvc.contract.campaigns import Campaigns, Kind
from recsvc.contract.catalog import Catalog
from recsvc.contract.domain import ItemStatus
from recsvc.contract.experiments import Assignment
from recsvc.contract.user_state import UserState
from recsvc.feed.attach import ItemRules
from recsvc.feed.campaigns import Applied, CampaignContext, CampaignRules
from recsvc.feed.compute import Feed, FeedOptions, build_feeds
from recsvc.feed.model import ServingModel
from recsvc.feed.placement import HOME, Placement, Surface
from recsvc.service.snapshot import Snapshot
from recsvc.store.gateway import utc_day
from recsvc.store.state import FeatureStore

CHUNK = 128  # users read and ranked at a time
DEFAULT_USERS = 1000
MAX_USERS = 20_000


class DryRunCancelled(Exception):
    """The caller went away: the dry run stopped."""


@dataclass
class _Tally:
    targeted: int = 0
    acted: int = 0


@dataclass
class _Run:
    """One dry run's state, built on as chunks of users are compared."""

    snapshot: Snapshot
    proposed: Campaigns
    category_caps: Mapping[str, int]
    placements: list[Placement]
    at: float
    page_size: int
    active: set[str]
    tally: dict[str, _Tally]
    compared: int = 0
    changed: int = 0
    # per model key: its rules compiled with the serving and the proposed definitions
    compiled: dict[str, tuple[CampaignRules, CampaignRules]] = field(default_factory=dict)

    def rules_of(self, rules: ItemRules, key: str) -> tuple[CampaignRules, CampaignRules]:
        if key not in self.compiled:
            self.compiled[key] = (
                CampaignRules(self.snapshot.campaigns, rules, self.category_caps),
                CampaignRules(self.proposed, rules, self.category_caps),
            )
        return self.compiled[key]

    def compare(
        self,
        model: ServingModel,
        rules: ItemRules,
        key: str,
        states: Sequence[UserState],
        options: list[FeedOptions],
        variants: list[frozenset[str]],
    ) -> None:
        """Tally one chunk of users served by one model (runs off the event loop)."""
        for state, its in zip(states, variants, strict=True):
            for campaign in self.proposed.campaigns:
                if any(
                    campaign.targets(
                        state.segment, state.lifecycle, state.risk_tolerance, p.surface.name, its
                    )
                    for p in self.placements
                ):
                    self.tally[campaign.name].targeted += 1
        both = self.rules_of(rules, key)
        for placement in self.placements:
            groups: dict[Any, list[int]] = {}  # one batch key per call, as the batcher serves
            for i, option in enumerate(options):
                groups.setdefault(option.on_surface(placement.surface).batch_key, []).append(i)
            for members in groups.values():
                its_options = [options[i].on_surface(placement.surface) for i in members]
                pages = [
                    build_feeds(
                        model,
                        rules,
                        [states[i] for i in members],
                        [placement.surface.page_size or self.page_size] * len(members),
                        its_options,
                        None if placement.surface is HOME else [placement] * len(members),
                        CampaignContext(compiled, self.at, [variants[i] for i in members]),
                    )
                    for compiled in both
                ]
                for old, new in zip(*pages, strict=True):
                    self.compared += 1
                    self.changed += _shown(old) != _shown(new)
                    for name in _acted(new.applied, old, new, self.active):
                        self.tally[name].acted += 1


async def dry_run(
    snapshot: Snapshot,
    store: FeatureStore,
    base: FeedOptions,
    category_caps: Mapping[str, int],
    proposed: Campaigns,
    surfaces: Mapping[str, Surface],
    users: int,
    at: float,
    page_size: int,
    gone: Callable[[], Awaitable[bool]] | None = None,
) -> dict[str, Any]:
    """What `proposed` would change against the rules serving now, on a sample of users;
    DryRunCancelled when `gone()` says the caller left."""
    assert snapshot.model is not None and snapshot.rules is not None  # the route checks
    ids, complete = await store.profiled_users(users)
    # the surfaces either set of rules names (home for a rule that names none): the pages a
    # serving rule shapes change too when the proposed definition drops or narrows it
    both = (*snapshot.campaigns.campaigns, *proposed.campaigns)
    names = sorted({s for c in both for s in c.target.surfaces or [HOME.name]})
    run = _Run(
        snapshot=snapshot,
        proposed=proposed,
        category_caps=category_caps,
        placements=[Placement(surface=surfaces[name]) for name in names if name in surfaces],
        at=at,
        page_size=page_size,
        active={c.name for c in proposed.active(at)},
        tally={c.name: _Tally() for c in proposed.campaigns},
    )
    day = utc_day(at)
    for start in range(0, len(ids), CHUNK):
        if gone is not None and await gone():
            raise DryRunCancelled
        chunk = ids[start : start + CHUNK]
        assigned = [snapshot.experiments.assign(u) for u in chunk]
        options = [_options(base, a) for a in assigned]
        variants = [frozenset(a.label for a in its) for its in assigned]
        by_model: dict[str, list[int]] = {}
        for i, option in enumerate(options):
            by_model.setdefault(option.model, []).append(i)
        for key, members in by_model.items():
            model, rules = snapshot.resolve(key)
            assert model is not None and rules is not None  # resolve falls back to current
            states = await store.user_states(
                [chunk[i] for i in members], model.generation, day, base.daily_cap
            )
            await asyncio.to_thread(
                run.compare,
                model,
                rules,
                key,
                states,
                [options[i] for i in members],
                [variants[i] for i in members],
            )
    return {
        "at": datetime.fromtimestamp(at, UTC).isoformat(),
        "users_scanned": len(ids),
        "scan_complete": complete,
        "surfaces": [p.surface.name for p in run.placements],
        "unknown_surfaces": [name for name in names if name not in surfaces],
        "feeds_compared": run.compared,
        "feeds_changed": run.changed,
        "campaigns": [
            {
                "name": c.name,
                "kind": c.kind.value,
                "active": c.name in run.active,
                "users_targeted": run.tally[c.name].targeted,
                "feeds_acted_on": run.tally[c.name].acted,
            }
            for c in proposed.campaigns
        ],
        **_unmatched(proposed, snapshot.rules, snapshot.catalog),
    }


def _options(base: FeedOptions, assignments: list[Assignment]) -> FeedOptions:
    overrides = {k: v for a in assignments for k, v in a.overrides.items()}
    return replace(base.with_overrides(overrides), exploration_share=0.0)


def _shown(feed: Feed) -> list[tuple[str, str | None]]:
    return [(i["video_id"], (i["product"] or {}).get("product_id")) for i in feed.items]


def _cards(feed: Feed) -> list[tuple[str, str]]:
    """The page's cards: (product, category)."""
    return [
        (i["product"]["product_id"], i["product"]["category"]) for i in feed.items if i["product"]
    ]


def _acted(applied: Applied, old: Feed, new: Feed, active: set[str]) -> list[str]:
    """The proposed rules that acted on a page: applied to it, and an item of theirs on the
    page before or after (a cap: a card of its categories held back)."""
    shown = {i["video_id"] for page in (old, new) for i in page.items}
    cards = {p for page in (old, new) for p, _ in _cards(page)}
    acted = []
    for rule in applied.rules:
        if rule.name not in active:
            continue
        if rule.campaign.kind is Kind.CAP:
            categories = {c.value for c in rule.campaign.categories}
            before = {p for p, c in _cards(old) if c in categories}
            hit = not before <= {p for p, _ in _cards(new)}
        else:
            hit = not shown.isdisjoint(rule.video_ids) or not cards.isdisjoint(rule.product_ids)
        if hit:
            acted.append(rule.name)
    return acted


def _unmatched(campaigns: Campaigns, rules: ItemRules, catalog: Catalog) -> dict[str, Any]:
    """Per rule, what it names that matches nothing now: ids the catalogue does not have
    (`unknown_items`), retired ones (`retired_items`), topics no live video has
    (`unmatched_topics`). They match nothing until that changes."""
    retired_videos = catalog.retired_videos()
    unknown: dict[str, list[str]] = {}
    retired: dict[str, list[str]] = {}
    topics: dict[str, list[str]] = {}
    fresh_topics = {t for its in rules.fresh.topics for t in its}
    for campaign in campaigns.campaigns:
        videos = [*campaign.videos, *([campaign.video] if campaign.video else [])]
        for video in videos:
            if video not in catalog.videos and video not in rules.video_position:
                unknown.setdefault(campaign.name, []).append(video)
            elif video in retired_videos:
                retired.setdefault(campaign.name, []).append(video)
        for product in campaign.products:
            record = catalog.products.get(product)
            if record is None:
                unknown.setdefault(campaign.name, []).append(product)
            elif record.status is not ItemStatus.LIVE:
                retired.setdefault(campaign.name, []).append(product)
        for topic in campaign.topics:
            if not rules.videos_of([topic]) and topic not in fresh_topics:
                topics.setdefault(campaign.name, []).append(topic)
    return {"unknown_items": unknown, "retired_items": retired, "unmatched_topics": topics}
