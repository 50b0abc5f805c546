"""The synthetic world: deterministic, well-formed, and carrying the structure its truth plants."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import scipy.sparse as sp

from recsvc.contract.domain import EVENT_COLUMNS, Action, ItemType, ProductCategory
from sandbox.world.generate import World, WorldSpec, generate_world, load_truth, write_world

SPEC = WorldSpec(users=4_000, videos=400, products=40, events=160_000, days=10, seed=7)
DAY_MS = 86_400_000


@pytest.fixture(scope="module")
def world() -> World:
    return generate_world(SPEC)


def column(table: pa.Table, name: str) -> np.ndarray:
    return table.column(name).to_numpy(zero_copy_only=False)


def of_action(world: World, action: Action) -> pa.Table:
    return world.events.filter(pc.equal(world.events.column("action"), action.value))


def rows(world: World, table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """Truth rows of each event's user and item (videos and products index separately)."""
    truth, items = world.truth, column(table, "item_id")
    is_video = column(table, "item_type") == ItemType.VIDEO.value
    item = np.where(
        is_video,
        np.searchsorted(truth.video_ids, items),
        np.searchsorted(truth.product_ids, items),
    )
    return truth.user_rows(column(table, "user_id")), item


def ms(table: pa.Table) -> np.ndarray:
    return table.column("ts").cast(pa.int64()).to_numpy()


# -- determinism ----------------------------------------------------------------------------


def test_the_same_seed_gives_the_same_world_and_another_seed_does_not() -> None:
    small = WorldSpec(users=800, videos=120, products=20, events=20_000, days=5, seed=3)
    first, again, other = (
        generate_world(small),
        generate_world(small),
        generate_world(replace(small, seed=4)),
    )
    for name in ("events", "users", "videos", "products"):
        assert getattr(first, name).equals(getattr(again, name)), name
    for name, array in first.truth.to_arrays().items():
        np.testing.assert_array_equal(array, again.truth.to_arrays()[name], err_msg=name)
    assert not first.events.equals(other.events)
    assert not np.array_equal(first.truth.user_topics, other.truth.user_topics)


def test_an_invalid_spec_is_refused_with_the_field_named() -> None:
    with pytest.raises(ValueError, match="WorldSpec.users must be >= 1"):
        WorldSpec(users=0)
    with pytest.raises(ValueError, match="retired_share"):
        WorldSpec(retired_share=0.9)


# -- events: schema and values ---------------------------------------------------------------


def test_events_have_the_contract_columns_and_types(world: World) -> None:
    schema = world.events.schema
    assert tuple(schema.names) == EVENT_COLUMNS
    assert schema.field("ts").type == pa.timestamp("ms", tz="UTC")
    assert schema.field("watch_ratio").type == pa.float32()
    assert schema.field("amount").type == pa.float64()
    for name in ("event_id", "user_id", "item_id", "item_type", "action", "request_id"):
        assert schema.field(name).type == pa.string(), name
    for name in ("event_id", "ts", "user_id", "item_id", "item_type", "action"):
        assert world.events.column(name).null_count == 0, name


def test_the_event_count_is_near_the_target_and_the_mix_is_plausible(world: World) -> None:
    n = world.events.num_rows
    assert abs(n - SPEC.events) / SPEC.events < 0.1
    share = {a: of_action(world, a).num_rows / n for a in Action}
    assert 0.50 < share[Action.IMPRESSION] < 0.62
    assert 0.28 < share[Action.VIEW] < 0.42
    assert 0.03 < share[Action.CLICK] < 0.12
    assert 0.004 < share[Action.PURCHASE] < 0.02


def test_videos_are_shown_and_viewed_and_products_clicked_and_bought(world: World) -> None:
    kinds = set(zip(column(world.events, "item_type"), column(world.events, "action"), strict=True))
    assert kinds == {
        ("video", "impression"), ("video", "view"), ("product", "click"), ("product", "purchase"),
    }  # fmt: skip


def test_watch_ratio_is_only_on_views_and_within_0_and_1(world: World) -> None:
    is_view = column(world.events, "action") == Action.VIEW.value
    ratio = column(world.events, "watch_ratio")
    assert np.isnan(ratio[~is_view]).all()
    assert not np.isnan(ratio[is_view]).any()
    assert ratio[is_view].min() >= 0 and ratio[is_view].max() <= 1
    assert 0.3 < ratio[is_view].mean() < 0.9


