"""Experiments through the running service: a definition stored through the admin endpoint
(or `recsvc experiments load`) reaches the feed within a poll; every response names the
experiments and variants the user is in, exactly as the documented assignment computes them;
a variant's parameters change what is served; a bad definition is refused naming the
problem, and the previous one keeps serving."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import redis

from recsvc.contract.experiments import parse_experiments
from recsvc.contract.keys import Keys
from tests.builders import cf_vs_popular, champion_vs_challenger
from tests.http import planted
from tests.http.builders import PLANTED_VERSION, SECOND_VERSION, eventually, publish_challenger

RECSVC = str(Path(sys.executable).with_name("recsvc"))


def put(client: httpx.Client, text: str) -> httpx.Response:
    return client.put("/v1/admin/experiments", content=text.encode())


def feed(client: httpx.Client, user_id: str) -> dict[str, Any]:
    response = client.get("/v1/feed", params={"user_id": user_id, "n": 6})
    assert response.status_code == 200, response.text
    return response.json()


def test_every_response_names_the_variant_the_documented_assignment_gives(
    service: httpx.Client,
) -> None:
    text = cf_vs_popular(0.5, 0.5)
    stored = put(service, text)
    assert stored.status_code == 200, stored.text
    assert stored.json()["experiments"] == ["ranker"]
    assert eventually(lambda: feed(service, "x0")["experiments"] != [])
    expected = parse_experiments(text)
    seen = set()
    for i in range(60):
        user = f"x{i}"
        body = feed(service, user)
        [assignment] = expected.assign(user)
        assert body["experiments"] == [{"experiment": "ranker", "variant": assignment.variant}]
        assert body["variant"] == f"ranker:{assignment.variant}"
        seen.add(assignment.variant)
    assert seen == {"cf", "popular"}


def test_a_variants_ranker_and_attach_change_what_is_served(service: httpx.Client) -> None:
    # u-save is read once per phase (each page counts towards the daily cap of its cards);
    # u-inv is the one polled until the definition has reached the replica.
    before = feed(service, "u-save")
    assert before["source"] == "cf" and any(item["product"] for item in before["items"])
    assert put(service, cf_vs_popular(0.0, 1.0, attach_off=True)).status_code == 200
    assert eventually(lambda: feed(service, "u-inv")["variant"] == "ranker:popular")
    body = feed(service, "u-save")
    assert body["source"] == "popularity" and body["variant"] == "ranker:popular"
    assert all(item["product"] is None for item in body["items"])

    assert put(service, cf_vs_popular(1.0, 0.0)).status_code == 200
    assert eventually(lambda: feed(service, "u-inv")["variant"] == "ranker:cf")
    body = feed(service, "u-save")
    assert body["source"] == "cf" and any(item["product"] for item in body["items"])


def test_a_bad_definition_is_refused_naming_the_problem_and_the_old_one_keeps_serving(
    service: httpx.Client,
) -> None:
    assert put(service, cf_vs_popular(1.0, 0.0)).status_code == 200
    assert eventually(lambda: feed(service, "u-inv")["variant"] == "ranker:cf")
    refused = put(service, cf_vs_popular(0.7, 0.7))
    assert refused.status_code == 422
    assert "variant weights sum to 1.4, not 1" in refused.json()["detail"]
    refused = put(service, cf_vs_popular(0.5, 0.5).replace('ranker = "cf"', 'model = "v-missing"'))
    assert refused.status_code == 422
    assert "model version 'v-missing' does not exist" in refused.json()["detail"]
    assert put(service, b"\xff\xfe".decode("latin-1")).status_code == 422
    stored = service.get("/v1/admin/experiments").json()
    assert "weight = 1.0" in stored["definition"]
    assert stored["serving_revision"] == stored["revision"]
    assert feed(service, "u-inv")["variant"] == "ranker:cf"


def test_the_cli_loads_a_definition_file_or_names_what_is_wrong_with_it(
    service: httpx.Client, redis_url: str, models_dir: Path, tmp_path: Path
) -> None:
    env = {**os.environ, "RECSVC_REDIS_URL": redis_url, "RECSVC_MODELS_DIR": str(models_dir)}
    bad = tmp_path / "bad.toml"
    bad.write_text(cf_vs_popular(0.5, 0.5).replace("weight = 0.5", "weight = 0.5\ncolour = 1", 1))
    result = subprocess.run(
        [RECSVC, "experiments", "load", str(bad)], env=env, capture_output=True, text=True
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert str(bad) in result.stderr and "variant 1 (cf).colour" in result.stderr

    good = tmp_path / "good.toml"
    good.write_text(cf_vs_popular(0.0, 1.0))
    result = subprocess.run(
        [RECSVC, "experiments", "load", str(good)], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "experiments revision" in result.stdout and "ranker" in result.stdout
    assert eventually(lambda: feed(service, "u-inv")["variant"] == "ranker:popular")


def test_each_feed_of_a_user_in_an_experiment_logs_one_exposure_with_what_was_shown(
    service: httpx.Client, redis_url: str
) -> None:
    text = cf_vs_popular(0.5, 0.5).replace('name = "ranker"', 'name = "ranker"\ntraffic = 0.5')
    assert put(service, text).status_code == 200
    assignment = parse_experiments(text)
    inside = [u for u in (f"x{i}" for i in range(40)) if assignment.assign(u)]
    outside = [u for u in (f"x{i}" for i in range(40)) if not assignment.assign(u)]
    assert eventually(lambda: feed(service, inside[0])["experiments"] != [])
    client = redis.Redis.from_url(redis_url)
    client.delete(Keys().exposures)
    bodies = {body["request_id"]: body for body in (feed(service, u) for u in inside + outside)}

    def logged() -> list[dict[str, str]]:
        entries = client.xrange(Keys().exposures)
        return [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in entries]

    assert eventually(lambda: len(logged()) == len(inside))
    for exposure in logged():
        body = bodies[exposure["request_id"]]
        assert exposure["user_id"] == body["user_id"] in inside
        assert exposure["experiments"] == body["variant"]
        assert exposure["model_version"] == body["model_version"]
        assert exposure["videos"].split(",") == [item["video_id"] for item in body["items"]]
        products = [(item["product"] or {}).get("product_id") or "" for item in body["items"]]
        assert exposure["products"].split(",") == products
    metrics = service.get("/metrics").text
    assert 'recsvc_exposures_total{experiment="ranker",variant=' in metrics


def test_a_variant_can_be_served_by_the_challenger_or_a_pinned_version(
    service: httpx.Client, redis_url: str, models_dir: Path
) -> None:
    challenger = planted.write_planted_model(models_dir, SECOND_VERSION)
    publish_challenger(redis_url, challenger)
    text = champion_vs_challenger(1.0)
    assert put(service, text).status_code == 200
    assert eventually(lambda: feed(service, "u-inv")["model_version"] == SECOND_VERSION)
    body = feed(service, "u-inv")
    assert body["variant"] == "champion:challenger" and body["source"] == "cf"
    assert feed(service, "nobody-in-it")["model_version"] == SECOND_VERSION  # 100% traffic

    pinned = text.replace('model = "challenger"', f'model = "{PLANTED_VERSION}"')
    assert put(service, pinned).status_code == 200
    assert eventually(lambda: feed(service, "u-inv")["model_version"] == PLANTED_VERSION)
    assert feed(service, "u-inv")["source"] == "cf"  # its vectors: the current generation


def test_a_definition_a_replica_cannot_serve_is_refused_there_and_shown_as_such(
    service: httpx.Client, redis_url: str
) -> None:
    """Written to Redis past the endpoint's checks (another tool, an older version)."""
    assert put(service, cf_vs_popular(1.0, 0.0)).status_code == 200
    assert eventually(lambda: feed(service, "u-inv")["variant"] == "ranker:cf")
    served = service.get("/v1/admin/experiments").json()["serving_revision"]
    client = redis.Redis.from_url(redis_url)
    client.set(Keys().experiments_definition, "experiment = 1")
    client.set(Keys().experiments_revision, "bad-revision")
    assert eventually(
        lambda: service.get("/v1/admin/experiments").json()["refused_revision"] == "bad-revision"
    )
    state = service.get("/v1/admin/experiments").json()
    assert state["serving_revision"] == served and state["revision"] == "bad-revision"
    assert feed(service, "u-inv")["variant"] == "ranker:cf"  # the old one keeps serving
    assert service.get("/readyz").status_code == 200
    # a definition that serves again is no longer shown as refused
    assert put(service, cf_vs_popular(0.0, 1.0)).status_code == 200
    assert eventually(lambda: feed(service, "u-inv")["variant"] == "ranker:popular")
    assert service.get("/v1/admin/experiments").json()["refused_revision"] is None


def test_an_empty_body_is_refused_and_a_comment_alone_ends_every_experiment(
    service: httpx.Client,
) -> None:
    assert service.put("/v1/admin/experiments", content=cf_vs_popular()).status_code == 200
    empty = service.put("/v1/admin/experiments", content=b"")
    assert empty.status_code == 422
    assert "no definition" in empty.json()["detail"]
    assert service.get("/v1/admin/experiments").json()["definition"] == cf_vs_popular()
    ended = service.put("/v1/admin/experiments", content="# none")
    assert ended.status_code == 200 and ended.json()["experiments"] == []
