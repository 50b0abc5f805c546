"""The A/B report (training.ab.report's dict) as a terminal table."""

from __future__ import annotations

from typing import Any

from training.ab.breakdown import shown_metrics
from training.ab.glossary import sequential_words
from training.ab.stats import METRICS


def report_text(report: dict[str, Any]) -> str:
    """The report as a terminal table: one row per metric and treatment, then SRM and
    attribution."""
    control = report["control"]
    mode = "sequential (always valid)" if report["sequential"] else "fixed horizon"
    confidence = f"{1 - report['alpha']:.0%}" + (" always-valid" if report["sequential"] else "")
    currency = report.get("currency")
    lines = [
        f"A/B report: {report['experiment']} (control {control}; {mode}, alpha "
        f"{report['alpha']:g}; attribution window {report['window_hours']:g} h)",
        *_about(report),
        *(
            f"VERDICT ({v['treatment']}): {v['decision'].upper()}: {v['reason']}"
            for v in report.get("verdicts", [])
        ),
        "",
        f"{'variant':<20} {'weight':>7} {'users':>10} {'exposures':>12}",
    ]
    for variant in report["variants"]:
        lines.append(
            f"{variant['name']:<20} {variant['weight']:>7.1%} {variant['users']:>10,} "
            f"{variant['exposures']:>12,}"
        )
    lines += [
        "",
        f"{'metric':<23} {control[:12]:>12} {'vs variant':<14} {'value':>10}  "
        f"{'difference [' + confidence + ' CI]':<30} {'p':>8} {'Holm p':>8}",
    ]
    for i, metric in enumerate(METRICS):
        for j, comparison in enumerate(report["comparisons"]):
            row = comparison["metrics"][i]
            name = metric.name if j == 0 else ""
            unit = currency if metric.amount else None
            value = _value(row["control"], metric.kind, unit) if j == 0 else ""
            mark = (
                f" * {row['winner']} wins"
                if row["significant"] and row.get("winner")
                else (" *" if row["significant"] else "")
            )
            lines.append(
                f"{name:<23} {value:>12} {comparison['treatment'][:14]:<14} "
                f"{_value(row['treatment'], metric.kind, unit):>10}  {_difference(row):<30} "
                f"{_p(row['p_value']):>8} {_p(row['adjusted_p']):>8}{mark}"
            )
    srm = report["srm"]
    lines += [
        f"* significant after Holm correction across metrics at alpha {report['alpha']:g}",
        *([sequential_words(report)] if report["sequential"] else []),
        "",
        ("SRM ALARM: the split of users is not the definition's, do not trust the metrics: "
         if srm["alarm"] else "SRM ok: ") + srm["message"],
    ]  # fmt: skip
    a = report["attribution"]
    lines.append(
        f"attribution: {a['events_read']:,} events read; {a['attributed_by_request_id']:,} "
        f"attributed by request id, {a['attributed_by_window']:,} by window; "
        f"{a['not_attributed']:,} not attributed ({a['before_first_exposure']:,} before the "
        f"first exposure, {a['outside_window']:,} outside the window, {a['not_shown']:,} of "
        f"items not shown); {a['ignored']:,} ignored; {a['users_excluded']:,} users excluded"
    )
    lines += _breakdowns(report) + _cumulative(report)
    lines += [f"note: {note}" for note in report["notes"]]
    return "\n".join(lines)


def _breakdowns(report: dict[str, Any]) -> list[str]:
    """Per dimension and group, the shown metrics' rows of each treatment (none: too few)."""
    found = report.get("breakdowns")
    if not found:
        return []
    control, shown = report["control"], shown_metrics(report)
    kinds = {m.name: m for m in METRICS}
    lines = [
        "",
        f"breakdowns of {', '.join(shown)} (each user in the group of their first exposure; "
        f"'unknown': not recorded; fewer than {found['min_users']} users in a variant: too few)",
        f"caution: {found['caution']}",
    ]
    for dimension in found["dimensions"]:
        lines.append(
            f"{'by ' + dimension['dimension']:<20} {'metric':<23} {'vs variant':<14} "
            f"{'users':>13} {control[:12]:>12} {'value':>10}  difference"
        )
        for group in dimension["groups"]:
            for comparison in group["comparisons"]:
                name = comparison["treatment"]
                users = f"{group['users'][control]:,}/{group['users'][name]:,}"
                head = f"  {group['group'][:18]:<18} "
                if comparison["too_few_users"]:
                    lines.append(f"{head}{'-':<23} {name[:14]:<14} {users:>13} too few users")
                    continue
                for row in comparison["metrics"]:
                    if row["metric"] not in shown:
                        continue
                    metric = kinds[row["metric"]]
                    unit = report.get("currency") if metric.amount else None
                    mark = " (interval misses 0, uncorrected)" if row["excludes_zero"] else ""
                    lines.append(
                        f"{head}{metric.name:<23} {name[:14]:<14} {users:>13} "
                        f"{_value(row['control'], metric.kind, unit):>12} "
                        f"{_value(row['treatment'], metric.kind, unit):>10}  "
                        f"{_difference(row)}{mark}"
                    )
    return lines


def _cumulative(report: dict[str, Any]) -> list[str]:
    """The primary metric's difference as each day's report would have given it."""
    found = report.get("cumulative")
    if not found or not found["series"]:
        return []
    which = "" if found.get("primary") else " (no primary metric named: the first metric)"
    lines = [
        "",
        f"cumulative effect on {found['metric']}{which}, by day (UTC), on the users exposed up "
        "to the day's end:",
    ]
    for series in found["series"]:
        for point in series["points"]:
            users = sum(point["users"].values())
            lines.append(
                f"  {point['day']}  {series['treatment'][:14]:<14} {users:>9,} users  "
                f"{_difference(point):<30} p {_p(point['p_value'])}"
            )
    return lines


def _value(value: float | None, kind: str, unit: str | None = None) -> str:
    if value is None:
        return "-"
    if unit:
        return f"{value:,.2f} {unit}"
    return f"{value:.2%}" if kind == "ratio" else f"{value:,.3f}"


def _difference(row: dict[str, Any]) -> str:
    if row["relative_difference"] is None:
        return "-"
    text = f"{row['relative_difference']:+.1%}"
    if row["ci_low"] is not None:
        high = "inf" if row["ci_high"] is None else f"{row['ci_high']:+.1%}"
        text += f" [{row['ci_low']:+.1%}, {high}]"
    return text


def _p(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 1:  # an always-valid p-value before any evidence: "1", not "1.0000"
        return "1"
    return "<0.0001" if value < 0.0001 else f"{value:.4f}"


def _about(report: dict[str, Any]) -> list[str]:
    """What the definition says of the experiment, and the data's dates (lines that have
    something to say only)."""
    about, period = report.get("definition") or {}, report.get("period") or {}
    lines = []
    if about.get("owner") or about.get("hypothesis"):
        lines.append(
            f"owner: {about.get('owner') or '-'}; hypothesis: {about.get('hypothesis') or '-'}"
        )
    if about.get("primary_metric") or about.get("guardrails"):
        guards = ", ".join(about.get("guardrails") or []) or "none"
        lines.append(f"primary metric: {about.get('primary_metric') or '-'}; guardrails: {guards}")
    if about.get("start") or about.get("end"):
        lines.append(f"scheduled: {about.get('start') or 'open'} to {about.get('end') or 'open'}")
    if period.get("first_exposure"):
        lines.append(
            f"data: exposures from {period['first_exposure']} to {period['last_exposure']} "
            f"({period['days']:g} days)"
        )
    return lines
