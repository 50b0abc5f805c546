"""GET /v1/admin/users/{user_id}/audit through the real service and a real Redis (issue 17):
the user's cards from the undrained card stream, each with its checks and problems, read as
`recsvc audit` reads them (the same parsing, the same checks); bounded work, a bad `since`
refused, Redis down a 503, and an operator's route only."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from recsvc.contract.keys import Keys
from recsvc.contract.records import PAGE_CARD_FIELDS, PageCards
from recsvc.edge.routes import audit as route
from sandbox.embedded_redis import EmbeddedRedis
from tests.builders import ADMIN_KEY, APP_KEY, auth_header
from tests.http.builders import eventually, redis_stopped
from tests.http.cards import attached, feed, planted_service, set_profile
from training.data import cards as offline
from training.data.drain import CARDS, drain

NOW_MS = int(time.time() * 1000)


@pytest.fixture
def client(redis_url: str, models_dir: Path) -> Any:
    with planted_service(redis_url, models_dir, daily_cap_per_product=2) as client:
        yield client


def audit(client: httpx.Client, user: str, **params: Any) -> dict[str, Any]:
    response = client.get(f"/v1/admin/users/{user}/audit", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def stream_entries(redis_url: str) -> list[dict[str, str]]:
    with redis.Redis.from_url(redis_url) as r:
        entries: Any = r.xrange(Keys().cards)
    return [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in entries]


def record(**changes: Any) -> dict[str, str]:
    """A page of one card every check of which passes, as the stream holds it."""
    page = PageCards(
        request_id="r-made",
        ts_ms=NOW_MS,
        user_id="u-made",
        model_version="m1",
        surface="home",
        experiments="",
        risk_tolerance=3,
        risk_allowed_up_to=3,
        daily_cap=2,
        cards="1|v00|p-dep|1|0|0|1|0|1|deposit|1|-1|",
    )
    return dict(zip(PAGE_CARD_FIELDS, page.fields(), strict=True)) | changes


def append(redis_url: str, *entries: dict[str, str], entry_id: str = "*") -> None:
    with redis.Redis.from_url(redis_url) as r:
        for entry in entries:
            r.xadd(Keys().cards, entry, id=entry_id)


def as_json(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The CLI's rows as JSON carries them (times as ISO text, as the endpoint's)."""
    text = json.dumps(rows, default=lambda t: t.isoformat().replace("+00:00", "Z"))
    loaded: list[dict[str, Any]] = json.loads(text)
    return loaded


def test_the_users_cards_are_listed_with_their_checks_as_recsvc_audit_reads_them(
    client: httpx.Client, redis_url: str
) -> None:
    set_profile(client, "u-inv", risk_tolerance=5, holdings=["p-pen"])
    pages = [feed(client, "u-inv") for _ in range(3)] + [feed(client, "u-save")]
    shown = {
        (body["request_id"], item["rank"]): item
        for body in pages[:3]
        for item in body["items"]
        if item["product"]
    }
    total = sum(len(attached(body)) for body in pages)
    assert len(shown) > 0
    assert eventually(lambda: sum(len(e["cards"].split(";")) for e in stream_entries(redis_url))
                      == total)  # fmt: skip
    report = audit(client, "u-inv")
    assert report["user_id"] == "u-inv" and report["since"] is None
    assert report["source"] == "stream"
    assert report["complete"] is True
    assert report["scanned_entries"] == len(stream_entries(redis_url))  # every user's pages
    assert report["failing"] == 0
    listed = {(c["request_id"], c["rank"]): c for c in report["cards"]}
    assert listed.keys() == shown.keys()  # every card served, and no other user's
    for key, card in listed.items():
        item = shown[key]
        assert card["problems"] == []
        assert card["card_id"] == f"{key[0]}:{key[1]}"
        assert (card["video_id"], card["product_id"]) == (
            item["video_id"],
            item["product"]["product_id"],
        )
        assert card["risk_level"] == item["product"]["risk_level"]
        assert (card["risk_tolerance"], card["risk_allowed_up_to"]) == (5, 5)
        assert card["category"] == item["product"]["category"]
        assert card["disclosure_shown"] is (item["product"]["disclosure"] is not None)
        assert card["daily_cap"] == 2 and 1 <= card["cap_count"] <= 2
    # the same list, in the same order, as the offline audit reads from the same entries
    offline_rows = offline.audited(
        offline.cards_in_stream(stream_entries(redis_url), "u-inv", None)
    )
    assert report["cards"] == as_json(offline_rows)


