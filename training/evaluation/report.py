"""Human-readable summaries of the JSON reports the offline jobs produce."""

from __future__ import annotations

from typing import Any

COLUMNS = ("precision", "recall", "ndcg", "map", "coverage")


def _number(value: Any, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _params(params: dict[str, Any], half_life_days: float | None = None) -> str:
    """The fit parameters worth a glance; the trending prior, attach weights and recency
    only where they differ from off and the defaults."""
    shown = ("algorithm", "factors", "regularization", "alpha", "confidence", "iterations")
    parts = [
        f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}"
        for key, value in params.items()
        if key in shown
    ]
    if params.get("trending_weight"):
        parts.append(f"trending {params['trending_weight']:g} over {params['trending_hours']:g} h")
    attach = (params.get("attach_user_weight", 1.0), params.get("attach_video_weight", 1.0))
    if attach != (1.0, 1.0):
        parts.append(f"attach a={attach[0]:g}, b={attach[1]:g}")
    if half_life_days is not None:
        parts.append(f"half-life {half_life_days:g} d")
    return ", ".join(parts)


def _half_life(report: dict[str, Any]) -> float | None:
    """The recency the tuner chose, if it chose one."""
    tuning = report.get("tuning") or {}
    chosen = tuning.get("half_life_days")
    return float(chosen) if chosen is not None else None


def data_lines(data: dict[str, Any]) -> list[str]:
    validation = data["validation"]
    bad = validation.get("bad_counts", {})
    bad_text = ", ".join(f"{reason} {count:,}" for reason, count in bad.items() if count) or "none"
    return [
        f"Data: {data['source']}",
        f"  rows read {validation['rows_read']:,}, accepted {validation['rows_accepted']:,}, "
        f"bad by reason: {bad_text}",
        f"  {data['users']:,} users, {data['videos']:,} videos, {data['products']:,} products, "
        f"{data['nonzeros']:,} user-item pairs; events {data['window']['first_event']} "
        f"to {data['window']['last_event']}",
    ]


def tuning_lines(tuning: dict[str, Any] | None, top: int = 5) -> list[str]:
    if not tuning:
        return ["Tuning: off (parameters as given)"]
    trials = tuning["trials"]
    lines = [
        f"Tuning: {len(trials)} trials in {tuning['seconds']:.1f} s; objective "
        f"{tuning['objective']} on a {tuning['validation']}",
        f"  {'#':>4} {'phase':<8} {'score':>7} {'secs':>6}  params",
    ]
    among = set(tuning.get("chosen_among") or [t["phase"] for t in trials])
    if among != {t["phase"] for t in trials}:
        lines.insert(1, f"  chosen among the {', '.join(sorted(among))} trials (listed first)")
    ranked = sorted(
        trials,
        key=lambda t: (t["phase"] in among, t["score"] if t["score"] is not None else -1),
        reverse=True,
    )
    for trial in ranked[:top]:
        lines.append(
            f"  {trial['number']:>4} {trial['phase']:<8} {_number(trial['score'])} "
            f"{trial['seconds']:>6.2f}  {_params(trial['params'], trial.get('half_life_days'))}"
        )
    return lines


def _metric_row(name: str, row: dict[str, Any], k: int) -> str:
    cells = [_number(row.get(f"{column}_at_{k}")) for column in COLUMNS]
    hit = _number(row.get("product_hit_rate"))
    return f"  {name:<11}" + "".join(f"{cell:>13}" for cell in cells) + f"{hit:>14}"


