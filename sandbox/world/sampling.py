"""Vectorised draws shared by the world's samplers: levels, categoricals and redraws.

Each function consumes the generator in a fixed order, so a seed always gives the same world.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike

CHUNK = 1 << 20  # rows per chunk when gathering [rows, topics] matrices
MAX_REDRAWS = 200  # an unavailable item is redrawn; each round leaves ~5% of the previous one


def draw_level(probabilities: ArrayLike, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """[n] int8 level 1..K per entry of `rows`, from that row of the [R, K] `probabilities`."""
    cdf = np.cumsum(probabilities, axis=1)
    return (rng.random(len(rows))[:, None] > cdf[rows]).sum(1).astype(np.int8) + 1


def categorical(
    cdf: np.ndarray,
    rows: np.ndarray,
    rng: np.random.Generator,
    late: np.ndarray | None = None,
    weight: np.ndarray | None = None,
) -> np.ndarray:
    """One draw per entry of `rows` from the categorical whose CDF is `cdf[row]`; given `late`
    and `weight`, from the mixture (1 − w)·cdf[row] + w·late[row], w the entry's weight (the
    same draws: a mixture's CDF is the mixture of the CDFs)."""
    out = np.empty(len(rows), dtype=np.int64)
    for start in range(0, len(rows), CHUNK):  # chunks bound the [chunk, K] gather
        part = slice(start, start + CHUNK)
        draw = rng.random(len(rows[part]))
        rows_cdf = cdf[rows[part]]
        if late is not None and weight is not None:  # exactly cdf[row] when late equals it
            rows_cdf = rows_cdf + weight[part, None] * (late[rows[part]] - rows_cdf)
        out[part] = (rows_cdf < draw[:, None] * rows_cdf[:, -1:]).sum(1)
    return np.minimum(out, cdf.shape[1] - 1)


def flat_cdf(weights: np.ndarray) -> np.ndarray:
    """Row CDFs of [R, K] weights laid end to end, row r spanning (r, r + 1]."""
    cdf = np.cumsum(weights, axis=1, dtype=np.float64)
    cdf /= cdf[:, -1:]
    cdf[:, -1] = 1.0
    return (cdf + np.arange(len(weights))[:, None]).ravel()


def draw_rows(
    flat: np.ndarray, rows: np.ndarray, width: int, rng: np.random.Generator
) -> np.ndarray:
    """One column per entry of `rows`, drawn from that row of a `flat_cdf`."""
    found = np.searchsorted(flat, rows + rng.random(len(rows)), side="right")
    return np.clip(found - rows * width, 0, width - 1)


def redraw_unavailable(
    n: int,
    draw: Callable[[np.ndarray], np.ndarray],
    available: Callable[[np.ndarray, np.ndarray], np.ndarray],
    item: str,
    draws: str,
) -> np.ndarray:
    """[n] int32: `draw(pending)` for the pending entries, redrawing those not `available`.

    `available(pending, drawn)` says which draws stand; `item` and `draws` name both in the
    error raised when some are still unavailable after MAX_REDRAWS rounds.
    """
    out, pending = np.empty(n, dtype=np.int32), np.arange(n)
    for _ in range(MAX_REDRAWS):  # rounds over the still-unavailable draws
        drawn = draw(pending)
        ok = available(pending, drawn)
        out[pending[ok]] = drawn[ok]
        pending = pending[~ok]
        if not len(pending):
            return out
    raise RuntimeError(f"no available {item} for {len(pending)} {draws}")
