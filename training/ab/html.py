"""The A/B report (training.ab.report's dict) as one self-contained HTML page.

The page needs nothing but itself: inline CSS, no script, no image or font to fetch, and the
chart as inline SVG drawn here. From the top: the title (experiment, control, mode, alpha),
the SRM banner (red when the split of users is broken: nothing below can be trusted), a
one-line verdict, the variants, the forest plot of every metric's relative difference with
its interval, the metrics table, the attribution counts and the notes.

The forest plot has one row per (metric, treatment): a bar from ci_low to ci_high (class
"ci"), a dot at the relative difference and a vertical line at 0. Rows significant after
Holm correction are coloured (green up, red down), filled and labelled "significant"; the
others are grey with a hollow dot. The axis covers every estimate and 0; an interval that
runs past it ends in an arrow (a lower bound stops at -100%, an upper one at most at twice
the largest estimate or +100%, so one wide interval does not squash the rest).

Every string from the report is escaped; a number the report leaves None is shown as "–",
with the row's note as a tooltip and a numbered footnote.
"""

from __future__ import annotations

import math
import os
import secrets
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

NONE = "–"  # what a missing number shows
UP, DOWN, NEUTRAL = "#1a7f37", "#cf222e", "#8c959f"  # significant up / down, not significant
_TINT = {UP: "#e6f6ea", DOWN: "#fdecea"}
WIDTH, PLOT_X, PLOT_W, TEXT_X, ROW_H, TOP = 1120, 285, 480, 785, 46, 34  # chart layout, px

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
        _srm_banner(report["srm"]),
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
        notes.html(),
        "<h2>Attribution of outcome events</h2>",
        _attribution(report["attribution"]),
    ]
    if report["notes"]:
        items = "".join(f"<li>{_e(note)}</li>" for note in report["notes"])
        parts.append(f'<h2>Notes</h2><ul class="notes">{items}</ul>')
    parts.append("</main></body></html>\n")
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


@dataclass(frozen=True)
class _Scale:
    """The chart's x axis: relative differences in [low, high] onto the plot's pixels."""

    low: float
    high: float

    def x(self, value: float) -> float:
        inside = min(max(value, self.low), self.high)
        return PLOT_X + (inside - self.low) / (self.high - self.low) * PLOT_W


def _forest_plot(
    rows: list[tuple[str, dict[str, Any]]], report: dict[str, Any], notes: _Footnotes
) -> str:
    """Inline SVG: one row per (treatment, metric result), each a group of class "row"."""
    if not rows:
        return "<p>No treatment to compare against the control.</p>"
    low, high = _axis(rows)
    ticks = _ticks(low, high)
    scale = _Scale(min(low, ticks[0]), max(high, ticks[-1]))
    bottom = TOP + len(rows) * ROW_H
    height = bottom + 44
    out = [
        f'<svg class="forest" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" '
        'role="img" aria-label="relative difference of each metric against control" '
        'font-family="system-ui, Liberation Sans, sans-serif" font-size="14">',
        '<text x="10" y="20" font-weight="600" fill="#57606a">metric · treatment</text>',
        f'<text x="{TEXT_X}" y="20" font-weight="600" fill="#57606a">difference '
        f"[{_e(_interval_name(report))}]</text>",
    ]
    for tick in ticks:
        at = f"{scale.x(tick):.1f}"
        out.append(
            f'<line x1="{at}" x2="{at}" y1="{TOP}" y2="{bottom}" stroke="#eaeef2"/>'
            f'<text x="{at}" y="{bottom + 18}" text-anchor="middle" font-size="12" '
            f'fill="#57606a">{_tick(tick)}</text>'
        )
    out.append(
        f'<text x="{PLOT_X + PLOT_W / 2}" y="{bottom + 38}" text-anchor="middle" font-size="13" '
        'fill="#57606a">relative difference, treatment against control</text>'
    )
    for i, (treatment, row) in enumerate(rows):
        if i and treatment != rows[i - 1][0]:  # the next treatment's rows
            y = TOP + i * ROW_H
            out.append(f'<line x1="0" x2="{WIDTH}" y1="{y}" y2="{y}" stroke="#8c959f"/>')
        out.append(_plot_row(i, treatment, row, scale, notes))
    zero = f"{scale.x(0):.1f}"
    out.append(
        f'<line class="zero" x1="{zero}" x2="{zero}" y1="{TOP - 6}" y2="{bottom}" '
        'stroke="#1f2328" stroke-width="1.5"/></svg>'
    )
    return "".join(out)


