"""A synthetic financial-app world drawn from a latent model that is kept as the ground truth.

`generate_world` samples a catalog, users and the event log of the app's old (pre-recsvc)
feed; `Truth` holds the latent parameters and computes the exact propensities the events were
drawn from. docs/synthetic-world.md states the generative story and its formulas.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from scipy.special import expit

from recsvc.domain import EVENT_COLUMNS
from training.world_events import (
    ACTIONS,
    CHUNK,
    DAY_MS,
    KINDS,
    LIFECYCLES,
    NEVER_MS,
    SEGMENTS,
    TOPICS,
    Catalog,
    EventArrays,
    Population,
    sample_catalog,
    sample_users,
    simulate_events,
)

GENERATOR_VERSION = "1"
TS_TYPE = pa.timestamp("ms", tz="UTC")
# ASCII of 0000..9999: ids are written four digits per vectorised step
_FOUR_DIGITS = (np.arange(10_000)[:, None] // np.array([1000, 100, 10, 1]) % 10 + 48).astype(
    np.uint8
)


@dataclass(frozen=True)
class WorldSpec:
    """Size, window and seed of a synthetic world."""

    users: int = 20_000
    videos: int = 1_000
    products: int = 60
    events: int = 400_000
    days: int = 14
    start: date = date(2026, 11, 1)
    seed: int = 42
    retired_share: float = 0.05

    def __post_init__(self) -> None:
        for name in ("users", "videos", "products", "events", "days"):
            if getattr(self, name) < 1:
                raise ValueError(f"WorldSpec.{name} must be >= 1, not {getattr(self, name)}")
        if not 0 <= self.retired_share <= 0.5:
            raise ValueError(
                f"WorldSpec.retired_share must be in [0, 0.5], not {self.retired_share}"
            )

    @property
    def start_ms(self) -> int:
        """Start of the window (midnight UTC of `start`) in epoch milliseconds."""
        return (self.start - date(1970, 1, 1)).days * DAY_MS


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
    user_topics: np.ndarray  # [U, T] float32 interests, rows sum to 1
    user_level: np.ndarray  # [U] float32 sophistication in [0, 1]
    user_risk: np.ndarray  # [U] int8 risk tolerance 1..5
    user_segment: np.ndarray  # [U] int8 index into world_events.SEGMENTS
    held_users: np.ndarray  # [H] int32: holdings before the window, as (user, product) rows
    held_products: np.ndarray  # [H] int32
    video_topics: np.ndarray  # [V, T] float32, rows sum to 1
    video_level: np.ndarray  # [V] float32 in [0, 1]
    video_quality: np.ndarray  # [V] float32
    video_from_ms: np.ndarray  # [V] int64: published
    video_until_ms: np.ndarray  # [V] int64: retired (NEVER_MS while live)
    product_topics: np.ndarray  # [P, T] float32, rows sum to 1
    product_quality: np.ndarray  # [P] float32
    product_risk: np.ndarray  # [P] int8
    product_once: np.ndarray  # [P] bool: holdable once
    product_until_ms: np.ndarray  # [P] int64
    end_ms: int  # end of the window: the instant scores refer to unless told otherwise
    behaviour: Behaviour = Behaviour()

    def __post_init__(self) -> None:
        held = self.held_users.astype(np.int64) * len(self.product_ids) + self.held_products
        object.__setattr__(self, "_held", np.sort(held))  # a derived index, not a field

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Everything needed to rebuild this object, as plain arrays (no pickle)."""
        arrays = {name: getattr(self, name) for name in _array_fields()}
        params = asdict(self.behaviour)
        arrays["end_ms"] = np.int64(self.end_ms)
        arrays["behaviour_names"] = np.array(list(params))
        arrays["behaviour_values"] = np.array(list(params.values()), dtype=np.float64)
        return arrays

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> Truth:
        """Inverse of `to_arrays`."""
        names = [str(n) for n in arrays["behaviour_names"]]
        if unknown := set(names) - {f.name for f in fields(Behaviour)}:
            raise ValueError(f"truth has unknown behaviour parameters {sorted(unknown)}")
        values = map(float, arrays["behaviour_values"])
        behaviour = Behaviour(**dict(zip(names, values, strict=True)))
        loaded = {name: np.asarray(arrays[name]) for name in _array_fields()}
        return cls(**loaded, end_ms=int(arrays["end_ms"]), behaviour=behaviour)

    def user_rows(self, user_ids: np.ndarray) -> np.ndarray:
        """Rows of these user ids (fixed-width ids sort like their numbers)."""
        rows = np.minimum(np.searchsorted(self.user_ids, user_ids), len(self.user_ids) - 1)
        if (unknown := self.user_ids[rows] != user_ids).any():
            raise KeyError(f"unknown user id {str(np.asarray(user_ids)[unknown][0])!r}")
        return rows

    # -- pair by pair: what the simulator draws from -------------------------------------

    def view_probability(self, users: np.ndarray, videos: np.ndarray) -> np.ndarray:
        """P(view | impression) of each (user row, video row) pair."""
        affinity = self._pair_affinity(users, self.video_topics, videos)
        gap = self.video_level[videos] - self.user_level[users]
        return self._view(affinity, gap, self.video_quality[videos])

    def click_probability(
        self, users: np.ndarray, videos: np.ndarray, products: np.ndarray
    ) -> np.ndarray:
        """P(click | the product's card was attached under the viewed video) of each triple."""
        affinity = self._pair_affinity(users, self.product_topics, products)
        context = self._context(self._shared()[videos, products])
        suitable = self.product_risk[products] <= self.user_risk[users]
        return self._click(affinity, self.product_quality[products], suitable) * context

    def purchase_probability(self, users: np.ndarray, products: np.ndarray) -> np.ndarray:
        """P(purchase | click) of each (user row, product row) pair."""
        affinity = self._pair_affinity(users, self.product_topics, products)
        suitable = self.product_risk[products] <= self.user_risk[users]
        codes = users.astype(np.int64) * len(self.product_ids) + products
        return self._buy(affinity, suitable, self._holds_once(codes, products))

    # -- dense: what the oracle ranks by --------------------------------------------------

    def video_scores(self, user_rows: np.ndarray, at_ms: int | None = None) -> np.ndarray:
        """[n, V] expected views of each video per impression served (default: at window end)."""
        rows = np.asarray(user_rows)
        gap = self.video_level[None, :] - self.user_level[rows, None]
        view = self._view(self._dense_affinity(rows, self.video_topics), gap, self.video_quality)
        return self.impression_share(rows, at_ms) * view

    def product_scores(self, user_rows: np.ndarray, at_ms: int | None = None) -> np.ndarray:
        """[n, P] expected purchases of each product per impression served."""
        rows = np.asarray(user_rows)
        carried = self.attach_share(at_ms) * self._context(self._shared())
        affinity = self._dense_affinity(rows, self.product_topics)
        suitable = self.product_risk[None, :] <= self.user_risk[rows, None]
        n_products = len(self.product_ids)
        codes = rows[:, None].astype(np.int64) * n_products + np.arange(n_products)
        buy = self._buy(affinity, suitable, self._holds_once(codes, np.arange(n_products)))
        click = self._click(affinity, self.product_quality, suitable)
        return (self.video_scores(rows, at_ms) @ carried) * click * buy

    def impression_share(self, user_rows: np.ndarray, at_ms: int | None = None) -> np.ndarray:
        """[n, V] chance that the old feed's next impression for each user is each video."""
        rho = self.behaviour.popular_share
        share = rho * self.popularity() + (1 - rho) * (
            self.user_topics[user_rows] @ self.topic_feed()
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

    def _view(self, affinity: np.ndarray, gap: np.ndarray, quality: np.ndarray) -> np.ndarray:
        b = self.behaviour
        logit = b.view_base + b.view_affinity * affinity - b.view_level * gap**2
        return expit(logit + b.view_quality * quality)

    def _click(self, affinity: np.ndarray, quality: np.ndarray, suitable: np.ndarray) -> np.ndarray:
        b = self.behaviour
        click = expit(b.click_base + b.click_affinity * affinity + quality)
        return click * np.where(suitable, 1.0, b.click_unsuitable)

    def _context(self, shared: np.ndarray) -> np.ndarray:
        return np.where(shared, 1.0, self.behaviour.click_off_topic)

    def _buy(self, affinity: np.ndarray, suitable: np.ndarray, held: np.ndarray) -> np.ndarray:
        b = self.behaviour
        buy = expit(b.buy_base + b.buy_affinity * affinity)
        return buy * np.where(suitable, 1.0, b.buy_unsuitable) * ~held

    def _shared(self) -> np.ndarray:
        """[V, P] bool: the video and the product share a topic."""
        return (self.video_topics > 0).astype(np.float32) @ (self.product_topics > 0).T > 0

    def _dense_affinity(self, rows: np.ndarray, item_topics: np.ndarray) -> np.ndarray:
        """[n, items] topic overlap relative to each user's strongest topic."""
        theta = self.user_topics[rows]
        return (theta @ item_topics.T) / theta.max(1, keepdims=True)

    def _pair_affinity(
        self, users: np.ndarray, item_topics: np.ndarray, items: np.ndarray
    ) -> np.ndarray:
        """`_dense_affinity` for (user, item) pairs, in chunks to bound the gathers."""
        out = np.empty(len(users), dtype=np.float32)
        for start in range(0, len(users), CHUNK):  # loop over chunks, not rows
            part = slice(start, start + CHUNK)
            theta = self.user_topics[users[part]]
            out[part] = np.einsum("ij,ij->i", theta, item_topics[items[part]]) / theta.max(1)
        return out

    def _holds_once(self, codes: np.ndarray, products: np.ndarray) -> np.ndarray:
        """Whether (user * P + product) codes are holdings of a holdable-once product."""
        held: np.ndarray = self._held  # type: ignore[attr-defined]
        if not len(held):
            return np.zeros(codes.shape, dtype=bool)
        found = np.minimum(np.searchsorted(held, codes), len(held) - 1)
        return (held[found] == codes) & self.product_once[products]


def _array_fields() -> list[str]:
    """The fields of `Truth` that are arrays (all but the window end and the constants)."""
    return [f.name for f in fields(Truth) if f.name not in ("end_ms", "behaviour")]


@dataclass(frozen=True, eq=False)
class World:
    """A generated world in memory."""

    spec: WorldSpec
    videos: pa.Table  # catalog: video_id, title, topics, duration_s, published_at, status
    products: pa.Table  # catalog: product_id, name, category, risk_level, disclosure, ...
    users: pa.Table  # user_id, segment, risk_tolerance, lifecycle, holdings
    events: pa.Table  # EVENT_COLUMNS, sorted by ts
    truth: Truth


def generate_world(spec: WorldSpec) -> World:
    """Sample a world; the same spec always gives the same content."""
    catalog_rng, users_rng, events_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(spec.seed).spawn(3)
    )
    start_ms = spec.start_ms
    catalog = sample_catalog(
        spec.videos, spec.products, start_ms, spec.days, spec.retired_share, catalog_rng
    )
    people = sample_users(spec.users, spec.days, catalog, users_rng)
    truth = _truth(spec, catalog, people)
    events = simulate_events(truth, people, catalog, spec.events, start_ms, events_rng)
    return World(
        spec=spec,
        videos=_videos_table(catalog, truth),
        products=_products_table(catalog, truth),
        users=_users_table(people, truth),
        events=_events_table(events, truth),
        truth=truth,
    )


