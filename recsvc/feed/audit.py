"""The compliance record of a page's cards: for each card served, the checks that let it
through (recsvc.contract.records.CardShown), from the same rules and state the page was made
from. Pure: the batcher logs them (recsvc.service.batcher), `recsvc audit` reads them back."""

from __future__ import annotations

from recsvc.contract.domain import DISCLOSURE_REQUIRED
from recsvc.contract.records import CardShown
from recsvc.contract.user_state import UserState
from recsvc.feed.attach import LOWEST_RISK, ItemRules, UnknownRiskPolicy
from recsvc.feed.compute import Feed


def allowed_risk(tolerance: int | None, policy: UnknownRiskPolicy) -> int:
    """The highest risk level a user may be shown (an unknown tolerance: the policy's)."""
    if tolerance is not None:
        return tolerance
    return LOWEST_RISK if policy is UnknownRiskPolicy.LOWEST else 0


def cards_shown(
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
) -> list[CardShown]:
    """One record per card on the page (none for a page without cards)."""
    shown = []
    for item in feed.items:
        card = item["product"]
        if card is None:
            continue
        product_id = card["product_id"]
        record = rules.products[rules.product_position[product_id]]
        assert record is not None  # a product without a record is never attached
        shown.append(
            CardShown(
                card_id=f"{request_id}:{item['rank']}",
                ts_ms=ts_ms,
                user_id=user_id,
                request_id=request_id,
                model_version=model_version,
                surface=surface,
                experiments=experiments,
                rank=item["rank"],
                video_id=item["video_id"],
                product_id=product_id,
                risk_level=record.risk_level,
                risk_tolerance=state.risk_tolerance,
                risk_allowed_up_to=allowed_risk(state.risk_tolerance, unknown_risk),
                holdable_once=record.holdable_once,
                held=product_id in state.holdings,
                daily_cap=daily_cap,
                cap_count=counts.get(product_id, 0),
                disclosure_required=record.category in DISCLOSURE_REQUIRED,
                disclosure_shown=card["disclosure"] is not None,
            )
        )
    return shown