def test_a_listed_card_has_the_offline_audits_fields() -> None:
    fields = set(route.AuditedCard.model_fields)
    assert fields == set(offline.audited(offline.cards_in_stream([record()], "u-made", None))[0])


def test_a_record_missing_a_check_or_failing_one_is_flagged(
    client: httpx.Client, redis_url: str
) -> None:
    append(
        redis_url,
        record(),
        record(request_id="r-lacks", cards="1|v00|p-dep||0|0|1|0|1|deposit|1|-1|"),
        record(request_id="r-old", cards="2|v01|p-dep|1|0|0|1|0|1"),  # before category caps
        record(request_id="r-over", cards="3|v02|p-fund|4|0|0|3|0|1|fund|2|1|spring"),
        record(request_id="r-no-model", model_version=""),
        record(request_id="r-other", user_id="u-other", cards="1|v00|p-fund|5|0|0|9|0|1|x|1|1|"),
    )
    report = audit(client, "u-made")
    problems = {card["card_id"]: card["problems"] for card in report["cards"]}
    assert problems == {
        "r-made:1": [],
        "r-lacks:1": ["no record of risk_level"],
        "r-old:2": [f"no record of {c}" for c in ("category", "category_count", "category_cap")],
        "r-over:3": [
            "risk level 4 above 3",
            "card 3 of a daily cap of 2",
            "card 2 of fund of a daily cap of 1",
        ],
        "r-no-model:1": ["no record of model_version"],
    }
    assert report["failing"] == 4
    over = next(card for card in report["cards"] if card["card_id"] == "r-over:3")
    assert (over["campaigns"], over["category_cap"]) == ("spring", 1)
    made = next(card for card in report["cards"] if card["card_id"] == "r-made:1")
    assert (made["campaigns"], made["category_cap"], made["experiments"]) == (None, -1, None)
    assert datetime.fromisoformat(made["ts"]) == datetime.fromtimestamp(NOW_MS / 1000, UTC)


def test_garbled_values_are_missing_checks_not_errors(client: httpx.Client, redis_url: str) -> None:
    append(
        redis_url,
        record(request_id="r-bad", ts="soon", cards="x|v00|p-dep|²|2|0|--1|0|1|deposit|1|-1|"),
        record(request_id="r-far", ts="9" * 30),
        record(request_id="r-none", cards=""),  # a page with no card: nothing to list
    )
    report = audit(client, "u-made")
    bad, far = sorted(report["cards"], key=lambda card: card["card_id"])
    assert (bad["card_id"], bad["ts"], bad["rank"]) == ("r-bad:None", None, None)
    assert bad["problems"] == [f"no record of {c}" for c in ("risk_level", "holdable_once",
                                                              "cap_count")]  # fmt: skip
    assert far["ts"] is None and far["problems"] == []  # the time is no check
    assert report["failing"] == 1


def test_since_keeps_the_later_cards_and_the_scan_starts_near_it(
    client: httpx.Client, redis_url: str
) -> None:
    day = timedelta(days=1).total_seconds() * 1000
    old = record(request_id="r-old", ts=str(int(NOW_MS - 2 * day)))
    append(redis_url, old, entry_id=f"{int(NOW_MS - 2 * day)}-0")  # appended two days ago
    append(redis_url, record(request_id="r-new"))
    assert [c["card_id"] for c in audit(client, "u-made")["cards"]] == ["r-old:1", "r-new:1"]
    yesterday = datetime.fromtimestamp(NOW_MS / 1000 - 86_400, UTC)
    elsewhere = yesterday.astimezone(timezone(timedelta(hours=-5)))  # the same instant
    for since in (yesterday.isoformat(), elsewhere.isoformat()):
        report = audit(client, "u-made", since=since)
        assert [c["card_id"] for c in report["cards"]] == ["r-new:1"]
        assert report["scanned_entries"] == 1  # the old entry's id is before: not read
        assert datetime.fromisoformat(report["since"]) == datetime.fromisoformat(since)
    naive = audit(client, "u-made", since=yesterday.replace(tzinfo=None).isoformat())
    assert datetime.fromisoformat(naive["since"]) == yesterday  # no zone: UTC
    assert audit(client, "u-made", since="2000-01-01")["scanned_entries"] == 2
    later = datetime.fromtimestamp(NOW_MS / 1000 + 1, UTC).isoformat()
    assert audit(client, "u-made", since=later)["cards"] == []