def write_world(world: World, out: Path) -> None:
    """Write the world under `out` (which must be empty or absent): layout in the docs."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty; remove it or choose another directory")
    (out / "catalog").mkdir(parents=True, exist_ok=True)
    (out / "world.json").write_text(json.dumps(_summary(world), indent=2) + "\n")
    _write_jsonl(world.videos, out / "catalog" / "videos.jsonl")
    _write_jsonl(world.products, out / "catalog" / "products.jsonl")
    pacsv.write_csv(world.users, out / "users.csv", pacsv.WriteOptions(quoting_style="needed"))
    day = (world.events.column("ts").cast(pa.int64()).to_numpy() - world.spec.start_ms) // DAY_MS
    bounds = np.searchsorted(day, np.arange(world.spec.days + 1))
    for d in range(world.spec.days):  # one file per day of the window, even an empty one
        folder = out / "events" / f"day={world.spec.start + timedelta(days=d)}"
        folder.mkdir(parents=True)
        pq.write_table(
            world.events.slice(bounds[d], bounds[d + 1] - bounds[d]), folder / "part-0.parquet"
        )
    np.savez(out / "truth.npz", **world.truth.to_arrays())


def load_truth(world_dir: Path) -> Truth:
    """The ground truth written by `write_world`."""
    with np.load(Path(world_dir) / "truth.npz", allow_pickle=False) as data:
        return Truth.from_arrays({name: data[name] for name in data.files})


def _truth(spec: WorldSpec, catalog: Catalog, people: Population) -> Truth:
    """Assemble the oracle from the sampled latent arrays."""
    return Truth(
        topics=np.array(TOPICS),
        user_ids=_id_strings("u", spec.users),
        video_ids=_id_strings("v", spec.videos),
        product_ids=_id_strings("p", spec.products),
        user_topics=people.topics,
        user_level=people.level,
        user_risk=people.risk,
        user_segment=people.segment,
        held_users=people.held_users,
        held_products=people.held_products,
        video_topics=catalog.video_topics,
        video_level=catalog.video_level,
        video_quality=catalog.video_quality,
        video_from_ms=catalog.video_from_ms,
        video_until_ms=catalog.video_until_ms,
        product_topics=catalog.product_topics,
        product_quality=catalog.product_quality,
        product_risk=catalog.product_risk,
        product_once=np.array([KINDS[k].once for k in catalog.product_kind], dtype=bool),
        product_until_ms=catalog.product_until_ms,
        end_ms=spec.start_ms + spec.days * DAY_MS,
    )


def _id_bytes(prefix: str, numbers: np.ndarray, width: int) -> np.ndarray:
    """[n, len(prefix) + width] ASCII bytes of ids like u0001234, four digits at a time."""
    chars = np.empty((len(numbers), len(prefix) + width), dtype=np.uint8)
    chars[:, : len(prefix)] = np.frombuffer(prefix.encode(), dtype=np.uint8)
    rest, end = numbers.astype(np.int64), chars.shape[1]
    while end > len(prefix):  # per group of four digits, not per row
        size = min(4, end - len(prefix))
        chars[:, end - size : end] = _FOUR_DIGITS[rest % 10_000, 4 - size :]
        rest //= 10_000
        end -= size
    return chars


def _id_strings(prefix: str, count: int) -> np.ndarray:
    """[count] ids zero-padded to the count's width, as a numpy str array."""
    chars = _id_bytes(prefix, np.arange(count), len(str(count)))
    return chars.view(f"S{chars.shape[1]}").ravel().astype(f"U{chars.shape[1]}")


