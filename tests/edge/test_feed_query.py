"""recsvc.edge.routes.feed.query_pairs splits a query string as parse_qsl(keep_blank_values=True)
does, escaped or not."""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest

from recsvc.edge.routes.feed import query_pairs

QUERIES = [
    "",
    "user_id=u000042&n=20",
    "n=20&user_id=u000042",
    "user_id=u000042",
    "user_id=&n=",
    "user_id&n",
    "=x&&n=3&",
    "user_id=a=b;c&n=1 0",
    "user_id=u%30042&n=2%30",  # escaped: parse_qsl's own decoding
    "user_id=a+b&n=+5",
    "user_id=é&n=\x00",
]


@pytest.mark.parametrize("raw", QUERIES)
def test_the_query_splits_as_parse_qsl_splits_it(raw: str) -> None:
    assert query_pairs(raw) == parse_qsl(raw, keep_blank_values=True)
