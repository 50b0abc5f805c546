"""The user × item matrix over the joint item space: videos and products side by side.

Columns hold every video first, then every product, each block in sorted id order, so an
item's column says its type: `column < n_videos` is a video. Cells hold a confidence summed
over a user's events on that item: a purchase weighs more than a click, a view weighs by
its watch ratio, an impression weighs nothing by default.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp

from recsvc.contract.domain import Action, ItemType
from recsvc.contract.manifest import DEFAULT_CONFIDENCE_WEIGHTS, DEFAULT_WATCH_RATIO_CAP


@dataclass(frozen=True)
class ConfidenceWeights:
    """How much one event of each action adds to a user–item cell."""

    impression: float = DEFAULT_CONFIDENCE_WEIGHTS["impression"]
    view: float = DEFAULT_CONFIDENCE_WEIGHTS["view"]  # times the watch ratio when it has one
    click: float = DEFAULT_CONFIDENCE_WEIGHTS["click"]
    purchase: float = DEFAULT_CONFIDENCE_WEIGHTS["purchase"]
    # a view counts its watch ratio up to this (a replay, ratio above 1, as this many views)
    watch_ratio_cap: float = DEFAULT_WATCH_RATIO_CAP
    # recency: an event's weight halves every this many days of age at the last event of
    # the data (the window's end); 0 is off, every event counting the same whatever its age
    half_life_days: float = 0.0

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not np.isfinite(value) or value < 0:
                raise ValueError(f"confidence weight {name!r} must be finite and >= 0, not {value}")
        if self.watch_ratio_cap <= 0:
            raise ValueError(f"watch_ratio_cap must be > 0, not {self.watch_ratio_cap}")

    def per_action(self) -> dict[str, float]:
        """The weight of each action (what the manifest's `confidence_weights` holds; the
        service's fold-in reads recent events, for which recency changes nothing)."""
        return {action.value: float(getattr(self, action.value)) for action in Action}

    def per_event(self, events: pa.Table) -> np.ndarray:
        """Confidence contributed by each event row (float32)."""
        action = events.column("action")
        weights = np.zeros(events.num_rows, dtype=np.float32)
        for act in Action:
            weight = getattr(self, act.value)
            if weight:
                weights[pc.equal(action, act.value).to_numpy(zero_copy_only=False)] = weight
        ratio = events.column("watch_ratio").to_numpy(zero_copy_only=False).astype(np.float32)
        is_view = pc.equal(action, Action.VIEW.value).to_numpy(zero_copy_only=False)
        with_ratio = is_view & ~np.isnan(ratio)
        weights[with_ratio] *= np.minimum(ratio[with_ratio], np.float32(self.watch_ratio_cap))
        if self.half_life_days > 0 and events.num_rows:
            ts = (
                events.column("ts")
                .cast(pa.timestamp("ms", tz="UTC"))
                .to_numpy(zero_copy_only=False)
            )
            age_days = (ts.max() - ts).astype("timedelta64[ms]").astype(np.float64) / 86_400_000
            decay = np.power(0.5, age_days / self.half_life_days).astype(np.float32)
            # an old event weighs almost nothing but is never dropped: float32 would reach 0
            # after about 149 half-lives, and a dropped pair would become a full negative
            weights *= np.maximum(decay, np.finfo(np.float32).tiny)
        return weights


@dataclass(frozen=True)
class ItemIndex:
    """Row and column labels of the matrix."""

    user_ids: np.ndarray  # [U] str
    video_ids: np.ndarray  # [V] str, sorted
    product_ids: np.ndarray  # [P] str, sorted

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_videos(self) -> int:
        return len(self.video_ids)

    @property
    def n_items(self) -> int:
        return len(self.video_ids) + len(self.product_ids)

    @property
    def item_ids(self) -> np.ndarray:
        return np.concatenate([self.video_ids, self.product_ids])

    @property
    def videos(self) -> slice:
        return slice(0, self.n_videos)

    @property
    def products(self) -> slice:
        return slice(self.n_videos, self.n_items)


@dataclass
class Interactions:
    """Summed confidences and purchase counts of users on items, under one index."""

    index: ItemIndex
    confidence: sp.csr_matrix  # [U, I] float32
    purchases: sp.csr_matrix  # [U, I] float32, counts; nonzero only where confidence is

    @property
    def nnz(self) -> int:
        return int(self.confidence.nnz)

    def keep_pairs(self, mask: np.ndarray) -> Interactions:
        """The interactions of the pairs a mask over the confidence nonzeros selects."""
        conf = self.confidence.tocoo()
        kept = _csr(conf.data[mask], conf.row[mask], conf.col[mask], conf.shape)
        return Interactions(self.index, kept, _restrict(self.purchases, kept))


def _csr(
    data: np.ndarray, rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]
) -> sp.csr_matrix:
    """A canonical CSR matrix (sorted indices, duplicates summed)."""
    matrix = sp.csr_matrix((data.astype(np.float32), (rows, cols)), shape=shape)
    matrix.sum_duplicates()
    return matrix