def _id_array(
    prefix: str, numbers: np.ndarray, width: int, valid: np.ndarray | None = None
) -> pa.Array:
    """The same ids as an Arrow string array, straight from the bytes (no Python strings)."""
    chars = _id_bytes(prefix, numbers, width)
    size = chars.shape[1]
    large = len(numbers) * size >= 2**31
    offsets = np.arange(len(numbers) + 1, dtype=np.int64 if large else np.int32) * size
    bitmap = None if valid is None else pa.py_buffer(np.packbits(valid, bitorder="little"))
    kind = pa.large_string() if large else pa.string()
    array = pa.Array.from_buffers(
        kind, len(numbers), [bitmap, pa.py_buffer(offsets), pa.py_buffer(chars)]
    )
    return array.cast(pa.string()) if large else array


def _labels(codes: np.ndarray, names: list[str] | np.ndarray) -> pa.Array:
    """Strings picked by integer codes, through a dictionary (decoded in C++)."""
    return pa.DictionaryArray.from_arrays(
        pa.array(codes, pa.int32()), pa.array(names)
    ).dictionary_decode()


def _topic_lists(weights: np.ndarray) -> pa.Array:
    """List of topic names per row, the heavier topic first."""
    order = np.argsort(-weights, axis=1, kind="stable")
    count = (weights > 0).sum(1)
    keep = np.arange(weights.shape[1])[None, :] < count[:, None]
    offsets = np.concatenate([[0], np.cumsum(count)]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), _labels(order[keep], list(TOPICS)))


