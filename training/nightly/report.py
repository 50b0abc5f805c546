"""A nightly run's report on disk: the JSON (every figure, for machines and the history chart)
and its short summary (.txt, and the CLI's output: what an engineer reads in the morning).

Both are written under a temporary name beside the file and renamed into place.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from training.evaluation.report import segments_line


def write_report(report_dir: Path, code: int, report: dict[str, Any]) -> Path:
    """The JSON report and its summary (.txt) under `report_dir`; the JSON's path."""
    report_dir.mkdir(parents=True, exist_ok=True)
    path = report_dir / f"nightly-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    text = json.dumps({"exit_code": code, **report}, indent=2, default=str) + "\n"
    _write_atomically(path, text)
    _write_atomically(path.with_suffix(".txt"), summary(code, report) + "\n")
    return path


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def summary(code: int, report: dict[str, Any]) -> str:
    """The short human summary of a run's report: what an engineer reads in the morning."""
    decision = report.get("decision", "failed")
    if "published" in report:
        decision = f"published as {report['published']['role']}"
    lines = [f"nightly: {decision} (exit {code})"]
    if "error" in report:
        lines.append(f"  error: {report['error']}")
    drained, data = report.get("drain", {}), report.get("data", {})
    if drained:
        lines.append(
            f"  drained {drained.get('read', 0):,} events "
            f"({drained.get('already_written', 0):,} already written by an earlier run) and "
            f"{drained.get('exposures', 0):,} exposures"
        )
    erased = report.get("erasures", {})
    if erased.get("users"):
        lines.append(
            f"  erasures finished: {erased['users']:,} users; {erased['rows_removed']:,} rows "
            f"removed from the partitions, {erased['stream_entries_deleted']:,} stream entries "
            f"and {erased['keys_deleted']:,} keys deleted"
        )
    if data:
        window = data.get("window", {})
        lines.append(
            f"  window {window.get('first_event')} to {window.get('last_event')}: "
            f"{data.get('events', 0):,} events, {data.get('users', 0):,} users, "
            f"{data.get('nonzeros', 0):,} user-item pairs"
        )
        bad = {r: n for r, n in data.get("validation", {}).get("bad_counts", {}).items() if n}
        lines.append("  bad rows: " + (", ".join(f"{r} {n:,}" for r, n in bad.items()) or "none"))
    if "segments" in report:
        lines.append(f"  {segments_line(report)}")
    tuning = report.get("tuning")
    if tuning:
        trials = tuning.get("trials", [])
        lines.append(
            f"  tuner: {len(trials)} trials in {tuning.get('seconds')}s, best "
            f"{tuning.get('objective')} {_number(tuning.get('best_score'))}"
        )
        for trial in trials:
            score, params = _number(trial["score"]), _params(trial["params"])
            lines.append(f"    #{trial['number']:<3} {trial['phase']:<7} {score}  {params}")
    metrics = report.get("metrics", {})
    if metrics:
        lines.append(
            f"  holdout from {report.get('holdout_from')}: P@10, NDCG@10 "
            f"(live model {report.get('live_version')})"
        )
        for name, scores in metrics.items():
            lines.append(
                f"    {name:<16} {_number(scores.get('precision_at_10'))}  "
                f"{_number(scores.get('ndcg_at_10'))}"
            )
    checked = report.get("catalog_check")
    if isinstance(checked, dict):
        lines.append(
            f"  catalogue: {checked['live_videos']:,} live videos, {checked['live_products']:,} "
            f"live products; {len(checked['new_items'])} new and unknown to the model"
        )
    elif checked:
        lines.append(f"  catalogue: {checked}")
    for reason in report.get("reasons", []):
        lines.append(f"  - {reason}")
    if "published" in report:
        published = report["published"]
        lines.append(
            f"  published {published['version']} as {published['role']}: "
            f"{published['users']:,} users, generation {published['generation']}"
        )
    if report.get("prune_warning"):
        lines.append(f"  warning: {report['prune_warning']}")
    if report.get("pruned"):
        lines.append(f"  pruned from disk: {', '.join(report['pruned'])}")
    stages = report.get("stages", {})
    if stages:
        lines.append("  time: " + ", ".join(f"{k} {v['seconds']}s" for k, v in stages.items()))
    return "\n".join(lines)


def _params(params: dict[str, Any]) -> str:
    shown = ("factors", "regularization", "alpha", "confidence", "iterations")
    return ", ".join(
        f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
        for k, v in params.items()
        if k in shown
    )


def _number(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, int | float) else "-"
