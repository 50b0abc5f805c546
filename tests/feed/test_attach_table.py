"""The attach rules as in-process tables (recsvc.feed.attach), beside the HTTP tests of
tests/http/test_attach_rules.py.

Specification, one rule per row of the tables below:

- A product is offered to a user only if it has a catalogue record, is live, and carries the
  disclosure its category requires (credit: a disclosure with at least two letters or
  digits; a stored record that was never validated included).
- Its risk level is at most the user's risk tolerance. An unknown tolerance allows the lowest
  risk level only (`unknown_risk_policy=lowest`) or no product at all (`none`); the policy
  never touches a known tolerance.
- A product that can be held once is not offered to a user who holds it; one that can be
  held many times still is.
- A product attached `daily_cap` times to the user today (`capped`) is not offered; when the
  counters are unknown (`capped` None: Redis unreachable) no product is, since a cap could
  not be honoured. Holdings and caps naming products the model lacks change nothing.
- A page carries at most `max_attached_per_page` products, each product once, the
  best-scoring (video, product) pairs first (ties: the higher-ranked video); a blocked pair
  (score −inf) never.
- Retired videos and videos the user has seen are never served; a video without a
  catalogue record counts as live.

Each rule row is the only reason its candidate is refused, beside a control row where the
same candidate is allowed. The model knows two products: `p-cand` (the row's candidate,
preferred) and `p-safe` (a level-1 deposit every user may get), so a refused candidate shows
as `p-safe` attached instead, and a refusal of the whole user as no product at all.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from recsvc.contract.catalog import Catalog, ProductRecord, VideoRecord
from recsvc.contract.domain import ItemStatus, ProductCategory
from recsvc.feed.attach import ItemRules, UnknownRiskPolicy, choose_attachments

CANDIDATE, SAFE = "p-cand", "p-safe"
PRODUCT_IDS = (CANDIDATE, SAFE)
# What the ranking graph would score each product under a video, before the rules' bias:
# the candidate wins whenever it is allowed.
PREFERENCE = np.array([2.0, 1.0], dtype=np.float32)
VIDEO_IDS = ("v-live", "v-retired", "v-seen", "v-unrecorded")

SAFE_RECORD = ProductRecord.model_validate(
    {"product_id": SAFE, "name": "Easy Saver", "category": "deposit", "risk_level": 1}
)


def candidate(**fields: Any) -> ProductRecord:
    """The candidate product: a live level-1 deposit unless `fields` say otherwise."""
    values: dict[str, Any] = {
        "product_id": CANDIDATE,
        "name": "Candidate",
        "category": ProductCategory.DEPOSIT,
        "risk_level": 1,
    }
    return ProductRecord.model_validate(values | fields)


def unvalidated_candidate(**fields: Any) -> ProductRecord:
    """The candidate as a stored record that never went through validation."""
    values: dict[str, Any] = {
        "product_id": CANDIDATE,
        "name": "Candidate",
        "category": ProductCategory.DEPOSIT,
        "risk_level": 1,
        "holdable_once": False,
        "status": ItemStatus.LIVE,
        "disclosure": None,
    }
    return ProductRecord.model_construct(**(values | fields))


@dataclass(frozen=True)
class User:
    """What the attach rules know of one user at one request."""

    tolerance: int | None = 5
    holdings: frozenset[str] = frozenset()
    capped: frozenset[str] | None = frozenset()  # None: the counters are unknown
    policy: UnknownRiskPolicy = UnknownRiskPolicy.LOWEST


def rules_for(record: ProductRecord | None) -> ItemRules:
    products = {SAFE: SAFE_RECORD} | ({} if record is None else {CANDIDATE: record})
    videos = {
        video: VideoRecord.model_validate({"video_id": video, "title": title, "status": status})
        for video, title, status in (
            ("v-live", "Live", "live"),
            ("v-retired", "Retired", "retired"),
            ("v-seen", "Seen", "live"),
        )
    }
    return ItemRules.compile(VIDEO_IDS, PRODUCT_IDS, Catalog("r1", videos, products))


def attached_under_one_video(rules: ItemRules, user: User) -> str | None:
    """The product attached under one ranked video: the graph's best product by preference
    plus the rules' bias (ArgMax, then ReduceMax for its score), then the page's choice."""
    bias = rules.product_bias(user.tolerance, user.holdings, user.capped, user.policy)
    scores = PREFERENCE + bias
    best = int(np.argmax(scores))
    (chosen,) = choose_attachments([best], [float(scores[best])], max_per_page=1)
    return None if chosen is None else PRODUCT_IDS[chosen]


RULES = [
    # risk tolerance
    pytest.param(
        candidate(category=ProductCategory.FUND, risk_level=3),
        User(tolerance=3),
        CANDIDATE,
        id="risk equal to the tolerance is attached",
    ),
    pytest.param(
        candidate(category=ProductCategory.FUND, risk_level=4),
        User(tolerance=3),
        SAFE,
        id="risk above tolerance is never attached",
    ),
    pytest.param(
        candidate(category=ProductCategory.FUND, risk_level=5),
        User(tolerance=5),
        CANDIDATE,
        id="the highest risk level is attached at the highest tolerance",
    ),
    pytest.param(
        candidate(risk_level=2),
        User(tolerance=None),
        SAFE,
        id="unknown tolerance gets the lowest level only (level 2 refused)",
    ),
    pytest.param(
        candidate(risk_level=1),
        User(tolerance=None),
        CANDIDATE,
        id="unknown tolerance gets the lowest level (level 1 attached)",
    ),
    pytest.param(
        candidate(risk_level=1),
        User(tolerance=None, policy=UnknownRiskPolicy.NONE),
        None,
        id="unknown_risk_policy=none attaches nothing",
    ),
    pytest.param(
        candidate(risk_level=1),
        User(tolerance=1, policy=UnknownRiskPolicy.NONE),
        CANDIDATE,
        id="unknown_risk_policy=none leaves a known tolerance alone",
    ),
    # holdings
    pytest.param(
        candidate(category=ProductCategory.PENSION, holdable_once=True),
        User(holdings=frozenset({CANDIDATE})),
        SAFE,
        id="held hold-once product skipped",
    ),
    pytest.param(
        candidate(category=ProductCategory.PENSION, holdable_once=True),
        User(holdings=frozenset({SAFE})),
        CANDIDATE,
        id="hold-once product not held is attached",
    ),
    pytest.param(
        candidate(holdable_once=False),
        User(holdings=frozenset({CANDIDATE})),
        CANDIDATE,
        id="held product that can be held many times is attached",
    ),
    # daily cap
    pytest.param(
        candidate(),
        User(capped=frozenset({CANDIDATE})),
        SAFE,
        id="daily cap reached",
    ),
    pytest.param(
        candidate(),
        User(capped=frozenset({SAFE})),
        CANDIDATE,
        id="another product's daily cap does not block this one",
    ),
    pytest.param(
        candidate(),
        User(capped=None),
        None,
        id="daily counters unknown (Redis down) attaches nothing",
    ),
    pytest.param(
        candidate(category=ProductCategory.PENSION, holdable_once=True),
        User(holdings=frozenset({"p-ghost"}), capped=frozenset({"p-ghost"})),
        CANDIDATE,
        id="holdings and caps of products the model lacks change nothing",
    ),
    # catalogue
    pytest.param(
        candidate(status=ItemStatus.RETIRED),
        User(),
        SAFE,
        id="retired product",
    ),
    pytest.param(
        None,
        User(),
        SAFE,
        id="product without a catalogue record",
    ),
    pytest.param(
        candidate(category=ProductCategory.CREDIT, disclosure=None),
        User(),
        SAFE,
        id="credit without disclosure",
    ),
    pytest.param(
        candidate(category=ProductCategory.CREDIT, disclosure="APR 9.9%"),
        User(),
        CANDIDATE,
        id="credit with its disclosure is attached",
    ),
    pytest.param(
        unvalidated_candidate(category=ProductCategory.CREDIT, disclosure="-"),
        User(),
        SAFE,
        id="credit whose stored disclosure says nothing",
    ),
    pytest.param(
        candidate(category=ProductCategory.FUND, disclosure=None),
        User(),
        CANDIDATE,
        id="no disclosure needed outside credit",
    ),
]


@pytest.mark.parametrize(("record", "user", "expected"), RULES)
def test_product_rules(record: ProductRecord | None, user: User, expected: str | None) -> None:
    assert attached_under_one_video(rules_for(record), user) == expected


def test_the_bias_is_written_into_out_when_given() -> None:
    """The batch path (compute.rank_inputs) writes each user's row in place; an earlier
    row's values must not leak into the next."""
    rules = rules_for(candidate(risk_level=4))
    out = np.zeros(len(PRODUCT_IDS), dtype=np.float32)
    rules.product_bias(None, (), None, UnknownRiskPolicy.LOWEST, out=out)  # all blocked
    written = rules.product_bias(3, (), frozenset(), UnknownRiskPolicy.LOWEST, out=out)
    assert written is out
    assert out.tolist() == [-math.inf, 0.0]


