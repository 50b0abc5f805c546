"""An experiment's report after it ended: every definition ever stored is kept in Redis, so
`recsvc ab report` finds an experiment that the served definition no longer has, and says so.
The report carries what the definition says of the experiment and the data's dates."""

from __future__ import annotations

import json
from pathlib import Path

from recsvc.contract.experiments import METRICS as DEFINABLE
from tests.builders import cli_environment
from tests.training.ab.builders import (
    DEFINITION,
    EXP,
    event,
    event_table,
    exposure,
    exposure_table,
    recsvc,
    write_days,
)
from training.ab.report import report_text
from training.ab.stats import METRICS

ABOUT = """owner = "growth team"
hypothesis = "A stronger user weight sells more"
primary_metric = "attach_conversion"
guardrails = ["video_ctr"]
start = 2026-11-01T00:00:00Z
end = 2026-11-20T00:00:00Z
"""
LATER = '[[experiment]]\nname = "next"\n[[experiment.variant]]\nname = "a"\nweight = 0.5\n'
LATER += '[[experiment.variant]]\nname = "b"\nweight = 0.5\nattach = false\n'


def data(directory: Path) -> list[str]:
    exposures = [
        exposure(
            f"r{u}-{f}", f"u{u}", hours=u + 30 * f, variant="control" if u % 2 else "treatment"
        )
        for u in range(40)
        for f in range(2)
    ]
    events = [event(f"u{u}", "v1", "view", u + 0.1, request_id=f"r{u}-0") for u in range(0, 40, 3)]
    return [
        "--exposures", str(write_days(exposure_table(exposures), directory / "exposures")),
        "--events", str(write_days(event_table(events), directory / "events")),
    ]  # fmt: skip


def test_an_ended_experiment_is_reported_from_the_definitions_history(
    redis_url: str, tmp_path: Path
) -> None:
    env = cli_environment(redis_url, tmp_path / "models")
    for number, text in enumerate(
        (DEFINITION.replace('control = "control"\n', f'control = "control"\n{ABOUT}'), LATER)
    ):
        path = tmp_path / f"definition-{number}.toml"
        path.write_text(text)
        loaded = recsvc("experiments", "load", str(path), env=env)
        assert loaded.returncode == 0, loaded.stderr
    arguments = data(tmp_path)

    ran = recsvc("ab", "report", EXP, *arguments, "--json", env=env)
    assert ran.returncode == 0, ran.stderr
    report = json.loads(ran.stdout.strip().splitlines()[-1])
    assert any("no longer in the served definition" in note for note in report["notes"])
    assert report["definition"]["owner"] == "growth team"
    assert report["definition"]["primary_metric"] == "attach_conversion"
    assert report["definition"]["end"] == "2026-11-20T00:00:00+00:00"
    assert report["period"]["days"] == 2.88  # exposures from hour 0 to hour 69: 2.875 days
    text = report_text(report)
    assert "owner: growth team; hypothesis: A stronger user weight sells more" in text
    assert "primary metric: attach_conversion; guardrails: video_ctr" in text

    unknown = recsvc("ab", "report", "never-defined", *arguments, env=env)
    assert unknown.returncode == 1
    assert "unknown experiment 'never-defined': in no definition ever stored" in unknown.stderr


def test_a_definition_may_name_exactly_the_metrics_the_report_computes() -> None:
    assert tuple(m.name for m in METRICS) == DEFINABLE
