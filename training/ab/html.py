"""The A/B report (training.ab.report's dict) as one self-contained HTML page.

The page needs nothing but itself: inline CSS, no script, no image or font to fetch, and the
chart as inline SVG (training.ab.html_chart). From the top: the title (experiment, control,
mode, alpha), the SRM banner (red when the split of users is broken: nothing below can be
trusted), a one-line verdict, the variants, the forest plot of every metric's relative
difference with its interval, the metrics table, the cumulative effect of the primary metric by
day (training.ab.html_trend), the breakdowns by segment, lifecycle and surface with their
caution, the attribution counts (training.ab.html_tables), the notes and the glossary of every
metric and term. In sequential mode a paragraph under the title says what its always-valid
intervals mean.

Every string from the report is escaped; a number the report leaves None is shown as "–",
with the row's note as a tooltip and a numbered footnote (training.ab.html_format).

UP and DOWN, the colours of a significant difference, are re-exported (`__all__`).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from training.ab.glossary import sequential_words
from training.ab.html_chart import _forest_plot
from training.ab.html_format import DOWN, UP, _colour, _e, _Footnotes, _interval_name, _percent
from training.ab.html_tables import (
    _attribution,
    _breakdown_tables,
    _glossary,
    _metrics_table,
    _variants_table,
)
from training.ab.html_trend import cumulative_charts

__all__ = ["DOWN", "UP", "render_html", "write_html"]

_CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Liberation Sans",sans-serif;
color:#1f2328;margin:0;background:#f6f8fa}
main{max-width:1160px;margin:0 auto;padding:24px 20px 40px;background:#fff}
h1{font-size:26px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px}
.subtitle{color:#57606a;margin:0 0 16px}
.srm{border-radius:8px;padding:14px 18px;margin:12px 0;font-size:16px}
.srm.ok{background:#e6f6ea;border:2px solid #1a7f37;color:#0f5323}
.srm.alarm{background:#b42318;border:2px solid #7a1209;color:#fff;font-size:18px}
.srm strong{font-size:1.15em;margin-right:6px}.srm .detail{display:block;margin-top:4px}
.verdict{font-size:17px;margin:10px 0}
.decision{font-size:17px;margin:10px 0;padding:10px 14px;border-radius:8px;border:2px solid}
.decision-ship{background:#e6f6ea;border-color:#1a7f37}
.decision-stop{background:#fdf3f2;border-color:#cf222e}
.decision-keep-running,.decision-none{background:#f6f8fa;border-color:#8c959f}
table{border-collapse:collapse;font-variant-numeric:tabular-nums}
th,td{padding:5px 10px;border-bottom:1px solid #d0d7de;text-align:right;white-space:nowrap}
th{background:#f6f8fa;font-weight:600;white-space:normal;vertical-align:bottom}
th small{font-weight:400;color:#57606a}th:first-child,td:first-child{text-align:left}
td.name{text-align:left;font-weight:600}tr.significant.up td{background:#f3faf5}
tr.significant.down td{background:#fdf3f2}
.mark{font-weight:700}.up{color:#1a7f37}.down{color:#cf222e}
.missing{cursor:help;color:#57606a}
.chart{margin:8px 0;overflow-x:auto}svg{max-width:100%;height:auto}
.legend,.footnotes,.notes{color:#57606a;font-size:13px}
.sequential,.caution{padding:10px 14px;border-radius:8px;background:#fff8c5;
border:1px solid #d4a72c}
tr.lead td{background:#fff8c5}tr.too-few td.missing{text-align:left;font-style:italic}
table.breakdown{margin:8px 0 18px}.wide{overflow-x:auto}
dl.glossary dt{font-weight:600;margin-top:8px}dl.glossary dd{margin:2px 0 0 18px}
"""


def render_html(report: dict[str, Any]) -> str:
    """The report as one self-contained HTML page (no script, nothing fetched)."""
    notes = _Footnotes()
    rows = [
        (comparison["treatment"], row)
        for comparison in report["comparisons"]
        for row in comparison["metrics"]
    ]
    alpha = report["alpha"]
    mode = "sequential (always valid)" if report["sequential"] else "fixed horizon"
    title = f"A/B report: {report['experiment']}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body><main>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="subtitle">control <b>{_e(report["control"])}</b> · {mode} · alpha '
        f"{alpha:g} ({_interval_name(report)}) · attribution window "
        f"{report['window_hours']:g} h</p>",
        _sequential(report),
        _srm_banner(report["srm"]),
        _decisions(report),
        _verdict(rows, report),
        "<h2>Variants</h2>",
        _variants_table(report),
        "<h2>Relative difference against control</h2>",
        f'<div class="chart">{_forest_plot(rows, report, notes)}</div>',
        f'<p class="legend">Dot: treatment / control − 1; bar: its {_interval_name(report)}; '
        f"coloured, filled and labelled: significant after Holm correction across metrics "
        f"at alpha {alpha:g} (intervals are not adjusted, so a grey bar may miss 0).</p>",
        "<h2>Metrics</h2>",
        _metrics_table(rows, report, notes),
        *_cumulative(report),
        *_breakdowns(report, notes),
        notes.html(),
        "<h2>Attribution of outcome events</h2>",
        _attribution(report["attribution"]),
    ]
    if report["notes"]:
        items = "".join(f"<li>{_e(note)}</li>" for note in report["notes"])
        parts.append(f'<h2>Notes</h2><ul class="notes">{items}</ul>')
    parts += ['<h2 id="glossary">Glossary</h2>', _glossary(report), "</main></body></html>\n"]
    return "\n".join(parts)


