"""The nightly gate's catalogue check: every live item is known to the new model, or new.

`check_catalog` passes (no reasons) when every live video and product of the catalogue is
among the model's item ids, or was published (`published_at`) at most `new_days` before the
window's last event, or after it; such an item is listed in `new_items`. Any other live
unknown item is named in a reason, at most five ids per item type. Retired items are not
looked at. A `published_at` without a zone is UTC; one that cannot be read is not new.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest

from recsvc.contract.catalog import Catalog, ProductRecord, VideoRecord
from recsvc.contract.domain import ItemStatus
from training.data.catalog_check import check_catalog

WINDOW_END = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
KNOWN_VIDEOS = np.array(["v1", "v2", "v3"])
KNOWN_PRODUCTS = np.array(["p-fund", "p-loan"])


def video(video_id: str, published_at: str | None = None, live: bool = True) -> VideoRecord:
    status = ItemStatus.LIVE if live else ItemStatus.RETIRED
    return VideoRecord.model_validate(
        {"video_id": video_id, "published_at": published_at, "status": status}
    )


def product(product_id: str, published_at: str | None = None, live: bool = True) -> ProductRecord:
    status = ItemStatus.LIVE if live else ItemStatus.RETIRED
    return ProductRecord.model_validate(
        {
            "product_id": product_id,
            "name": f"Product {product_id}",
            "category": "fund",
            "risk_level": 3,
            "published_at": published_at,
            "status": status,
        }
    )


def catalog(videos: list[VideoRecord], products: list[ProductRecord] | None = None) -> Catalog:
    return Catalog(
        "rev-1",
        {v.video_id: v for v in videos},
        {p.product_id: p for p in products or []},
    )


def ago(days: float, seconds: float = 0.0) -> str:
    """An ISO time `days` (and `seconds`) before the window's end, with its zone."""
    return (WINDOW_END - timedelta(days=days, seconds=seconds)).isoformat()


def test_a_catalogue_the_model_knows_entirely_passes() -> None:
    result = check_catalog(
        catalog([video("v1"), video("v2"), video("v3")], [product("p-fund"), product("p-loan")]),
        KNOWN_VIDEOS,
        KNOWN_PRODUCTS,
        WINDOW_END,
    )
    assert result.reasons() == []
    assert result.live_videos == 3 and result.live_products == 2
    assert result.new_items == [] and result.unknown_videos == [] and result.unknown_products == []


def test_an_old_live_video_the_model_does_not_know_is_named_in_a_reason() -> None:
    result = check_catalog(
        catalog([video("v1"), video("v-lost", published_at=ago(30))]),
        KNOWN_VIDEOS,
        KNOWN_PRODUCTS,
        WINDOW_END,
    )
    assert result.unknown_videos == ["v-lost"] and result.new_items == []
    [reason] = result.reasons()
    assert reason.startswith("1 live videos unknown to the new model and not new (v-lost)")


def test_a_live_video_without_published_at_is_not_new() -> None:
    result = check_catalog(catalog([video("v-lost")]), KNOWN_VIDEOS, KNOWN_PRODUCTS, WINDOW_END)
    assert result.unknown_videos == ["v-lost"] and len(result.reasons()) == 1


def test_an_old_live_product_the_model_does_not_know_is_named_in_its_own_reason() -> None:
    result = check_catalog(
        catalog([video("v1")], [product("p-fund"), product("p-gone", published_at=ago(90))]),
        KNOWN_VIDEOS,
        KNOWN_PRODUCTS,
        WINDOW_END,
    )
    assert result.unknown_products == ["p-gone"] and result.unknown_videos == []
    [reason] = result.reasons()
    assert reason.startswith("1 live products unknown to the new model and not new (p-gone)")


def test_unknown_videos_and_products_give_one_reason_each() -> None:
    result = check_catalog(
        catalog([video("v-lost")], [product("p-gone")]), KNOWN_VIDEOS, KNOWN_PRODUCTS, WINDOW_END
    )
    reasons = result.reasons()
    assert len(reasons) == 2
    assert "videos" in reasons[0] and "v-lost" in reasons[0]
    assert "products" in reasons[1] and "p-gone" in reasons[1]


def test_a_recently_published_unknown_item_passes_and_is_listed_as_new() -> None:
    result = check_catalog(
        catalog([video("v1"), video("v-fresh", ago(2))], [product("p-launch", ago(6.9))]),
        KNOWN_VIDEOS,
        KNOWN_PRODUCTS,
        WINDOW_END,
    )
    assert result.reasons() == []
    assert result.new_items == ["p-launch", "v-fresh"]
    assert result.unknown_videos == [] and result.unknown_products == []


def test_an_item_published_after_the_window_ends_is_new() -> None:
    later = (WINDOW_END + timedelta(days=1)).isoformat()
    result = check_catalog(
        catalog([video("v-next", later)]), KNOWN_VIDEOS, KNOWN_PRODUCTS, WINDOW_END
    )
    assert result.new_items == ["v-next"] and result.reasons() == []


def test_retired_unknown_items_are_ignored() -> None:
    result = check_catalog(
        catalog(
            [video("v1"), video("v-old", ago(400), live=False)],
            [product("p-closed", ago(400), live=False)],
        ),
        KNOWN_VIDEOS,
        KNOWN_PRODUCTS,
        WINDOW_END,
    )
    assert result.reasons() == []
    assert result.live_videos == 1 and result.live_products == 0
    assert result.new_items == [] and result.unknown_videos == [] and result.unknown_products == []


