"""The nightly job end to end, as a scheduler runs it: `recsvc nightly` against a real Redis.

A first run (no live model) promotes and publishes. A run on planted worse data (the user ids
of every day but the holdout shuffled, which destroys the collaborative signal) is gated:
exit 3, and the live pointer does not move. A live catalogue video the new model does not
know gates the run too, unless its record says it is new. With --challenger the new model is
published beside the live one, not in its place. A run that fails still writes its report.
A run while another holds the lock refuses. Every run leaves its outcome in the metrics file
(RECSVC_NIGHTLY_METRICS_FILE) for Prometheus. (Killed runs: test_nightly_crash.py.)
"""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
import sys
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import redis

from recsvc.contract.keys import Keys
from sandbox.world.generate import WorldSpec, generate_world, write_world
from tests.builders import cli_environment
from training.nightly.spec import NightlySpec
from training.nightly.window import load_window

RECSVC = str(Path(sys.executable).with_name("recsvc"))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("nightly") / "world"
    spec = WorldSpec(users=1500, videos=120, products=12, events=40_000, days=8, seed=3)
    write_world(generate_world(spec), out)
    return out


def nightly(
    redis_url: str, tmp_path: Path, events: Path, *args: str, tolerance: float = 0.05
) -> subprocess.CompletedProcess[str]:
    command = [
        RECSVC, "nightly", "--events", str(events), "--reports", str(tmp_path / "reports"),
        "--no-tune", "--tolerance", str(tolerance), *args,
    ]  # fmt: skip
    env = {
        **cli_environment(redis_url, tmp_path / "models"),
        "RECSVC_NIGHTLY_METRICS_FILE": str(metrics_file(tmp_path)),
    }
    return subprocess.run(command, env=env, capture_output=True, text=True, check=False)


def metrics_file(tmp_path: Path) -> Path:
    return tmp_path / "textfile" / "recsvc_nightly.prom"


def last_outcome(tmp_path: Path) -> str:
    """The outcome whose recsvc_nightly_last_outcome is 1 in the metrics file."""
    text = metrics_file(tmp_path).read_text()
    (found,) = re.findall(r'^recsvc_nightly_last_outcome\{outcome="(\w+)"\} 1\.0$', text, re.M)
    return str(found)


def sample(tmp_path: Path, series: str) -> float:
    """The value of one series (name and labels as written) in the metrics file."""
    for line in metrics_file(tmp_path).read_text().splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{series} not in {metrics_file(tmp_path)}")


def load_catalog(redis_url: str, tmp_path: Path, world: Path, extra_video: dict) -> None:
    """The world's catalogue plus one more video record, through `recsvc catalog load`."""
    videos = tmp_path / "videos.jsonl"
    lines = (world / "catalog/videos.jsonl").read_text().splitlines()
    videos.write_text("\n".join([*lines, json.dumps(extra_video)]) + "\n")
    command = [RECSVC, "catalog", "load", "--videos", str(videos), "--products",
               str(world / "catalog/products.jsonl")]  # fmt: skip
    env = cli_environment(redis_url, tmp_path / "models")
    subprocess.run(command, env=env, check=True, capture_output=True)


def load_profiles(redis_url: str, tmp_path: Path, users_csv: Path) -> None:
    """User profiles (segments among them) into Redis, through `recsvc profiles load`."""
    command = [RECSVC, "profiles", "load", str(users_csv)]
    env = cli_environment(redis_url, tmp_path / "models")
    subprocess.run(command, env=env, check=True, capture_output=True)


def viewers_by_segment(events: Path, users_csv: Path) -> dict[str, dict[str, int]]:
    """The known answer: per segment, per video, the users of that segment who viewed it
    (a world's videos are viewed or only shown: impressions count nothing)."""
    segment_of = dict(csv_pairs(users_csv, "user_id", "segment"))
    table = pq.read_table(events, columns=["user_id", "item_id", "action"])
    views = table.filter(pc.equal(table.column("action"), "view"))
    pairs = set(
        zip(views.column("user_id").to_pylist(), views.column("item_id").to_pylist(), strict=True)
    )
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for user, video in pairs:
        counts[segment_of[user]][video] += 1
    return {segment: dict(videos) for segment, videos in counts.items()}


def csv_pairs(path: Path, key: str, value: str) -> list[tuple[str, str]]:
    with path.open(newline="") as handle:
        return [(row[key], row[value]) for row in csv.DictReader(handle)]


def reports(tmp_path: Path) -> list[dict]:
    paths = sorted((tmp_path / "reports").glob("nightly-*.json"))
    return [json.loads(path.read_text()) for path in paths]


def copy_days(world: Path, events: Path, days: slice) -> None:
    """Some of the world's day partitions into `events` (as if drained on those nights)."""
    for day in sorted((world / "events").iterdir())[days]:
        shutil.copytree(day, events / day.name)


