"""The synthetic world's clock: videos published during the window, news whose appeal decays
with age, interests that drift, and a truth that knows the instant it is asked about."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from recsvc.contract.catalog import VideoRecord
from sandbox.world.generate import World, WorldSpec, generate_world, load_truth, write_world
from sandbox.world.truth import Truth

HOUR_MS, DAY_MS = 3_600_000, 86_400_000
SMALL = WorldSpec(users=4_000, videos=400, products=40, events=160_000, days=10, seed=7)
CLOCKED = replace(SMALL, fresh_share=0.3, news_share=0.2, drift=0.8)
# Digests of worlds generated before the clock existed (truth arrays, tables' columns).
BEFORE_THE_CLOCK = {
    SMALL: {
        "videos": "1561f69688871094", "products": "6ee5484b4d4b447f",
        "users": "5db71bf521c5f5d0", "events": "05b9e787ff34cad5", "truth": "7b84b41e15f595af",
    },
    WorldSpec(): {
        "videos": "4e761769d51fdffe", "products": "c6e307e02639e4e4",
        "users": "e7bed5440cad4a24", "events": "393ea86e8a197178", "truth": "033627f40187e12a",
    },
}  # fmt: skip
OLD_TRUTH = ("topics", "user_ids", "video_ids", "product_ids", "user_topics", "user_level",
             "user_risk", "user_segment", "held_users", "held_products", "video_topics",
             "video_level", "video_quality", "video_from_ms", "video_until_ms", "product_topics",
             "product_quality", "product_risk", "product_once", "product_until_ms", "end_ms",
             "behaviour_names", "behaviour_values")  # fmt: skip
OLD_VIDEO_COLUMNS = ("video_id", "title", "topics", "duration_s", "published_at", "status")
CLOCK_ARRAYS = ("video_news", "user_topics_late", "start_ms", "news_half_life_hours")


@pytest.fixture(scope="module")
def world() -> World:
    return generate_world(CLOCKED)


def column(table: pa.Table, name: str) -> np.ndarray:
    return table.column(name).to_numpy(zero_copy_only=False)


def video_events(world: World, action: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """User rows, video rows and times of the log's events of one action on videos."""
    events = world.events.filter(pc.equal(world.events.column("action"), action))
    users = world.truth.user_rows(column(events, "user_id"))
    videos = np.searchsorted(world.truth.video_ids, column(events, "item_id"))
    return users, videos, events.column("ts").cast(pa.int64()).to_numpy()


def table_digest(table: pa.Table, names: tuple[str, ...]) -> str:
    digest = hashlib.sha256()
    for name in names:
        values = table.column(name)
        digest.update(name.encode())
        if pa.types.is_list(values.type):
            digest.update(json.dumps(values.to_pylist()).encode())
        elif pa.types.is_string(values.type):
            digest.update(np.asarray(values.to_numpy(zero_copy_only=False)).astype(str).tobytes())
        else:
            digest.update(np.asarray(values.to_numpy(zero_copy_only=False)).tobytes())
    return digest.hexdigest()[:16]


def truth_digest(truth: Truth) -> str:
    digest, arrays = hashlib.sha256(), truth.to_arrays()
    for name in OLD_TRUTH:
        array = np.asarray(arrays[name])
        digest.update(f"{name}{array.dtype}{array.shape}".encode() + array.tobytes())
    return digest.hexdigest()[:16]


# -- a world without the clock is the world it was ------------------------------------------


@pytest.mark.parametrize("spec", list(BEFORE_THE_CLOCK), ids=["small", "default"])
def test_a_spec_with_the_clock_at_its_defaults_gives_the_same_content_as_before(
    spec: WorldSpec,
) -> None:
    world = generate_world(spec)
    assert {
        "videos": table_digest(world.videos, OLD_VIDEO_COLUMNS),
        "products": table_digest(world.products, tuple(world.products.column_names)),
        "users": table_digest(world.users, tuple(world.users.column_names)),
        "events": table_digest(world.events, tuple(world.events.column_names)),
        "truth": truth_digest(world.truth),
    } == BEFORE_THE_CLOCK[spec]
    assert not world.truth.video_news.any()
    np.testing.assert_array_equal(world.truth.user_topics_late, world.truth.user_topics)


