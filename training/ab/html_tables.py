"""The HTML page's tables: the variants, the metrics (each treatment against the control), the
breakdowns by segment, lifecycle and surface, the attribution counts and the glossary. A cell
whose number the report leaves None shows NONE, with the row's note as a tooltip and a
numbered footnote."""

from __future__ import annotations

from typing import Any

from training.ab.breakdown import shown_metrics
from training.ab.glossary import glossary
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
    _unit,
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
            (_value(row["control"], kind, _unit(row, report)), row["control"]),
            (_value(row["treatment"], kind, _unit(row, report)), row["treatment"]),
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


def _breakdown_tables(report: dict[str, Any], notes: _Footnotes) -> str:
    """One table per dimension (class "breakdown", data-dimension): per group and treatment
    the shown metrics' rows, or "too few users"."""
    found = report.get("breakdowns")
    if not found:
        return ""
    control, shown = report["control"], shown_metrics(report)
    out = []
    for dimension in found["dimensions"]:
        head = (
            f"<tr><th>{_e(dimension['dimension'])}</th><th>treatment</th><th>metric</th>"
            f"<th>users <small>{_e(control)} / treatment</small></th><th>control</th>"
            f"<th>treatment value</th><th>difference <small>[{_e(_interval_name(report))}]"
            "</small></th><th>p <small>(uncorrected)</small></th><th></th></tr>"
        )
        body = []
        for group in dimension["groups"]:
            for comparison in group["comparisons"]:
                name = comparison["treatment"]
                start = f'<td class="name">{_e(group["group"])}</td><td>{_e(name)}</td>'
                counts = [group["users"].get(n) for n in (control, name)]
                users = f"<td>{' / '.join(_share(n, ',.0f') for n in counts)}</td>"
                if comparison["too_few_users"]:
                    body.append(
                        f'<tr class="too-few" data-group="{_e(group["group"])}">{start}'
                        f"<td>{_e(', '.join(shown))}</td>{users}"
                        f'<td colspan="5" class="missing">too few users (fewer than '
                        f"{found['min_users']} in a variant)</td></tr>"
                    )
                    continue
                for row in comparison["metrics"]:
                    if row["metric"] in shown:
                        body.append(_breakdown_row(group["group"], start, users, row, report,
                                                   notes))  # fmt: skip
        out.append(
            f'<div class="wide"><table class="breakdown" '
            f'data-dimension="{_e(dimension["dimension"])}">{head}{"".join(body)}</table></div>'
        )
    return "".join(out)


def _breakdown_row(
    group: str,
    start: str,
    users: str,
    row: dict[str, Any],
    report: dict[str, Any],
    notes: _Footnotes,
) -> str:
    kind, unit, note = row["kind"], _unit(row, report), row.get("note")
    cells = [
        (_value(row["control"], kind, unit), row["control"]),
        (_value(row["treatment"], kind, unit), row["treatment"]),
        (_difference(row), row["relative_difference"]),
        (_p(row["p_value"]), row["p_value"]),
    ]
    lead = row["excludes_zero"]
    return (
        f'<tr class="{"lead" if lead else ""}" data-group="{_e(group)}" '
        f'data-metric="{_e(row["metric"])}">{start}<td>{_e(row["metric"])}</td>{users}'
        + "".join(
            _cell(text, note if _num(value) is None else None, notes) for text, value in cells
        )
        + f"<td>{'misses 0: a lead' if lead else ''}</td></tr>"
    )


def _glossary(report: dict[str, Any]) -> str:
    """Every metric and term of the page in plain words (training.ab.glossary)."""
    items = "".join(
        f'<dt id="term-{_e(term.split()[0].strip(","))}">{_e(term)}</dt><dd>{_e(words)}</dd>'
        for term, words in glossary(report)
    )
    return f'<dl class="glossary">{items}</dl>'
