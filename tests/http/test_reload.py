"""Hot reload: a replica follows the model pointer in Redis without dropping a request.

Publishing a new version moves every replica to it within a few polls while requests keep
flowing, and every one of those requests succeeds. A version that fails verification (a
tampered graph, a checksum that does not match, a directory that is not there) is refused:
the replica keeps serving the version it had and stays ready.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
import redis

from recsvc.contract.keys import Keys
from tests.http import planted
from tests.http.builders import (
    PLANTED_VERSION,
    SECOND_VERSION,
    eventually,
    load_planted_catalog,
    publish_model,
    service_settings,
    serving,
)
from tests.http.load import FeedLoop
from tests.http.polls import wait_for_polls

BAD_VERSION = "20260102T000000000000Z-bad"


def feed(client: httpx.Client) -> dict:
    response = client.get("/v1/feed", params={"user_id": "u-save", "n": 3})
    assert response.status_code == 200, response.text
    return response.json()


def set_pointer(redis_url: str, version: str, generation: int) -> None:
    with redis.Redis.from_url(redis_url) as client:
        client.set(Keys().model_current, json.dumps({"version": version, "generation": generation}))


def test_a_new_version_is_served_within_seconds_without_a_failed_request(
    service: httpx.Client, redis_url: str, models_dir: Path
) -> None:
    before = feed(service)
    assert before["model_version"] == PLANTED_VERSION
    with FeedLoop(str(service.base_url)) as load:
        assert eventually(lambda: all(len(log) >= 5 for log in load.outcomes))
        second = planted.write_planted_model(models_dir, SECOND_VERSION, user_scale=2.0)
        publish_model(redis_url, second)
        assert eventually(lambda: load.latest() == {SECOND_VERSION}), load.latest()
        # Load kept on after the switch: through whole polls, and requests of every client.
        wait_for_polls(service.get, redis_url, 2)
        sent = [len(log) for log in load.outcomes]

        def each_client_answered_again() -> bool:
            return all(len(log) > n + 5 for log, n in zip(load.outcomes, sent, strict=True))

        assert eventually(each_client_answered_again)

    outcomes = [outcome for log in load.outcomes for outcome in log]
    assert len(outcomes) > 30
    failed = [outcome for outcome in outcomes if outcome[0] != 200]
    assert failed == [], f"{len(failed)} of {len(outcomes)} requests failed: {failed[:3]}"
    for log in load.outcomes:  # each client saw the old version, then only the new one
        versions = [version for _, version in log]
        switch = versions.index(SECOND_VERSION)
        assert set(versions[:switch]) == {PLANTED_VERSION}
        assert set(versions[switch:]) == {SECOND_VERSION}
    after = feed(service)
    assert after["source"] == "cf"
    assert [item["video_id"] for item in after["items"]] == ["v10", "v11", "v12"]
    # The second version's user vectors are twice as long: so are the scores.
    assert after["items"][0]["score"] == pytest.approx(2 * before["items"][0]["score"], rel=0.01)


def refused(client: httpx.Client, version: str) -> bool:
    """The replica reports that it refused `version`."""
    return version in (client.get("/readyz").json()["last_error"] or "")


def tamper_graph(directory: Path) -> None:
    data = bytearray((directory / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (directory / "model.onnx").write_bytes(bytes(data))


def mismatch_checksum(directory: Path) -> None:
    manifest = json.loads((directory / "manifest.json").read_text())
    manifest["files"]["item_factors.npy"] = "0" * 64
    (directory / "manifest.json").write_text(json.dumps(manifest))


def remove_directory(directory: Path) -> None:
    for path in directory.iterdir():
        path.unlink()
    directory.rmdir()


@pytest.mark.parametrize(
    "spoil",
    [tamper_graph, mismatch_checksum, remove_directory],
    ids=["tampered-graph", "checksum-mismatch", "missing-directory"],
)
def test_a_bad_version_is_refused_and_the_old_one_keeps_serving(
    service: httpx.Client, redis_url: str, models_dir: Path, spoil: Callable[[Path], None]
) -> None:
    spoil(planted.write_planted_model(models_dir, BAD_VERSION, user_scale=2.0))
    set_pointer(redis_url, BAD_VERSION, 99)

    assert eventually(lambda: refused(service, BAD_VERSION)), service.get("/readyz").json()
    ready = service.get("/readyz")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    assert ready.json()["model_version"] == PLANTED_VERSION
    wait_for_polls(service.get, redis_url, 2)  # more polls: the bad version is not retried
    body = feed(service)
    assert body["model_version"] == PLANTED_VERSION
    assert body["source"] == "cf"  # the old generation's vectors are still used
    assert [item["video_id"] for item in body["items"]] == ["v10", "v11", "v12"]
    metrics = service.get("/metrics").text
    assert 'recsvc_model_reloads_total{outcome="refused"} 1.0' in metrics
    assert f'recsvc_model_info{{version="{PLANTED_VERSION}"}} 1.0' in metrics


def test_a_refused_version_is_served_once_its_directory_arrives_and_it_is_published_again(
    service: httpx.Client, redis_url: str, models_dir: Path
) -> None:
    """The pointer can name a version before its directory reaches this replica's disk;
    publishing it again (a new generation) must not be ignored because it failed once."""
    set_pointer(redis_url, SECOND_VERSION, 99)
    assert eventually(lambda: refused(service, SECOND_VERSION))
    second = planted.write_planted_model(models_dir, SECOND_VERSION, user_scale=2.0)
    publish_model(redis_url, second)

    assert eventually(lambda: feed(service)["model_version"] == SECOND_VERSION), (
        "the replica still serves the old version (whose vectors now expire) after the "
        "fixed version was published again"
    )


@pytest.fixture
def two_replicas(redis_url: str, models_dir: Path) -> Iterator[list[httpx.Client]]:
    publish_model(redis_url, models_dir / PLANTED_VERSION)
    load_planted_catalog(redis_url)
    with ExitStack() as stack:
        yield [
            stack.enter_context(serving(service_settings(redis_url, models_dir))) for _ in range(2)
        ]


def test_every_replica_on_the_same_redis_moves_to_the_new_version(
    two_replicas: list[httpx.Client], redis_url: str, models_dir: Path
) -> None:
    assert [feed(r)["model_version"] for r in two_replicas] == [PLANTED_VERSION] * 2
    second = planted.write_planted_model(models_dir, SECOND_VERSION, user_scale=2.0)
    publish_model(redis_url, second)

    for replica in two_replicas:
        assert eventually(lambda r=replica: feed(r)["model_version"] == SECOND_VERSION)
        assert replica.get("/readyz").json()["model_version"] == SECOND_VERSION