@pytest.mark.parametrize("since", ["yesterday", "2026-13-01", "", "0001-01-01T00:00+01:00"])
def test_a_bad_since_is_a_422_naming_it(client: httpx.Client, since: str) -> None:
    response = client.get("/v1/admin/users/u-made/audit", params={"since": since})
    assert response.status_code == 422, response.text
    (problem,) = response.json()["detail"]
    assert problem["loc"] == ["query", "since"]
    assert "ISO date or time" in problem["msg"]


def test_the_scan_is_bounded_and_says_whether_it_was_complete(
    client: httpx.Client, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(route, "CHUNK", 3)  # several chunks over a few entries
    pages = [record(request_id=f"r{i:02}", user_id=f"u-{i % 2}") for i in range(10)]
    append(redis_url, *pages)
    whole = audit(client, "u-0")
    assert (whole["scanned_entries"], whole["complete"]) == (10, True)
    assert [c["request_id"] for c in whole["cards"]] == ["r00", "r02", "r04", "r06", "r08"]
    cut = audit(client, "u-0", max_entries=5)
    assert (cut["scanned_entries"], cut["complete"]) == (5, False)
    assert [c["request_id"] for c in cut["cards"]] == ["r00", "r02", "r04"]  # the oldest
    exact = audit(client, "u-0", max_entries=10)  # the stream's end, found exactly
    assert (exact["scanned_entries"], exact["complete"]) == (10, True)
    assert audit(client, "nobody")["cards"] == [] and audit(client, "nobody")["failing"] == 0
    for bad in (0, route.MAX_ENTRIES_LIMIT + 1, "many"):
        response = client.get("/v1/admin/users/u-0/audit", params={"max_entries": bad})
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["query", "max_entries"]


def test_drained_cards_are_not_the_services_to_list(
    client: httpx.Client, redis_url: str, tmp_path: Path
) -> None:
    append(redis_url, record(request_id="r-drained"))
    drain(redis.Redis.from_url(redis_url), tmp_path / "cards", stream=CARDS)
    append(redis_url, record(request_id="r-undrained"))
    report = audit(client, "u-made")
    assert [c["card_id"] for c in report["cards"]] == ["r-undrained:1"]
    assert report["source"] == "stream"
    # the offline audit has both
    drained = offline.cards_in_partitions(tmp_path / "cards", "u-made", None)
    assert [c["card_id"] for c in drained] == ["r-drained:1"]


def test_without_redis_it_is_a_503_with_retry_after(
    client: httpx.Client, redis_server: EmbeddedRedis
) -> None:
    with redis_stopped(redis_server):
        response = client.get("/v1/admin/users/u-made/audit")
        assert response.status_code == 503
        assert int(response.headers["Retry-After"]) >= 1
        assert "card stream" in response.json()["detail"]
        assert "127.0.0.1" not in response.text  # where Redis is stays in the log
    assert eventually(lambda: client.get("/v1/admin/users/u-made/audit").status_code == 200)


def test_it_is_an_operators_route(client: httpx.Client) -> None:
    path = "/v1/admin/users/u-made/audit"
    assert client.get(path, headers=auth_header(APP_KEY)).status_code == 403
    assert httpx.get(f"{client.base_url}{path}").status_code == 401
    assert client.get(path, headers=auth_header(ADMIN_KEY)).status_code == 200
    schema = client.get("/openapi.json").json()
    operation = schema["paths"]["/v1/admin/users/{user_id}/audit"]["get"]
    assert operation["security"] == [{"adminKey": []}]
    assert "undrained stream only" in operation["description"]
    assert {"200", "401", "403", "422", "503"} <= set(operation["responses"])
