"""The daily A/B reports the nightly job writes (`recsvc nightly`, after its drain): for every
experiment running in the stored definition, the report as `recsvc ab report --sequential`
would give it (HTML and JSON), written under
`<reports>/experiments/<experiment>/<UTC date>.{html,json}`, and its SRM alarm for the
metrics file (training.nightly.metrics: `recsvc_ab_srm_alarm{experiment}`).

Sequential mode because the report is read every day: its always-valid intervals stay valid
however often they are looked at. A report that cannot be made (no exposures yet, unreadable
files) is said in the summary and the run goes on: the model work does not depend on it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from recsvc.contract.experiments import ExperimentError, parse_experiments
from training.ab.html import render_html
from training.ab.report import ReportError, build_report, load_exposures
from training.data.drain import write_durably
from training.data.events import EventDataError, load_events


def daily_reports(
    definition: str | None,
    events_dir: Path,
    exposures_dir: Path,
    out: Path,
    now: datetime | None = None,
) -> dict[str, dict[str, Any]]:
    """Write today's report of each experiment of `definition` (the stored TOML; None: none)
    running now; per experiment, what was written or why not: {"html", "json",
    "srm_alarm", "srm_p", "users", "verdicts"} or {"error"}."""
    moment = now or datetime.now(UTC)
    text = definition
    if not text:
        return {}
    try:
        running = [e for e in parse_experiments(text).experiments if e.running(moment.timestamp())]
    except ExperimentError as exc:
        return {"(definition)": {"error": f"the stored definition does not parse: {exc}"}}
    if not running:
        return {}
    summaries: dict[str, dict[str, Any]] = {}
    try:
        shown = load_exposures(exposures_dir)
        outcomes, _ = load_events(events_dir)
    except (ReportError, EventDataError, OSError) as exc:
        return {e.name: {"error": str(exc)} for e in running}
    day = moment.date().isoformat()
    for experiment in running:
        try:
            report = build_report(shown, outcomes, experiment, sequential=True)
        except ReportError as exc:
            summaries[experiment.name] = {"error": str(exc)}
            continue
        folder = out / "experiments" / experiment.name
        json_path, html_path = folder / f"{day}.json", folder / f"{day}.html"
        write_durably(json.dumps(report, default=str, indent=1), json_path, _text_file)
        write_durably(render_html(report), html_path, _text_file)
        srm = report["srm"]
        summaries[experiment.name] = {
            "json": str(json_path),
            "html": str(html_path),
            "srm_alarm": bool(srm["alarm"]),
            "srm_p": srm["p_value"],
            "users": sum(srm["observed_users"].values()),
            "verdicts": [v.get("decision") for v in report.get("verdicts", [])],
        }
    return summaries


def _text_file(text: str, path: Path) -> None:
    path.write_text(text, encoding="utf-8")
