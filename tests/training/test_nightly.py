"""The nightly job end to end, as a scheduler runs it: `recsvc nightly` against a real Redis.

A first run (no live model) promotes and publishes. A run on planted worse data (the user ids
of every day but the holdout shuffled, which destroys the collaborative signal) is gated:
exit 3, and the live pointer does not move. A run while another holds the lock refuses.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import redis

from recsvc.keys import Keys
from training.world import WorldSpec, generate_world, write_world

RECSVC = str(Path(sys.executable).with_name("recsvc"))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("nightly") / "world"
    spec = WorldSpec(users=1500, videos=120, products=12, events=40_000, days=8, seed=3)
    write_world(generate_world(spec), out)
    return out


def nightly(
    redis_url: str, tmp_path: Path, events: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "RECSVC_REDIS_URL": redis_url,
        "RECSVC_MODELS_DIR": str(tmp_path / "models"),
        "RECSVC_LOG_JSON": "false",
    }
    command = [
        RECSVC, "nightly", "--events", str(events), "--reports", str(tmp_path / "reports"),
        "--tune-trials", "3", "--tolerance", "0.05", *args,
    ]  # fmt: skip
    return subprocess.run(command, env=env, capture_output=True, text=True, check=False)


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
    shutil.copytree(world / "events", events)
    first = nightly(redis_url, tmp_path, events)
    assert first.returncode == 0, first.stderr + first.stdout
    assert "promote" in first.stdout
    client = redis.Redis.from_url(redis_url)
    live = client.get(Keys().model_current)
    assert live is not None

    shuffle_users_before_last_day(events)
    second = nightly(redis_url, tmp_path, events)
    assert second.returncode == 3, second.stderr + second.stdout
    assert "gated" in second.stdout and "below the live model" in second.stdout
    assert client.get(Keys().model_current) == live  # nothing changed live
    assert len(list((tmp_path / "reports").glob("nightly-*.json"))) >= 1


def test_a_second_run_while_one_holds_the_lock_refuses(
    redis_url: str, tmp_path: Path, world: Path
) -> None:
    redis.Redis.from_url(redis_url).set("recsvc:nightly:lock", "started earlier", ex=60)
    result = nightly(redis_url, tmp_path, world / "events")
    assert result.returncode == 1
    assert "another nightly run" in result.stderr and "Traceback" not in result.stderr
