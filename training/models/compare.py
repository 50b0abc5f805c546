"""`recsvc compare`: several models (parameter sets) and the baselines scored on ONE split,
with each one's interval and the paired difference of each against the first (the reference).

A candidate is written `NAME:key=value,key=value`, the keys being FitParams fields
(`algorithm`, `factors`, `regularization`, `alpha`, `confidence`, `iterations`,
`trending_hours`, `trending_weight`, ...); the ones left out keep their defaults. Every
candidate is fitted on the same training part and scored on the same evaluation set, so the
differences are paired over the same users (training.evaluation.intervals).
"""

from __future__ import annotations

import difflib
import time
from dataclasses import dataclass, fields
from typing import Any

from training.data.matrix import ConfidenceWeights
from training.data.splits import SplitSpec, split
from training.evaluation.evaluate import EvalSpec, ScorerReport, evaluate, evaluation_set
from training.evaluation.intervals import versus
from training.models.factors import FitParams, fit
from training.models.pipeline import (
    Source,
    Stages,
    baselines,
    load_dataset,
    model_scorer,
    retired_items,
)

PARAM_TYPES = {f.name: f.type for f in fields(FitParams)}


@dataclass(frozen=True)
class Candidate:
    name: str
    params: FitParams


def parse_candidate(text: str, seed: int = FitParams().seed) -> Candidate:
    """'NAME:key=value,...' -> a Candidate; a bad key or value is named, with a suggestion."""
    name, colon, rest = text.partition(":")
    name = name.strip()
    if not colon or not name:
        raise ValueError(
            f"candidate {text!r}: write it NAME:key=value,... (e.g. 'ease:algorithm=ease')"
        )
    values: dict[str, Any] = {"seed": seed}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, equals, raw = (s.strip() for s in part.partition("="))
        if key not in PARAM_TYPES:
            close = difflib.get_close_matches(key, PARAM_TYPES, n=1)
            hint = (
                f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(PARAM_TYPES)}"
            )
            raise ValueError(f"candidate {name!r}: unknown parameter {key!r}{hint}")
        if not equals:
            raise ValueError(f"candidate {name!r}: {key!r} has no value (write {key}=...)")
        kind = PARAM_TYPES[key]
        try:
            values[key] = int(raw) if kind == "int" else float(raw) if kind == "float" else raw
        except ValueError:
            raise ValueError(f"candidate {name!r}: {key}={raw!r} is not a number") from None
    if values.get("algorithm", "als") not in ("als", "bpr", "ease"):
        raise ValueError(f"candidate {name!r}: algorithm must be als, bpr or ease")
    if values.get("confidence", "linear") not in ("linear", "log"):
        raise ValueError(f"candidate {name!r}: confidence must be linear or log")
    try:
        return Candidate(name, FitParams(**values))
    except ValueError as exc:
        raise ValueError(f"candidate {name!r}: {exc}") from None


def run_compare(
    source: Source,
    split_spec: SplitSpec,
    candidates: list[Candidate],
    *,
    weights: ConfidenceWeights | None = None,
    eval_spec: EvalSpec | None = None,
    threads: int | None = None,
) -> dict[str, Any]:
    """Fit each candidate on the training part; score them and the baselines on the test
    part; intervals, and paired differences against the first candidate."""
    if not candidates:
        raise ValueError("compare needs at least one candidate")
    names = [c.name for c in candidates]
    if len(set(names)) != len(names):
        raise ValueError(f"candidate names must differ: {names}")
    started = time.perf_counter()
    eval_spec = eval_spec or EvalSpec()
    dataset, data = load_dataset(source, weights or ConfidenceWeights(), Stages())
    train, test = split(dataset, split_spec)
    index = dataset.interactions.index
    retired = retired_items(source.catalog, index) if source.catalog is not None else None
    evaluated = evaluation_set(train.interactions, test, eval_spec, retired)
    if len(evaluated.users) == 0:
        raise ValueError(f"the {split_spec.protocol.value} split leaves no user to evaluate")
    scored: dict[str, ScorerReport] = {}
    fit_seconds: dict[str, float] = {}
    for candidate in candidates:
        factors = fit(train.interactions.confidence, candidate.params, threads=threads)
        fit_seconds[candidate.name] = round(factors.fit_seconds, 3)
        scorer = model_scorer(factors, train)
        scorer.name = candidate.name
        scored[candidate.name] = evaluate(scorer, evaluated, eval_spec)
    for baseline in baselines(train):
        if baseline.name in scored:
            raise ValueError(f"a candidate may not be named {baseline.name!r} (a baseline's name)")
        scored[baseline.name] = evaluate(baseline, evaluated, eval_spec)
    reference = scored[candidates[0].name]
    k, product_k = eval_spec.k, eval_spec.product_k
    rows = []
    for name, report in scored.items():
        row = {"name": name, **report.as_dict()}
        if name in fit_seconds:
            row["params"] = next(c.params for c in candidates if c.name == name).as_dict()
            row["fit_seconds"] = fit_seconds[name]
        if name != reference.name:
            row["versus_reference"] = _against(versus(report, reference, k, product_k))
        rows.append(row)
    return {
        "reference": reference.name,
        "protocol": split_spec.protocol.value,
        "k": k,
        "product_k": product_k,
        "evaluated_users": len(evaluated.users),
        "data": data,
        "rows": rows,
        "seconds": round(time.perf_counter() - started, 3),
    }


def _against(comparison: dict[str, Any]) -> dict[str, Any]:
    """versus()'s output as 'this row minus the reference': each metric's difference."""
    return {metric: parts["difference"] for metric, parts in comparison["metrics"].items()}


def compare_text(report: dict[str, Any]) -> str:
    """The comparison as a table: each row's metrics and its difference to the reference."""
    k, product_k = report["k"], report["product_k"]
    lines = [
        f"Compare: protocol {report['protocol']}, {report['evaluated_users']:,} users; "
        f"differences are each row minus {report['reference']!r}, with 95% bootstrap "
        "intervals over the same users",
        "",
        f"  {'':<16}{'NDCG@' + str(k):>9}{'difference':>32}{'hit@' + str(product_k):>9}"
        f"{'difference':>32}",
    ]
    for row in report["rows"]:
        against = row.get("versus_reference", {})
        has_videos = row["users"] > 0
        ndcg = f"{row[f'ndcg_at_{k}']:.4f}" if has_videos else "-"
        hit = row["product_hit_rate"]
        lines.append(
            f"  {row['name']:<16}{ndcg:>9}{_difference(against.get(f'ndcg_at_{k}')):>32}"
            f"{'-' if hit is None else f'{hit:.4f}':>9}"
            f"{_difference(against.get('product_hit_rate')):>32}"
        )
    lines += ["", "  * the interval excludes 0: a difference beyond the noise of these users"]
    return "\n".join(lines)


def _difference(interval: dict[str, float] | None) -> str:
    if interval is None:
        return "-"
    mark = " *" if interval["low"] > 0 or interval["high"] < 0 else "  "
    return f"{interval['value']:+.4f} [{interval['low']:+.4f}, {interval['high']:+.4f}]{mark}"