def _status(until_ms: np.ndarray) -> pa.Array:
    return _labels((until_ms != NEVER_MS).astype(np.int32), ["live", "retired"])


def _videos_table(catalog: Catalog, truth: Truth) -> pa.Table:
    return pa.table({
        "video_id": pa.array(truth.video_ids),
        "title": pa.array(catalog.video_titles),
        "topics": _topic_lists(catalog.video_topics),
        "duration_s": pa.array(catalog.video_duration, pa.int32()),
        "published_at": pa.array(catalog.video_from_ms, TS_TYPE),
        "status": _status(catalog.video_until_ms),
    })  # fmt: skip


def _products_table(catalog: Catalog, truth: Truth) -> pa.Table:
    return pa.table({
        "product_id": pa.array(truth.product_ids),
        "name": pa.array(catalog.product_names),
        "category": _labels(catalog.product_kind, [k.category.value for k in KINDS]),
        "risk_level": pa.array(catalog.product_risk, pa.int8()),
        "disclosure": pa.array(catalog.product_disclosures, pa.string()),
        "holdable_once": pa.array(truth.product_once),
        "topics": _topic_lists(catalog.product_topics),
        "status": _status(catalog.product_until_ms),
    })  # fmt: skip


def _users_table(people: Population, truth: Truth) -> pa.Table:
    per_user = np.bincount(people.held_users, minlength=len(truth.user_ids))
    offsets = np.concatenate([[0], np.cumsum(per_user)]).astype(np.int32)
    held = pa.ListArray.from_arrays(
        pa.array(offsets), _labels(people.held_products, truth.product_ids)
    )
    return pa.table({
        "user_id": pa.array(truth.user_ids),
        "segment": _labels(people.segment, [s.name for s in SEGMENTS]),
        "risk_tolerance": pa.array(people.risk, pa.int8()),
        "lifecycle": _labels(people.lifecycle, list(LIFECYCLES)),
        "holdings": pc.binary_join(held, "|"),
    })  # fmt: skip


