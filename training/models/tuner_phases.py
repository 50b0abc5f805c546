"""The tuner's phases beside its search (training.models.tuner): revalidation on per-pair
splits, the trending prior's grid and recency on the best fits where events have times, and
the attach weights on the chosen fit. Each records what it tried as trials, so the report says
what was measured.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from recsvc.contract.manifest import DEFAULT_ATTACH_WEIGHTS
from training.data.matrix import aggregate
from training.data.splits import Dataset, SplitSpec, split
from training.evaluation.attach import choose_attach_weights
from training.evaluation.evaluate import (
    EvalSpec,
    EvaluationSet,
    FactorScorer,
    evaluate,
    evaluation_set,
)
from training.models.factors import Factors, FitParams, ModelFitError, fit
from training.models.trending import TRENDING_HOURS, TRENDING_WEIGHTS, trending_prior

if TYPE_CHECKING:  # the objective lives with the tuner, which imports this module
    from training.models.tuner import Objective

# Recency (ConfidenceWeights.half_life_days) tried on the best fit where events have times;
# the data's own setting (off by default) is always a candidate too.
HALF_LIVES = (1.0, 3.0, 7.0, 30.0)
TRENDING_LEADERS = 2  # the best fits whose trending prior is chosen
# The best of many trials on one random split is optimistic (the winner's curse), the more so
# for the family with more parameters: the best few of each family are scored again on more
# random splits and compared by their mean over all of them.
REVALIDATE_LEADERS = 3
REVALIDATE_SPLITS = 2
# The trending prior's window and weight, and recency, are chosen by their mean over the
# validation day and the days before it (rolling origin): what the last hours' popularity is
# worth moves from day to day. On KuaiRand-Pure the validation day alone chose a 24-hour
# prior at weight 10 (test NDCG@10 0.0343); the mean over three days, weight 30 (0.0378).
TEMPORAL_FOLDS = 3
TRENDING_FINALISTS = 6  # of the prior's grid on the validation day, scored on every fold


# The phases whose scores are means over several splits or days, in order: the choice is
# among the first group that has trials (all trials where none has).
CHOSEN_AMONG = (("revalidated",), ("trending", "recency"))


def chosen_among(trials: list[Trial]) -> list[Trial]:
    """The trials the tuner chooses from (CHOSEN_AMONG)."""
    for phases in CHOSEN_AMONG:
        found = [t for t in trials if t.phase in phases]
        if found:
            return found
    return trials


@dataclass(frozen=True)
class Trial:
    number: int
    # "default", "search", "revalidated", "screen", "trending" or "recency"
    phase: str
    params: FitParams
    score: float  # the objective on the validation split; -inf when the fit failed
    seconds: float
    # recency: the half-life the confidence matrix was rebuilt with; None: the data's own
    half_life_days: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "phase": self.phase,
            "score": self.score if np.isfinite(self.score) else None,
            "seconds": round(self.seconds, 3),
            "params": self.params.as_dict(),
            **({"half_life_days": self.half_life_days} if self.half_life_days is not None else {}),
        }


def revalidated(
    trials: list[Trial],
    folds: list[Fold],
    families: tuple[str, ...],
    eval_spec: EvalSpec,
    objective: Objective,
    deadline: float | None,
    threads: int | None,
) -> list[Trial]:
    """The best REVALIDATE_LEADERS distinct trials of each family, refitted on the
    REVALIDATE_SPLITS more random validation splits of `folds` (revalidation_folds), as
    "revalidated" trials scoring their mean over every split. A leader the deadline leaves
    short of a split is not among them; none at all when the deadline comes first or a
    split is missing."""
    leaders: list[Trial] = []
    for family in families:
        own = sorted(
            (t for t in trials if t.params.algorithm == family and np.isfinite(t.score)),
            key=lambda t: t.score,
            reverse=True,
        )
        kept: list[Trial] = []
        for trial in own:
            if trial.params not in [t.params for t in kept]:
                kept.append(trial)
            if len(kept) == REVALIDATE_LEADERS:
                break
        leaders += kept
    scores = {trial.number: [trial.score] for trial in leaders}
    seconds = {trial.number: 0.0 for trial in leaders}
    if len(folds) < REVALIDATE_SPLITS:
        return []
    for fold in folds:
        fit_part, validation = fold.part, fold.validation
        for trial in leaders:
            if deadline is not None and time.perf_counter() + trial.seconds > deadline:
                continue
            started = time.perf_counter()
            try:
                factors = fit(fit_part.interactions.confidence, trial.params, threads=threads)
                scorer = FactorScorer(factors, fit_part.interactions.index)
                score = objective.score(evaluate(scorer, validation, eval_spec))
            except ModelFitError:
                score = float("-inf")
            scores[trial.number].append(score)
            seconds[trial.number] += time.perf_counter() - started
    complete = [t for t in leaders if len(scores[t.number]) == REVALIDATE_SPLITS + 1]
    return [
        Trial(
            len(trials) + i,
            "revalidated",
            t.params,
            float(np.mean(scores[t.number])),
            seconds[t.number],
        )
        for i, t in enumerate(complete)
    ]


def revalidation_folds(
    train: Dataset, spec: SplitSpec, eval_spec: EvalSpec, retired: np.ndarray | None
) -> list[Fold]:
    """The REVALIDATE_SPLITS random validation splits after `spec` (its next seeds); fewer
    where one leaves no user to validate on."""
    folds = []
    for extra in range(1, REVALIDATE_SPLITS + 1):
        fit_part, held_out = split(train, replace(spec, seed=spec.seed + extra))
        validation = evaluation_set(fit_part.interactions, held_out, eval_spec, retired)
        if len(validation.users) == 0:
            break
        folds.append(Fold(fit_part, validation))
    return folds


def attach_choice(
    params: FitParams,
    fit_part: Dataset,
    validation: EvaluationSet,
    eval_spec: EvalSpec,
    threads: int | None,
) -> tuple[tuple[float, float], list[dict[str, Any]]]:
    """The attach weights (a, b) for the chosen fit: its refit on the validation split's fit
    part, each grid point's attach hit rate (training.evaluation.attach); the defaults when
    the split holds no purchase to measure it."""
    index = fit_part.interactions.index
    if index.n_videos == 0 or index.n_items == index.n_videos or validation.test.purchases.nnz == 0:
        return DEFAULT_ATTACH_WEIGHTS, []
    try:
        factors = fit(fit_part.interactions.confidence, params, threads=threads)
    except ModelFitError:
        return DEFAULT_ATTACH_WEIGHTS, []
    scorer = FactorScorer(factors, index)
    if params.trending_weight > 0 and fit_part.events is not None:
        scorer.trending = trending_prior(
            fit_part.events, index, fit_part.weights, params.trending_hours
        )
    return choose_attach_weights(scorer, validation, eval_spec)


def refit_seconds(trials: list[Trial], params: FitParams) -> float:
    """How long a fit of `params` (prior aside) took in the trials: the longest trial of it,
    the one that fitted rather than only re-scored; for an ensemble none of whose trials ran
    yet, its size times a single fit's; 0 when none did."""

    def plain(p: FitParams) -> FitParams:
        return replace(p, trending_weight=0.0, trending_hours=FitParams().trending_hours)

    def single(p: FitParams) -> FitParams:
        return replace(plain(p), ensemble=1)

    # an ensemble's fit is its fits one after another: a trial of it, or of one of its fits
    same = [t for t in trials if plain(t.params) == plain(params)]
    if same:
        return max(t.seconds for t in same)
    one = max((t.seconds for t in trials if single(t.params) == single(params)), default=0.0)
    return one * params.ensemble


