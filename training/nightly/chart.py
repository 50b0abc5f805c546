"""The nightly runs at a glance: one PNG of the gate's metric across every run in a reports dir.

Each nightly run (training.nightly.run) leaves a JSON report; one report answers "what happened last
night", but a slow decline, a string of gated runs or a night that failed only show across runs.
The chart puts the new model, the live model and the popularity baseline on one time axis, with
each run's decision on the new model's point, so the morning's question ("is retraining still
working?") has a one-look answer.

Reports are read defensively: a failed run writes fewer fields, an older or newer job may write
other ones, and a half-written or corrupt file must not cost the whole chart. Every field is
optional; a file that cannot be read is skipped and named in a warning.

Rendering uses `matplotlib.figure.Figure` with the Agg canvas and never pyplot, so no global
backend or figure registry is touched and nothing leaks across calls. The PNG is written to a
temporary file beside `out` and moved into place, so a reader never sees half a file.
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, date2num
from matplotlib.figure import Figure

MODELS = ("new", "live", "popularity")
FAILED_EXIT = (
    1  # training.nightly.run.FAILED; not imported, to keep the chart free of Redis/pyarrow
)
FIGSIZE = (9.0, 4.5)  # inches
DPI = 100
REPORT_NAME = re.compile(r"nightly-(\d{8}T\d{6}Z)\.json")

_LINES: dict[str, dict[str, Any]] = {  # model -> how its line looks
    "new": {"label": "new model", "color": "C0", "linestyle": "-", "linewidth": 2.0},
    "live": {"label": "live model", "color": "C1", "linestyle": "--", "linewidth": 1.5},
    "popularity": {"label": "popularity baseline", "color": "C2", "linestyle": ":"},
}
# the decision marked on the new model's point; a decision not listed is drawn hollow
_MARKERS: dict[str, dict[str, Any]] = {
    "promote": {"label": "promoted", "marker": "o", "s": 60, "color": "C0", "edgecolors": "white"},
    "gated": {"label": "gated", "marker": "x", "s": 70, "color": "C3", "linewidths": 2.0},
}
_METRIC_NAMES = {"ndcg": "NDCG", "map": "MAP"}
_PAST_TENSE = {"promote": "promoted"}


@dataclass(frozen=True)
class Series:
    """What the chart plots, one entry per run, oldest first."""

    started: list[datetime]
    # "promote", "gated", "failed", or a decision this chart does not know, as the report says
    decisions: list[str]
    # model ("new", "live", "popularity") -> the metric per run; None where the run has none
    values: dict[str, list[float | None]]


def load_history(report_dir: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Every readable nightly report in report_dir, oldest first (by started_at, falling back to
    the file name), and one warning per file that could not be read or parsed (naming the file
    and why). Each report gains a `report_file` key: the name of the file it came from."""
    if not report_dir.exists():  # before the first run
        return [], []
    if not report_dir.is_dir():
        return [], [f"{report_dir}: not a directory"]
    try:
        paths = sorted(report_dir.glob("nightly-*.json"))
    except OSError as exc:
        return [], [f"{report_dir}: cannot list the directory ({exc})"]
    runs: list[tuple[datetime, str, dict[str, Any]]] = []
    warnings = []
    for path in paths:
        try:
            report = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            warnings.append(f"{path.name}: skipped, cannot be read as JSON ({exc})")
            continue
        if not isinstance(report, dict):
            warnings.append(f"{path.name}: skipped, not a JSON object")
            continue
        report["report_file"] = path.name
        started = run_started(report)
        if started is None:
            warnings.append(f"{path.name}: skipped, no started_at and no time in the file name")
            continue
        runs.append((started, path.name, report))
    runs.sort(key=lambda run: (run[0], run[1]))
    return [report for _, _, report in runs], warnings