def _events_table(events: EventArrays, truth: Truth) -> pa.Table:
    """Arrow columns of EVENT_COLUMNS, sorted by time, with ids numbered in that order."""
    order = np.argsort(events.ts, kind="stable")
    n, request = len(order), events.request[order]
    items = np.concatenate([truth.video_ids, truth.product_ids])
    ratio, amount = events.watch_ratio[order], events.amount[order]
    columns = {
        "event_id": _id_array("e", np.arange(n), max(10, len(str(n)))),
        "ts": pa.array(events.ts[order], TS_TYPE),
        "user_id": _id_array("u", events.user[order], len(str(len(truth.user_ids)))),
        "item_id": _labels(events.item[order], items),
        "item_type": _labels(
            (events.item[order] >= len(truth.video_ids)).astype(np.int32), ["video", "product"]
        ),
        "action": _labels(events.action[order], list(ACTIONS)),
        "watch_ratio": pa.array(ratio, pa.float32(), mask=np.isnan(ratio)),
        "request_id": _id_array(
            "r", np.maximum(request, 0), len(str(max(request.max(initial=0), 1))), request >= 0
        ),
        "amount": pa.array(amount, pa.float64(), mask=np.isnan(amount)),
    }
    assert tuple(columns) == EVENT_COLUMNS  # the shared contract's column order
    return pa.table(columns)


def _summary(world: World) -> dict:
    """world.json: what a reader needs to know without opening the data."""
    spec, truth = world.spec, world.truth
    actions = world.events.column("action").value_counts().to_pylist()
    return {
        "generator": "training.world",
        "version": GENERATOR_VERSION,
        "seed": spec.seed,
        "spec": asdict(spec) | {"start": spec.start.isoformat()},
        "window": {
            "start": spec.start.isoformat(),
            "end": (spec.start + timedelta(days=spec.days)).isoformat(),
        },
        "counts": {
            "users": len(truth.user_ids),
            "videos": len(truth.video_ids),
            "products": len(truth.product_ids),
            "events": world.events.num_rows,
            "actions": {a["values"]: a["counts"] for a in actions},
            "retired_videos": int((truth.video_until_ms != NEVER_MS).sum()),
            "retired_products": int((truth.product_until_ms != NEVER_MS).sum()),
            "holdings": len(truth.held_users),
        },
        "topics": list(TOPICS),
        "segments": [s.name for s in SEGMENTS],
        "behaviour": asdict(truth.behaviour),
    }


def _write_jsonl(table: pa.Table, path: Path) -> None:
    """One JSON object per row; timestamps as ISO 8601 UTC (catalogs are small)."""
    with path.open("w") as sink:
        for row in table.to_pylist():
            row = {
                k: v.strftime("%Y-%m-%dT%H:%M:%SZ") if isinstance(v, datetime) else v
                for k, v in row.items()
            }
            sink.write(json.dumps(row, ensure_ascii=False) + "\n")