def trending_leaders(trials: list[Trial]) -> list[FitParams]:
    """The distinct parameters of the best trials, best first, with the prior off."""
    leaders: list[FitParams] = []
    for trial in sorted(trials, key=lambda t: t.score, reverse=True):
        plain = replace(trial.params, trending_weight=0.0)
        if np.isfinite(trial.score) and plain not in leaders:
            leaders.append(plain)
    return leaders


def with_half_life(data: Dataset, days: float) -> Dataset:
    """`data` with its confidence matrix rebuilt at another recency half-life (0: off)."""
    if data.events is None:
        raise ValueError("recency needs event times, and this data keeps none")
    weights = replace(data.weights, half_life_days=days)
    interactions = aggregate(data.events, data.interactions.index, weights)
    return Dataset(interactions, data.events, weights)


class Fold:
    """A fit part and the validation set held out after it, with the fit part's trending
    priors (one per window of TRENDING_HOURS), each computed once and kept."""

    def __init__(self, part: Dataset, validation: EvaluationSet) -> None:
        self.part, self.validation = part, validation
        self._priors: dict[float, np.ndarray] = {}

    def prior(self, hours: float) -> np.ndarray:
        if hours not in self._priors:
            events = self.part.events
            assert events is not None  # a temporal split keeps its events
            index, weights = self.part.interactions.index, self.part.weights
            self._priors[hours] = trending_prior(events, index, weights, hours)
        return self._priors[hours]