def test_the_clock_leaves_the_catalog_and_the_users_as_they_were(world: World) -> None:
    plain = generate_world(replace(CLOCKED, news_share=0.0, drift=0.0))
    for name in ("products", "users"):
        assert getattr(world, name).equals(getattr(plain, name)), name
    assert world.videos.drop_columns("creator").equals(plain.videos.drop_columns("creator"))
    np.testing.assert_array_equal(world.truth.user_topics, plain.truth.user_topics)


def test_an_invalid_clock_is_refused_with_the_field_named() -> None:
    with pytest.raises(ValueError, match="WorldSpec.news_share must be in"):
        WorldSpec(fresh_share=0.1, news_share=0.2)
    with pytest.raises(ValueError, match="WorldSpec.drift must be in"):
        WorldSpec(drift=1.5)
    with pytest.raises(ValueError, match="WorldSpec.fresh_share must be in"):
        WorldSpec(fresh_share=-0.1)
    with pytest.raises(ValueError, match="WorldSpec.news_half_life_hours must be > 0"):
        WorldSpec(news_half_life_hours=0)


# -- publication and news -------------------------------------------------------------------


def test_fresh_videos_are_published_throughout_the_window_and_news_among_them(
    world: World,
) -> None:
    truth = world.truth
    fresh = truth.video_from_ms >= truth.start_ms
    assert abs(fresh.mean() - CLOCKED.fresh_share) < 0.05
    assert abs(truth.video_news.mean() - CLOCKED.news_share) < 0.05
    assert fresh[truth.video_news].all()
    day = (truth.video_from_ms[fresh] - truth.start_ms) // DAY_MS
    assert set(day) == set(range(CLOCKED.days))


def test_news_is_viewed_less_as_it_ages_in_the_log_and_evergreen_is_not(world: World) -> None:
    truth = world.truth
    rates = {}
    for news in (True, False):
        for young in (True, False):
            counts = []
            for action in ("impression", "view"):
                _, video, ts = video_events(world, action)
                age = ts - truth.video_from_ms[video]
                fresh = truth.video_from_ms[video] >= truth.start_ms
                keep = fresh & (truth.video_news[video] == news) & ((age < 6 * HOUR_MS) == young)
                counts.append(keep.sum())
            rates[news, young] = counts[1] / counts[0]
    assert rates[True, True] > 0.25 and rates[True, False] < rates[True, True] / 4
    assert abs(rates[False, True] - rates[False, False]) < 0.05


def test_the_log_views_videos_at_the_rates_the_truth_gives_at_each_instant(world: World) -> None:
    truth = world.truth
    user, video, ts = video_events(world, "impression")
    expected = truth.view_probability(user, video, ts)
    _, viewed, _ = video_events(world, "view")
    for news in (True, False):
        shown = truth.video_news[video] == news
        observed = (truth.video_news[viewed] == news).sum()
        assert abs(observed - expected[shown].sum()) < 4 * np.sqrt(expected[shown].sum())
    # blind to age, news would be viewed as when just published: more than twice as often
    news = truth.video_news[video]
    fresh = truth.view_probability(user[news], video[news], truth.video_from_ms[video[news]])
    assert truth.video_news[viewed].sum() < 0.5 * fresh.sum()


