"""Fold-in: a user vector from the user's recent items, by the ALS closed form, in numpy
(or, for a projection family such as low-rank EASE, the items' confidences times the
projection: `project`).

For a user with items i and summed event confidences r_i (as the trainer builds them), with
c_i = alpha · f(r_i) where f is the identity or log1p (the model's `confidence` parameter):

    x = (YᵀY + λI + Σ_i (c_i − 1) y_i y_iᵀ)⁻¹ Σ_i c_i y_i

which is what implicit's `recalculate_user` computes, without implicit. YᵀY comes precomputed
with the model (`item_gram.npy`), so one fold-in costs O(n·d² + d³).

A seed ensemble (the model's `ensemble` parameter, m fits side by side) was trained as m
independent fits: each fit's block of d/m columns is solved on its own, as its fit would,
and the blocks put side by side.

The same closed form, sides swapped, gives a video published after training its vector from
the vectors of its first viewers (`closed_form`, with the users' Gram matrix).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np


def fold_in(
    item_factors: np.ndarray,
    item_gram: np.ndarray,
    items: np.ndarray,
    confidences: np.ndarray,
    params: Mapping[str, Any],
) -> np.ndarray:
    """The ALS user vector for items [n] with summed confidences [n]; zeros when n is 0."""
    if len(items) == 0:
        return np.zeros(item_factors.shape[1], dtype=np.float32)
    rows = item_factors[np.asarray(items)]
    return closed_form(rows, item_gram, confidences, params, float(params["regularization"]))


def closed_form(
    rows: np.ndarray,
    gram: np.ndarray,
    confidences: np.ndarray,
    params: Mapping[str, Any],
    regularization: float,
    prior: np.ndarray | None = None,
) -> np.ndarray:
    """The ALS closed form for one row of either side, from the other side's rows [n, d] it
    interacted with (their summed confidences [n]) and that side's Gram matrix [d, d]:

        x = (G + λI + Σ_i (c_i − 1) y_i y_iᵀ)⁻¹ (Σ_i c_i y_i + λ·prior)

    With a prior (a new video's metadata vector, recsvc.feed.fresh) the solution is pulled
    towards it instead of towards zero; λ is then how much evidence the prior counts for.
    A seed ensemble's blocks are solved one by one, as their fits would."""
    dim = gram.shape[0]
    blocks = ensemble_size(params, dim)
    width = dim // blocks
    values = np.asarray(confidences, dtype=np.float64)
    if params.get("confidence", "linear") == "log":
        values = np.log1p(values)
    c = float(params.get("alpha", 1.0)) * values
    out = np.empty(dim, dtype=np.float64)
    for block in range(blocks):
        part = slice(block * width, (block + 1) * width)
        y = rows[:, part].astype(np.float64)
        a = gram[part, part].astype(np.float64) + regularization * np.eye(width)
        a += (y * (c - 1.0)[:, None]).T @ y
        b = (c[:, None] * y).sum(axis=0)
        if prior is not None:
            b += regularization * prior[part].astype(np.float64)
        out[part] = np.linalg.solve(a, b)
    return out.astype(np.float32)


def ensemble_size(params: Mapping[str, Any], dimension: int) -> int:
    """The model's seed ensemble (its fits side by side), checked against its dimension."""
    blocks = int(params.get("ensemble", 1))
    if blocks < 1 or dimension % blocks:
        raise ValueError(
            f"an ensemble of {blocks} fits cannot split a dimension of {dimension} into blocks"
        )
    return blocks


def project(
    projection: np.ndarray,
    items: np.ndarray,
    confidences: np.ndarray,
    params: Mapping[str, Any],
) -> np.ndarray:
    """The user vector of a projection family (low-rank EASE): Σ_i f(r_i) · projection_i, with
    f as in fold_in (alpha does not enter: training gives EASE the transformed matrix as is)."""
    values = np.asarray(confidences, dtype=np.float64)
    if params.get("confidence", "linear") == "log":
        values = np.log1p(values)
    rows = projection[np.asarray(items)].astype(np.float64)
    vector: np.ndarray = (values @ rows).astype(np.float32)
    return vector