def temporal_folds(
    fit_part: Dataset,
    validation: EvaluationSet,
    spec: SplitSpec,
    eval_spec: EvalSpec,
    retired: np.ndarray | None,
) -> list[Fold]:
    """The validation split and up to TEMPORAL_FOLDS - 1 earlier ones: each the same temporal
    split applied again to the fit part before it (the day before, then the one before that).
    A fold left with no user to validate on ends the list."""
    folds = [Fold(fit_part, validation)]
    earlier = fit_part
    while len(folds) < TEMPORAL_FOLDS:
        try:
            earlier, held_out = split(earlier, spec)
        except ValueError:
            break
        evaluated = evaluation_set(earlier.interactions, held_out, eval_spec, retired)
        if len(evaluated.users) == 0 or earlier.interactions.confidence.nnz == 0:
            break
        folds.append(Fold(earlier, evaluated))
    return folds


# The trending prior's grid: off, then every window × weight.
PRIOR_GRID = ((TRENDING_HOURS[0], 0.0),) + tuple(
    (h, w) for h in TRENDING_HOURS for w in TRENDING_WEIGHTS
)


def with_prior(params: FitParams, hours: float, weight: float) -> FitParams:
    return replace(params, trending_hours=hours, trending_weight=weight)


def served_score(
    fold: Fold, factors: Factors, chosen: FitParams, eval_spec: EvalSpec, objective: Objective
) -> float:
    """The objective of `factors` on `fold`'s validation set with the trending prior of
    `chosen` (its window and weight; 0 is off), as the service would rank."""
    index = fold.part.interactions.index
    scorer = FactorScorer(Factors(factors.user, factors.item, chosen), index)
    if chosen.trending_weight > 0:
        scorer.trending = fold.prior(chosen.trending_hours)
    return objective.score(evaluate(scorer, fold.validation, eval_spec))


def screen_prior(
    first_number: int,
    factors: Factors,
    params: FitParams,
    fold: Fold,
    eval_spec: EvalSpec,
    objective: Objective,
    deadline: float | None,
    fit_seconds: float = 0.0,
    grid: tuple[tuple[float, float], ...] = PRIOR_GRID,
) -> list[Trial]:
    """Every point of `grid` (windows and weights) on one fit, scored on `fold` ("screen"
    trials numbered from `first_number`; the first carries the fit's seconds). Stops at the
    deadline, if any."""
    screened: list[Trial] = []
    for hours, weight in grid:
        last = screened[-1].seconds if screened else 0.0
        if deadline is not None and time.perf_counter() + last > deadline:
            break
        started = time.perf_counter()
        chosen = with_prior(params, hours, weight)
        score = served_score(fold, factors, chosen, eval_spec, objective)
        seconds = time.perf_counter() - started + (0.0 if screened else fit_seconds)
        screened.append(Trial(first_number + len(screened), "screen", chosen, score, seconds))
    return screened