def write_html(report: dict[str, Any], out: Path) -> None:
    """Write the page to `out` through a temporary file beside it: all or nothing."""
    page = render_html(report)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(partial, "x", encoding="utf-8") as handle:
            handle.write(page)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)


def _sequential(report: dict[str, Any]) -> str:
    """What the sequential mode's intervals mean, when the report is in it."""
    if not report["sequential"]:
        return ""
    return f'<p class="sequential">{_e(sequential_words(report))}</p>'


def _cumulative(report: dict[str, Any]) -> list[str]:
    found = report.get("cumulative")
    if not found:
        return []
    which = "" if found.get("primary") else " (no primary metric named: the first metric)"
    caveat = (
        "These are always-valid intervals: reading them every day is safe."
        if report["sequential"]
        else "Each day's interval is valid for that day alone: watching the curve until it "
        "leaves 0 makes a false winner far more likely than alpha (use --sequential for that)."
    )
    return [
        f"<h2>Cumulative effect over time: {_e(found['metric'])}{_e(which)}</h2>",
        f'<div class="chart">{cumulative_charts(report)}</div>',
        f'<p class="legend">Line: the relative difference a report made at the end of each day '
        f"(UTC) would have shown, on the users exposed up to then; band: its "
        f"{_e(_interval_name(report))}. {caveat}</p>",
    ]


def _breakdowns(report: dict[str, Any], notes: _Footnotes) -> list[str]:
    found = report.get("breakdowns")
    if not found:
        return []
    return [
        "<h2>Breakdowns by segment, lifecycle and surface</h2>",
        f'<p class="caution"><b>Caution:</b> {_e(found["caution"])}</p>',
        '<p class="legend">Each user counts in the group of their first exposure in the '
        "experiment (the segment and lifecycle they had then, the surface it was shown on); "
        "'unknown': not recorded. A group with fewer than "
        f'{found["min_users"]} users in a variant shows "too few users".</p>',
        _breakdown_tables(report, notes),
    ]


def _srm_banner(srm: dict[str, Any]) -> str:
    detail = f'<span class="detail">{_e(srm["message"])}</span>'
    if srm["alarm"]:
        return (
            '<div class="srm alarm" role="alert"><strong>SRM ALARM: do not trust these '
            "results.</strong> The split of users across variants is not the definition's: "
            f"the assignment or the exposure logging is broken.{detail}</div>"
        )
    return f'<div class="srm ok"><strong>SRM ok:</strong> users split as defined.{detail}</div>'


def _decisions(report: dict[str, Any]) -> str:
    """The plain-words verdict of each treatment (training.ab.verdict)."""
    return "".join(
        f'<p class="decision decision-{_e(v["decision"].replace(" ", "-"))}"><b>'
        f"{_e(v['treatment'])}: {_e(v['decision'])}.</b> {_e(v['reason'])}.</p>"
        for v in report.get("verdicts", [])
    )


def _verdict(rows: list[tuple[str, dict[str, Any]]], report: dict[str, Any]) -> str:
    alpha = report["alpha"]
    untrusted = "<b>Untrusted (SRM alarm):</b> " if report["srm"]["alarm"] else ""
    hits = [(treatment, row) for treatment, row in rows if row["significant"]]
    if not rows:
        return f'<p class="verdict">{untrusted}No treatment to compare.</p>'
    if not hits:
        return (
            f'<p class="verdict">{untrusted}No metric differs significantly from control at '
            f"alpha {alpha:g} (Holm-corrected).</p>"
        )
    found = ", ".join(
        f'<b class="{"up" if _colour(row) == UP else "down"}">{_e(row["metric"])} '
        f"{_e(_percent(row['relative_difference']))}</b> ({_e(treatment)})"
        for treatment, row in hits
    )
    return (
        f'<p class="verdict">{untrusted}Significant at alpha {alpha:g} (Holm-corrected): '
        f"{found}.</p>"
    )
