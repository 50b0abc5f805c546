"""The HTML page's tables: the variants, the metrics (each treatment against the control) and
the attribution counts. A cell whose number the report leaves None shows NONE, with the row's
note as a tooltip and a numbered footnote."""

from __future__ import annotations

from typing import Any

from training.ab.html_format import (
    NEUTRAL,
    NONE,
    UP,
    _colour,
    _difference,
    _e,
    _Footnotes,
    _interval_name,
    _num,
    _p,
    _share,
    _value,
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
