"""How the HTML page shows the report's values: numbers (a number the report leaves None, NaN or
infinite is shown as NONE), the colours of significance, the numbered footnotes, and escaping
(every string from the report is escaped)."""

from __future__ import annotations

import math
from html import escape
from typing import Any

from training.ab.glossary import AMOUNTS

NONE = "–"  # what a missing number shows
UP, DOWN, NEUTRAL = "#1a7f37", "#cf222e", "#8c959f"  # significant up / down, not significant


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


def _value(value: Any, kind: str, unit: str | None = None) -> str:
    number = _num(value)
    if number is None:
        return NONE
    if unit:
        return f"{number:,.2f} {unit}"
    return f"{number:.2%}" if kind == "ratio" else f"{number:,.3f}"


def _unit(row: dict[str, Any], report: dict[str, Any]) -> str | None:
    """The currency of an amount metric's row; None for every other metric."""
    return report.get("currency") if row["metric"] in AMOUNTS else None


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
    if number >= 1:  # an always-valid p-value before any evidence: "1", not "1.0000"
        return "1"
    return "<0.0001" if number < 0.0001 else f"{number:.4f}"


def _clip(text: str, length: int) -> str:
    return text if len(text) <= length else text[: length - 1] + "…"


def _e(text: str) -> str:
    return escape(str(text), quote=True)