def test_amount_is_only_on_purchases_and_positive(world: World) -> None:
    is_purchase = column(world.events, "action") == Action.PURCHASE.value
    amount = column(world.events, "amount")
    assert np.isnan(amount[~is_purchase]).all()
    assert (amount[is_purchase] > 0).all()


def test_event_ids_are_unique_and_times_sorted_inside_the_window(world: World) -> None:
    ids = column(world.events, "event_id")
    assert len(np.unique(ids)) == len(ids)
    ts = ms(world.events)
    start = int(datetime(2026, 11, 1, tzinfo=UTC).timestamp() * 1000)
    assert ts.min() >= start and ts.max() < start + SPEC.days * DAY_MS
    assert (np.diff(ts) >= 0).all()


def test_ids_name_known_users_and_catalog_items(world: World) -> None:
    users = column(world.events, "user_id")
    assert set(np.unique(users)) <= set(world.truth.user_ids)
    assert all(u.startswith("u") and len(u) == len(world.truth.user_ids[0]) for u in users[:100])
    is_video = column(world.events, "item_type") == "video"
    items = column(world.events, "item_id")
    assert set(np.unique(items[is_video])) <= set(column(world.videos, "video_id"))
    assert set(np.unique(items[~is_video])) <= set(column(world.products, "product_id"))


def test_clicks_carry_the_request_of_an_impression_and_some_purchases_have_none(
    world: World,
) -> None:
    for action in (Action.IMPRESSION, Action.VIEW, Action.CLICK):
        assert of_action(world, action).column("request_id").null_count == 0
    shown = set(
        zip(
            *(column(of_action(world, Action.IMPRESSION), c) for c in ("user_id", "request_id")),
            strict=True,
        )
    )
    clicks = of_action(world, Action.CLICK)
    clicked = set(zip(column(clicks, "user_id"), column(clicks, "request_id"), strict=True))
    assert clicked <= shown
    purchases = of_action(world, Action.PURCHASE)
    assert 0 < purchases.column("request_id").null_count < purchases.num_rows


# -- catalog and users -----------------------------------------------------------------------


def test_about_five_percent_of_items_are_retired_and_served_only_before(world: World) -> None:
    for table in (world.videos, world.products):
        retired = (column(table, "status") == "retired").mean()
        assert abs(retired - SPEC.retired_share) < 0.01
        assert set(column(table, "status")) == {"live", "retired"}
    impressions = of_action(world, Action.IMPRESSION)
    _, video = rows(world, impressions)
    assert (ms(impressions) < world.truth.video_until_ms[video]).all()
    assert (ms(impressions) >= world.truth.video_from_ms[video]).all()
    assert (world.truth.video_until_ms[video] < np.iinfo(np.int64).max).any()


def test_every_credit_product_discloses_its_rate_and_risk_follows_category(world: World) -> None:
    products = world.products.to_pylist()
    by_category = {c: [p for p in products if p["category"] == c.value] for c in ProductCategory}
    assert all(by_category.values()), "every category is present"
    assert all("APR" in p["disclosure"] for p in by_category[ProductCategory.CREDIT])
    assert {p["risk_level"] for p in by_category[ProductCategory.DEPOSIT]} <= {1, 2}
    assert {p["risk_level"] for p in by_category[ProductCategory.FUND]} <= {3, 4, 5}
    assert {p["risk_level"] for p in by_category[ProductCategory.CREDIT]} <= {2, 3}
    assert all(1 <= len(p["topics"]) <= 2 for p in products)


def test_users_have_segments_tolerances_lifecycles_and_holdings(world: World) -> None:
    users = world.users
    assert users.num_rows == SPEC.users
    assert len(set(column(users, "segment"))) == 5
    assert set(column(users, "risk_tolerance")) == {1, 2, 3, 4, 5}
    assert set(column(users, "lifecycle")) == {"new", "active", "dormant"}
    holdings = column(users, "holdings")
    assert (holdings == "").any() and (holdings != "").any()
    held = {p for h in holdings for p in h.split("|") if p}
    assert held <= set(column(world.products, "product_id"))


def test_new_users_appear_only_at_the_end_and_dormant_ones_only_early(world: World) -> None:
    shown = of_action(world, Action.IMPRESSION)
    user, _ = rows(world, shown)
    day = (ms(shown) - SPEC.start_ms) // DAY_MS
    lifecycle = column(world.users, "lifecycle")[user]
    assert day[lifecycle == "new"].min() >= SPEC.days - 3
    assert day[lifecycle == "dormant"].max() < SPEC.days // 2
    assert day[lifecycle == "active"].max() == SPEC.days - 1


# -- the planted truth -----------------------------------------------------------------------


