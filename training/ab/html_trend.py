"""The HTML page's chart of the cumulative effect: per treatment, the primary metric's relative
difference by day (training.ab.cumulative), as inline SVG.

One chart per treatment (class "cumulative", `data-treatment`): the interval of each day as a
shaded band (class "band"), the difference as a line through one dot per day (class "point",
`data-day`), and a line at 0 (class "zero"). A day without an estimate has no dot; the band
is drawn over the days that have an interval, and stops at -100% below and at the axis' cap
above (the largest estimate doubled, at least +100%), like the forest plot's.
"""

from __future__ import annotations

from typing import Any

from training.ab.html_chart import _tick, ticks_of
from training.ab.html_format import _difference, _e, _interval_name, _num

WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 760, 260, 70, 20, 20, 50  # chart layout, px
LINE, BAND = "#0969da", "#b6d4fe"


def cumulative_charts(report: dict[str, Any]) -> str:
    """Every treatment's chart, or a sentence saying there is nothing to draw."""
    found = report.get("cumulative")
    if not found or not found["series"]:
        return "<p>No treatment to compare against the control.</p>"
    return "".join(_chart(series, found["metric"], report) for series in found["series"])


def _chart(series: dict[str, Any], metric: str, report: dict[str, Any]) -> str:
    points = series["points"]
    low, high = _axis(points)
    ticks = ticks_of(low, high)
    low, high = min(low, ticks[0]), max(high, ticks[-1])
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(i: int) -> float:
        return LEFT + (plot_w / 2 if len(points) == 1 else i * plot_w / (len(points) - 1))

    def y(value: float) -> float:
        inside = min(max(value, low), high)
        return TOP + (high - inside) / (high - low) * plot_h

    treatment = series["treatment"]
    out = [
        f'<svg class="cumulative" data-treatment="{_e(treatment)}" width="{WIDTH}" '
        f'height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="cumulative relative difference of {_e(metric)} by day, {_e(treatment)} '
        f'against control" font-family="system-ui, Liberation Sans, sans-serif" '
        'font-size="12">',
        f'<text x="{LEFT}" y="13" font-weight="600" fill="#1f2328">{_e(treatment)}: '
        f"{_e(metric)}, cumulative difference [{_e(_interval_name(report))}]</text>",
    ]
    for tick in ticks:
        at = f"{y(tick):.1f}"
        out.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{at}" y2="{at}" stroke="#eaeef2"/>'
            f'<text x="{LEFT - 6}" y="{at}" dy="4" text-anchor="end" fill="#57606a">'
            f"{_tick(tick)}</text>"
        )
    banded = [(i, p) for i, p in enumerate(points) if _num(p["ci_low"]) is not None]
    if banded:
        upper = [
            f"{x(i):.1f},{y(high if _num(p['ci_high']) is None else p['ci_high']):.1f}"
            for i, p in banded
        ]
        lower = [f"{x(i):.1f},{y(p['ci_low']):.1f}" for i, p in reversed(banded)]
        out.append(
            f'<polygon class="band" points="{" ".join(upper + lower)}" fill="{BAND}" '
            'fill-opacity="0.7"/>'
        )
    zero = f"{y(0):.1f}"
    out.append(
        f'<line class="zero" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{zero}" y2="{zero}" '
        'stroke="#1f2328" stroke-width="1.5"/>'
    )
    dots = [
        (i, p, d) for i, p in enumerate(points) if (d := _num(p["relative_difference"])) is not None
    ]
    if len(dots) > 1:
        line = " ".join(f"{x(i):.1f},{y(d):.1f}" for i, _, d in dots)
        out.append(f'<polyline points="{line}" fill="none" stroke="{LINE}" stroke-width="2"/>')
    for i, point, difference in dots:
        users = sum(point["users"].values())
        out.append(
            f'<circle class="point" data-day="{_e(point["day"])}" cx="{x(i):.1f}" '
            f'cy="{y(difference):.1f}" r="4" fill="{LINE}"><title>{_e(point["day"])}: '
            f"{_e(_difference(point))}, {users:,} users</title></circle>"
        )
    step = max(1, len(points) // 8)  # at most about 8 day labels
    for i, point in enumerate(points):
        if i % step == 0 or i == len(points) - 1:
            out.append(
                f'<text x="{x(i):.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle" '
                f'fill="#57606a">{_e(point["day"][5:])}</text>'
            )
    out.append(
        f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 10}" text-anchor="middle" '
        'fill="#57606a">day (UTC), users exposed up to its end</text></svg>'
    )
    return "".join(out)


def _axis(points: list[dict[str, Any]]) -> tuple[float, float]:
    """Every estimate and 0; interval ends within [-100%, the cap]; a little padding."""
    estimates = [v for p in points if (v := _num(p["relative_difference"])) is not None]
    ends = [v for p in points for k in ("ci_low", "ci_high") if (v := _num(p[k])) is not None]
    cap = max(1.0, 2 * max((abs(v) for v in estimates), default=0.0))
    low = max(min([0.0, *estimates, *ends]), -1.0)
    high = min(max([0.0, *estimates, *ends]), cap)
    if high - low < 0.002:
        low, high = low - 0.01, high + 0.01
    pad = 0.04 * (high - low)
    return max(low - pad, -1.0), high + pad
