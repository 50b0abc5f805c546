"""A user's erasure end to end: the user's history in the drained partitions and a model that
learned it; the user active on the service (a profile, events, a feed logged as an exposure,
views of a new video); DELETE /v1/users/{id}; then a nightly run. Afterwards nothing of the
user remains, searched for by id: in any Redis key or value, in the event and exposure
partitions, in the next model's files, in the run's report."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import redis

from recsvc.contract.keys import Keys
from sandbox.world.generate import WorldSpec, generate_world, write_world
from tests.builders import cli_environment
from tests.http.builders import event_body, eventually, service_settings, serving

RECSVC = str(Path(sys.executable).with_name("recsvc"))
ERASED = "erase-me-7f3a"  # an id no other string of the world contains
NEW_VIDEO = "v-new-erasure"
AA = """
[[experiment]]
name = "aa"

[[experiment.variant]]
name = "a"
weight = 0.5

[[experiment.variant]]
name = "b"
weight = 0.5
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("erasure") / "world"
    spec = WorldSpec(users=800, videos=100, products=12, events=25_000, days=6, seed=8)
    write_world(generate_world(spec), out)
    return out


def copy_days(world: Path, events: Path, days: slice, renamed: str) -> None:
    """Day partitions of the world into `events`, the user `renamed` called ERASED there."""
    for day in sorted((world / "events").iterdir())[days]:
        for path in day.glob("*.parquet"):
            table = pq.read_table(path)
            users = table.column("user_id")
            users = pc.if_else(pc.equal(users, renamed), pa.scalar(ERASED), users)
            (events / day.name).mkdir(parents=True, exist_ok=True)
            column = table.schema.get_field_index("user_id")
            pq.write_table(
                table.set_column(column, "user_id", users), events / day.name / path.name
            )


def add_files_beside(events: Path) -> None:
    """Event files the loader reads besides the day partitions: a CSV at the top and a nested
    Parquet file, each with rows of ERASED and of others."""
    table = pq.read_table(next(events.glob("day=*/*.parquet")))
    users = table.column("user_id")
    theirs = table.filter(pc.equal(users, ERASED)).slice(0, 3)
    others = table.filter(pc.not_equal(users, ERASED)).slice(0, 3)
    rows = pa.concat_tables([theirs, others])
    assert theirs.num_rows == 3
    pacsv.write_csv(rows.set_column(1, "ts", pc.strftime(rows.column("ts"), "%Y-%m-%dT%H:%M:%SZ")),
                    events / "legacy.csv")  # fmt: skip
    (events / "backfill").mkdir()
    pq.write_table(rows, events / "backfill" / "history.parquet")


def busiest_user(world: Path) -> str:
    users = pq.read_table(world / "events", columns=["user_id"]).column("user_id")
    counts = pc.value_counts(users).to_pylist()
    return str(max(counts, key=lambda c: c["counts"])["values"])