def test_known_items_are_never_listed_as_new() -> None:
    result = check_catalog(catalog([video("v1", ago(1))]), KNOWN_VIDEOS, KNOWN_PRODUCTS, WINDOW_END)
    assert result.new_items == [] and result.reasons() == []


@pytest.mark.parametrize(
    ("published_at", "new"),
    [
        (ago(7), True),  # exactly new_days before the window's end: still new
        (ago(7, seconds=-1), True),
        (ago(7, seconds=1), False),  # one second older: not new
    ],
    ids=["exactly-new-days", "one-second-inside", "one-second-outside"],
)
def test_new_means_published_at_most_new_days_before_the_window_end(
    published_at: str, new: bool
) -> None:
    result = check_catalog(
        catalog([video("v-edge", published_at)]), KNOWN_VIDEOS, KNOWN_PRODUCTS, WINDOW_END
    )
    assert (result.new_items == ["v-edge"]) is new
    assert (result.unknown_videos == ["v-edge"]) is not new


def test_new_days_sets_how_recent_new_is() -> None:
    records = [video("v-three-days", ago(3))]
    wide = check_catalog(catalog(records), KNOWN_VIDEOS, KNOWN_PRODUCTS, WINDOW_END, 7.0)
    narrow = check_catalog(catalog(records), KNOWN_VIDEOS, KNOWN_PRODUCTS, WINDOW_END, 1.0)
    assert wide.new_items == ["v-three-days"]
    assert narrow.unknown_videos == ["v-three-days"] and narrow.new_items == []


def test_a_published_at_in_another_zone_is_compared_as_the_same_instant() -> None:
    # 6 days 23 hours before the end in UTC, written as local time in UTC-05:00.
    instant = WINDOW_END - timedelta(days=6, hours=23)
    inside = instant.astimezone(timezone(timedelta(hours=-5))).isoformat()
    outside = (instant - timedelta(hours=2)).astimezone(timezone(timedelta(hours=9))).isoformat()
    result = check_catalog(
        catalog([video("v-in", inside), video("v-out", outside)]),
        KNOWN_VIDEOS,
        KNOWN_PRODUCTS,
        WINDOW_END,
    )
    assert result.new_items == ["v-in"] and result.unknown_videos == ["v-out"]


def test_a_published_at_without_a_zone_is_taken_as_utc() -> None:
    # Naive times one hour either side of the cutoff (2026-03-03 12:00 UTC).
    result = check_catalog(
        catalog([video("v-in", "2026-03-03T13:00:00"), video("v-out", "2026-03-03T11:00:00")]),
        KNOWN_VIDEOS,
        KNOWN_PRODUCTS,
        WINDOW_END,
    )
    assert result.new_items == ["v-in"] and result.unknown_videos == ["v-out"]


def test_a_published_at_without_a_zone_is_utc_whatever_the_window_end_zone() -> None:
    # The same instant as WINDOW_END, written in UTC+02:00: the cutoff is 2026-03-03 12:00 UTC.
    window_end = WINDOW_END.astimezone(timezone(timedelta(hours=2)))
    result = check_catalog(
        catalog([video("v-in", "2026-03-03T13:00:00"), video("v-out", "2026-03-03T11:00:00")]),
        KNOWN_VIDEOS,
        KNOWN_PRODUCTS,
        window_end,
    )
    assert result.new_items == ["v-in"] and result.unknown_videos == ["v-out"]


@pytest.mark.parametrize("published_at", ["yesterday", "2026-13-45T00:00:00", ""])
def test_an_unreadable_published_at_is_not_new(published_at: str) -> None:
    result = check_catalog(
        catalog([video("v-odd", published_at)]), KNOWN_VIDEOS, KNOWN_PRODUCTS, WINDOW_END
    )
    assert result.new_items == [] and result.unknown_videos == ["v-odd"]
    assert "v-odd" in result.reasons()[0]


def test_a_reason_names_at_most_five_ids_and_counts_them_all() -> None:
    lost = [f"v-lost{i}" for i in range(7)]
    result = check_catalog(
        catalog([video(i) for i in lost]), KNOWN_VIDEOS, KNOWN_PRODUCTS, WINDOW_END
    )
    [reason] = result.reasons()
    assert reason.startswith("7 live videos unknown to the new model and not new (")
    named = reason.split("(", 1)[1].split(")", 1)[0]
    assert named == "v-lost0, v-lost1, v-lost2, v-lost3, v-lost4, ..."
    assert "v-lost5" not in reason and "v-lost6" not in reason
    assert result.unknown_videos == lost  # the full list stays in the report


def test_exactly_five_unknown_ids_are_all_named_without_an_ellipsis() -> None:
    lost = [f"p-gone{i}" for i in range(5)]
    result = check_catalog(
        catalog([], [product(i) for i in lost]), KNOWN_VIDEOS, KNOWN_PRODUCTS, WINDOW_END
    )
    [reason] = result.reasons()
    assert f"({', '.join(lost)})" in reason and "..." not in reason


def test_a_video_and_a_product_sharing_an_id_are_each_judged_on_their_own_record() -> None:
    # Ids are per item type (two catalogue hashes, two id arrays): nothing forbids sharing one.
    result = check_catalog(
        catalog([video("x1", ago(90))], [product("x1", ago(1))]),
        KNOWN_VIDEOS,
        KNOWN_PRODUCTS,
        WINDOW_END,
    )
    assert result.unknown_videos == ["x1"]  # the old video is not new...
    assert result.unknown_products == []  # ...the new product is
    assert len(result.reasons()) == 1
