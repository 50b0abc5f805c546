"""The compliance record of a page's cards: for each card served, the checks that let it
through (recsvc.contract.records.PageCards), from the same rules and state the page was made
from. Pure: the batcher logs them (recsvc.service.batcher), `recsvc audit` reads them back."""

from __future__ import annotations

from recsvc.contract.domain import DISCLOSURE_REQUIRED
from recsvc.contract.records import NO_CATEGORY_CAP, PageCards
from recsvc.contract.user_state import UserState
from recsvc.feed.attach import LOWEST_RISK, ItemRules, UnknownRiskPolicy
from recsvc.feed.compute import Feed


def allowed_risk(tolerance: int | None, policy: UnknownRiskPolicy) -> int:
    """The highest risk level a user may be shown (an unknown tolerance: the policy's)."""
    if tolerance is not None:
        return tolerance
    return LOWEST_RISK if policy is UnknownRiskPolicy.LOWEST else 0


def page_cards(
    *,
    request_id: str,
    ts_ms: int,
    user_id: str,
    model_version: str,
    surface: str,
    experiments: str,
    feed: Feed,
    state: UserState,
    rules: ItemRules,
    unknown_risk: UnknownRiskPolicy,
    daily_cap: int,
    counts: dict[str, int],
    category_counts: dict[str, int],
) -> PageCards:
    """The record of a page's cards (call it for a page with cards): each card's checks,
    its category's count and cap today, and the campaign rules that acted on it."""
    cards = []
    for item in feed.items:
        card = item["product"]
        if card is None:
            continue
        product_id = card["product_id"]
        record = rules.products[rules.product_position[product_id]]
        assert record is not None  # a product without a record is never attached
        category = record.category.value
        cap = feed.applied.caps.get(category, NO_CATEGORY_CAP)
        campaigns = "+".join(feed.applied.card_rules(product_id, category))
        cards.append(
            f"{item['rank']}|{item['video_id']}|{product_id}|{record.risk_level}|"
            f"{int(record.holdable_once)}|{int(product_id in state.holdings)}|"
            f"{counts.get(product_id, 0)}|{int(record.category in DISCLOSURE_REQUIRED)}|"
            f"{int(card['disclosure'] is not None)}|{category}|"
            f"{category_counts.get(product_id, 0)}|{cap}|{campaigns}"
        )
    return PageCards(
        request_id=request_id,
        ts_ms=ts_ms,
        user_id=user_id,
        model_version=model_version,
        surface=surface,
        experiments=experiments,
        risk_tolerance=state.risk_tolerance,
        risk_allowed_up_to=allowed_risk(state.risk_tolerance, unknown_risk),
        daily_cap=daily_cap,
        cards=";".join(cards),
    )