def nightly(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    command = [RECSVC, "nightly", "--events", str(tmp_path / "events"), "--exposures",
               str(tmp_path / "exposures"), "--reports", str(tmp_path / "reports"),
               "--no-tune", "--tolerance", "0.5"]  # fmt: skip
    return subprocess.run(command, env=env, capture_output=True, text=True, check=False)


def redis_mentions(client: redis.Redis, needle: str) -> list[str]:
    """Every key whose name or content holds `needle`."""
    found, raw = [], needle.encode()
    for key in client.scan_iter(count=1000):
        kind = client.type(key).decode()
        if kind == "string":
            values: list[bytes] = [client.get(key) or b""]
        elif kind == "hash":
            values = [x for pair in client.hgetall(key).items() for x in pair]
        elif kind == "list":
            values = client.lrange(key, 0, -1)
        elif kind == "set":
            values = list(client.smembers(key))
        elif kind == "zset":
            values = client.zrange(key, 0, -1)
        elif kind == "stream":
            values = [x for _, fields in client.xrange(key) for p in fields.items() for x in p]
        else:
            values = []
        if raw in key or any(raw in v for v in values):
            found.append(key.decode(errors="replace"))
    return found


def files_mentioning(directory: Path, needle: str) -> list[str]:
    """Files under `directory` whose bytes hold `needle` (UTF-8, or UTF-32 as numpy stores
    text), or Parquet files with a row of it."""
    patterns = (needle.encode(), needle.encode("utf-32-le"))
    found = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if any(p in data for p in patterns):
            found.append(str(path))
        elif path.suffix == ".parquet":
            users = pq.read_table(path, columns=["user_id"]).column("user_id")
            if pc.any(pc.equal(users, needle)).as_py():
                found.append(str(path))
    return found


def test_after_an_erasure_and_a_nightly_run_nothing_of_the_user_remains(
    redis_url: str, tmp_path: Path, world: Path
) -> None:
    env = cli_environment(redis_url, tmp_path / "models")
    events, exposures = tmp_path / "events", tmp_path / "exposures"
    renamed = busiest_user(world)
    copy_days(world, events, slice(None, -1), renamed)
    add_files_beside(events)
    first = nightly(env, tmp_path)
    assert first.returncode == 0, first.stderr + first.stdout
    catalog = world / "catalog"
    load = [RECSVC, "catalog", "load", "--videos", str(catalog / "videos.jsonl"),
            "--products", str(catalog / "products.jsonl")]  # fmt: skip
    subprocess.run(load, env=env, check=True, capture_output=True)
    client = redis.Redis.from_url(redis_url)

    with serving(service_settings(redis_url, tmp_path / "models")) as service:
        loaded = service.put("/v1/admin/experiments", content=AA)
        assert loaded.status_code == 200, loaded.text
        revision = loaded.json()["revision"]
        assert eventually(
            lambda: service.get("/v1/admin/experiments").json()["serving_revision"] == revision, 10
        )
        profile = {"risk_tolerance": 5, "segment": "mass", "holdings": ["p-held"]}
        assert service.put(f"/v1/users/{ERASED}/profile", json=profile).status_code == 200
        feed = service.get("/v1/feed", params={"user_id": ERASED, "n": 5}).json()
        assert feed["source"] == "cf" and feed["experiments"]  # its exposure is logged
        video = {"video_id": NEW_VIDEO, "title": "New rates", "topics": ["saving"],
                 "published_at": datetime.now(UTC).isoformat()}  # fmt: skip
        assert service.put(f"/v1/catalog/videos/{NEW_VIDEO}", json=video).status_code == 200
        assert eventually(
            lambda: service.get(f"/v1/catalog/videos/{NEW_VIDEO}/serving").status_code == 200, 10
        )
        shown = feed["items"][0]["video_id"]
        posted = [
            event_body(ERASED, shown, "view", watch_ratio=0.8, request_id=feed["request_id"]),
            event_body(ERASED, NEW_VIDEO, "view", watch_ratio=1.0),
        ]
        assert service.post("/v1/events", json={"events": posted}).status_code == 202
        # the user is all over Redis: own keys, dedup markers, stream entries, a new video's viewers
        assert eventually(lambda: len(redis_mentions(client, ERASED)) >= 8, 10)
        assert any(":fresh:" in k for k in redis_mentions(client, ERASED))
        assert service.delete(f"/v1/users/{ERASED}").status_code == 200

    shutil.rmtree(events)
    copy_days(world, events, slice(None), renamed)  # the next day arrives
    add_files_beside(events)
    second = nightly(env, tmp_path)
    assert second.returncode == 0, second.stderr + second.stdout
    assert "erasures finished: 1 users" in second.stdout

    assert redis_mentions(client, ERASED) == []
    assert client.hlen(Keys().erasures) == 0
    assert files_mentioning(events, ERASED) == []
    assert files_mentioning(exposures, ERASED) == []
    [report_path] = sorted((tmp_path / "reports").glob("nightly-*.json"))[-1:]
    report = json.loads(report_path.read_text())
    assert report["erasures"]["users"] == 1 and report["erasures"]["rows_removed"] > 100
    assert ERASED not in report_path.read_text() and ERASED not in second.stdout
    model = Path(report["model_dir"])
    assert model.name == report["published"]["version"]
    assert files_mentioning(model, ERASED) == []
    # the user had a history: the first model learned it, the next one did not
    [first_report, _] = sorted((tmp_path / "reports").glob("nightly-*.json"))
    first_model = Path(json.loads(first_report.read_text())["model_dir"])
    assert files_mentioning(first_model, ERASED) != []
    client.close()