def test_view_propensity_halves_every_half_life_for_news_and_holds_for_evergreen(
    world: World,
) -> None:
    truth = replace(world.truth, user_topics_late=world.truth.user_topics)  # no drift
    video = np.flatnonzero(truth.video_news)[0]
    rows = np.arange(50)
    published = int(truth.video_from_ms[video])
    at_once = truth.view_propensity(rows, published)
    later = truth.view_propensity(rows, published + 6 * HOUR_MS)
    np.testing.assert_allclose(later[:, video] / at_once[:, video], 0.5, rtol=1e-5)
    twice = truth.view_propensity(rows, published + 12 * HOUR_MS)
    np.testing.assert_allclose(twice[:, video] / at_once[:, video], 0.25, rtol=1e-5)
    steady = (
        ~truth.video_news
        & truth.videos_available(published)
        & truth.videos_available(published + 12 * HOUR_MS)
    )
    np.testing.assert_array_equal(twice[:, steady], at_once[:, steady])
    assert (twice[:, steady] > 0).all()


def test_fresh_news_draws_more_than_the_same_video_as_an_explainer(world: World) -> None:
    truth = world.truth
    video = np.flatnonzero(truth.video_news)[0]
    rows = np.arange(50)
    at = int(truth.video_from_ms[video])
    news = truth.view_propensity(rows, at)[:, video]
    explainer = replace(truth, news_appeal=0.0).view_propensity(rows, at)[:, video]
    assert (news > explainer).all()
    assert truth.news_appeal == CLOCKED.news_appeal == 1.5


def test_view_propensity_is_zero_for_unpublished_and_retired_videos(world: World) -> None:
    truth = world.truth
    at = truth.start_ms + CLOCKED.days * DAY_MS // 2
    propensity = truth.view_propensity(np.arange(200), at)
    unpublished, retired = truth.video_from_ms > at, truth.video_until_ms <= at
    assert unpublished.any() and retired.any()
    assert (propensity[:, unpublished | retired] == 0).all()
    assert (propensity[:, ~(unpublished | retired)] > 0).all()
    video = np.flatnonzero(unpublished)[0]
    published = int(truth.video_from_ms[video])
    assert (truth.view_propensity(np.arange(5), published - 1)[:, video] == 0).all()
    assert (truth.view_propensity(np.arange(5), published)[:, video] > 0).all()


def test_dense_propensities_and_scores_agree_with_the_pairs_at_an_instant(world: World) -> None:
    truth = world.truth
    at = truth.start_ms + 3 * DAY_MS + 5 * HOUR_MS
    users, videos = np.array([0, 17, 123]), np.arange(len(truth.video_ids))
    propensity = truth.view_propensity(users, at)
    for i, u in enumerate(users):
        pairs = truth.view_probability(np.full(len(videos), u), videos, at)
        np.testing.assert_allclose(
            propensity[i], pairs * truth.videos_available(at), rtol=1e-5, atol=1e-12
        )
    np.testing.assert_allclose(
        truth.video_scores(users, at), truth.impression_share(users, at) * propensity, rtol=1e-6
    )
    np.testing.assert_allclose(
        truth.video_scores(users), truth.video_scores(users, truth.end_ms), rtol=1e-6
    )


# -- drifting interests ---------------------------------------------------------------------


def test_interests_move_linearly_from_the_first_vector_to_the_late_one(world: World) -> None:
    truth, rows = world.truth, np.arange(100)
    assert not np.allclose(truth.user_topics_late, truth.user_topics)
    np.testing.assert_allclose(truth.user_topics_late.sum(1), 1, rtol=1e-5)
    np.testing.assert_array_equal(truth.interests(rows, truth.start_ms), truth.user_topics[rows])
    np.testing.assert_allclose(
        truth.interests(rows, truth.end_ms), truth.user_topics_late[rows], rtol=1e-6
    )
    middle = (truth.start_ms + truth.end_ms) // 2
    np.testing.assert_allclose(
        truth.interests(rows, middle),
        (truth.user_topics[rows] + truth.user_topics_late[rows]) / 2,
        rtol=1e-5,
    )
    np.testing.assert_array_equal(
        truth.interests(rows, truth.start_ms - DAY_MS), truth.user_topics[rows]
    )


