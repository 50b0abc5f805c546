"""Where a feed's ranking comes from (recsvc.feed.compute), as in-process tables beside the
HTTP tests of tests/http/test_cold_start.py and tests/http/test_degraded.py.

Specification:

- `cf`: the user's published vector, when it has this model's length and is not all zero;
  it takes precedence over recent events and the segment.
- `fold_in`: else a vector folded in from the user's recent events on items the model knows,
  each weighted by the model's confidence weight of its action (a view times its watch
  ratio, when it has one); it needs a positive total on at least one item, so impressions
  alone (weight 0), zero-ratio views or items the model lacks give none. It takes precedence
  over the segment.
- `segment_popularity`: else the popularity of the user's segment, when the model knows it.
- `popularity`: else global popularity. So is every feed of a request whose variant says
  `ranker=popular`, whatever the user has.
- Without a vector the user is zero and the popularity (segment or global) is the video
  bias; seen videos stay blocked on top of it.
- Degraded (Redis unavailable: the state is `UserState(capped=None)`, nothing known): global
  popularity and no product, since caps and holdings cannot be checked. A healthy state of a
  user the service knows nothing of is popularity too, with products.

The model is a tiny planted one, built in-process by the code's own constructors (the
ranking graph of training.models.export, a RankingModel, a ServingModel): two axes, videos
`v-a0 v-a1` on axis 0 and `v-b0 v-b1` on axis 1, one level-1 deposit `p-dep` on axis 1.
Global popularity ranks `v-b1 v-b0 v-a1 v-a0`, segment "young" `v-a1 v-a0 v-b0 v-b1`.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from recsvc.contract import vectors
from recsvc.contract.catalog import Catalog, ProductRecord
from recsvc.contract.manifest import DEFAULT_CONFIDENCE_WEIGHTS, Manifest
from recsvc.contract.records import Source
from recsvc.contract.user_state import UserState
from recsvc.feed.attach import ItemRules
from recsvc.feed.compute import FeedOptions, build_feeds, rank_inputs, user_vector
from recsvc.feed.model import ServingModel
from recsvc.feed.ranker import RankingModel, session_options
from training.models.export import IR_VERSION, OPSET, ranking_graph

DIM = 2
VIDEO_IDS = ["v-a0", "v-a1", "v-b0", "v-b1"]
PRODUCT_IDS = ["p-dep"]
VIDEO_FACTORS = np.array([[1.0, 0.0], [0.9, 0.0], [0.0, 1.0], [0.0, 0.9]], dtype=np.float32)
PRODUCT_FACTORS = np.array([[0.0, 1.0]], dtype=np.float32)
GLOBAL = np.array([0.1, 0.2, 0.3, 0.4], dtype=np.float32)  # v-b1 v-b0 v-a1 v-a0
YOUNG = np.array([0.3, 0.4, 0.1, 0.0], dtype=np.float32)  # v-a1 v-a0 v-b0 v-b1


def build_model() -> ServingModel:
    items = np.vstack([VIDEO_FACTORS, PRODUCT_FACTORS])
    manifest = Manifest(
        version="20260101T000000000000Z-table",
        created_at="2026-01-01T00:00:00+00:00",
        dimension=DIM,
        video_ids=VIDEO_IDS,
        product_ids=PRODUCT_IDS,
        data_window={},
        metrics={},
        params={"regularization": 0.1, "alpha": 1.0, "confidence": "linear"},
        opset=OPSET,
        ir_version=IR_VERSION,
        files={},
    )
    graph = ranking_graph(VIDEO_FACTORS, PRODUCT_FACTORS).SerializeToString()
    session = ort.InferenceSession(graph, session_options(), providers=["CPUExecutionProvider"])
    ranking = RankingModel(Path("in-memory"), manifest, session, items, items.T @ items)
    return ServingModel(
        ranking=ranking,
        generation=1,
        video_popularity=GLOBAL,
        segment_popularity={"young": YOUNG},
        item_position={item: i for i, item in enumerate([*VIDEO_IDS, *PRODUCT_IDS])},
        weights=dict(DEFAULT_CONFIDENCE_WEIGHTS),
    )


MODEL = build_model()
DEPOSIT = ProductRecord.model_validate(
    {"product_id": "p-dep", "name": "Easy Saver", "category": "deposit", "risk_level": 1}
)
RULES = ItemRules.compile(VIDEO_IDS, PRODUCT_IDS, Catalog("r1", {}, {"p-dep": DEPOSIT}))

ON_A = vectors.encode(np.array([1.0, 0.0], dtype=np.float32))
ZERO = vectors.encode(np.zeros(DIM, dtype=np.float32))
OTHER_MODEL = vectors.encode(np.ones(DIM + 1, dtype=np.float32))  # another dimension


def event(item_id: str, action: str, ratio: float | None = None) -> bytes:
    item_type = "product" if item_id.startswith("p-") else "video"
    return f"{item_type}|{item_id}|{action}|{'' if ratio is None else ratio}".encode()


VIEW_B0 = event("v-b0", "view", 1.0)
HEALTHY: frozenset[str] = frozenset()  # caps read: none reached

SOURCES = [
    pytest.param(UserState(vector=ON_A, capped=HEALTHY), Source.CF, id="published vector"),
    pytest.param(
        UserState(vector=ON_A, segment="young", recent_raw=(VIEW_B0,), capped=HEALTHY),
        Source.CF,
        id="published vector beats recent events and segment",
    ),
    pytest.param(
        UserState(vector=ZERO, capped=HEALTHY), Source.POPULARITY, id="all-zero vector is none"
    ),
    pytest.param(
        UserState(vector=OTHER_MODEL, capped=HEALTHY),
        Source.POPULARITY,
        id="vector of another model's dimension is ignored",
    ),
    pytest.param(
        UserState(vector=OTHER_MODEL, recent_raw=(VIEW_B0,), capped=HEALTHY),
        Source.FOLD_IN,
        id="vector of another model's dimension falls back to fold-in",
    ),
    pytest.param(
        UserState(recent_raw=(VIEW_B0,), capped=HEALTHY), Source.FOLD_IN, id="a view folds in"
    ),
    pytest.param(
        UserState(recent_raw=(event("v-b0", "view"),), capped=HEALTHY),
        Source.FOLD_IN,
        id="a view without a watch ratio folds in",
    ),
    pytest.param(
        UserState(recent_raw=(event("p-dep", "click"),), capped=HEALTHY),
        Source.FOLD_IN,
        id="a product click folds in",
    ),
    pytest.param(
        UserState(recent_raw=(event("v-b0", "impression"),), capped=HEALTHY),
        Source.POPULARITY,
        id="impressions alone do not fold in",
    ),
    pytest.param(
        UserState(recent_raw=(event("v-b0", "view", 0.0),), capped=HEALTHY),
        Source.POPULARITY,
        id="a view watched for 0 percent does not fold in",
    ),
    pytest.param(
        UserState(recent_raw=(event("v-gone", "view", 1.0),), capped=HEALTHY),
        Source.POPULARITY,
        id="events on items the model lacks do not fold in",
    ),
    pytest.param(
        UserState(segment="young", recent_raw=(VIEW_B0,), capped=HEALTHY),
        Source.FOLD_IN,
        id="recent events beat the segment",
    ),
    pytest.param(
        UserState(segment="young", capped=HEALTHY),
        Source.SEGMENT_POPULARITY,
        id="known segment without events",
    ),
    pytest.param(
        UserState(segment="young", recent_raw=(event("v-a0", "impression"),), capped=HEALTHY),
        Source.SEGMENT_POPULARITY,
        id="known segment with impressions only",
    ),
    pytest.param(
        UserState(segment="astronauts", capped=HEALTHY),
        Source.POPULARITY,
        id="segment the model does not know",
    ),
    pytest.param(UserState(capped=HEALTHY), Source.POPULARITY, id="nothing known of the user"),
    pytest.param(UserState(capped=None), Source.POPULARITY, id="degraded: Redis unavailable"),
]


def expected_video_bias(source: Source, state: UserState) -> np.ndarray:
    """Popularity (segment or global) as the bias of a zero user, none for a vector; the
    user's seen videos blocked on top."""
    bias = {Source.POPULARITY: GLOBAL, Source.SEGMENT_POPULARITY: YOUNG}.get(
        source, np.zeros(len(VIDEO_IDS), dtype=np.float32)
    ).copy()
    for video in state.seen_videos() & set(VIDEO_IDS):
        bias[VIDEO_IDS.index(video)] = -np.inf
    return bias


