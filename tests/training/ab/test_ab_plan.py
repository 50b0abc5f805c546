"""Planning from the logged history (`recsvc ab plan`): the MDE follows the delta method's
variance and shrinks as users accumulate over days; the days an effect needs are the first day
with enough users, or an extrapolation that says so."""

from __future__ import annotations

import json
import math
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pytest

from tests.training.ab.builders import (
    event,
    event_table,
    exposure,
    exposure_table,
    recsvc,
    write_days,
)
from training.ab.plan import plan

USERS_PER_DAY = 50


def history() -> tuple[list[dict], list[dict]]:
    """Three days, 50 new users a day, each with two feeds; every third user views v1 and
    every fifth buys the card."""
    exposures, events = [], []
    for day in range(3):
        for n in range(USERS_PER_DAY):
            user, hours = f"u{day}-{n}", day * 24 + n * 0.1
            for feed in range(2):
                request = f"{user}-{feed}"
                exposures.append(exposure(request, user, hours + feed * 0.01))
                if n % 3 == 0:
                    events.append(event(user, "v1", "view", hours + 0.05, request_id=request))
                if n % 5 == 0 and feed == 0:
                    events.append(
                        event(user, "p1", "purchase", hours + 0.05, request_id=request, amount=10.0)
                    )
    return exposures, events


def test_the_mde_is_the_delta_methods_and_shrinks_with_the_days() -> None:
    exposures, events = history()
    result = plan(exposure_table(exposures), event_table(events), days=(1, 3, 12), effect=0.5)
    assert result["users_by_day"] == [50, 100, 150] and result["history_days"] == 3
    rows = {m["metric"]: m for m in result["metrics"]}
    buys = rows["purchases_per_user"]
    # per user: 1 purchase for a fifth of them, else 0: mean 0.2, sample variance over 150
    y = np.array([1.0 if n % 5 == 0 else 0.0 for _ in range(3) for n in range(USERS_PER_DAY)])
    v = y.var(ddof=1) / y.mean() ** 2
    z = NormalDist().inv_cdf(0.975) + NormalDist().inv_cdf(0.8)
    for days, users in (("1", 50), ("3", 150), ("12", 150 + 9 * 50)):  # day 12: extrapolated
        assert buys["mde_by_days"][days] == pytest.approx(math.expm1(z * math.sqrt(4 * v / users)))
    assert buys["mde_by_days"]["1"] > buys["mde_by_days"]["3"] > buys["mde_by_days"]["12"]
    needed = z * z * 4 * v / math.log1p(0.5) ** 2
    assert buys["users_needed"] == math.ceil(needed)
    assert buys["days_needed"] == pytest.approx(max(1, math.ceil(needed / 50)), abs=1)
    assert rows["video_ctr"]["value"] == pytest.approx(17 * 2 / (50 * 4))  # v1 of 2 feeds of 2


def test_the_cli_plans_and_refuses_what_cannot_be_planned(tmp_path: Path) -> None:
    exposures, events = history()
    arguments = [
        "--exposures", str(write_days(exposure_table(exposures), tmp_path / "exposures")),
        "--events", str(write_days(event_table(events), tmp_path / "events")),
    ]  # fmt: skip
    ran = recsvc("ab", "plan", *arguments, "--json")
    assert ran.returncode == 0, ran.stderr
    result = json.loads(ran.stdout.strip().splitlines()[-1])
    assert [m["metric"] for m in result["metrics"]][:3] == [
        "video_ctr",
        "attach_click_rate",
        "attach_conversion",
    ]
    assert "MDE 7 d" in recsvc("ab", "plan", *arguments).stdout
    empty = recsvc("ab", "plan", "--exposures", str(tmp_path / "none"), "--events", arguments[3])
    assert empty.returncode == 1 and "exposures" in empty.stderr