def _plot_row(i: int, treatment: str, row: dict[str, Any], scale: _Scale, notes: _Footnotes) -> str:
    top, mid = TOP + i * ROW_H, TOP + i * ROW_H + ROW_H // 2
    difference, ci_low, ci_high = (
        _num(row[k]) for k in ("relative_difference", "ci_low", "ci_high")
    )
    colour = _colour(row)
    significant = colour != NEUTRAL
    kind = row["kind"]
    out = [
        f'<g class="{"row significant" if significant else "row"}" '
        f'data-metric="{_e(row["metric"])}" data-treatment="{_e(treatment)}">'
    ]
    if significant:
        out.append(
            f'<rect x="0" y="{top + 1}" width="{WIDTH}" height="{ROW_H - 2}" '
            f'fill="{_TINT[colour]}"/>'
        )
    out.append(
        f'<text x="10" y="{mid - 4}" font-weight="600">{_e(_clip(row["metric"], 30))}'
        f"<title>{_e(row['metric'])}</title></text>"
        f'<text x="10" y="{mid + 13}" font-size="12" fill="#57606a">'
        f"{_e(_clip(treatment, 16))} {_e(_value(row['treatment'], kind))} vs "
        f"{_e(_value(row['control'], kind))}<title>{_e(treatment)}</title></text>"
    )
    if difference is None:
        note = row.get("note") or ""
        why = f": {_e(_clip(note, 58))}<title>{_e(note)}</title>" if note else ""
        out.append(
            f'<text x="{PLOT_X + 8}" y="{mid + 5}" font-style="italic" fill="#57606a">'
            f"no estimate{why}</text>"
        )
    else:
        if ci_low is not None:
            upper = math.inf if ci_high is None else ci_high
            x0, x1 = scale.x(ci_low), scale.x(upper)
            out.append(
                f'<rect class="ci" x="{x0:.1f}" y="{mid - 4}" width="{max(x1 - x0, 1):.1f}" '
                f'height="8" rx="4" fill="{colour}"/>'
            )
            # an interval running past the axis ends in an arrow at the edge
            for edge, direction, past in (
                (x0, -1, ci_low < scale.low),
                (x1, 1, upper > scale.high),
            ):
                if past:
                    tip = edge + 9 * direction
                    out.append(
                        f'<path class="beyond" d="M{edge:.1f},{mid - 7} L{tip:.1f},{mid} '
                        f'L{edge:.1f},{mid + 7} Z" fill="{colour}"/>'
                    )
        out.append(
            f'<circle class="estimate" cx="{scale.x(difference):.1f}" cy="{mid}" r="6.5" '
            f'fill="{colour if significant else "#fff"}" '
            f'stroke="{colour if significant else "#57606a"}" stroke-width="2"/>'
        )
    out.append(
        f'<text x="{TEXT_X}" y="{mid - 4}" font-weight="600" '
        f'fill="{colour if significant else "#1f2328"}">{_e(_difference(row))}'
        f"{notes.mark(row.get('note'), svg=True)}</text>"
        f'<text x="{TEXT_X}" y="{mid + 13}" font-size="12" fill="#57606a">p '
        f"{_e(_p(row['p_value']))} · Holm p {_e(_p(row['adjusted_p']))}</text>"
    )
    if significant:
        out.append(
            f'<text class="significant-label" x="{WIDTH - 10}" y="{mid + 13}" text-anchor="end" '
            f'font-weight="700" fill="{colour}">{"▲" if colour == UP else "▼"} significant</text>'
        )
    out.append("</g>")
    return "".join(out)


class _Footnotes:
    """Numbered notes of the metric rows, each distinct note once."""

    def __init__(self) -> None:
        self.notes: list[str] = []

    def mark(self, note: str | None, svg: bool = False) -> str:
        """The note's number as a superscript (in SVG text a tspan: <sup> would end the SVG)."""
        if not note:
            return ""
        if note not in self.notes:
            self.notes.append(note)
        number = self.notes.index(note) + 1
        if svg:
            return f'<tspan baseline-shift="super" font-size="10">{number}</tspan>'
        return f"<sup>{number}</sup>"

    def html(self) -> str:
        if not self.notes:
            return ""
        items = "".join(f"<li>{_e(note)}</li>" for note in self.notes)
        return f'<ol class="footnotes">{items}</ol>'


def _srm_banner(srm: dict[str, Any]) -> str:
    detail = f'<span class="detail">{_e(srm["message"])}</span>'
    if srm["alarm"]:
        return (
            '<div class="srm alarm" role="alert"><strong>SRM ALARM: do not trust these '
            "results.</strong> The split of users across variants is not the definition's: "
            f"the assignment or the exposure logging is broken.{detail}</div>"
        )
    return f'<div class="srm ok"><strong>SRM ok:</strong> users split as defined.{detail}</div>'


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


def _variants_table(report: dict[str, Any]) -> str:
    shares = report["srm"].get("observed_shares") or {}
    head = (
        "<tr><th>variant</th><th>role</th><th>weight</th><th>users</th><th>share of users</th>"
        "<th>exposures</th><th>exposures per user</th></tr>"
    )
    body = []
    for variant in report["variants"]:
        name, users, exposures = variant["name"], variant["users"], variant["exposures"]
        role = "control" if name == report["control"] else "treatment"
        body.append(
            f'<tr><td class="name">{_e(name)}</td><td>{role}</td>'
            f"<td>{_share(variant['weight'], '.1%')}</td><td>{users:,}</td>"
            f"<td>{_share(shares.get(name), '.2%')}</td><td>{exposures:,}</td>"
            f"<td>{f'{exposures / users:.2f}' if users else NONE}</td></tr>"
        )
    return f"<table>{head}{''.join(body)}</table>"


