"""Display text through the running service and the CLI: product names and disclosures and
video titles with a control, format (zero-width, bidi override) or invisible character, and a
disclosure without two letters or digits ("-"), are a 422 naming the field on PUT and a
one-line error naming the file, line and field in `recsvc catalog load`; a credit record
stored before that rule with such a disclosure is never attached."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from recsvc.contract.keys import Keys
from tests.builders import cli_environment
from tests.http.builders import eventually
from tests.http.cards import attached, feed, planted_service, set_profile

RECSVC = str(Path(sys.executable).with_name("recsvc"))
LOAN = {"product_id": "p-loan", "name": "Flex Loan", "category": "credit", "risk_level": 2}
NOT_A_DISCLOSURE = ["\u200b", "\x00", "-", "\u200b\u200b\u200b", "APR\u202e 9.9%"]


@pytest.mark.parametrize(
    ("field", "value"),
    [("disclosure", text) for text in NOT_A_DISCLOSURE]
    + [("name", "Flex\u202eLoan"), ("name", "Flex\u2066Loan"), ("name", "Flex\x07Loan")]
    + [("name", "Flex\ud800Loan"), ("name", "   ")],  # a lone surrogate (JSON "\ud800")
)
def test_a_product_with_invisible_or_control_text_is_a_422_naming_the_field(
    service: httpx.Client, field: str, value: str
) -> None:
    record = {**LOAN, "disclosure": "APR 9.9%", field: value}
    body = json.dumps(record)  # ASCII, with escapes: a lone surrogate travels as "\ud800"
    headers = {"Content-Type": "application/json"}
    refused = service.put("/v1/catalog/products/p-loan", content=body, headers=headers)
    assert refused.status_code == 422, refused.text
    assert [error["loc"] for error in refused.json()["detail"]] == [["body", field]]
    stored = service.get("/v1/catalog/products/p-loan").json()
    assert stored["disclosure"] == "APR 9.9%" and stored["name"] == "Flex Loan"  # unchanged


@pytest.mark.parametrize("title", ["Saving\u200bbasics", "Saving \u202ebasics", "Saving\x00"])
def test_a_video_with_invisible_or_control_text_in_its_title_is_a_422(
    service: httpx.Client, title: str
) -> None:
    refused = service.put("/v1/catalog/videos/v10", json={"video_id": "v10", "title": title})
    assert refused.status_code == 422, refused.text
    assert [error["loc"] for error in refused.json()["detail"]] == [["body", "title"]]


def test_catalog_load_refuses_a_line_with_a_zero_width_disclosure_naming_it(
    redis_url: str, models_dir: Path, tmp_path: Path
) -> None:
    products = tmp_path / "products.jsonl"
    good = {**LOAN, "product_id": "p-good", "disclosure": "APR 9.9%"}
    lines = [good, {**LOAN, "disclosure": "\u200b"}]
    products.write_text("".join(json.dumps(line) + "\n" for line in lines))
    result = subprocess.run(
        [RECSVC, "catalog", "load", "--products", str(products)],
        env=cli_environment(redis_url, models_dir),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1, result.stdout
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert f"{products}:2: disclosure:" in result.stderr and "U+200B" in result.stderr
    assert redis.Redis.from_url(redis_url).hlen(Keys().catalog_products) == 0  # nothing written


def store_directly(redis_url: str, record: dict[str, Any], revision: str) -> None:
    """Write a product record into Redis past every check, as one stored before the rule."""
    client = redis.Redis.from_url(redis_url)
    client.hset(Keys().catalog_products, record["product_id"], json.dumps(record))
    client.set(Keys().catalog_revision, revision)


def serves_revision(service: httpx.Client, revision: str) -> bool:
    """Whether the replica has loaded catalogue `revision` within the wait."""
    return eventually(lambda: service.get("/readyz").json()["catalog_revision"] == revision)


def test_a_stored_credit_record_with_an_invisible_disclosure_is_never_attached(
    redis_url: str, models_dir: Path
) -> None:
    with planted_service(redis_url, models_dir, daily_cap_per_product=1000) as service:
        set_profile(service, "u-credit", risk_tolerance=5)
        assert "p-loan" in attached(feed(service, "u-credit"))  # its disclosure: "APR 9.9%"
        for i, disclosure in enumerate(NOT_A_DISCLOSURE):
            revision = f"stored-{i}"
            store_directly(redis_url, {**LOAN, "disclosure": disclosure}, revision)
            assert serves_revision(service, revision)
            assert "p-loan" not in attached(feed(service, "u-credit")), repr(disclosure)
        store_directly(redis_url, {**LOAN, "disclosure": "APR 9.9%"}, "fixed")
        assert eventually(lambda: "p-loan" in attached(feed(service, "u-credit")))