def test_purchases_respect_suitability_most_but_not_all_of_the_time(world: World) -> None:
    user, product = rows(world, of_action(world, Action.PURCHASE))
    suitable = world.truth.product_risk[product] <= world.truth.user_risk[user]
    assert 0.9 <= suitable.mean() < 1.0


def test_a_holdable_once_product_is_never_bought_twice_or_when_held(world: World) -> None:
    truth = world.truth
    user, product = rows(world, of_action(world, Action.PURCHASE))
    once = truth.product_once[product]
    pairs = user[once].astype(np.int64) * len(truth.product_ids) + product[once]
    assert len(np.unique(pairs)) == len(pairs)
    held = truth.held_users.astype(np.int64) * len(truth.product_ids) + truth.held_products
    assert not np.isin(pairs, held).any()


def test_views_concentrate_on_each_users_top_truth_topic(world: World) -> None:
    truth = world.truth
    user, video = rows(world, of_action(world, Action.VIEW))
    top_topic = truth.user_topics.argmax(1)[user]
    on_topic = truth.video_topics[video, top_topic] > 0
    baseline = (truth.video_topics > 0).mean(0)[top_topic]  # share of videos on that topic
    assert on_topic.mean() > 4 * baseline.mean()
    assert on_topic.mean() > 0.5


def test_the_truth_predicts_each_users_views_far_better_than_popularity(world: World) -> None:
    truth = world.truth
    user, video = rows(world, of_action(world, Action.VIEW))
    counts = sp.csr_matrix(
        (np.ones(len(user)), (user, video)), shape=(len(truth.user_ids), len(truth.video_ids))
    )
    active = np.flatnonzero(np.diff(counts.indptr) >= 5)[:500]
    viewed = counts[active].toarray() > 0
    popularity = np.asarray(counts.sum(0)).ravel()
    assert (
        _auc(truth.video_scores(active), viewed)
        > _auc(np.tile(popularity, (len(active), 1)), viewed) + 0.08
    )
    assert _auc(truth.video_scores(active), viewed) > 0.85


def test_view_rates_per_video_follow_the_truth(world: World) -> None:
    truth = world.truth
    shown_user, _ = rows(world, of_action(world, Action.IMPRESSION))
    _, video = rows(world, of_action(world, Action.VIEW))
    impressions = np.bincount(shown_user, minlength=len(truth.user_ids))
    some = np.flatnonzero(impressions)
    # expected views per video: every user's impressions times their per-impression rates,
    # at mid-window (videos retired or published during the window are left out)
    mid = truth.end_ms - SPEC.days * DAY_MS // 2
    steady = (truth.video_until_ms == np.iinfo(np.int64).max) & (
        truth.video_from_ms < SPEC.start_ms
    )
    expected = impressions[some] @ truth.video_scores(some, at_ms=mid)
    observed = np.bincount(video, minlength=len(truth.video_ids))
    assert np.corrcoef(expected[steady], observed[steady])[0, 1] > 0.95


def test_dense_scores_agree_with_the_pairwise_probabilities_events_are_drawn_from(
    world: World,
) -> None:
    truth = world.truth
    users = np.array([0, 17, 123])
    videos, products = np.arange(len(truth.video_ids)), np.arange(len(truth.product_ids))
    video_scores, attach = truth.video_scores(users), truth.attach_share()
    for i, u in enumerate(users):
        view = truth.view_probability(np.full(len(videos), u), videos)
        np.testing.assert_allclose(
            video_scores[i], truth.impression_share(users)[i] * view, rtol=1e-5
        )
        expected = np.zeros(len(products))
        for p in products:  # the oracle's formula, summed the slow way
            click = truth.click_probability(
                np.full(len(videos), u), videos, np.full(len(videos), p)
            )
            buy = truth.purchase_probability(np.array([u]), np.array([p]))[0]
            expected[p] = (video_scores[i] * attach[:, p] * click).sum() * buy
        np.testing.assert_allclose(truth.product_scores(users)[i], expected, rtol=1e-4)


