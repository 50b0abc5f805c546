"""The offline jobs and the operators' commands against a real Redis Cluster, selected by
RECSVC_REDIS_CLUSTER=true: the nightly job end to end (drain, train, gate, publish, prune),
and publish, rollback and promote through `recsvc`, with the service following."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from recsvc.store.client import sync_client
from sandbox.embedded_redis import EmbeddedCluster
from sandbox.world.generate import WorldSpec, generate_world, write_world
from tests.builders import cli_environment
from tests.cluster.builders import KEYS, load_catalog_to_cluster, masters, publish_to_cluster
from tests.http import planted
from tests.http.builders import service_settings, serving

RECSVC = str(Path(sys.executable).with_name("recsvc"))
FIRST, SECOND = "20260101T000000000000Z-first", "20260102T000000000000Z-second"


def recsvc(url: str, models_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**cli_environment(url, models_dir), "RECSVC_REDIS_CLUSTER": "true"}
    return subprocess.run([RECSVC, *args], env=env, capture_output=True, text=True, check=False)


def vector_ttls(cluster: EmbeddedCluster, generation: int) -> list[set[int]]:
    """Per master, the TTLs of one generation's vectors."""
    with masters(cluster) as nodes:
        return [
            {node.ttl(key) for key in node.scan_iter(match=KEYS.vector_pattern(generation))}
            for node in nodes
        ]


def all_ttls(cluster: EmbeddedCluster, generation: int) -> set[int]:
    """The TTLs of one generation's vectors, over every master."""
    return set().union(*vector_ttls(cluster, generation))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cluster-nightly") / "world"
    spec = WorldSpec(users=600, videos=60, products=8, events=12_000, days=5, seed=3)
    write_world(generate_world(spec), out)
    return out


def test_the_nightly_job_runs_end_to_end_on_the_cluster(
    redis_cluster: EmbeddedCluster, cluster_url: str, tmp_path: Path, world: Path
) -> None:
    events = tmp_path / "events"
    shutil.copytree(world / "events", events)
    models = tmp_path / "models"
    command = ["nightly", "--events", str(events), "--reports", str(tmp_path / "reports"),
               "--tune-trials", "2"]  # fmt: skip
    result = recsvc(cluster_url, models, *command)
    assert result.returncode == 0, result.stderr + result.stdout
    assert "published as current" in result.stdout
    client = sync_client(cluster_url, cluster=True)
    try:
        pointer = json.loads(client.get(KEYS.model_current) or b"{}")
    finally:
        client.close()
    assert (models / pointer["version"] / "manifest.json").is_file()
    ttls = vector_ttls(redis_cluster, pointer["generation"])
    assert all(per_master == {-1} for per_master in ttls), ttls  # on every master, kept


def test_publish_rollback_and_promote_on_the_cluster(
    redis_cluster: EmbeddedCluster, cluster_url: str, tmp_path: Path
) -> None:
    models = tmp_path / "models"
    first = planted.write_planted_model(models, FIRST)
    second = planted.write_planted_model(models, SECOND, user_scale=2.0)
    publish_to_cluster(cluster_url, first)
    published = recsvc(cluster_url, models, "publish", str(second), "--json")
    assert published.returncode == 0, published.stderr
    assert json.loads(published.stdout.splitlines()[-1])["generation"] == 2

    rolled = recsvc(cluster_url, models, "rollback")
    assert rolled.returncode == 0, rolled.stderr
    assert f"rolled back from {SECOND} to {FIRST}" in rolled.stdout
    assert all_ttls(redis_cluster, 1) == {-1}
    abandoned = all_ttls(redis_cluster, 2)
    assert abandoned and all(0 < ttl <= 3600 for ttl in abandoned), abandoned

    publish_to_cluster(cluster_url, second, challenger=True)
    promoted = recsvc(cluster_url, models, "promote")
    assert promoted.returncode == 0, promoted.stderr
    assert f"promoted the challenger {SECOND} to current (was {FIRST})" in promoted.stdout
    assert all_ttls(redis_cluster, 3) == {-1}
    replaced = all_ttls(redis_cluster, 1)
    assert replaced and all(0 < ttl <= 3600 for ttl in replaced), replaced

    load_catalog_to_cluster(cluster_url)
    settings = service_settings(cluster_url, models, redis_cluster=True)
    with serving(settings) as client:
        response = client.get("/v1/feed", params={"user_id": "u-save", "n": 1})
        assert response.status_code == 200, response.text
        assert response.json()["model_version"] == SECOND