def pair_keys(matrix: sp.csr_matrix) -> np.ndarray:
    """One int64 per nonzero, row-major (ascending for a canonical CSR matrix)."""
    rows = np.repeat(np.arange(matrix.shape[0], dtype=np.int64), np.diff(matrix.indptr))
    return rows * matrix.shape[1] + matrix.indices


def _restrict(values: sp.csr_matrix, support: sp.csr_matrix) -> sp.csr_matrix:
    """`values` where `support` has a nonzero."""
    restricted = values.multiply(support > 0).tocsr()
    restricted.eliminate_zeros()
    return restricted.astype(np.float32)


def _sorted_ids(column: pa.ChunkedArray) -> np.ndarray:
    return np.sort(pc.unique(column).to_numpy(zero_copy_only=False).astype(str))


def build_index(events: pa.Table) -> ItemIndex:
    """Labels for every user and item that appears in the events (impressions included)."""
    is_video = pc.equal(events.column("item_type"), ItemType.VIDEO.value)
    items = events.column("item_id")
    return ItemIndex(
        user_ids=_sorted_ids(events.column("user_id")),
        video_ids=_sorted_ids(pc.filter(items, is_video)),
        product_ids=_sorted_ids(pc.filter(items, pc.invert(is_video))),
    )


def _positions(labels: np.ndarray, column: pa.ChunkedArray) -> np.ndarray:
    """Index of each value in sorted `labels`; -1 where absent."""
    table = pa.array(labels)
    positions = pc.index_in(column, value_set=table).to_numpy(zero_copy_only=False)
    return np.where(np.isnan(positions.astype(np.float64)), -1, positions).astype(np.int64)


def aggregate(events: pa.Table, index: ItemIndex, weights: ConfidenceWeights) -> Interactions:
    """Sum event confidences into the matrix; events outside the index or weighing 0 are skipped."""
    weight = weights.per_event(events)
    keep = weight > 0
    events = events.filter(pa.array(keep))
    weight = weight[keep]
    is_video = pc.equal(events.column("item_type"), ItemType.VIDEO.value).to_numpy(
        zero_copy_only=False
    )
    rows = _positions(index.user_ids, events.column("user_id"))
    cols = np.where(
        is_video,
        _positions(index.video_ids, events.column("item_id")),
        _positions(index.product_ids, events.column("item_id")),
    )
    cols = np.where(is_video | (cols < 0), cols, cols + index.n_videos)
    known = (rows >= 0) & (cols >= 0)
    shape = (index.n_users, index.n_items)
    confidence = _csr(weight[known], rows[known], cols[known], shape)
    bought = known & pc.equal(events.column("action"), Action.PURCHASE.value).to_numpy(
        zero_copy_only=False
    )
    purchases = _csr(np.ones(int(bought.sum()), np.float32), rows[bought], cols[bought], shape)
    return Interactions(index, confidence, purchases)


def build_interactions(events: pa.Table, weights: ConfidenceWeights | None = None) -> Interactions:
    """Index the events and sum them into the joint matrix."""
    return aggregate(events, build_index(events), weights or ConfidenceWeights())