def shuffle_users_before_last_day(events: Path) -> None:
    """Planted worse data: every day but the last gets its user ids permuted."""
    days = sorted(events.iterdir())
    rng = np.random.default_rng(0)
    for day in days[:-1]:
        for path in day.glob("*.parquet"):
            table = pq.read_table(path)
            users = np.array(table.column("user_id").to_pylist())
            shuffled = pa.array(rng.permutation(users))
            column = table.schema.get_field_index("user_id")
            pq.write_table(table.set_column(column, "user_id", shuffled), path)


def test_a_good_night_promotes_and_a_worse_one_is_gated(
    redis_url: str, tmp_path: Path, world: Path
) -> None:
    events = tmp_path / "events"
    copy_days(world, events, slice(None, -1))
    first = nightly(redis_url, tmp_path, events)
    assert first.returncode == 0, first.stderr + first.stdout
    assert "published as current" in first.stdout
    assert last_outcome(tmp_path) == "promoted"
    promoted_at = sample(tmp_path, "recsvc_nightly_last_success_timestamp_seconds")
    assert promoted_at == sample(tmp_path, "recsvc_nightly_last_run_timestamp_seconds")
    client = redis.Redis.from_url(redis_url)
    live = client.get(Keys().model_current)
    assert live is not None

    nothing_new = nightly(redis_url, tmp_path, events)
    assert nothing_new.returncode == 3, nothing_new.stderr + nothing_new.stdout
    assert "no event after the live model's training window" in nothing_new.stdout
    assert last_outcome(tmp_path) == "gated"  # the job worked: a success
    assert sample(tmp_path, "recsvc_nightly_last_success_timestamp_seconds") > promoted_at

    copy_days(world, events, slice(-1, None))  # the next day arrives...
    shuffle_users_before_last_day(events)  # ...and the history behind it is planted worse
    second = nightly(redis_url, tmp_path, events)
    assert second.returncode == 3, second.stderr + second.stdout
    assert "gated" in second.stdout and "worse than the live one beyond the noise" in second.stdout
    assert client.get(Keys().model_current) == live  # nothing changed live
    gated = reports(tmp_path)[-1]
    for report_name, model in (("new", "candidate"), ("live", "current")):
        series = f'recsvc_nightly_metric{{metric="ndcg_at_10",model="{model}"}}'
        assert sample(tmp_path, series) == pytest.approx(
            gated["metrics"][report_name]["ndcg_at_10"]
        )
    assert len(list((tmp_path / "reports").glob("nightly-*.json"))) >= 1


def test_a_nightly_model_carries_each_profile_segments_popularity(
    redis_url: str, tmp_path: Path, world: Path
) -> None:
    load_profiles(redis_url, tmp_path, world / "users.csv")  # where production keeps segments
    result = nightly(redis_url, tmp_path, world / "events")
    assert result.returncode == 0, result.stderr + result.stdout
    model = Path(reports(tmp_path)[-1]["model_dir"])
    manifest = json.loads((model / "manifest.json").read_text())
    assert {"segment_ids.npy", "segment_video_popularity.npy"} <= set(manifest["files"])
    segment_ids = np.load(model / "segment_ids.npy", allow_pickle=False).tolist()
    table = np.load(model / "segment_video_popularity.npy", allow_pickle=False)
    expected = viewers_by_segment(world / "events", world / "users.csv")
    assert segment_ids == sorted(expected)
    for row, segment in zip(table, segment_ids, strict=True):
        assert row.tolist() == [expected[segment].get(v, 0) for v in manifest["video_ids"]]
    users = f"{len(set(pq.read_table(world / 'events').column('user_id').to_pylist())):,}"
    summary = f"Segment popularity: 5 segments, {users} of {users} users (from profiles in Redis)"
    assert summary in result.stdout


def test_a_second_run_while_one_holds_the_lock_refuses(
    redis_url: str, tmp_path: Path, world: Path
) -> None:
    redis.Redis.from_url(redis_url).set("recsvc:nightly:lock", "started earlier", ex=60)
    textfile = tmp_path / "elsewhere" / "nightly.prom"
    result = nightly(redis_url, tmp_path, world / "events", "--metrics-file", str(textfile))
    assert result.returncode == 1
    assert "another nightly run" in result.stderr and "Traceback" not in result.stderr
    assert 'recsvc_nightly_last_outcome{outcome="failed"} 1.0' in textfile.read_text()


def test_a_live_video_the_model_does_not_know_gates_the_run_unless_it_is_new(
    redis_url: str, tmp_path: Path, world: Path
) -> None:
    orphan = {"video_id": "v-orphan", "title": "Never watched", "status": "live"}
    load_catalog(redis_url, tmp_path, world, {**orphan, "published_at": "2026-01-01T00:00:00Z"})
    gated = nightly(redis_url, tmp_path, world / "events")
    assert gated.returncode == 3, gated.stderr + gated.stdout
    assert "1 live videos unknown to the new model and not new (v-orphan)" in gated.stdout
    assert redis.Redis.from_url(redis_url).get(Keys().model_current) is None

    # Published on the window's last day: a new video nobody has watched yet is expected.
    load_catalog(redis_url, tmp_path, world, {**orphan, "published_at": "2026-11-08T12:00:00Z"})
    promoted = nightly(redis_url, tmp_path, world / "events")
    assert promoted.returncode == 0, promoted.stderr + promoted.stdout
    assert reports(tmp_path)[-1]["catalog_check"]["new_items"] == ["v-orphan"]