NEG = -math.inf
PAGES = [
    pytest.param([0, 1, 2], [0.1, 0.9, 0.5], 2, [None, 1, 2], id="max_attached_per_page"),
    pytest.param([0, 1, 2], [0.1, 0.9, 0.5], 0, [None, None, None], id="max 0 attaches nothing"),
    pytest.param([0, 1, 2], [0.1, 0.9, 0.5], 10, [0, 1, 2], id="max above the page size"),
    pytest.param([0, 0, 0], [0.2, 0.7, 0.4], 3, [None, 0, None], id="each product once per page"),
    pytest.param([0, 0, 1], [0.9, 0.8, 0.1], 2, [0, None, 1], id="a repeated product uses no slot"),
    pytest.param([0, 0], [0.5, 0.5], 3, [0, None], id="ties go to the higher-ranked video"),
    pytest.param([0, 1], [NEG, 0.3], 3, [None, 1], id="a blocked pair is never attached"),
    pytest.param([0, 1], [NEG, NEG], 3, [None, None], id="every pair blocked"),
    pytest.param([], [], 3, [], id="empty page"),
]


@pytest.mark.parametrize(("index", "score", "max_per_page", "expected"), PAGES)
def test_page_rules(
    index: Sequence[int], score: Sequence[float], max_per_page: int, expected: list[int | None]
) -> None:
    assert choose_attachments(index, score, max_per_page) == expected


VIDEOS = [
    pytest.param(frozenset(), {"v-retired"}, id="retired video never served"),
    pytest.param(frozenset({"v-seen"}), {"v-retired", "v-seen"}, id="seen video not served"),
    pytest.param(
        frozenset({"v-elsewhere"}), {"v-retired"}, id="seen video the model lacks changes nothing"
    ),
    pytest.param(
        frozenset({"v-unrecorded"}),
        {"v-retired", "v-unrecorded"},
        id="video without a record is live until seen",
    ),
]


@pytest.mark.parametrize(("seen", "blocked"), VIDEOS)
def test_video_rules(seen: frozenset[str], blocked: set[str]) -> None:
    bias = rules_for(candidate()).video_bias(seen)
    assert {v for v, b in zip(VIDEO_IDS, bias.tolist(), strict=True) if b == NEG} == blocked
    assert all(b == 0.0 for b in bias.tolist() if b != NEG)