def run_started(report: dict[str, Any]) -> datetime | None:
    """When the run started (UTC): its started_at, else the time in its report file's name."""
    value = report.get("started_at")
    if isinstance(value, str):
        try:
            started = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:  # a naive time is the job's UTC
            return started.astimezone(UTC) if started.tzinfo else started.replace(tzinfo=UTC)
    match = REPORT_NAME.fullmatch(str(report.get("report_file", "")))
    if match:
        return datetime.strptime(match[1], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    return None


def run_decision(report: dict[str, Any]) -> str:
    """The run's decision; "failed" when the job failed or reached no decision."""
    decision = report.get("decision")
    if report.get("exit_code") == FAILED_EXIT or decision in (None, "failed"):
        return "failed"
    return str(decision)


def series(history: list[dict[str, Any]], metric: str) -> Series:
    """The metric of each model and the decision of each run (runs with no known time left out)."""
    started, decisions = [], []
    values: dict[str, list[float | None]] = {model: [] for model in MODELS}
    for report in history:
        when = run_started(report)
        if when is None:
            continue
        started.append(when)
        decisions.append(run_decision(report))
        metrics = report.get("metrics")
        for model in MODELS:
            scores = metrics.get(model) if isinstance(metrics, dict) else None
            value = scores.get(metric) if isinstance(scores, dict) else None
            values[model].append(_number(value))
    return Series(started, decisions, values)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def metric_label(metric: str) -> str:
    """How the chart names a metric: "ndcg_at_10" -> "NDCG@10"."""
    name, at, k = metric.partition("_at_")
    pretty = _METRIC_NAMES.get(name, name.replace("_", " ").capitalize())
    return f"{pretty}@{k}" if at else pretty


def history_figure(history: list[dict[str, Any]], metric: str, unreadable: int = 0) -> Figure:
    """The chart of `metric` across the runs of `history` (as load_history returns it);
    `unreadable` counts the reports that could not be read, for the empty chart's note."""
    figure = Figure(figsize=FIGSIZE, dpi=DPI)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    data = series(history, metric)
    label = metric_label(metric)
    if not data.started:
        axes.set_axis_off()
        note = f"\n({unreadable} unreadable report{'s' if unreadable != 1 else ''})"
        axes.text(
            0.5,
            0.5,
            "no nightly runs yet" + (note if unreadable else ""),
            ha="center",
            va="center",
            fontsize=16,
            color="0.4",
            transform=axes.transAxes,
        )
        axes.set_title(f"Nightly retraining: {label}")
        figure.tight_layout()
        return figure

    axes.xaxis_date(UTC)
    times = date2num(data.started)
    for model in MODELS:  # NaN leaves a gap; the small dots keep a lone value visible
        ys = [math.nan if value is None else value for value in data.values[model]]
        axes.plot(times, ys, marker=".", markersize=5, **_LINES[model])
    _mark_decisions(axes, times, data)
    if all(value is None for model in MODELS for value in data.values[model]):
        axes.text(
            0.5,
            0.5,
            f"no run reported {metric}",
            ha="center",
            va="center",
            color="0.4",
            transform=axes.transAxes,
        )

    locator = AutoDateLocator(tz=UTC)
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(ConciseDateFormatter(locator, tz=UTC))
    axes.set_xlabel("run start (UTC)")
    axes.set_ylabel(f"{label} on the holdout day")
    axes.grid(alpha=0.3)
    counts = Counter(data.decisions)
    tally = ", ".join(f"{count} {_PAST_TENSE.get(d, d)}" for d, count in counts.items())
    runs = len(data.started)
    axes.set_title(f"Nightly retraining: {label}, {runs} run{'s' if runs != 1 else ''} ({tally})")
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize="small")
    figure.tight_layout()
    return figure


def _mark_decisions(axes: Axes, times: Any, data: Series) -> None:
    """Promoted: a filled dot on the new model's point; gated: a red x; failed: a grey band."""
    new = data.values["new"]
    for decision in dict.fromkeys(data.decisions):  # each decision once, in order of appearance
        runs = [i for i, d in enumerate(data.decisions) if d == decision]
        if decision == "failed":
            for i in runs:
                label = "failed run" if i == runs[0] else "_nolegend_"
                axes.axvline(times[i], color="0.55", linewidth=4, alpha=0.35, zorder=0, label=label)
            continue
        points = [(times[i], value) for i in runs if (value := new[i]) is not None]
        if not points:
            continue
        style = _MARKERS.get(
            decision,
            {"label": decision, "marker": "o", "s": 60, "facecolors": "none", "edgecolors": "C4"},
        )
        xs, ys = zip(*points, strict=True)
        axes.scatter(xs, ys, zorder=3, **style)


def write_history_chart(report_dir: Path, out: Path, metric: str = "ndcg_at_10") -> list[str]:
    """Render the metric across runs to a PNG at `out`; return the warnings of load_history."""
    history, warnings = load_history(report_dir)
    figure = history_figure(history, metric, unreadable=len(warnings))
    out.parent.mkdir(parents=True, exist_ok=True)
    # open(..., "xb") rather than tempfile: the PNG gets the usual umask permissions, not 0600
    partial = out.with_name(f".{out.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(partial, "xb") as handle:
            figure.savefig(handle, format="png", dpi=DPI)
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
        figure.clear()
    return warnings
