"""Hyper-parameter search under a time or trial budget, on a validation split carved out of
the training data only (the test part is never seen while choosing).

The search starts from the default parameters. An ALS search on a catalogue small enough for
EASE shares its time with EASE, the two families taking turns (time in proportion to the
parameters each searches), each walked by its own Optuna TPE study (training.models.search).
On a random (per-pair) split the best three of each family are then scored on two more random
splits, and the choice goes by the mean over the three. Where the validation split has event
times (the temporal protocol), 55% of a clock budget goes to the late phases
(training.models.tuner_phases): the trending prior for the best fit (every window and weight
of one grid, off included), the best so far as a seed ensemble (FitParams.ensemble, its
prior's weight chosen again), recency, then the next fit's prior, each chosen by its mean
over the validation day and the two days before it. Elsewhere the best is tried as a
seed ensemble on the splits its own score is a mean over. Then the attach weights. Every
trial is recorded, so the report can say what was tried and what it scored.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from tqdm import tqdm

from training.data.splits import Dataset, Protocol, SplitSpec, split
from training.evaluation.evaluate import (
    EvalSpec,
    FactorScorer,
    PopularityScorer,
    ScorerReport,
    evaluate,
    evaluation_set,
)
from training.models.ease import EASE_MAX_ITEMS
from training.models.factors import FitParams, ModelFitError, fit
from training.models.search import FamilySearch, Sampler, space
from training.models.tuner_phases import (
    ENSEMBLE,
    TRENDING_LEADERS,
    Fold,
    Trial,
    attach_choice,
    chosen_among,
    ensemble_trials,
    recency_trials,
    revalidated,
    revalidation_folds,
    temporal_folds,
    trending_leaders,
    trending_trials,
    with_half_life,
)

TRENDING_SHARE = 0.55  # of a clock budget, kept for the trending prior's grid, the ensemble
# and recency
REVALIDATE_SHARE = 0.25  # of a clock budget on a per-pair split: revalidation and the ensemble
# EASE joins an ALS search only where its fit is cheap: its Gram inversion grows
# with items³ (about 1 s at 2,000 items on 2 cores, 30 s and more at 6,000), and a family with
# a handful of trials in its share of the search cannot show what it is worth.
EASE_SHARE_ITEMS = 2_500


@dataclass(frozen=True)
class TuneBudget:
    seconds: float = 120.0
    # when set, this many search trials (the late phases' grids come on top) and no clock:
    # reproducible
    max_trials: int | None = None

    def __post_init__(self) -> None:
        if self.seconds <= 0 or (self.max_trials is not None and self.max_trials < 1):
            raise ValueError("the tuning budget needs seconds > 0 and max_trials >= 1")


@dataclass(frozen=True)
class Objective:
    """What the tuner maximises on its validation split: the weighted mean of the video
    NDCG@k and the product hit rate@k' (EvalSpec's k and product_k). A part the validation
    split cannot measure (no video held out, no product bought) drops out, so videos-only
    data tunes on videos and products-only data on products; a weight of 0 leaves a part out
    on purpose. Equal weights by default: both metrics lie in [0, 1]."""

    video_weight: float = 1.0
    product_weight: float = 1.0

    def __post_init__(self) -> None:
        weights = (self.video_weight, self.product_weight)
        if not all(np.isfinite(w) and w >= 0 for w in weights) or sum(weights) == 0:
            raise ValueError(
                f"objective weights must be finite, >= 0 and not both 0, not {weights}"
            )

    def parts(self, report: ScorerReport) -> list[tuple[str, float, float]]:
        """(name, weight, value) of each part the report measures and the weights keep."""
        parts = []
        if self.video_weight > 0 and report.videos.users > 0:
            parts.append(("video ndcg", self.video_weight, report.videos.ndcg))
        if self.product_weight > 0 and report.product_hit_rate is not None:
            parts.append(("product hit rate", self.product_weight, report.product_hit_rate))
        return parts

    def score(self, report: ScorerReport) -> float:
        parts = self.parts(report)
        if not parts:
            return 0.0
        return sum(w * v for _, w, v in parts) / sum(w for _, w, _ in parts)

    def describe(self, report: ScorerReport, spec: EvalSpec) -> str:
        """The objective as measured, e.g. '(1×video NDCG@10 + 1×product hit rate@5) / 2'."""
        names = {
            "video ndcg": f"video NDCG@{spec.k}",
            "product hit rate": f"product hit rate@{spec.product_k}",
        }
        parts = self.parts(report)
        if not parts:
            return "nothing the weights keep can be measured on this data"
        if len(parts) == 1:
            return names[parts[0][0]]
        total = sum(w for _, w, _ in parts)
        return "(" + " + ".join(f"{w:g}×{names[n]}" for n, w, _ in parts) + f") / {total:g}"


@dataclass
class TuneResult:
    best: FitParams
    best_score: float
    objective: str
    validation: str
    seconds: float
    trials: list[Trial] = field(default_factory=list)
    # the attach weights' grid on the validation split with the best fit (empty: not measurable)
    attach: list[dict[str, Any]] = field(default_factory=list)
    # the recency the tuner chose (ConfidenceWeights.half_life_days); None: left as given
    half_life_days: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "objective": self.objective,
            "attach": self.attach,
            "half_life_days": self.half_life_days,
            "validation": self.validation,
            "best_score": self.best_score if np.isfinite(self.best_score) else None,
            "best_params": self.best.as_dict(),
            "seconds": round(self.seconds, 2),
            "trials": [trial.as_dict() for trial in self.trials],
            # the phases the choice was made among (their scores are means over several
            # splits or days; the other trials' are not comparable with them)
            "chosen_among": sorted({t.phase for t in chosen_among(self.trials)}),
        }


def validation_spec(split_spec: SplitSpec, ratio: float = 0.8) -> SplitSpec:
    """The tuner's validation split of a training part made by `split_spec`: the same
    protocol, the next seed, `ratio` kept, and on per-pair protocols one pair held out of
    every group of two or more (SplitSpec.hold_one)."""
    return replace(split_spec, seed=split_spec.seed + 1, train_ratio=ratio, hold_one=True)


def _describe(spec: SplitSpec) -> str:
    if spec.protocol is Protocol.TEMPORAL:
        return f"temporal split (last {spec.holdout_days} day(s) held out)"
    return f"{spec.protocol.value} split (ratio {spec.train_ratio}, seed {spec.seed})"


def tune(
    train: Dataset,
    split_spec: SplitSpec,
    budget: TuneBudget,
    *,
    base: FitParams | None = None,
    eval_spec: EvalSpec | None = None,
    objective: Objective | None = None,
    validation_ratio: float = 0.8,
    retired: np.ndarray | None = None,
    threads: int | None = None,
    show_progress: bool = False,
    sampler: Sampler = "tpe",
) -> TuneResult:
    """Search hyper-parameters on a validation split of `train`; return the best and every
    trial. `eval_spec` gives the cut-offs (k, product_k) the objective is measured at (at most
    5,000 validation users); `retired` (a bool mask over the items) leaves retired items out
    of the validation, as the evaluation leaves them out of the test. `sampler` "random" walks
    the same space at random instead of TPE (bench/search.py compares the two)."""
    started = time.perf_counter()
    base = base or FitParams()
    objective = objective or Objective()
    eval_spec = eval_spec or EvalSpec()
    eval_spec = replace(eval_spec, max_users=min(eval_spec.max_users or 5_000, 5_000))
    spec = validation_spec(split_spec, validation_ratio)
    fit_part, held_out = split(train, spec)
    validation = evaluation_set(fit_part.interactions, held_out, eval_spec, retired)
    if len(validation.users) == 0:
        raise ValueError(
            f"the tuner's {_describe(spec)} of the training data leaves no user to validate on; "
            "the training part is too small or too short for this protocol"
        )
    probe = evaluate(PopularityScorer(fit_part.interactions), validation, eval_spec)
    if not objective.parts(probe):
        raise ValueError(
            "the tuner's objective measures nothing on this data: the validation split "
            f"holds {probe.videos.users} users with a held-out video and "
            f"{'no' if probe.product_hit_rate is None else 'some'} purchases, and the weights "
            f"are video {objective.video_weight:g}, product {objective.product_weight:g}"
        )
    matrix = fit_part.interactions.confidence
    # Families: an ALS search shares its time with low-rank EASE where EASE is cheap
    # (EASE_SHARE_ITEMS), the two taking turns for the whole search. Measured and dropped:
    # a race (30% of the search, then the winner's family alone) chose EASE on KuaiRand-Pure's
    # 6,361 videos on 3 ALS and 2 EASE trials (NDCG@10 0.0372 against 0.0416 for ALS alone),
    # and, once EASE was fast, on MovieLens-100K (P@10 0.419, NDCG@10 0.485 against 0.432,
    # 0.497 for ALS): ALS's five parameters need more trials than the race gave them.
    if base.algorithm == "ease" and matrix.shape[1] > EASE_MAX_ITEMS:
        raise ValueError(
            f"EASE needs a dense item matrix: {matrix.shape[1]:,} items, at most "
            f"{EASE_MAX_ITEMS:,}; use --algorithm als"
        )
    shares = base.algorithm == "als" and matrix.shape[1] <= EASE_SHARE_ITEMS
    families: tuple[str, ...] = ("als", "ease") if shares else (base.algorithm,)
    items = matrix.shape[1]
    # the trending prior needs event times and a video part in the objective
    with_trending = fit_part.events is not None and any(
        name == "video ndcg" for name, _, _ in objective.parts(probe)
    )
    # the search runs without the prior and with single fits: the late phases choose the
    # prior (off included) and whether the best becomes a seed ensemble
    base = replace(base, trending_weight=0.0, ensemble=1)
    # per-pair splits are random: the leaders are scored again on fresh ones at the end
    revalidates = spec.protocol is not Protocol.TEMPORAL
    search_seconds = budget.seconds * (
        1 - (TRENDING_SHARE if with_trending else 0) - (REVALIDATE_SHARE if revalidates else 0)
    )
    index = fit_part.interactions.index
    attaches = int(
        index.n_videos > 0 and index.n_items > index.n_videos and validation.test.purchases.nnz > 0
    )

    searches = {
        family: FamilySearch(family, base, items, base.seed + number, sampler)
        for number, family in enumerate(families)
    }
    trials: list[Trial] = []
    # running per-family state, so that a trial costs the same whatever came before it
    spent = dict.fromkeys(families, 0.0)  # seconds, or trials under a trial budget
    total_seconds, best_score = 0.0, float("-inf")
    described = ""
    progress = tqdm(desc="tuning", unit="trial", disable=not show_progress, leave=False)
    while True:
        elapsed = time.perf_counter() - started
        if budget.max_trials is not None:  # a trial budget ignores the clock: reproducible
            if len(trials) >= budget.max_trials:
                break
        else:
            mean_trial = total_seconds / len(trials) if trials else 0.0
            # room for one more trial, and for the attach weights' refit after the search
            if trials and elapsed + mean_trial * (1 + 2 * attaches) > search_seconds:
                break
        # the families take turns: the one with the least time so far per searched parameter
        # (the fewest trials under a trial budget) runs next, on the point its search asks for
        family = min(families, key=lambda f: spent[f] / len(space(f)))
        trial_started = time.perf_counter()
        if not trials:
            phase, params = "default", base
        else:
            phase, params = "search", searches[family].ask()
        try:
            factors = fit(matrix, params, threads=threads)
            report = evaluate(
                FactorScorer(factors, fit_part.interactions.index), validation, eval_spec
            )
            score = objective.score(report)
            described = described or objective.describe(report, eval_spec)
        except ModelFitError:
            score = float("-inf")
        if phase == "default":
            searches[params.algorithm].record(params, score)
        else:
            searches[family].tell(score)
        trial = Trial(len(trials), phase, params, score, time.perf_counter() - trial_started)
        trials.append(trial)
        total_seconds += trial.seconds
        best_score = max(best_score, score)
        spent[params.algorithm] += trial.seconds if budget.max_trials is None else 1.0
        progress.update(1)
        progress.set_postfix(best=f"{best_score:.4f}")
    # what the attach weights' refit and grid need after everything else: two mean trials
    # (an ensemble's refit is ENSEMBLE fits)
    reserve = (1 + ENSEMBLE) * float(np.mean([t.seconds for t in trials])) * attaches
    deadline = None if budget.max_trials is not None else started + budget.seconds - reserve
    extra_folds = revalidation_folds(train, spec, eval_spec, retired) if revalidates else []
    if revalidates:
        trials += revalidated(
            trials, extra_folds, families, eval_spec, objective, deadline, threads
        )
    if with_trending:
        # the best fit's prior, then recency on it, then the next leaders' priors; each
        # scored by its mean over the validation day and the days before it
        folds = temporal_folds(fit_part, validation, spec, eval_spec, retired)
        best_fits = trending_leaders(trials)
        trials += trending_trials(
            trials, best_fits[:1], folds, eval_spec, objective, deadline, threads
        )
        # the best so far as a seed ensemble, its prior's weight chosen again; then recency
        # on the best so far, then the next leaders
        best = max(chosen_among(trials), key=lambda t: t.score)
        trials += ensemble_trials(trials, best, folds, eval_spec, objective, deadline, threads)
        trials += recency_trials(trials, folds, eval_spec, objective, deadline, threads)
        trials += trending_trials(
            trials, best_fits[1:TRENDING_LEADERS], folds, eval_spec, objective, deadline, threads
        )
    else:  # the ensemble scored on the splits its rival's score is a mean over
        best = max(chosen_among(trials), key=lambda t: t.score)
        folds = [Fold(fit_part, validation)]
        folds += extra_folds if best.phase == "revalidated" else []
        trials += ensemble_trials(trials, best, folds, eval_spec, objective, deadline, threads)
    progress.update(len(trials) - progress.n)
    progress.close()
    # a revalidated or late-phase score is a mean over several splits or days: the choice is
    # among those, where there are any
    final = chosen_among(trials)
    best = max(final, key=lambda t: t.score)
    chosen_part = (
        fit_part if best.half_life_days is None else with_half_life(fit_part, best.half_life_days)
    )
    attach_weights, attach_trials = attach_choice(
        best.params, chosen_part, validation, eval_spec, threads
    )
    best = replace(
        best,
        params=replace(
            best.params,
            attach_user_weight=attach_weights[0],
            attach_video_weight=attach_weights[1],
        ),
    )
    return TuneResult(
        best=best.params,
        best_score=best.score,
        objective=described or "none (every fit failed)",
        validation=f"{_describe(spec)} of the training data, {len(validation.users)} users",
        seconds=time.perf_counter() - started,
        trials=trials,
        attach=attach_trials,
        half_life_days=best.half_life_days,
    )