def evaluation_text(report: dict[str, Any]) -> str:
    """The evaluation report as a short page of text."""
    k, product_k = report["k"], report["product_k"]
    lines = [
        f"Evaluation: protocol {report['protocol']}, {report['evaluated_users']:,} users "
        f"evaluated ({report['cold_users']:,} held-out users without training data skipped)",
        *data_lines(report["data"]),
        *tuning_lines(report["tuning"]),
        f"Model: {_params(report['params'], _half_life(report))}",
        "",
        f"  {'':<11}"
        + "".join(f"{c + '@' + str(k):>13}" for c in COLUMNS)
        + f"{'product hit@' + str(product_k):>14}",
        _metric_row("model", report, k),
    ]
    lines += [_metric_row(name, row, k) for name, row in report["baselines"].items()]
    lines += ["", *comparison_lines(report)]
    if report.get("attach"):
        attach = report["attach"]
        a, b = attach["weights"]
        lines.append(
            f"Cards: {attach['hit_rate']:.1%} of {attach['pairs']:,} held-out purchases were on "
            f"the buyer's page (attach weights a={a:g}, b={b:g})"
        )
    today = report.get("today")
    if today and today["users"]:
        ndcg = today["ndcg_at_10"]
        lines.append(
            f"Today: the published vector blended with the fold-in of the day's first events at "
            f"weight {today['weight']:g} (NDCG@10 of the day's later videos "
            f"{ndcg[str(today['weight'])]:.4f}, last night's vector alone {ndcg['0.0']:.4f}; "
            f"{today['users']:,} users)"
        )
    stages = ", ".join(f"{name} {s['seconds']:.1f}s" for name, s in report["stages"].items())
    lines.append(f"Time: {report['seconds']:.1f} s ({stages})")
    return "\n".join(lines)


def comparison_lines(report: dict[str, Any]) -> list[str]:
    """How the model compares with popularity and, where known, the oracle."""
    k = report["k"]
    keys = [(f"precision_at_{k}", f"P@{k}"), ("product_hit_rate", "product hit rate")]
    lines = []
    for baseline, verb in (("popularity", "vs popularity"), ("oracle", "share of oracle")):
        row = report["baselines"].get(baseline)
        if row is None:
            continue
        parts = []
        for key, label in keys:
            ours, theirs = report.get(key), row.get(key)
            if ours is None or not theirs:
                continue
            ratio = ours / theirs
            parts.append(
                f"{label} {ratio:.2f}x" if baseline == "popularity" else f"{label} {ratio:.0%}"
            )
        if parts:
            lines.append(f"Model {verb}: " + ", ".join(parts))
    versus = report.get("vs_popularity") or {}
    for key, metric in versus.get("metrics", {}).items():
        diff = metric["difference"]
        label = "product hit rate" if key == "product_hit_rate" else f"video NDCG@{k}"
        lines.append(
            f"  {label} difference with popularity {diff['value']:+.4f}, "
            f"{versus['level']:.0%} interval [{diff['low']:+.4f}, {diff['high']:+.4f}] "
            "(paired bootstrap over users)"
        )
    lines += [f"WARNING: {warning}" for warning in report.get("warnings", [])]
    return lines


def training_text(report: dict[str, Any]) -> str:
    """The training report as a short page of text."""
    stages = ", ".join(f"{name} {s['seconds']:.1f}s" for name, s in report["stages"].items())
    peak = max(s["peak_rss_mb"] for s in report["stages"].values())
    return "\n".join(
        [
            *data_lines(report["data"]),
            *tuning_lines(report["tuning"]),
            f"Model: {_params(report['params'], _half_life(report))}",
            f"Factors written to {report['out']}",
            *(
                [f"Model version exported to {report['model_dir']}", segments_line(report)]
                if "model_dir" in report
                else []
            ),
            f"Time: {report['seconds']:.1f} s ({stages}); peak memory {peak:,.0f} MB",
        ]
    )


def segments_line(report: dict[str, Any]) -> str:
    """What the exported model knows of segments (its fallback for users it cannot rank)."""
    found = report.get("segments")
    if not found or not found["segments"]:
        where = f" in {found['source']}" if found else " (no --users file)"
        return f"No segment popularity: no trained user has a segment{where}"
    return (
        f"Segment popularity: {found['segments']} segments, {found['users']:,} of "
        f"{report['data']['users']:,} users (from {found['source']})"
    )