@pytest.mark.slow
def test_collaborative_filtering_beats_popularity_on_held_out_days() -> None:
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    world = generate_world(WorldSpec())  # the default size: enough purchases to compare
    events, n_videos = world.events, len(world.truth.video_ids)
    action = column(events, "action")
    held_out = ms(events) >= world.truth.end_ms - 3 * DAY_MS
    weight = np.select(
        [action == "view", action == "click", action == "purchase"],
        [np.nan_to_num(column(events, "watch_ratio")), 4.0, 16.0],
    )
    train = joint_matrix(world, weight * ~held_out)
    with threadpool_limits(limits=1, user_api="blas"):
        model = AlternatingLeastSquares(factors=16, regularization=1.0, random_state=0)
        model.fit(train.astype(np.float32), show_progress=False)
    model_scores = model.user_factors @ model.item_factors.T
    popular = np.where(
        np.arange(train.shape[1]) < n_videos,
        (train > 0).sum(0).A1,  # videos: by users; products: by purchases, as a shop would
        joint_matrix(world, (action == "purchase") & ~held_out).sum(0).A1,
    )
    videos, products = slice(0, n_videos), slice(n_videos, None)
    viewed = joint_matrix(world, (action == "view") & held_out)
    bought = joint_matrix(world, (action == "purchase") & held_out)
    for part, relevant, k in ((videos, viewed, 10), (products, bought, 5)):
        by_model = hits(model_scores[:, part], relevant[:, part], train[:, part], k)
        by_popularity = hits(popular[None, part], relevant[:, part], train[:, part], k)
        assert by_model > 1.5 * by_popularity, (part, by_model, by_popularity)


def joint_matrix(world: World, weight: np.ndarray) -> sp.csr_matrix:
    """Users × (videos, then products), summing a weight per event."""
    user, item = rows(world, world.events)
    n_videos = len(world.truth.video_ids)
    item = np.where(column(world.events, "item_type") == "video", item, n_videos + item)
    shape = (len(world.truth.user_ids), n_videos + len(world.truth.product_ids))
    matrix = sp.csr_matrix((weight.astype(float), (user, item)), shape=shape)
    matrix.eliminate_zeros()
    return matrix


def hits(scores: np.ndarray, relevant: sp.csr_matrix, seen: sp.csr_matrix, k: int) -> int:
    """Held-out items found in the top k of the users who have some, seen items excluded."""
    users = np.flatnonzero(np.diff(relevant.indptr) > 0)
    ranked = np.where(
        seen[users].toarray() > 0, -np.inf, np.broadcast_to(scores, seen.shape)[users]
    )
    top = np.argsort(-ranked, axis=1)[:, :k]
    return int(np.take_along_axis(relevant[users].toarray() > 0, top, 1).sum())


def test_a_written_world_reads_back(world: World, tmp_path) -> None:
    write_world(world, tmp_path / "w")
    out = tmp_path / "w"
    summary = json.loads((out / "world.json").read_text())
    assert summary["seed"] == SPEC.seed and summary["counts"]["events"] == world.events.num_rows
    assert len(summary["topics"]) == 12
    videos = [
        json.loads(line) for line in (out / "catalog" / "videos.jsonl").read_text().splitlines()
    ]
    assert [v["video_id"] for v in videos] == column(world.videos, "video_id").tolist()
    assert set(videos[0]) == {
        "video_id", "title", "topics", "creator", "duration_s", "published_at", "status"
    }  # fmt: skip
    assert datetime.fromisoformat(videos[0]["published_at"]).tzinfo is not None
    products = [
        json.loads(line) for line in (out / "catalog" / "products.jsonl").read_text().splitlines()
    ]
    assert products == world.products.to_pylist()
    users = pacsv.read_csv(
        out / "users.csv", convert_options=pacsv.ConvertOptions(column_types=world.users.schema)
    )
    assert users.equals(world.users)

    parts = sorted((out / "events").glob("day=*/part-0.parquet"))
    assert len(parts) == SPEC.days
    tables = [pq.read_table(p) for p in parts]
    for d, (path, table) in enumerate(zip(parts, tables, strict=True)):
        day = SPEC.start + timedelta(days=d)
        assert path.parent.name == f"day={day}"
        dates = {t.date() for t in table.column("ts").to_pylist()}
        assert dates <= {day}
    assert pa.concat_tables(tables).equals(world.events)

    truth = load_truth(out)
    for name, array in world.truth.to_arrays().items():
        np.testing.assert_array_equal(array, truth.to_arrays()[name], err_msg=name)
    np.testing.assert_allclose(
        truth.product_scores(np.arange(5)), world.truth.product_scores(np.arange(5))
    )
    with pytest.raises(FileExistsError, match="not empty"):
        write_world(world, out)


def _auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Mean over users of the chance a viewed video outscores an unviewed one."""
    ranks = scores.argsort(1).argsort(1).astype(float)
    n_pos, n_neg = positive.sum(1), (~positive).sum(1)
    return float(np.mean(((ranks * positive).sum(1) - n_pos * (n_pos - 1) / 2) / (n_pos * n_neg)))