@pytest.mark.parametrize(("state", "source"), SOURCES)
def test_the_user_vector_source(state: UserState, source: Source) -> None:
    inputs = rank_inputs(MODEL, RULES, [state], [4], [FeedOptions()])
    assert inputs.sources == [source]
    assert inputs.users[0].any() == (source in {Source.CF, Source.FOLD_IN})
    np.testing.assert_array_equal(inputs.video_bias[0], expected_video_bias(source, state))


@pytest.mark.parametrize(
    "state",
    [
        pytest.param(UserState(vector=ON_A, capped=HEALTHY), id="published vector"),
        pytest.param(UserState(recent_raw=(VIEW_B0,), capped=HEALTHY), id="recent events"),
        pytest.param(UserState(segment="young", capped=HEALTHY), id="known segment"),
    ],
)
def test_ranker_popular_serves_global_popularity_whatever_the_user_has(state: UserState) -> None:
    popular = FeedOptions().with_overrides({"ranker": "popular"})
    inputs = rank_inputs(MODEL, RULES, [state], [4], [popular])
    assert inputs.sources == [Source.POPULARITY]
    assert not inputs.users[0].any()
    np.testing.assert_array_equal(
        inputs.video_bias[0], expected_video_bias(Source.POPULARITY, state)
    )


