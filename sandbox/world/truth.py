"""The ground truth of a synthetic world: its latent parameters and the exact propensities
they imply, which the simulator draws from and the oracle ranks by.

The world has a clock: each propensity refers to an instant (default: the window's end).
Interests move linearly over the window from `user_topics` to `user_topics_late`, and a news
video's view probability halves every `news_half_life_hours` after its publication.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
from scipy.special import expit

from sandbox.world.sampling import CHUNK
from sandbox.world.vocabulary import DAY_MS, HOUR_MS

Instant = int | np.ndarray  # epoch ms: one instant, or one per pair


@dataclass(frozen=True)
class Behaviour:
    """Constants of the generative story (docs/synthetic-world.md names each one)."""

    popular_share: float = 0.3  # share of the old feed's slots filled by popularity
    popularity_power: float = 1.5  # the old feed's popularity is exp(power * quality)
    view_base: float = -1.6
    view_affinity: float = 4.0
    view_level: float = 3.0  # penalty on the squared gap between video and user level
    view_quality: float = 0.5
    attach_match: float = 0.7  # share of attaches picked by topic match, the rest at random
    click_base: float = -3.2
    click_affinity: float = 4.0
    click_off_topic: float = 0.5  # a card sharing no topic with its video is clicked less
    click_unsuitable: float = 0.4  # a card too risky for the user is clicked less
    buy_base: float = -4.0
    buy_affinity: float = 3.0
    buy_unsuitable: float = 0.2  # risk above tolerance: purchases are rare, not impossible


@dataclass(frozen=True, eq=False)
class Truth:
    """Latent parameters of a world and the exact propensities they imply."""

    topics: np.ndarray  # [T] str
    user_ids: np.ndarray  # [U] str, sorted (fixed width)
    video_ids: np.ndarray  # [V] str, sorted
    product_ids: np.ndarray  # [P] str, sorted
    user_topics: np.ndarray  # [U, T] float32 interests at start_ms, rows sum to 1
    user_topics_late: np.ndarray  # [U, T] float32 interests at end_ms (user_topics: no drift)
    user_level: np.ndarray  # [U] float32 sophistication in [0, 1]
    user_risk: np.ndarray  # [U] int8 risk tolerance 1..5
    user_segment: np.ndarray  # [U] int8 index into vocabulary.SEGMENTS
    held_users: np.ndarray  # [H] int32: holdings before the window, as (user, product) rows
    held_products: np.ndarray  # [H] int32
    video_topics: np.ndarray  # [V, T] float32, rows sum to 1
    video_level: np.ndarray  # [V] float32 in [0, 1]
    video_quality: np.ndarray  # [V] float32
    video_from_ms: np.ndarray  # [V] int64: published
    video_until_ms: np.ndarray  # [V] int64: retired (NEVER_MS while live)
    video_news: np.ndarray  # [V] bool: news, whose appeal decays with age
    product_topics: np.ndarray  # [P, T] float32, rows sum to 1
    product_quality: np.ndarray  # [P] float32
    product_risk: np.ndarray  # [P] int8
    product_once: np.ndarray  # [P] bool: holdable once
    product_until_ms: np.ndarray  # [P] int64
    start_ms: int  # start of the window, where interests are user_topics
    end_ms: int  # end of the window: the instant scores refer to unless told otherwise
    news_half_life_hours: float  # a news video's appeal halves every this many hours
    # what a news video adds to its view logit (fresh news draws more than an explainer of
    # the same affinity; its probability then halves with its age)
    news_appeal: float = 0.0
    behaviour: Behaviour = Behaviour()

    def __post_init__(self) -> None:
        held = self._pair_codes(self.held_users, self.held_products)
        object.__setattr__(self, "_held", np.sort(held))  # a derived index, not a field

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Everything needed to rebuild this object, as plain arrays (no pickle)."""
        arrays = {name: getattr(self, name) for name in _array_fields()}
        params = asdict(self.behaviour)
        arrays["start_ms"], arrays["end_ms"] = np.int64(self.start_ms), np.int64(self.end_ms)
        arrays["news_half_life_hours"] = np.float64(self.news_half_life_hours)
        arrays["news_appeal"] = np.float64(self.news_appeal)
        arrays["behaviour_names"] = np.array(list(params))
        arrays["behaviour_values"] = np.array(list(params.values()), dtype=np.float64)
        return arrays

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> Truth:
        """Inverse of `to_arrays`; a truth written before the clock has no news and no drift,
        and (unless `start_ms` is given) a 14-day window, which then places nothing."""
        names = [str(n) for n in arrays["behaviour_names"]]
        if unknown := set(names) - {f.name for f in fields(Behaviour)}:
            raise ValueError(f"truth has unknown behaviour parameters {sorted(unknown)}")
        values = map(float, arrays["behaviour_values"])
        behaviour = Behaviour(**dict(zip(names, values, strict=True)))
        end_ms = int(arrays["end_ms"])
        before_the_clock = {
            "user_topics_late": arrays["user_topics"],
            "video_news": np.zeros(len(arrays["video_ids"]), dtype=bool),
            "start_ms": np.array(end_ms - 14 * DAY_MS, dtype=np.int64),
            "news_half_life_hours": np.array(6.0),
            "news_appeal": np.array(0.0),
        }
        arrays = before_the_clock | arrays
        loaded = {name: np.asarray(arrays[name]) for name in _array_fields()}
        return cls(
            **loaded,
            start_ms=int(arrays["start_ms"]),
            end_ms=end_ms,
            news_half_life_hours=float(arrays["news_half_life_hours"]),
            news_appeal=float(arrays["news_appeal"]),
            behaviour=behaviour,
        )

    def user_rows(self, user_ids: np.ndarray) -> np.ndarray:
        """Rows of these user ids (fixed-width ids sort like their numbers)."""
        rows = np.minimum(np.searchsorted(self.user_ids, user_ids), len(self.user_ids) - 1)
        if (unknown := self.user_ids[rows] != user_ids).any():
            raise KeyError(f"unknown user id {str(np.asarray(user_ids)[unknown][0])!r}")
        return rows

    def progress(self, at_ms: Instant | None = None) -> np.ndarray:
        """τ = clip((t − start_ms) / (end_ms − start_ms), 0, 1), float32 (default: t = end)."""
        at = np.asarray(self.end_ms if at_ms is None else at_ms, dtype=np.int64)
        return np.clip((at - self.start_ms) / (self.end_ms - self.start_ms), 0, 1).astype(
            np.float32
        )

    def interests(self, user_rows: np.ndarray, at_ms: Instant | None = None) -> np.ndarray:
        """[n, T] θᵤ(t) = (1 − τ)·θᵤ + τ·θ_lateᵤ at one instant or one per row (default: end)."""
        theta = self.user_topics[user_rows]
        tau = self.progress(at_ms)[..., None]
        return theta + tau * (self.user_topics_late[user_rows] - theta)  # exactly θ: no drift

    # -- pair by pair: what the simulator draws from -------------------------------------

    def view_probability(
        self, users: np.ndarray, videos: np.ndarray, at_ms: Instant | None = None
    ) -> np.ndarray:
        """P(view | impression) of each (user row, video row) pair at an instant (one, or one
        per pair; default: the window's end)."""
        at = self.end_ms if at_ms is None else at_ms
        affinity = self._pair_affinity(users, self.video_topics, videos, at)
        gap = self.video_level[videos] - self.user_level[users]
        view = self._view(affinity, gap, self.video_quality[videos], self._appeal(videos))
        return view * self._decay(videos, at)

    def click_probability(
        self,
        users: np.ndarray,
        videos: np.ndarray,
        products: np.ndarray,
        at_ms: Instant | None = None,
    ) -> np.ndarray:
        """P(click | the product's card was attached under the viewed video) of each triple."""
        affinity = self._pair_affinity(users, self.product_topics, products, at_ms)
        context = self._context(self._shared()[videos, products])
        suitable = self._suitable(users, products)
        return self._click(affinity, self.product_quality[products], suitable) * context

    def purchase_probability(
        self, users: np.ndarray, products: np.ndarray, at_ms: Instant | None = None
    ) -> np.ndarray:
        """P(purchase | click) of each (user row, product row) pair."""
        affinity = self._pair_affinity(users, self.product_topics, products, at_ms)
        suitable = self._suitable(users, products)
        return self._buy(affinity, suitable, self._holds_once(users, products))

    # -- dense: what the oracle ranks by --------------------------------------------------

    def view_propensity(self, user_rows: np.ndarray, at_ms: int) -> np.ndarray:
        """[n, V] P(view | the video is shown to the user at `at_ms`): 0 for a video not
        published yet or retired then."""
        rows = np.asarray(user_rows)
        gap = self.video_level[None, :] - self.user_level[rows, None]
        affinity = self._dense_affinity(rows, self.video_topics, at_ms)
        view = self._view(affinity, gap, self.video_quality, self._appeal(slice(None)))
        return view * (self._decay(slice(None), at_ms) * self.videos_available(at_ms))

    def video_scores(self, user_rows: np.ndarray, at_ms: int | None = None) -> np.ndarray:
        """[n, V] expected views of each video per impression served (default: at window end)."""
        at = self.end_ms if at_ms is None else at_ms
        return self.impression_share(user_rows, at) * self.view_propensity(user_rows, at)

    def product_scores(self, user_rows: np.ndarray, at_ms: int | None = None) -> np.ndarray:
        """[n, P] expected purchases of each product per impression served."""
        rows = np.asarray(user_rows)
        carried = self.attach_share(at_ms) * self._context(self._shared())
        affinity = self._dense_affinity(rows, self.product_topics, at_ms)
        products = np.arange(len(self.product_ids))
        suitable = self._suitable(rows[:, None], products)
        buy = self._buy(affinity, suitable, self._holds_once(rows[:, None], products))
        click = self._click(affinity, self.product_quality, suitable)
        return (self.video_scores(rows, at_ms) @ carried) * click * buy

    def impression_share(self, user_rows: np.ndarray, at_ms: int | None = None) -> np.ndarray:
        """[n, V] chance that the old feed's next impression for each user is each video."""
        rho = self.behaviour.popular_share
        share = rho * self.popularity() + (1 - rho) * (
            self.interests(user_rows, at_ms) @ self.topic_feed()
        )
        share *= self.videos_available(at_ms)  # an unavailable draw is redrawn: renormalise
        return share / share.sum(1, keepdims=True)

    def attach_share(self, at_ms: int | None = None) -> np.ndarray:
        """[V, P] chance that the old app attached each product under each video."""
        m = self.behaviour.attach_match
        share = m * self.attach_match() + (1 - m) / len(self.product_ids)
        share *= self.products_available(at_ms)  # a retired draw is redrawn: renormalise
        return share / share.sum(1, keepdims=True)

    def popularity(self) -> np.ndarray:
        """[V] the old feed's popularity distribution."""
        weight = np.exp(self.behaviour.popularity_power * self.video_quality.astype(np.float64))
        return weight / weight.sum()

    def topic_feed(self) -> np.ndarray:
        """[T, V] the old feed's pick within a topic: popularity among that topic's videos."""
        weight = self.video_topics.T * self.popularity()
        totals = weight.sum(1, keepdims=True)
        return np.where(totals > 0, weight / np.where(totals > 0, totals, 1), self.popularity())

    def attach_match(self) -> np.ndarray:
        """[V, P] the topic-matched attach: products by topic overlap with the video."""
        weight = self.video_topics.astype(np.float64) @ self.product_topics.T
        totals = weight.sum(1, keepdims=True)
        uniform = 1 / len(self.product_ids)  # a video with no matching product: any product
        return np.where(totals > 0, weight / np.where(totals > 0, totals, 1), uniform)

    def videos_available(self, at_ms: int | None = None) -> np.ndarray:
        """[V] bool: published and not yet retired at that instant (default: window end)."""
        at = self.end_ms if at_ms is None else at_ms
        return (self.video_from_ms <= at) & (at < self.video_until_ms)

    def products_available(self, at_ms: int | None = None) -> np.ndarray:
        """[P] bool: not yet retired at that instant (default: window end)."""
        return (self.end_ms if at_ms is None else at_ms) < self.product_until_ms

    # -- the formulas, each written once ---------------------------------------------------

    def _view(
        self, affinity: np.ndarray, gap: np.ndarray, quality: np.ndarray, appeal: Any = 0.0
    ) -> np.ndarray:
        b = self.behaviour
        logit = b.view_base + b.view_affinity * affinity - b.view_level * gap**2
        return expit(logit + b.view_quality * quality + appeal)

    def _appeal(self, videos: np.ndarray | slice) -> np.ndarray | float:
        """What each video adds to its view logit: `news_appeal` for news, 0 for the rest."""
        if not self.news_appeal or not self.video_news.any():
            return 0.0  # (a world without news draws exactly as before there was news)
        return np.where(self.video_news[videos], self.news_appeal, 0.0).astype(np.float32)

    def _click(self, affinity: np.ndarray, quality: np.ndarray, suitable: np.ndarray) -> np.ndarray:
        b = self.behaviour
        click = expit(b.click_base + b.click_affinity * affinity + quality)
        return click * np.where(suitable, 1.0, b.click_unsuitable)

    def _decay(self, videos: np.ndarray | slice, at: Instant) -> np.ndarray:
        """2^(−age / half-life) for news videos (age 0 before publication), 1 for the rest."""
        age = np.maximum(np.asarray(at) - self.video_from_ms[videos], 0) / HOUR_MS
        decay = np.exp2(-age / self.news_half_life_hours)
        return np.where(self.video_news[videos], decay, 1.0).astype(np.float32)

    def _context(self, shared: np.ndarray) -> np.ndarray:
        return np.where(shared, 1.0, self.behaviour.click_off_topic)

    def _buy(self, affinity: np.ndarray, suitable: np.ndarray, held: np.ndarray) -> np.ndarray:
        b = self.behaviour
        buy = expit(b.buy_base + b.buy_affinity * affinity)
        return buy * np.where(suitable, 1.0, b.buy_unsuitable) * ~held

    def _suitable(self, users: np.ndarray, products: np.ndarray) -> np.ndarray:
        """Whether each product's risk is within its user's tolerance (broadcasting)."""
        return self.product_risk[products] <= self.user_risk[users]

    def _shared(self) -> np.ndarray:
        """[V, P] bool: the video and the product share a topic."""
        return (self.video_topics > 0).astype(np.float32) @ (self.product_topics > 0).T > 0

    def _dense_affinity(
        self, rows: np.ndarray, item_topics: np.ndarray, at_ms: int | None
    ) -> np.ndarray:
        """[n, items] topic overlap relative to each user's strongest topic, at an instant."""
        theta = self.interests(rows, at_ms)
        return (theta @ item_topics.T) / theta.max(1, keepdims=True)

    def _pair_affinity(
        self, users: np.ndarray, item_topics: np.ndarray, items: np.ndarray, at_ms: Instant | None
    ) -> np.ndarray:
        """`_dense_affinity` for (user, item) pairs, in chunks to bound the gathers."""
        out = np.empty(len(users), dtype=np.float32)
        at = np.broadcast_to(self.end_ms if at_ms is None else at_ms, np.shape(users))
        for start in range(0, len(users), CHUNK):  # loop over chunks, not rows
            part = slice(start, start + CHUNK)
            theta = self.interests(users[part], at[part])
            out[part] = np.einsum("ij,ij->i", theta, item_topics[items[part]]) / theta.max(1)
        return out

    def _pair_codes(self, users: np.ndarray, products: np.ndarray) -> np.ndarray:
        """user * P + product: one int64 per (user row, product row) pair (broadcasting)."""
        return users.astype(np.int64) * len(self.product_ids) + products

    def _holds_once(self, users: np.ndarray, products: np.ndarray) -> np.ndarray:
        """Whether each user holds that product from before the window and may hold it once."""
        codes = self._pair_codes(users, products)
        held: np.ndarray = self._held  # type: ignore[attr-defined]
        if not len(held):
            return np.zeros(codes.shape, dtype=bool)
        found = np.minimum(np.searchsorted(held, codes), len(held) - 1)
        return (held[found] == codes) & self.product_once[products]


def _array_fields() -> list[str]:
    """The fields of `Truth` that are arrays (all but the window, half-life and constants)."""
    scalars = ("start_ms", "end_ms", "news_half_life_hours", "news_appeal", "behaviour")
    return [f.name for f in fields(Truth) if f.name not in scalars]
