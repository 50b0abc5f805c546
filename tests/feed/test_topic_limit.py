"""recsvc.feed.compute.diversified, the topic limit's choice, as a table."""

from __future__ import annotations

import pytest

from recsvc.feed.compute import diversified

CASES = [
    # candidates best first, their topics, the limit, the page size -> the page
    ([1, 2, 3, 4], [("a",), ("a",), ("a",), ("b",)], 2, 4, [1, 2, 4, 3]),
    ([1, 2, 3], [("a",), ("a",), ("a",)], 1, 3, [1, 2, 3]),  # too few others: filled back
    ([1, 2, 3], [(), (), ("a",)], 1, 2, [1, 2]),  # no topics: never passed over
    ([1, 2, 3, 4], [("a", "b"), ("b",), ("a",), ("c",)], 1, 3, [1, 4, 2]),  # each topic counts
    ([5, 6], [("a",), ("b",)], 3, 5, [5, 6]),  # fewer candidates than the page
]


@pytest.mark.parametrize(("candidates", "topics", "cap", "size", "page"), CASES)
def test_the_page_under_a_topic_limit(
    candidates: list[int], topics: list[tuple[str, ...]], cap: int, size: int, page: list[int]
) -> None:
    assert diversified(candidates, topics, cap, size) == page
