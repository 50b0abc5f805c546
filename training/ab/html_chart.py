"""The HTML page's chart: a forest plot of every metric's relative difference, as inline SVG.

The forest plot has one row per (metric, treatment): a bar from ci_low to ci_high (class
"ci"), a dot at the relative difference and a vertical line at 0. Rows significant after
Holm correction are coloured (green up, red down), filled and labelled "significant"; the
others are grey with a hollow dot. The axis covers every estimate and 0; an interval that
runs past it ends in an arrow (a lower bound stops at -100%, an upper one at most at twice
the largest estimate or +100%, so one wide interval does not squash the rest).

A number the report leaves None has no dot or bar: the row says "no estimate" with its note.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from training.ab.html_format import (
    DOWN,
    NEUTRAL,
    UP,
    _clip,
    _colour,
    _difference,
    _e,
    _Footnotes,
    _interval_name,
    _num,
    _p,
    _unit,
    _value,
)

_TINT = {UP: "#e6f6ea", DOWN: "#fdecea"}
WIDTH, PLOT_X, PLOT_W, TEXT_X, ROW_H, TOP = 1120, 285, 480, 785, 46, 34  # chart layout, px


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
    ticks = ticks_of(low, high)
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
        out.append(_plot_row(i, treatment, row, scale, notes, _unit(row, report)))
    zero = f"{scale.x(0):.1f}"
    out.append(
        f'<line class="zero" x1="{zero}" x2="{zero}" y1="{TOP - 6}" y2="{bottom}" '
        'stroke="#1f2328" stroke-width="1.5"/></svg>'
    )
    return "".join(out)


def _plot_row(
    i: int,
    treatment: str,
    row: dict[str, Any],
    scale: _Scale,
    notes: _Footnotes,
    unit: str | None,
) -> str:
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
        f"{_e(_clip(treatment, 16))} {_e(_value(row['treatment'], kind, unit))} vs "
        f"{_e(_value(row['control'], kind, unit))}<title>{_e(treatment)}</title></text>"
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


def ticks_of(low: float, high: float) -> list[float]:
    """Round ticks (1, 2, 2.5 or 5 times a power of ten) covering [low, high]."""
    raw = (high - low) / 6
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.floor(low / step + 1e-9)
    last = math.ceil(high / step - 1e-9)
    return sorted({max(k * step, -1.0) for k in range(first, last + 1)})


def _tick(value: float) -> str:
    return "0" if abs(value) < 1e-12 else f"{round(value * 100, 6):+g}%"
