"""What one nightly run is asked to do: the data, the gate's thresholds, where to publish.

Validated on construction, so a bad option is refused before any work (the CLI turns the
ValueError into a usage error). No Redis here: the gate (decision) and the metrics file use it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from training.data.matrix import ConfidenceWeights
from training.models.factors import Engine, FitParams
from training.models.tuner import Objective

GATE_METRICS = ("ndcg_at_10", "precision_at_10", "recall_at_10", "map_at_10")


@dataclass(frozen=True)
class NightlySpec:
    events_dir: Path
    models_dir: Path
    exposures_dir: Path | None = None
    cards_dir: Path | None = None  # every card served, with its checks (`recsvc audit`)
    window_days: int = 28
    metric: str = "ndcg_at_10"
    tolerance: float = 0.02  # the new model may be this much (relative) below the live one
    min_coverage: float = 0.05  # coverage@10 below this: the model collapsed onto few items
    new_item_days: float = 7.0  # a live item unknown to the model is fine if this new
    max_unknown_items: int = 0  # live, old items the new model may not know (dead content)
    tune_seconds: float | None = 60.0
    tune_trials: int | None = None
    grace_seconds: int = 3600
    keep_versions: int = 5
    challenger: bool = False  # publish as the challenger: nothing goes live
    users: Path | None = None  # users' segments from this CSV, not from the Redis profiles
    params: FitParams = field(default_factory=FitParams)  # the tuner's base, or the fit's
    max_bad_share: float = 0.01  # more invalid rows than this share fails the run
    weights: ConfidenceWeights = field(default_factory=ConfidenceWeights)
    objective: Objective = field(default_factory=Objective)  # what the tuner maximises
    engine: Engine = "implicit"  # what fits the holdout and final models (the tuner: implicit)

    def __post_init__(self) -> None:
        if self.metric not in GATE_METRICS:
            raise ValueError(f"metric {self.metric!r} is not one of {', '.join(GATE_METRICS)}")
        if not 0 <= self.tolerance < 1:
            raise ValueError(f"tolerance must be in [0, 1) (0.02 is 2%), not {self.tolerance}")
        if not 0 <= self.max_bad_share <= 1:
            raise ValueError(f"max_bad_share must be in [0, 1], not {self.max_bad_share}")
        if not 0 <= self.min_coverage <= 1:
            raise ValueError(f"min_coverage must be in [0, 1], not {self.min_coverage}")
