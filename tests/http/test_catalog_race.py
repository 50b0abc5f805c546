"""A record PUT without `status` keeps the stored status, atomically: racing a status PUT
(a retirement), it never revives the item once both are answered (issue 13, defect 3: by
read-then-write it did, in 5 of 100 runs). Through the real server, with requests in flight
together as upstream systems would send them."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.builders import ADMIN_KEY, auth_header

pytestmark = pytest.mark.slow

ROUNDS = 100
RENAMES = 4  # record PUTs without status racing each retirement


def product(product_id: str, name: str) -> dict[str, Any]:
    return {"product_id": product_id, "name": name, "category": "fund", "risk_level": 2}


async def race(base_url: str, kind: str, make: Any) -> list[str]:
    """Per round: a live item, then RENAMES record PUTs and one retirement at once; the ids
    that came out live."""
    async with httpx.AsyncClient(
        base_url=base_url, timeout=10, headers=auth_header(ADMIN_KEY)
    ) as client:

        async def put(path: str, body: dict[str, Any]) -> None:
            response = await client.put(path, json=body)
            assert response.status_code == 200, response.text

        revived = []
        for i in range(ROUNDS):
            item = f"{kind[0]}-race-{i}"
            path = f"/v1/catalog/{kind}/{item}"
            await put(path, {**make(item, "first"), "status": "live"})
            renames = [put(path, make(item, f"name {n}")) for n in range(RENAMES)]
            retire = put(f"{path}/status", {"status": "retired"})
            await asyncio.gather(*renames[:2], retire, *renames[2:])
            record = (await client.get(path)).json()
            if record["status"] != "retired":
                revived.append(item)
        return revived


@pytest.mark.parametrize(
    ("kind", "make"),
    [
        ("products", product),
        ("videos", lambda video_id, name: {"video_id": video_id, "title": name}),
    ],
    ids=["product", "video"],
)
def test_a_record_put_without_status_never_revives_an_item_retired_meanwhile(
    service: httpx.Client, kind: str, make: Any
) -> None:
    revived = asyncio.run(race(str(service.base_url), kind, make))
    assert revived == [], f"{len(revived)} of {ROUNDS} revived: {revived[:5]}"
    # Renaming a retired item keeps it retired; a status given in the PUT is the status.
    path = f"/v1/catalog/{kind}/{kind[0]}-race-0"
    assert service.put(path, json=make(f"{kind[0]}-race-0", "again")).json()["status"] == "retired"
    live = service.put(path, json={**make(f"{kind[0]}-race-0", "back"), "status": "live"})
    assert live.json()["status"] == "live" and service.get(path).json()["status"] == "live"