def test_a_challenger_run_publishes_beside_the_live_model(
    redis_url: str, tmp_path: Path, world: Path
) -> None:
    events = tmp_path / "events"
    copy_days(world, events, slice(None, -1))
    assert nightly(redis_url, tmp_path, events).returncode == 0
    client = redis.Redis.from_url(redis_url)
    live = client.get(Keys().model_current)
    copy_days(world, events, slice(-1, None))
    # A generous tolerance: this is about where the model goes, not whether it is better.
    result = nightly(redis_url, tmp_path, events, "--challenger", tolerance=0.3)
    assert result.returncode == 0, result.stderr + result.stdout
    assert "published as challenger" in result.stdout
    assert client.get(Keys().model_current) == live  # nothing changed live
    challenger = json.loads(client.get(Keys().model_challenger) or b"{}")
    assert challenger["version"] == reports(tmp_path)[-1]["published"]["version"]
    assert reports(tmp_path)[-1]["decision"] == "challenger"
    assert last_outcome(tmp_path) == "challenger"


def test_a_failed_run_exits_1_and_still_writes_its_report_and_chart(
    redis_url: str, tmp_path: Path
) -> None:
    events = tmp_path / "events" / "day=2026-11-20"
    events.mkdir(parents=True)
    (events / "part-0.parquet").write_text("not parquet")
    result = nightly(redis_url, tmp_path, tmp_path / "events")
    assert result.returncode == 1
    assert "nightly run failed, the live model is untouched" in result.stderr
    assert "part-0.parquet" in result.stderr and "Traceback" not in result.stderr
    [report] = reports(tmp_path)
    assert report["decision"] == "failed" and "part-0.parquet" in report["error"]
    assert "drain" in report["stages"] and "load" not in report["stages"]
    assert last_outcome(tmp_path) == "failed"
    assert sample(tmp_path, "recsvc_nightly_last_success_timestamp_seconds") == 0  # none yet
    assert (tmp_path / "reports" / "metrics-history.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (("--metric", "ndcg@10"), "metric 'ndcg@10' is not one of ndcg_at_10"),
        (("--tolerance", "2"), "--tolerance"),
        (("--min-coverage", "1.5"), "--min-coverage"),
        (("--metrics-file", "nightly.txt"), "nightly.txt does not end in .prom"),
        (("--users", "no-such-file.csv"), "no-such-file.csv is not a file"),
    ],
)
def test_bad_options_are_refused_before_any_work(
    redis_url: str, tmp_path: Path, world: Path, option: tuple[str, str], message: str
) -> None:
    result = nightly(redis_url, tmp_path, world / "events", *option)
    assert result.returncode == 2 and message in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "reports").exists()
    assert not metrics_file(tmp_path).exists()  # not a run


@pytest.mark.parametrize(("exit_code", "option"), [(3, ()), (0, ("--gated-exit-code", "0"))])
def test_a_model_below_the_coverage_floor_is_gated(
    redis_url: str, tmp_path: Path, world: Path, exit_code: int, option: tuple[str, ...]
) -> None:
    """With --gated-exit-code 0 (as the CronJob runs it), gated exits 0 and says gated."""
    result = nightly(redis_url, tmp_path, world / "events", "--min-coverage", "0.99", *option)
    assert result.returncode == exit_code, result.stderr + result.stdout
    assert "below the floor 0.99" in result.stdout and "nightly: gated" in result.stdout
    assert last_outcome(tmp_path) == "gated"


def test_future_dated_events_are_dropped_and_counted_not_used_as_the_holdout(
    tmp_path: Path, world: Path
) -> None:
    events = tmp_path / "events"
    copy_days(world, events, slice(None, None))
    table = pq.read_table(next((world / "events").glob("*/*.parquet")))
    future = table.slice(0, 3).set_column(
        table.schema.get_field_index("event_id"), "event_id", pa.array(["f1", "f2", "f3"])
    )
    ts = pa.array([datetime(2200, 1, 1, tzinfo=UTC)] * 3, type=table.schema.field("ts").type)
    future = future.set_column(table.schema.get_field_index("ts"), "ts", ts)
    (events / "day=2200-01-01").mkdir()
    pq.write_table(future, events / "day=2200-01-01" / "part-0.parquet")

    _, data, last = load_window(NightlySpec(events_dir=events, models_dir=tmp_path / "models"))

    assert data["validation"]["bad_counts"]["future_timestamp"] == 3
    assert last.year == 2026
