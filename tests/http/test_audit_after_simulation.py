"""After a simulation through the real service (issue 17), the audit answers for every card
shown: the simulator's users (a synthetic world, sandbox.simulate) ask the real service on
loopback, with a real Redis, for their feeds over several days and respond to them; then
every card a feed carried is listed with no problem by the admin endpoint (from the stream)
and by `recsvc audit` (from the stream, then from the partitions once drained), and a record
that lacks a check, slipped into the stream, is flagged: that card and no other."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import typer
from typer.testing import CliRunner

from recsvc.contract.keys import Keys
from recsvc.contract.records import CARD_PARTS, page_card_values
from sandbox import simulate as simulator
from sandbox.world.generate import WorldSpec, generate_world, load_truth, write_world
from tests.builders import ADMIN_KEY, APP_KEY
from tests.http.builders import eventually
from tests.http.cards import planted_service, set_profile
from training.cli.audit import audit as audit_command
from training.data.cards import CHECKS
from training.data.drain import CARDS, drain

USERS = 30
DAYS = 3  # three feeds a user: the daily cap of 2 reached, a card refused on the third
RECSVC = str(Path(sys.executable).with_name("recsvc"))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("audited") / "world"
    spec = WorldSpec(users=USERS, videos=20, products=5, events=2_000, days=2, seed=5)
    write_world(generate_world(spec), directory)
    return directory


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every feed body the simulated users got, as they got it."""
    monkeypatch.setenv(simulator.APP_KEY_VARIABLE, APP_KEY)
    monkeypatch.setenv(simulator.ADMIN_KEY_VARIABLE, ADMIN_KEY)
    bodies: list[dict[str, Any]] = []
    lock = threading.Lock()
    get_feed = simulator._get_feed

    def tallied(*args: Any) -> dict[str, Any] | None:
        body = get_feed(*args)
        if body is not None:
            with lock:
                bodies.append(body)
        return body

    monkeypatch.setattr(simulator, "_get_feed", tallied)
    return bodies


def shown_cards(bodies: list[dict[str, Any]]) -> dict[str, set[tuple[Any, ...]]]:
    """Each user's cards as (request_id, rank, video_id, product_id, risk_level, category)."""
    cards: dict[str, set[tuple[Any, ...]]] = {}
    for body in bodies:
        for item in body["items"]:
            if (card := item["product"]) is not None:
                key = (body["request_id"], item["rank"], item["video_id"], card["product_id"])
                shown = (*key, card["risk_level"], card["category"])
                cards.setdefault(body["user_id"], set()).add(shown)
    return cards


def listed(cards: list[dict[str, Any]]) -> set[tuple[Any, ...]]:
    """An audit's cards in the same terms."""
    fields = ("request_id", "rank", "video_id", "product_id", "risk_level", "category")
    return {tuple(card[name] for name in fields) for card in cards}


def endpoint(client: httpx.Client, user: str) -> dict[str, Any]:
    response = client.get(f"/v1/admin/users/{user}/audit")
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()
    assert report["complete"] is True and report["source"] == "stream"
    return report


CLI = typer.Typer()
CLI.command()(audit_command)


@CLI.callback()
def _group() -> None:
    """`recsvc`'s audit command, alone (in this process)."""


def cli(redis_url: str, user: str, cards: Path) -> tuple[int, dict[str, Any]]:
    """`recsvc audit USER --cards DIR --json`, in this process: its exit code and report."""
    args = ["audit", user, "--cards", str(cards), "--json"]
    result = CliRunner().invoke(CLI, args, env={"RECSVC_REDIS_URL": redis_url})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, json.loads(result.stdout.splitlines()[-1])


