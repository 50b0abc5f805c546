"""The attach hit rate: the product cards a user's feed page would carry, against the products
they bought in the held-out part. What the attach weights (a, b) are tuned on.

As the service builds a page (recsvc.feed): the user's top-k videos (training videos and
retired ones excluded), under each the product maximising a · (u · p) + b · (v · p) among
those the user may still be offered (products held in training and retired ones excluded),
then at most `max_attached` cards per page, the best-scoring first and each product once
(recsvc.feed.attach.choose_attachments). A held-out purchase is a hit when its product is
among the page's cards. Only the ratio b / a matters, so the grid is of ratios.
"""

from __future__ import annotations

import numpy as np

from recsvc.contract.manifest import DEFAULT_ATTACH_WEIGHTS
from recsvc.feed.attach import choose_attachments
from training.evaluation.evaluate import EvalSpec, EvaluationSet, FactorScorer, ranked_videos

# (a, b): mixtures from mostly-user to mostly-video, and video only. Never b = 0: the user's
# best product would then win under every video, and a page would carry one card.
ATTACH_WEIGHTS = (
    (1.0, 0.1),
    (1.0, 0.3),
    (1.0, 1.0),
    (1.0, 3.0),
    (1.0, 10.0),
    (0.0, 1.0),
)
MAX_ATTACHED = 3  # the service's default cards per page (RECSVC_MAX_ATTACHED_PER_PAGE)


def attach_hit_rate(
    scorer: FactorScorer,
    data: EvaluationSet,
    spec: EvalSpec,
    weights: tuple[float, float],
    max_attached: int = MAX_ATTACHED,
) -> tuple[float, int] | None:
    """(Share of held-out purchases whose product is on the buyer's page, those purchases);
    None when the data cannot measure it (no videos, no products or no held-out purchase)."""
    index = data.train.index
    n_videos, n_products = index.n_videos, index.n_items - index.n_videos
    bought = data.test.purchases[data.users][:, index.products]
    if n_videos == 0 or n_products == 0 or bought.nnz == 0:
        return None
    buyers = np.flatnonzero(np.diff(bought.indptr) > 0)
    pages = ranked_videos(scorer, data, spec)[buyers]  # [buyers, k] video columns, -1 padded
    users = data.users[buyers]
    factors = scorer.factors
    user_part = factors.user[users] @ factors.item[index.products].T  # [buyers, products]
    video_part = factors.item[index.videos] @ factors.item[index.products].T  # [videos, products]
    blocked = data.train.confidence[users][:, index.products].toarray() > 0
    blocked |= data.retired[index.products][None, :]
    a, b = weights
    found = 0
    for row, page in enumerate(pages):
        page = page[page >= 0]
        if len(page) == 0:
            continue
        scores = a * user_part[row][None, :] + b * video_part[page]  # [slots, products]
        scores[:, blocked[row]] = -np.inf
        best = scores.argmax(axis=1)
        best_score = scores[np.arange(len(page)), best]
        cards = {p for p in choose_attachments(best.tolist(), best_score.tolist(), max_attached)}
        held_out = bought[buyers[row]].indices
        found += sum(1 for p in held_out if p in cards)
    return found / bought.nnz, int(bought.nnz)


def choose_attach_weights(
    scorer: FactorScorer, data: EvaluationSet, spec: EvalSpec
) -> tuple[tuple[float, float], list[dict[str, object]]]:
    """The grid's best (a, b) on `data` and every point's figure. The service's default stays
    unless a point does strictly better (ties and a split with nothing found keep it); the
    default and an empty list when the data cannot measure it."""
    tried: list[dict[str, object]] = []
    best: tuple[tuple[float, float], float] | None = None
    weights_order = [
        DEFAULT_ATTACH_WEIGHTS,
        *(w for w in ATTACH_WEIGHTS if w != DEFAULT_ATTACH_WEIGHTS),
    ]
    for weights in weights_order:
        measured = attach_hit_rate(scorer, data, spec, weights)
        if measured is None:
            return DEFAULT_ATTACH_WEIGHTS, []
        rate, pairs = measured
        tried.append({"weights": list(weights), "attach_hit_rate": rate, "pairs": pairs})
        if best is None or rate > best[1]:
            best = (weights, rate)
    assert best is not None
    return best[0], tried
