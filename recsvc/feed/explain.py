"""Why a page is what it is: each item's score in its parts, and each card's with the checks
that let it through. For operators (GET /v1/users/{id}/feed/explain), not for the app.

The page is built by the same code as a feed (recsvc.feed.compute), for one request, and
then taken apart:

- a video's score = `model` (the query vector · the video's) + `trending` (the prior, in the
  user's score spread) + `freshness` + `popularity` (the segment's or global popularity, for
  a user without a vector) + `campaign` (the boosts and buries that apply to the user now);
  `explored` videos were not ranked (score 0); `pinned` ones were put in their slot by the
  rule named;
- a card's score = `user` (a · query · product) + `video` (b · video · product) + `campaign`,
  with its checks: the user's risk tolerance against the product's level (unknown: the
  policy), held once or not, the product's cards today against the daily cap, its category's
  against the category's cap, and the campaign rules that acted on it.

Pure computation on a snapshot and a user state, like compute.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from recsvc.contract.domain import DISCLOSURE_REQUIRED
from recsvc.contract.records import Source
from recsvc.contract.user_state import UserState
from recsvc.feed.attach import ItemRules
from recsvc.feed.audit import allowed_risk
from recsvc.feed.campaigns import CampaignContext
from recsvc.feed.compute import (
    VECTOR_SOURCES,
    Feed,
    FeedOptions,
    RankInputs,
    boost_unit,
    product_unit,
    ranked_pages,
)
from recsvc.feed.model import ServingModel
from recsvc.feed.placement import Placement


def explained_page(
    model: ServingModel,
    rules: ItemRules,
    state: UserState,
    option: FeedOptions,
    placement: Placement,
    size: int,
    campaigns: CampaignContext | None = None,
) -> tuple[Feed, list[dict[str, Any]]]:
    """The page one feed request would get now, and each item's explanation (in page
    order). Nothing is counted: explaining a page uses no daily cap."""
    inputs, (feed,) = ranked_pages(model, rules, [state], [size], [option], [placement], campaigns)
    parts = _video_parts(model, rules, inputs, option)
    explanations = [
        _item(model, rules, inputs, option, state, parts, item, feed) for item in feed.items
    ]
    return feed, explanations


def _video_parts(
    model: ServingModel, rules: ItemRules, inputs: RankInputs, option: FeedOptions
) -> dict[str, np.ndarray]:
    """The parts of every video's score for the request's row: [V] each, the model's videos
    then the fresh ones."""
    user = inputs.users[0]
    spread = None if inputs.spread is None else inputs.spread[:1]
    fresh = rules.fresh
    has_vector = inputs.sources[0] in VECTOR_SOURCES
    videos = model.ranking.item_factors[: model.ranking.n_videos]
    model_part = np.concatenate([videos @ user, fresh.vectors @ user if len(fresh) else []])
    n_model, n_fresh = model.ranking.n_videos, len(fresh)
    trending = np.zeros(n_model + n_fresh, np.float32)
    prior = model.trending_bias(inputs.users[:1], live=option.live_trending, spread=spread)
    if prior is not None and has_vector:
        trending[:n_model] = prior[0]
    freshness = np.zeros(n_model + n_fresh, np.float32)
    weight = option.freshness.weight * (0.0 if spread is None else float(spread[0]))
    if weight and has_vector:
        freshness[:n_model] = weight * rules.freshness_decay(option.freshness, inputs.now)
        if n_fresh:
            freshness[n_model:] = weight * fresh.freshness_decay(option.freshness, inputs.now)
    popularity = np.zeros(n_model + n_fresh, np.float32)
    if inputs.sources[0] is Source.SEGMENT_POPULARITY:
        # the segment's popularity is what the row's bias holds besides the blocks
        finite = np.isfinite(inputs.video_bias[0])
        popularity[:n_model][finite] = inputs.video_bias[0][finite]
    elif inputs.sources[0] is Source.POPULARITY:
        popularity[:n_model] = model.video_popularity
    campaign = np.zeros(n_model + n_fresh, np.float32)
    if inputs.applied and inputs.applied[0].boosts:
        unit = boost_unit(model, 0.0 if spread is None else float(spread[0]), inputs.sources[0])
        for rule in inputs.applied[0].boosts:
            campaign[rule.videos] += rule.campaign.signed_strength * unit
            campaign[n_model + rule.fresh] += rule.campaign.signed_strength * unit
    return {
        "model": model_part,
        "trending": trending,
        "freshness": freshness,
        "popularity": popularity,
        "campaign": campaign,
    }


def _item(
    model: ServingModel,
    rules: ItemRules,
    inputs: RankInputs,
    option: FeedOptions,
    state: UserState,
    parts: dict[str, np.ndarray],
    item: dict[str, Any],
    feed: Feed,
) -> dict[str, Any]:
    video = item["video_id"]
    if item.get("explored"):
        return {"video_id": video, "explored": True, "score": {"total": 0.0}}
    applied = feed.applied
    campaigns = [r.name for r in applied.rules if video in r.video_ids]
    n_model = model.ranking.n_videos
    index = rules.video_position.get(video)
    if index is None:
        index = n_model + rules.fresh.position[video]
    score = {name: round(float(values[index]), 6) for name, values in parts.items()}
    score["total"] = item["score"]
    explained: dict[str, Any] = {
        "video_id": video,
        "explored": False,
        "vector": "model" if index < n_model else "fresh",
        "score": score,
        "campaigns": campaigns,
    }
    pinned = next(
        (p.rule for p in applied.pins if p.video_id == video and p.slot == item["rank"]), None
    )
    if item.get("pinned"):
        explained["pinned"] = pinned
    card = item["product"]
    if card is not None:
        explained["card"] = _card(model, rules, inputs, option, state, index, card, feed)
    return explained


def _card(
    model: ServingModel,
    rules: ItemRules,
    inputs: RankInputs,
    option: FeedOptions,
    state: UserState,
    video_index: int,
    card: dict[str, Any],
    feed: Feed,
) -> dict[str, Any]:
    product_id = card["product_id"]
    j = rules.product_position[product_id]
    products = model.ranking.item_factors[model.ranking.n_videos :]
    n_model = model.ranking.n_videos
    video_vector = (
        model.ranking.item_factors[video_index]
        if video_index < n_model
        else rules.fresh.vectors[video_index - n_model]
    )
    user_weight, video_weight = inputs.weights
    record = rules.products[j]
    assert record is not None  # a product without a record is never attached
    tolerance = state.risk_tolerance
    allowed = allowed_risk(tolerance, option.unknown_risk)
    category = record.category.value
    boost = sum(
        r.campaign.signed_strength for r in feed.applied.boosts if product_id in r.product_ids
    )
    unit = 0.0
    if boost:
        unit = product_unit(model, inputs.users[0], inputs.sources[0], inputs.weights)
    return {
        "product_id": product_id,
        "score": {
            "user": round(float(user_weight * (inputs.users[0] @ products[j])), 6),
            "video": round(float(video_weight * (video_vector @ products[j])), 6),
            "campaign": round(boost * unit, 6),
            "total": card["score"],
        },
        "campaigns": list(feed.applied.card_rules(product_id, category)),
        "checks": {
            "risk_level": record.risk_level,
            "risk_tolerance": tolerance,
            "risk_allowed_up_to": allowed,
            "holdable_once": bool(record.holdable_once),
            "held": product_id in state.holdings,
            "at_daily_cap": product_id in (state.capped or ()),
            "daily_cap": option.daily_cap,
            "disclosure_required": record.category in DISCLOSURE_REQUIRED,
            "disclosure_shown": card["disclosure"] is not None,
            "status": record.status.value,
            "category": category,
            "category_count_today": state.category_counts.get(category, 0),
            "category_cap": feed.applied.caps.get(category),
        },
    }