def untimed(cards: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Cards without their time (the CLI's JSON and the endpoint's write it differently)."""
    return [{name: value for name, value in card.items() if name != "ts"} for card in cards]


def stream(redis_url: str) -> list[dict[str, str]]:
    with redis.Redis.from_url(redis_url) as r:
        entries = r.xrange(Keys().cards)
    return [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in entries]


def cards_in_stream(redis_url: str) -> int:
    return sum(len(page_card_values(entry)["rank"]) for entry in stream(redis_url))


def without(entry: dict[str, str], check: str, request_id: str) -> dict[str, str]:
    """A copy of a page's record as a page of its first card alone, `check` left empty."""
    first = entry["cards"].split(";")[0].split("|")
    if check in CARD_PARTS:
        first[CARD_PARTS.index(check)] = ""
        return {**entry, "request_id": request_id, "cards": "|".join(first)}
    return {**entry, "request_id": request_id, "cards": "|".join(first), check: ""}


def test_after_a_simulation_the_audit_answers_for_every_card_shown(
    world: Path,
    served: list[dict[str, Any]],
    redis_url: str,
    models_dir: Path,
    tmp_path: Path,
) -> None:
    users = [str(user) for user in load_truth(world).user_ids]
    with planted_service(
        redis_url, models_dir, daily_cap_per_product=2, category_daily_caps='{"credit": 1}'
    ) as client:
        for i, user in enumerate(users):  # risk tolerances 1 to 5, some holding the pension
            held = ["p-pen"] if i % 3 == 0 else []
            set_profile(client, user, risk_tolerance=1 + i % 5, holdings=held)
        report = simulator.simulate(
            str(client.base_url), world, days=DAYS, users_per_day=USERS, concurrency=4, seed=1
        )
        assert report.feeds == DAYS * USERS and report.failures == {}, report
        assert len(served) == DAYS * USERS
        shown = shown_cards(served)
        total = sum(len(cards) for cards in shown.values())
        # a run worth auditing: cards of several products, risks and tolerances, caps reached
        products = {card[3] for cards in shown.values() for card in cards}
        assert len(products) >= 3 and len({card[4] for c in shown.values() for card in c}) >= 2
        assert len(shown) >= USERS // 2
        assert eventually(lambda: cards_in_stream(redis_url) == total), (total, served[:1])

        # the endpoint, from the stream: every card shown, and nothing else, with no problem
        undrained: dict[str, list[dict[str, Any]]] = {}
        for user in users:
            answer = endpoint(client, user)
            assert listed(answer["cards"]) == shown.get(user, set()), user
            assert answer["failing"] == 0
            assert all(card["problems"] == [] for card in answer["cards"])
            undrained[user] = answer["cards"]
        caps = [c["cap_count"] for cards in undrained.values() for c in cards]
        assert set(caps) == {1, 2}  # the day's second card of a product was shown, no third
        allowed = {c["risk_allowed_up_to"] for cards in undrained.values() for c in cards}
        assert len(allowed) >= 3
        credit = [c for cards in undrained.values() for c in cards if c["category"] == "credit"]
        assert credit and all((c["category_count"], c["category_cap"]) == (1, 1) for c in credit)

        # `recsvc audit`, from the stream (no partitions yet): the same cards, exit 0
        partitions = tmp_path / "cards"
        for user in users:
            code, cli_report = cli(redis_url, user, partitions)
            assert code == 0, cli_report
            assert untimed(cli_report["cards"]) == untimed(undrained[user])  # in order
            assert cli_report["failing"] == 0

        # drained: the stream is empty, the partitions hold every card; the endpoint has no
        # access to them, `recsvc audit` reads them
        pages = stream(redis_url)
        drain(redis.Redis.from_url(redis_url), partitions, stream=CARDS)
        assert eventually(lambda: cards_in_stream(redis_url) == 0)
        for user in users:
            assert endpoint(client, user)["cards"] == []
            code, cli_report = cli(redis_url, user, partitions)
            assert code == 0, cli_report
            assert listed(cli_report["cards"]) == shown.get(user, set()), user
            assert cli_report["failing"] == 0

        # one record lacking a check slips into the stream: that card, and only it, fails
        page = next(p for p in pages if len(p["cards"].split(";")) > 1)  # a page of 2+ cards
        user = page["user_id"]
        tampered = without(page, "risk_level", "tampered-risk")
        tampered["cards"] = ";".join([tampered["cards"], *page["cards"].split(";")[1:]])
        with redis.Redis.from_url(redis_url) as r:
            r.xadd(Keys().cards, tampered)
        answer = endpoint(client, user)
        assert answer["failing"] == 1
        flagged = [c for c in answer["cards"] if c["problems"]]
        assert [(c["card_id"], c["problems"]) for c in flagged] == [
            (f"tampered-risk:{page['cards'].split('|')[0]}", ["no record of risk_level"])
        ]
        assert len(answer["cards"]) == len(page["cards"].split(";"))  # the rest pass
        result = subprocess.run(
            [RECSVC, "audit", user, "--cards", str(partitions), "--json"],
            capture_output=True,
            text=True,
            env={**os.environ, "RECSVC_REDIS_URL": redis_url},
            timeout=60,
        )
        assert result.returncode == 1, result.stdout + result.stderr
        whole = json.loads(result.stdout.splitlines()[-1])
        assert whole["failing"] == 1
        assert [c["card_id"] for c in whole["cards"] if c["problems"]] == [flagged[0]["card_id"]]
        assert len(whole["cards"]) == len(shown[user]) + len(answer["cards"])
        assert "PROBLEM: no record of risk_level" in result.stdout

        # and so for each check: a card whose record lacks it is flagged as lacking it alone
        for check in CHECKS:
            with redis.Redis.from_url(redis_url) as r:
                r.xadd(Keys().cards, without(page, check, f"lacks-{check}"))
        answer = endpoint(client, user)
        flags = {c["request_id"]: c["problems"] for c in answer["cards"] if c["problems"]}
        expected = {f"lacks-{check}": [f"no record of {check}"] for check in CHECKS}
        assert flags == {"tampered-risk": ["no record of risk_level"], **expected}
        assert answer["failing"] == 1 + len(CHECKS)
        code, cli_report = cli(redis_url, user, partitions)
        assert code == 1
        assert {c["request_id"]: c["problems"] for c in cli_report["cards"] if c["problems"]} == (
            flags
        )
        assert cli_report["failing"] == answer["failing"]