PAGES = [
    pytest.param(
        UserState(capped=None),
        FeedOptions(),
        Source.POPULARITY,
        ["v-b1", "v-b0", "v-a1"],
        [],
        id="degraded: global popularity without products",
    ),
    pytest.param(
        UserState(capped=HEALTHY),
        FeedOptions(),
        Source.POPULARITY,
        ["v-b1", "v-b0", "v-a1"],
        ["p-dep"],
        id="healthy unknown user: global popularity with a product",
    ),
    pytest.param(
        UserState(capped=HEALTHY),
        FeedOptions().with_overrides({"attach": False}),
        Source.POPULARITY,
        ["v-b1", "v-b0", "v-a1"],
        [],
        id="variant with attach off: no product",
    ),
    pytest.param(
        UserState(segment="young", capped=HEALTHY),
        FeedOptions(),
        Source.SEGMENT_POPULARITY,
        ["v-a1", "v-a0", "v-b0"],
        ["p-dep"],
        id="known segment: its popular videos first",
    ),
    pytest.param(
        UserState(vector=ON_A, capped=HEALTHY),
        FeedOptions(),
        Source.CF,
        ["v-a0", "v-a1", "v-b0"],
        ["p-dep"],
        id="published vector: its axis first",
    ),
    pytest.param(
        UserState(recent_raw=(VIEW_B0,), capped=HEALTHY),
        FeedOptions(),
        Source.FOLD_IN,
        ["v-b1", "v-a0", "v-a1"],
        ["p-dep"],
        id="fold-in: the viewed axis first, the viewed video gone",
    ),
]


@pytest.mark.parametrize(("state", "options", "source", "videos", "attached"), PAGES)
def test_the_page_served(
    state: UserState, options: FeedOptions, source: Source, videos: list[str], attached: list[str]
) -> None:
    (feed,) = build_feeds(MODEL, RULES, [state], [3], [options])
    assert feed.source is source
    assert [item["video_id"] for item in feed.items] == videos
    assert feed.attached == attached
    assert [item["product"]["product_id"] for item in feed.items if item["product"]] == attached


@pytest.mark.parametrize(
    ("cap", "ratio", "counts_as"),
    [
        pytest.param(1.0, 3.0, 1.0, id="a replay counts as one whole view under the default cap"),
        pytest.param(1.0, 0.4, 0.4, id="a partial view counts its ratio"),
        pytest.param(2.0, 3.0, 2.0, id="a replay counts up to the model's cap"),
        pytest.param(5.0, 3.0, 3.0, id="under the cap a replay counts its ratio"),
    ],
)
def test_a_views_watch_ratio_counts_up_to_the_models_cap(
    cap: float, ratio: float, counts_as: float
) -> None:
    """Fold-in weighs a view by min(watch ratio, the manifest's watch_ratio_cap), as training
    does (training.data.matrix.ConfidenceWeights.per_event)."""
    model = replace(MODEL, watch_ratio_cap=cap)
    folded, source = user_vector(model, UserState(recent_raw=(event("v-b0", "view", ratio),)))
    expected, _ = user_vector(model, UserState(recent_raw=(event("v-b0", "view", counts_as),)))
    assert source is Source.FOLD_IN and folded is not None and expected is not None
    assert np.allclose(folded, expected)
    other, _ = user_vector(model, UserState(recent_raw=(event("v-b0", "view", 0.1),)))
    assert other is not None and not np.allclose(folded, other)  # the ratio does count
