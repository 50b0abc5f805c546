"""The campaigns' dry run: how many users and feeds a definition would touch, before it goes
live (POST /v1/admin/campaigns/dry-run, the console's Dry run).

On a sample of users with a profile (up to `users`), it builds each user's page on each
surface the serving or the proposed rules name (home for a rule that names none) twice, with
the rules serving now and with the proposed ones, judged at one instant, and compares them.
Per proposed rule it counts the users it targets (whatever its schedule) and the pages it
acts on at that instant (shows or hides one of its items; a cap: holds back a card of its
categories); in all, the pages that differ. Nothing is counted against a cap and nothing is
logged: like explain, a read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from recsvc.contract.campaigns import Campaigns, Kind
from recsvc.contract.experiments import Assignment
from recsvc.contract.user_state import UserState
from recsvc.feed.attach import ItemRules
from recsvc.feed.campaigns import Applied, CampaignContext, CampaignRules
from recsvc.feed.compute import Feed, FeedOptions, build_feeds
from recsvc.feed.placement import HOME, Placement, Surface
from recsvc.service.snapshot import Snapshot
from recsvc.store.gateway import utc_day
from recsvc.store.state import FeatureStore

CHUNK = 256  # users read and ranked at a time
DEFAULT_USERS = 1000
MAX_USERS = 20_000


@dataclass
class _Tally:
    targeted: int = 0
    acted: int = 0


async def dry_run(
    snapshot: Snapshot,
    store: FeatureStore,
    base: FeedOptions,
    category_caps: dict[str, int],
    proposed: Campaigns,
    surfaces: Mapping[str, Surface],
    users: int,
    at: float,
    page_size: int,
) -> dict[str, Any]:
    """What `proposed` would change against the rules serving now, on a sample of users."""
    model, rules = snapshot.model, snapshot.rules
    assert model is not None and rules is not None  # the route checks
    ids, complete = await store.profiled_users(users)
    # the surfaces either set of rules names (home for a rule that names none): the pages a
    # serving rule shapes change too when the proposed definition drops or narrows it
    both = (*snapshot.campaigns.campaigns, *proposed.campaigns)
    names = sorted({s for c in both for s in c.target.surfaces or [HOME.name]})
    placements = [Placement(surface=surfaces[name]) for name in names if name in surfaces]
    now = CampaignRules(snapshot.campaigns, rules, category_caps)
    then = CampaignRules(proposed, rules, category_caps)
    active = {r.name for r in then.active(at)}
    tally = {c.name: _Tally() for c in proposed.campaigns}
    compared = changed = 0
    day = utc_day(at)
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        assigned = [snapshot.experiments.assign(u) for u in chunk]
        options = [_options(base, a) for a in assigned]
        states = await store.user_states(chunk, model.generation, day, base.daily_cap)
        variants = [frozenset(f"{a.experiment}:{a.variant}" for a in its) for its in assigned]
        for state, its in zip(states, variants, strict=True):
            for campaign in proposed.campaigns:
                if any(
                    campaign.targets(
                        state.segment, state.lifecycle, state.risk_tolerance, p.surface.name, its
                    )
                    for p in placements
                ):
                    tally[campaign.name].targeted += 1
        for placement in placements:
            # one batch key per call, as the batcher serves them
            groups: dict[Any, list[int]] = {}
            for i, option in enumerate(options):
                groups.setdefault(option.on_surface(placement.surface).batch_key, []).append(i)
            for members in groups.values():
                before, after = _pages(
                    model,
                    rules,
                    members,
                    states,
                    options,
                    placement,
                    variants,
                    (now, then),
                    at,
                    page_size,
                )
                for old, new in zip(before, after, strict=True):
                    compared += 1
                    changed += _shown(old) != _shown(new)
                    for name in _acted(new.applied, old, new, active):
                        tally[name].acted += 1
    return {
        "at": datetime.fromtimestamp(at, UTC).isoformat(),
        "users_scanned": len(ids),
        "scan_complete": complete,
        "surfaces": [p.surface.name for p in placements],
        "unknown_surfaces": [name for name in names if name not in surfaces],
        "feeds_compared": compared,
        "feeds_changed": changed,
        "campaigns": [
            {
                "name": c.name,
                "kind": c.kind.value,
                "active": c.name in active,
                "users_targeted": tally[c.name].targeted,
                "feeds_acted_on": tally[c.name].acted,
            }
            for c in proposed.campaigns
        ],
        "unknown_items": _unknown(proposed, rules),
    }


def _options(base: FeedOptions, assignments: list[Assignment]) -> FeedOptions:
    return base.with_overrides({k: v for a in assignments for k, v in a.overrides.items()})


def _pages(
    model: Any,
    rules: ItemRules,
    members: list[int],
    states: Sequence[UserState],
    options: list[FeedOptions],
    placement: Placement,
    variants: list[frozenset[str]],
    both: tuple[CampaignRules, CampaignRules],
    at: float,
    page_size: int,
) -> tuple[list[Feed], list[Feed]]:
    """The members' pages under the rules serving now and under the proposed ones."""
    its_states = [states[i] for i in members]
    its_options = [options[i].on_surface(placement.surface) for i in members]
    sizes = [placement.surface.page_size or page_size for _ in members]
    its_variants = [variants[i] for i in members]
    placements = [placement] * len(members)
    return tuple(  # type: ignore[return-value]
        build_feeds(
            model,
            rules,
            its_states,
            sizes,
            its_options,
            None if placement.surface is HOME else placements,
            CampaignContext(compiled, at, its_variants),
        )
        for compiled in both
    )


def _shown(feed: Feed) -> list[tuple[str, str | None]]:
    return [(i["video_id"], (i["product"] or {}).get("product_id")) for i in feed.items]


def _acted(applied: Applied, old: Feed, new: Feed, active: set[str]) -> list[str]:
    """The proposed rules that acted on a page: applied to it, and an item of theirs on the
    page before or after (a cap: a card of its category was, or is no more, shown)."""
    shown = {i["video_id"] for page in (old, new) for i in page.items}
    cards = {(i["product"] or {}).get("product_id") for page in (old, new) for i in page.items} - {
        None
    }
    acted = []
    for rule in applied.rules:
        if rule.name not in active:
            continue
        kind = rule.campaign.kind
        if kind is Kind.CAP:  # a card of its categories held back
            categories = {c.value for c in rule.campaign.categories}
            before = {p for p, c in _cards(old) if c in categories}
            hit = not before <= {p for p, _ in _cards(new)}
        else:
            hit = not shown.isdisjoint(rule.video_ids) or not cards.isdisjoint(rule.product_ids)
        if hit:
            acted.append(rule.name)
    return acted


def _cards(feed: Feed) -> list[tuple[str, str]]:
    """The page's cards: (product, category)."""
    return [
        (i["product"]["product_id"], i["product"]["category"]) for i in feed.items if i["product"]
    ]


def _unknown(campaigns: Campaigns, rules: ItemRules) -> dict[str, list[str]]:
    """Per rule, the videos and products it names that the catalogue does not know (or
    the model's fresh table does not hold): they will match nothing until they exist."""
    known_videos = set(rules.video_names)
    known_products = {r.product_id for r in rules.products if r is not None}
    found = {}
    for campaign in campaigns.campaigns:
        videos = [*campaign.videos, *([campaign.video] if campaign.video else [])]
        missing = [v for v in videos if v not in known_videos]
        missing += [p for p in campaign.products if p not in known_products]
        if missing:
            found[campaign.name] = missing
    return found
