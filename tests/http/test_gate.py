"""The gate through the real app on loopback (issue 13, defects 10 and 12): failed
authentications are rate-limited per address without holding back valid keys, and a client
cannot mint Prometheus label values with made-up methods."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.builders import ADMIN_KEY, APP_KEY, auth_header
from tests.http.builders import (
    PLANTED_VERSION,
    load_planted_catalog,
    publish_model,
    service_settings,
    serving,
)

FAILURE_BURST = 3
FEED = "/v1/feed?user_id=u-1"


@pytest.fixture
def bare(redis_url: str, models_dir: Path) -> Iterator[httpx.Client]:
    """The planted model served with few failed authentications allowed (one every 100 s
    after a burst of 3) and no request rate limit; a client that sends no key itself."""
    publish_model(redis_url, models_dir / PLANTED_VERSION)
    load_planted_catalog(redis_url)
    settings = service_settings(
        redis_url,
        models_dir,
        auth_failures_per_second=0.01,
        auth_failures_burst=FAILURE_BURST,
        rate_limit_per_second=0,  # off: the failure limit is its own
    )
    with serving(settings) as keyed, httpx.Client(base_url=str(keyed.base_url)) as client:
        yield client


def refused(client: httpx.Client, reason: str) -> float:
    text = client.get("/metrics").text
    found = re.search(rf'^recsvc_refused_requests_total\{{reason="{reason}"\}} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


def test_failed_authentications_are_rate_limited_per_address(bare: httpx.Client) -> None:
    guesses = [
        bare.get(FEED, headers=auth_header(f"guess-{i:02d}-0123456789")).status_code
        for i in range(FAILURE_BURST)
    ]
    assert guesses == [401] * FAILURE_BURST
    limited = [
        bare.get(FEED, headers=auth_header("guess-99-0123456789")),  # unknown key
        bare.get(FEED),  # no key
        bare.get(FEED, headers=auth_header(ADMIN_KEY)),  # a key of the wrong kind
        bare.get("/v1/admin/experiments", headers=auth_header(APP_KEY)),
    ]
    assert [r.status_code for r in limited] == [429] * 4
    assert all(int(r.headers["retry-after"]) >= 1 for r in limited)
    assert "missing, unknown or wrong-kind API key" in limited[0].json()["detail"]
    assert refused(bare, "auth_rate_limited") == 4
    assert refused(bare, "unauthenticated") == FAILURE_BURST


def test_valid_keys_from_a_limited_address_are_still_served(bare: httpx.Client) -> None:
    for i in range(FAILURE_BURST + 2):
        bare.get(FEED, headers=auth_header(f"guess-{i:02d}-0123456789"))
    assert bare.get(FEED, headers=auth_header("guess-99-0123456789")).status_code == 429
    # The same address (one NAT, many callers): valid keys go through, and do not refill it.
    served = [bare.get(FEED, headers=auth_header(APP_KEY)).status_code for _ in range(10)]
    assert served == [200] * 10
    assert bare.get("/v1/admin/experiments", headers=auth_header(ADMIN_KEY)).status_code == 200
    assert bare.get("/healthz").status_code == 200
    assert bare.get(FEED, headers=auth_header("guess-99-0123456789")).status_code == 429


@pytest.mark.parametrize("method", ["PURGE", "PROPFIND", "MKCALENDAR"])
def test_a_method_outside_the_standard_ones_is_labelled_other(
    bare: httpx.Client, method: str
) -> None:
    answer = bare.request(method, "/healthz")
    assert answer.status_code == 405
    assert bare.options("/healthz").status_code == 405
    metrics = bare.get("/metrics").text
    methods = set(
        re.findall(r'^recsvc_request_seconds_count\{[^}]*method="([^"]*)"', metrics, re.M)
    )
    assert methods == {"OPTIONS", "other"}  # (this scrape's GET is counted once it is answered)
    assert method not in metrics