def test_views_late_in_the_window_follow_the_late_interests_more_than_early_ones(
    world: World,
) -> None:
    truth = world.truth
    user, video, ts = video_events(world, "view")
    first, last = truth.user_topics.argmax(1)[user], truth.user_topics_late.argmax(1)[user]
    moved = first != last
    tau = truth.progress(ts)
    follows = {}
    for name, when in (("early", moved & (tau < 1 / 3)), ("late", moved & (tau > 2 / 3))):
        on_first = (truth.video_topics[video[when], first[when]] > 0).mean()
        on_last = (truth.video_topics[video[when], last[when]] > 0).mean()
        follows[name] = on_last - on_first
    assert follows["early"] < -0.2 and follows["late"] > 0.1


# -- creators and the catalogue on disk -----------------------------------------------------


def test_news_comes_from_the_desks_and_other_creators_keep_mostly_to_one_topic(
    world: World,
) -> None:
    creator, news = column(world.videos, "creator"), world.truth.video_news
    assert all(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}", c) for c in creator)
    assert set(creator[news]) <= {"news-1", "news-2", "news-3"}
    assert not any(c.startswith("news") for c in creator[~news])
    primary = [topics[0] for topics in world.videos.column("topics").to_pylist()]
    by_creator: dict[str, Counter[str]] = {}
    for c, topic in zip(creator[~news], np.array(primary)[~news], strict=True):
        by_creator.setdefault(c, Counter())[topic] += 1
    assert len(by_creator) >= 12
    on_home = sum(max(counts.values()) for counts in by_creator.values()) / (~news).sum()
    assert on_home > 0.8


def test_the_catalogue_and_the_truth_round_trip_with_the_clock(
    world: World, tmp_path: Path
) -> None:
    out = tmp_path / "w"
    write_world(world, out)
    lines = (out / "catalog" / "videos.jsonl").read_text().splitlines()
    records = [VideoRecord.model_validate_json(line) for line in lines]
    assert [r.creator for r in records] == column(world.videos, "creator").tolist()
    published = [datetime.fromisoformat(str(r.published_at)).timestamp() * 1000 for r in records]
    np.testing.assert_array_equal(published, world.truth.video_from_ms // 1000 * 1000)
    summary = json.loads((out / "world.json").read_text())
    assert summary["spec"]["news_share"] == CLOCKED.news_share
    assert summary["counts"]["news_videos"] == world.truth.video_news.sum()

    truth = load_truth(out)
    arrays = truth.to_arrays()
    for name, array in world.truth.to_arrays().items():
        np.testing.assert_array_equal(array, arrays[name], err_msg=name)
    assert set(CLOCK_ARRAYS) <= set(arrays)
    at = world.truth.start_ms + 4 * DAY_MS
    np.testing.assert_array_equal(
        truth.view_propensity(np.arange(5), at), world.truth.view_propensity(np.arange(5), at)
    )


def test_a_truth_written_before_the_clock_loads_without_news_or_drift(tmp_path: Path) -> None:
    spec = WorldSpec(users=300, videos=60, products=12, events=5_000, days=5, seed=3)
    world = generate_world(spec)
    out = tmp_path / "w"
    write_world(world, out)
    arrays = {k: v for k, v in world.truth.to_arrays().items() if k not in CLOCK_ARRAYS}
    np.savez(out / "truth.npz", **arrays)  # type: ignore[arg-type]

    truth = load_truth(out)
    assert not truth.video_news.any() and truth.news_half_life_hours == 6.0
    np.testing.assert_array_equal(truth.user_topics_late, truth.user_topics)
    assert truth.start_ms == spec.start_ms  # from world.json
    np.testing.assert_array_equal(
        truth.video_scores(np.arange(5)), world.truth.video_scores(np.arange(5))
    )
    bare = Truth.from_arrays(arrays)  # nothing says where the window began
    assert bare.start_ms == bare.end_ms - 14 * DAY_MS
