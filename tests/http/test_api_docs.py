"""The service's own /docs and /redoc work without a network: every script and stylesheet
they name is served by the service, with no API key, and no page names another host. (The
pages drawn in headless Chromium: tests/edge/test_offline_docs.py.)"""

from __future__ import annotations

import re

import httpx
import pytest


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_running_service_serves_its_docs_page_and_every_asset_it_names(
    service: httpx.Client, page: str
) -> None:
    with httpx.Client(base_url=str(service.base_url)) as anonymous:  # no key: pages are public
        check_page(anonymous, page)


def check_page(anonymous: httpx.Client, page: str) -> None:
    answer = anonymous.get(page)
    assert answer.status_code == 200, answer.text[:200]
    html = answer.text
    assert "://" not in html  # no CDN, no font host: nothing outside the service
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert assets, "the page names no asset"
    for asset in assets:
        fetched = anonymous.get(asset)
        assert fetched.status_code == 200, asset
        assert len(fetched.content) > 1000, asset
    schema = anonymous.get("/openapi.json").json()
    assert "/v1/feed" in schema["paths"]
    assert not any(path.startswith(("/docs", "/redoc")) for path in schema["paths"])
