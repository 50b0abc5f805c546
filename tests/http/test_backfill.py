"""`recsvc state backfill` seeds the online state from history, through the real command and
the real service (issue 15): after it, a user's feed leads with no video the history says they
watched, and never carries a card for a hold-once product the history says they bought."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx

from tests.builders import cli_environment, event_row, write_events_csv
from tests.http.cards import attached, feed, set_profile, videos

RECSVC = str(Path(sys.executable).with_name("recsvc"))


def backfill(redis_url: str, models_dir: Path, history: Path) -> dict:
    result = subprocess.run(
        [RECSVC, "state", "backfill", "--interactions", str(history), "--json"],
        env=cli_environment(redis_url, models_dir),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report: dict = json.loads(result.stdout.strip().splitlines()[-1])
    return report


def test_after_a_backfill_no_watched_video_and_no_held_product_is_served(
    service: httpx.Client, redis_url: str, models_dir: Path, tmp_path: Path
) -> None:
    set_profile(service, "u-inv", risk_tolerance=3)
    before = feed(service, "u-inv")
    watched = videos(before)[0]
    assert "p-pen" in attached(before)
    history = write_events_csv(
        tmp_path / "history.csv",
        [
            event_row(0, user_id="u-inv", item_id=watched, watch_ratio=1.8),  # a replay
            event_row(1, user_id="u-inv", item_id="p-pen", item_type="product",
                      action="purchase", watch_ratio=None, amount=100.0),
            event_row(2, user_id="u-other", item_id=watched),
        ],
    )  # fmt: skip

    report = backfill(redis_url, models_dir, history)

    assert (report["users"], report["seeded"], report["purchases"]) == (2, 2, 1)
    after = feed(service, "u-inv")
    assert watched not in videos(after)
    assert "p-pen" not in attached(after)
    assert "p-pen" in service.get("/v1/users/u-inv/profile").json()["holdings"]


def test_running_the_same_backfill_again_changes_nothing(
    service: httpx.Client, redis_url: str, models_dir: Path, tmp_path: Path
) -> None:
    history = write_events_csv(tmp_path / "history.csv", [event_row(0, user_id="u-inv")])
    first = backfill(redis_url, models_dir, history)
    state = service.get("/v1/users/u-inv/profile").json()

    again = backfill(redis_url, models_dir, history)

    assert (first["seeded"], again["seeded"], again["skipped"]) == (1, 0, 1)
    assert again["backfill_id"] == first["backfill_id"]
    assert service.get("/v1/users/u-inv/profile").json() == state