def trending_trials(
    trials: list[Trial],
    leaders: list[FitParams],
    folds: list[Fold],
    eval_spec: EvalSpec,
    objective: Objective,
    deadline: float | None,
    threads: int | None,
    half_life_days: float | None = None,
    grid: tuple[tuple[float, float], ...] = PRIOR_GRID,
) -> list[Trial]:
    """The trending prior's grid (PRIOR_GRID, or `grid`) on each leader: every point scored
    on the validation day ("screen" trials), the TRENDING_FINALISTS best of them also on the
    earlier folds and scored by their mean over all ("trending" trials). Each leader is
    refitted once per fold. Stops at the deadline, if any. `half_life_days` is the recency
    the folds' matrices were built at, recorded on the trials (None: the data's own)."""
    added: list[Trial] = []

    def late(seconds: float) -> bool:
        return deadline is not None and time.perf_counter() + seconds > deadline

    def record(phase: str, chosen: FitParams, score: float, seconds: float) -> None:
        number = len(trials) + len(added)
        added.append(Trial(number, phase, chosen, score, seconds, half_life_days))

    for params in leaders:
        if late(refit_seconds(trials, params)):
            break
        started = time.perf_counter()
        try:
            first = fit(folds[0].part.interactions.confidence, params, threads=threads)
        except ModelFitError:
            continue
        fit_seconds = time.perf_counter() - started
        screens = screen_prior(
            len(trials) + len(added), first, params, folds[0], eval_spec, objective, deadline,
            fit_seconds, grid,
        )  # fmt: skip
        screens = [replace(t, half_life_days=half_life_days) for t in screens]
        added += screens
        screened = [(t.score, t.params) for t in screens]
        finalists = sorted(screened, key=lambda s: s[0], reverse=True)[:TRENDING_FINALISTS]
        earlier = range(1, len(folds))
        # the earlier folds' fits, then every finalist scored on each (a screen's time, the
        # first screen aside: it carries the fit)
        scoring = float(np.mean([t.seconds for t in screens[1:]])) if len(screens) > 1 else 0.0
        needed = (refit_seconds(trials, params) + scoring * len(finalists)) * len(earlier)
        if not finalists or late(needed):
            continue
        started = time.perf_counter()
        try:
            fitted = [
                fit(folds[f].part.interactions.confidence, params, threads=threads) for f in earlier
            ]
        except ModelFitError:
            continue
        fit_seconds = time.perf_counter() - started
        for score, chosen in finalists:
            started = time.perf_counter()
            scores = [score] + [
                served_score(folds[f], fitted[f - 1], chosen, eval_spec, objective) for f in earlier
            ]
            seconds = time.perf_counter() - started + fit_seconds
            record("trending", chosen, float(np.mean(scores)), seconds)
            fit_seconds = 0.0
    return added