def _metrics_table(
    rows: list[tuple[str, dict[str, Any]]], report: dict[str, Any], notes: _Footnotes
) -> str:
    head = (
        "<tr><th>metric</th><th>treatment</th><th>control</th><th>treatment value</th>"
        f"<th>difference <small>[{_e(_interval_name(report))}]</small></th>"
        "<th>p</th><th>Holm p</th><th></th></tr>"
    )
    body = []
    for treatment, row in rows:
        kind, note = row["kind"], row.get("note")
        cells = [
            (_value(row["control"], kind), row["control"]),
            (_value(row["treatment"], kind), row["treatment"]),
            (_difference(row), row["relative_difference"]),
            (_p(row["p_value"]), row["p_value"]),
            (_p(row["adjusted_p"]), row["adjusted_p"]),
        ]
        colour = _colour(row)
        mark, direction = "", ""
        if colour != NEUTRAL:
            mark, direction = ("▲ significant", "up") if colour == UP else ("▼ significant", "down")
        body.append(
            f'<tr class="{f"significant {direction}" if mark else ""}">'
            f'<td class="name">{_e(row["metric"])}</td><td>{_e(treatment)}</td>'
            + "".join(
                _cell(text, note if _num(value) is None else None, notes) for text, value in cells
            )
            + f'<td class="mark {direction}">{mark}</td></tr>'
        )
    return f"<table>{head}{''.join(body)}</table>"


def _cell(text: str, note: str | None, notes: _Footnotes) -> str:
    """A table cell; one whose number is missing carries the note as tooltip and footnote."""
    if note:
        return f'<td class="missing" title="{_e(note)}">{_e(text)}{notes.mark(note)}</td>'
    return f"<td>{_e(text)}</td>"


def _attribution(counts: dict[str, Any]) -> str:
    cells = "".join(
        f"<tr><td>{_e(name.replace('_', ' '))}</td><td>"
        f"{f'{value:,}' if isinstance(value, int) else _e(str(value))}</td></tr>"
        for name, value in counts.items()
    )
    return f"<table>{cells}</table>"


def _axis(rows: list[tuple[str, dict[str, Any]]]) -> tuple[float, float]:
    """The axis range: every estimate and 0; interval ends within [-100%, the cap]."""
    estimates = [v for _, row in rows if (v := _num(row["relative_difference"])) is not None]
    ends = [v for _, row in rows for k in ("ci_low", "ci_high") if (v := _num(row[k])) is not None]
    cap = max(1.0, 2 * max(estimates, default=0.0))
    low = max(min([0.0, *estimates, *ends]), -1.0)
    high = min(max([0.0, *estimates, *ends]), cap)
    if high - low < 0.002:
        low, high = low - 0.01, high + 0.01
    pad = 0.04 * (high - low)
    return max(low - pad, -1.0), high + pad


def _ticks(low: float, high: float) -> list[float]:
    """Round ticks (1, 2, 2.5 or 5 times a power of ten) covering [low, high]."""
    raw = (high - low) / 6
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.floor(low / step + 1e-9)
    last = math.ceil(high / step - 1e-9)
    return sorted({max(k * step, -1.0) for k in range(first, last + 1)})


def _tick(value: float) -> str:
    return "0" if abs(value) < 1e-12 else f"{round(value * 100, 6):+g}%"


def _colour(row: dict[str, Any]) -> str:
    if not row["significant"]:
        return NEUTRAL
    return DOWN if (_num(row["relative_difference"]) or 0) < 0 else UP


def _interval_name(report: dict[str, Any]) -> str:
    confidence = f"{1 - report['alpha']:.0%}"
    return f"{confidence} confidence sequence" if report["sequential"] else f"{confidence} CI"


def _num(value: Any) -> float | None:
    """A finite number, or None (a None, a NaN or an infinity)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _value(value: Any, kind: str) -> str:
    number = _num(value)
    if number is None:
        return NONE
    return f"{number:.2%}" if kind == "ratio" else f"{number:,.3f}"


def _share(value: Any, spec: str) -> str:
    number = _num(value)
    return NONE if number is None else format(number, spec)


def _percent(value: Any) -> str:
    number = _num(value)
    return NONE if number is None else f"{number:+.1%}"


def _difference(row: dict[str, Any]) -> str:
    if _num(row["relative_difference"]) is None:
        return NONE
    text = _percent(row["relative_difference"])
    if _num(row["ci_low"]) is not None:
        high = "+inf" if _num(row["ci_high"]) is None else _percent(row["ci_high"])
        text += f" [{_percent(row['ci_low'])}, {high}]"
    return text


def _p(value: Any) -> str:
    number = _num(value)
    if number is None:
        return NONE
    return "<0.0001" if number < 0.0001 else f"{number:.4f}"


def _clip(text: str, length: int) -> str:
    return text if len(text) <= length else text[: length - 1] + "…"


def _e(text: str) -> str:
    return escape(str(text), quote=True)
