"""Videos the model does not know, ranked from the fresh table beside the graph
(recsvc.feed.fresh and recsvc.feed.compute.with_fresh), in process on the planted model of
tests/http/planted.py: four topic axes, a user published on each.

Specification:

- Every live catalogue video the model lacks is in the fresh table, placed by the trainer's
  metadata map; retired ones are not.
- Its score is u · v (plus the freshness bias), merged with the graph's candidates by score;
  a fresh video the user has seen is not served.
- Its product card obeys the same rules as any other (risk level, holdings, disclosure,
  caps): a product a user may not be offered is never attached under it.
- Users ranked by popularity (no vector) and options with `fresh_videos` off get the model's
  videos only.
- An exploration share gives round(share · n) slots of a page, spread out and never the top,
  to fresh videos no viewer has placed yet, unseen and not on the page, at random; they carry
  `explored`, no card, and the page's own videos move down.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recsvc.contract import vectors
from recsvc.contract.catalog import Catalog, ProductRecord, VideoRecord
from recsvc.contract.domain import ItemStatus
from recsvc.contract.user_state import UserState, recent_entry
from recsvc.feed.attach import ItemRules
from recsvc.feed.compute import (
    FeedOptions,
    build_feeds,
    exploration_slots,
    rank_inputs,
    with_fresh,
)
from recsvc.feed.fresh import Learned
from recsvc.feed.model import ServingModel
from recsvc.service.snapshot import Snapshot
from tests.http import planted


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> ServingModel:
    directory = planted.write_planted_model(tmp_path_factory.mktemp("models"), "planted")
    return ServingModel.load(Path(directory), generation=1)


def catalog(*extra: VideoRecord) -> Catalog:
    videos = {r["video_id"]: VideoRecord.model_validate(r) for r in planted.video_records()}
    videos.update({r.video_id: r for r in extra})
    products = {r["product_id"]: ProductRecord.model_validate(r) for r in planted.product_records()}
    return Catalog("r1", videos, products)


def rules_for(model: ServingModel, *extra: VideoRecord) -> ItemRules:
    rules = Snapshot().with_model(model).with_catalog(catalog(*extra)).rules
    assert rules is not None
    return rules


def user(axis: int, tolerance: int | None = 5, seen: tuple[str, ...] = ()) -> UserState:
    vector = np.zeros(planted.DIM, dtype=np.float32)
    vector[axis] = 1.0
    recent = tuple(recent_entry("video", v, "view", 1.0).encode() for v in seen)
    return UserState(
        vector=vectors.encode(vector),
        risk_tolerance=tolerance,
        recent_raw=recent,
        capped=frozenset(),
    )


def ids(model: ServingModel, rules: ItemRules, state: UserState, **options: object) -> list[str]:
    feed = build_feeds(model, rules, [state], [5], [FeedOptions(**options)])[0]  # type: ignore[arg-type]
    return [item["video_id"] for item in feed.items]


def test_live_videos_the_model_lacks_are_placed_by_their_metadata(model: ServingModel) -> None:
    rules = rules_for(
        model,
        VideoRecord(video_id="v-new-inv", topics=["investing"]),
        VideoRecord(video_id="v-gone", topics=["investing"], status=ItemStatus.RETIRED),
        VideoRecord(video_id="v-bare"),
    )
    assert set(rules.fresh.ids) == {"v-new-inv", "v-bare"}
    placed = rules.fresh.vectors[rules.fresh.position["v-new-inv"]]
    assert int(np.argmax(placed)) == 2  # the investing axis
    bare = rules.fresh.vectors[rules.fresh.position["v-bare"]]
    np.testing.assert_allclose(bare, planted.video_factors().mean(axis=0), atol=1e-6)
    assert rules.fresh.viewers == (0, 0)


def test_a_fresh_video_merges_with_the_models_by_score(model: ServingModel) -> None:
    rules = rules_for(model, VideoRecord(video_id="v-new-inv", topics=["investing"]))
    # investing videos score 1.0, 0.9, 0.8; the new one about 0.88 (the map's estimate)
    assert ids(model, rules, user(2))[:4] == ["v20", "v21", "v-new-inv", "v22"]
    assert "v-new-inv" not in ids(model, rules, user(2, seen=("v-new-inv",)))
    assert "v-new-inv" not in ids(model, rules, user(2), fresh_videos=False)
    assert "v-new-inv" not in ids(model, rules, UserState(capped=frozenset()))  # popularity


def test_a_learned_vector_replaces_the_metadata_one(model: ServingModel) -> None:
    new = VideoRecord(video_id="v-new-inv", topics=["investing"])
    rules = rules_for(model, new)
    moved = np.array([0.0, 0.0, 0.0, 2.0], dtype=np.float32)  # its viewers were credit users
    learned = model.fresh_videos(catalog(new), {"v-new-inv": Learned(moved, 3)})
    rules = rules.with_fresh(learned)
    assert rules.fresh.viewers == (3,)
    assert ids(model, rules, user(3))[0] == "v-new-inv"
    assert "v-new-inv" not in ids(model, rules, user(2))[:3]


def test_a_card_under_a_fresh_video_obeys_the_rules(model: ServingModel) -> None:
    rules = rules_for(model, VideoRecord(video_id="v-new-inv", topics=["investing"]))

    # Each product once per page, the best-scoring card first: the investing videos are seen,
    # so that the fresh one is the page's best investing video.
    seen = tuple(f"v2{j}" for j in range(3))

    def card(state: UserState) -> str | None:
        feed = build_feeds(model, rules, [state], [5], [FeedOptions(max_attached=5)])[0]
        item = next(i for i in feed.items if i["video_id"] == "v-new-inv")
        return item["product"]["product_id"] if item["product"] else None

    assert card(user(2, 5, seen)) == "p-fund"  # the investing axis' product, level 4
    assert card(user(2, 2, seen)) != "p-fund"  # above this user's tolerance
    held = UserState(
        vector=user(2).vector,
        risk_tolerance=2,
        recent_raw=user(2, 2, seen).recent_raw,
        holdings=frozenset({"p-pen"}),
        capped=frozenset({"p-dep"}),
    )
    assert card(held) not in {"p-fund", "p-pen", "p-dep", "p-nodisc"}


@pytest.mark.parametrize(
    ("size", "share", "slots"),
    [(20, 0.1, [5, 15]), (5, 0.2, [2]), (5, 0.0, []), (4, 0.1, []), (10, 0.5, [1, 3, 5, 7, 9])],
)
def test_exploration_slots_are_spread_over_the_page_and_never_the_top(
    size: int, share: float, slots: list[int]
) -> None:
    assert exploration_slots(size, share) == slots


def test_exploration_shows_unplaced_unseen_fresh_videos_without_a_card(
    model: ServingModel,
) -> None:
    new = [VideoRecord(video_id=f"v-new-{i}", topics=["credit"]) for i in range(3)]
    rules = rules_for(model, *new)
    learned = {"v-new-0": Learned(np.array([0, 0, 0, 1], dtype=np.float32), 3)}
    rules = rules.with_fresh(model.fresh_videos(catalog(*new), learned))
    state = user(0, seen=("v-new-1",))
    options = FeedOptions(exploration_share=0.34, max_attached=5)
    for _ in range(10):  # drawn at random: the only candidate every time
        feed = build_feeds(model, rules, [state], [3], [options])[0]
        assert [item["rank"] for item in feed.items] == [1, 2, 3]
        # v-new-0 is placed (learned), v-new-1 seen: v-new-2 alone may be explored, in the
        # page's one slot (the second); v02 drops out
        assert [(i["video_id"], i.get("explored", False), i["score"]) for i in feed.items] == [
            ("v00", False, 1.0),
            ("v-new-2", True, 0.0),
            ("v01", False, 0.9),
        ]
        assert feed.items[1]["product"] is None
        assert feed.attached == [i["product"]["product_id"] for i in feed.items if i["product"]]
    without = build_feeds(model, rules, [state], [3], [FeedOptions(max_attached=5)])[0]
    assert not any(item.get("explored") for item in without.items)


@pytest.mark.parametrize("tolerance", [1, 2, 5])
def test_a_fresh_copy_of_a_model_video_scores_and_takes_its_card_as_the_graph_does(
    model: ServingModel, tolerance: int
) -> None:
    """The fresh table's formulas are the graph's: a fresh video with a model video's
    vector gets the same score and the same product, whatever the rules block."""
    copy = VideoRecord(video_id="v-copy")
    twin = planted.video_factors()[planted.VIDEOS.index("v21")]
    rules = rules_for(model, copy).with_fresh(
        model.fresh_videos(catalog(copy), {"v-copy": Learned(twin, 3)})
    )
    state = UserState(vector=user(2).vector, risk_tolerance=tolerance, capped=frozenset({"p-dep"}))
    options = [FeedOptions()]
    inputs = rank_inputs(model, rules, [state], [5], options)
    ranked = with_fresh(model, rules, inputs, inputs.rank(model), options)
    names = [rules.video_names[i] for i in ranked.video_index[0]]
    original, fresh = names.index("v21"), names.index("v-copy")
    assert ranked.video_score[0, original] == pytest.approx(ranked.video_score[0, fresh])
    assert ranked.product_index[0, original] == ranked.product_index[0, fresh]
    assert ranked.product_score[0, original] == pytest.approx(ranked.product_score[0, fresh])