def recency_trials(
    trials: list[Trial],
    folds: list[Fold],
    eval_spec: EvalSpec,
    objective: Objective,
    deadline: float | None,
    threads: int | None,
) -> list[Trial]:
    """The best trending trial so far refitted on each fold's confidence matrix rebuilt at
    each half-life of HALF_LIVES (ages at the fold's last event), its trending prior
    unchanged; a half-life scores its mean over the folds."""
    late = [t for t in trials if t.phase == "trending" and np.isfinite(t.score)]
    if not late:
        return []
    best = max(late, key=lambda t: t.score)
    params = best.params
    added: list[Trial] = []
    for days in HALF_LIVES:
        if days == folds[0].part.weights.half_life_days:
            continue  # the search itself ran with it
        # the next one should take as long as the last, or as the fits it repeats
        last = added[-1].seconds if added else refit_seconds(trials, params) * len(folds)
        if deadline is not None and time.perf_counter() + last > deadline:
            break
        started = time.perf_counter()
        scores = []
        try:
            for fold in folds:
                matrix = with_half_life(fold.part, days).interactions.confidence
                factors = fit(matrix, params, threads=threads)
                scorer = FactorScorer(factors, fold.part.interactions.index)
                if params.trending_weight > 0:
                    scorer.trending = fold.prior(params.trending_hours)
                scores.append(objective.score(evaluate(scorer, fold.validation, eval_spec)))
        except ModelFitError:
            continue
        seconds = time.perf_counter() - started
        score = float(np.mean(scores))
        added.append(Trial(len(trials) + len(added), "recency", params, score, seconds, days))
    return added


# The seed ensemble (FitParams.ensemble) the tuner tries on its choice: fits side by side.
# On KuaiRand-Pure's test day four seeds of one configuration scored NDCG@10 0.0431 against
# 0.0385–0.0398 for each alone; five and six scored no higher than four.
ENSEMBLE = 4


def neighbouring_weights(params: FitParams) -> tuple[tuple[float, float], ...]:
    """The prior's weight in `params` and its neighbours in TRENDING_WEIGHTS (or off and the
    smallest weight, when it is off), at its window: where an ensemble of the same fit looks."""
    hours, weight = params.trending_hours, params.trending_weight
    weights = (0.0, *TRENDING_WEIGHTS)
    at = weights.index(weight) if weight in weights else 0
    return tuple((hours, w) for w in weights[max(0, at - 1) : at + 2])


def ensemble_trials(
    trials: list[Trial],
    best: Trial,
    folds: list[Fold],
    eval_spec: EvalSpec,
    objective: Objective,
    deadline: float | None,
    threads: int | None,
) -> list[Trial]:
    """`best` as a seed ensemble of ENSEMBLE fits, scored as `best` was, so that the choice
    between them is fair: on the same folds (the validation days, or the revalidation's
    random splits) at its recency. On temporal folds the prior's weight is chosen again
    (neighbouring_weights), since the ensemble's score spread, the prior's unit, differs from
    one fit's; the trials then are "screen" and "trending" ones. Otherwise one trial: a
    "revalidated" one (its mean over the splits), or an "ensemble" one where `best`'s score
    is one split's.
    None where the ensemble does not apply (EASE) or cannot finish before the deadline."""
    if best.params.algorithm == "ease" or best.params.ensemble != 1 or not np.isfinite(best.score):
        return []
    params = replace(best.params, ensemble=ENSEMBLE)
    if best.half_life_days is not None:
        folds = [Fold(with_half_life(f.part, best.half_life_days), f.validation) for f in folds]
    if best.phase in ("trending", "recency"):  # temporal folds: the prior's grid again
        plain = replace(params, trending_weight=0.0)
        return trending_trials(
            trials, [plain], folds, eval_spec, objective, deadline, threads, best.half_life_days,
            neighbouring_weights(best.params),
        )  # fmt: skip
    if (
        deadline is not None
        and time.perf_counter() + refit_seconds(trials, params) * len(folds) > deadline
    ):
        return []
    started = time.perf_counter()
    scores = []
    try:
        for fold in folds:
            factors = fit(fold.part.interactions.confidence, params, threads=threads)
            scores.append(served_score(fold, factors, params, eval_spec, objective))
    except ModelFitError:
        return []
    phase = "revalidated" if best.phase == "revalidated" else "ensemble"
    seconds = time.perf_counter() - started
    return [Trial(len(trials), phase, params, float(np.mean(scores)), seconds, best.half_life_days)]
