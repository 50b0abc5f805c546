"""A synthetic financial-app world drawn from a latent model that is kept as the ground truth.

`generate_world` samples a catalog, users and the event log of the app's old (pre-recsvc)
feed; `Truth` holds the latent parameters and computes the exact propensities the events were
drawn from. docs/synthetic-world.md states the generative story and its formulas.

This module is the public API and the I/O; the parts live beside it in sandbox.world:
vocabulary (topics, segments, product kinds), catalog, users, events (the simulation), truth,
tables (Arrow tables) and sampling.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from sandbox.world.catalog import Catalog, sample_catalog
from sandbox.world.events import EventArrays, simulate_events
from sandbox.world.sampling import CHUNK
from sandbox.world.tables import (
    TS_TYPE,
    events_table,
    id_strings,
    products_table,
    users_table,
    videos_table,
)
from sandbox.world.truth import Behaviour, Truth
from sandbox.world.users import Population, sample_users
from sandbox.world.vocabulary import (
    ACTIONS,
    DAY_MS,
    KINDS,
    LIFECYCLES,
    NEVER_MS,
    SEGMENTS,
    TOPICS,
)

__all__ = [
    "GENERATOR_VERSION", "Behaviour", "Truth", "World", "WorldSpec",
    "generate_world", "load_truth", "write_world",
    # the parts, still importable from here
    "ACTIONS", "CHUNK", "DAY_MS", "KINDS", "LIFECYCLES", "NEVER_MS", "SEGMENTS", "TOPICS",
    "TS_TYPE", "Catalog", "EventArrays", "Population",
    "sample_catalog", "sample_users", "simulate_events",
]  # fmt: skip

GENERATOR_VERSION = "1"


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
    fresh_share: float = 0.05  # videos published during the window, uniformly over it
    news_share: float = 0.0  # videos that are news (all published during the window)
    news_half_life_hours: float = 6.0  # a news video's appeal halves every this many hours
    # what a news video adds to its view logit: fresh news draws more than an explainer
    news_appeal: float = 1.5
    drift: float = 0.0  # how far interests move over the window towards a second draw

    def __post_init__(self) -> None:
        for name in ("users", "videos", "products", "events", "days"):
            if getattr(self, name) < 1:
                raise ValueError(f"WorldSpec.{name} must be >= 1, not {getattr(self, name)}")
        for name, high in (("retired_share", 0.5), ("fresh_share", 1), ("drift", 1)):
            if not 0 <= getattr(self, name) <= high:
                raise ValueError(
                    f"WorldSpec.{name} must be in [0, {high}], not {getattr(self, name)}"
                )
        if not 0 <= self.news_share <= self.fresh_share:
            raise ValueError(
                f"WorldSpec.news_share must be in [0, fresh_share = {self.fresh_share}] (news is "
                f"published during the window), not {self.news_share}"
            )
        if not 0 <= self.news_appeal < math.inf:
            raise ValueError(f"WorldSpec.news_appeal must be >= 0, not {self.news_appeal}")
        if not 0 < self.news_half_life_hours < math.inf:
            raise ValueError(
                f"WorldSpec.news_half_life_hours must be > 0, not {self.news_half_life_hours}"
            )

    @property
    def start_ms(self) -> int:
        """Start of the window (midnight UTC of `start`) in epoch milliseconds."""
        return (self.start - date(1970, 1, 1)).days * DAY_MS

    @property
    def end_ms(self) -> int:
        """End of the window (exclusive) in epoch milliseconds."""
        return self.start_ms + self.days * DAY_MS


@dataclass(frozen=True, eq=False)
class World:
    """A generated world in memory."""

    spec: WorldSpec
    videos: pa.Table  # catalog: video_id, title, topics, creator, duration_s, published_at, ...
    products: pa.Table  # catalog: product_id, name, category, risk_level, disclosure, ...
    users: pa.Table  # user_id, segment, risk_tolerance, lifecycle, holdings
    events: pa.Table  # EVENT_COLUMNS, sorted by ts
    truth: Truth


def generate_world(spec: WorldSpec) -> World:
    """Sample a world; the same spec always gives the same content."""
    # the clock's draws (news, creators, drift) come from a fourth stream: the first three
    # are those of the world before it, so an old spec gives the same content
    catalog_rng, users_rng, events_rng, clock_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(spec.seed).spawn(4)
    )
    start_ms = spec.start_ms
    catalog = sample_catalog(
        spec.videos, spec.products, start_ms, spec.days, spec.retired_share,
        spec.fresh_share, spec.news_share, catalog_rng, clock_rng,
    )  # fmt: skip
    people = sample_users(spec.users, spec.days, catalog, spec.drift, users_rng, clock_rng)
    truth = _truth(spec, catalog, people)
    events = simulate_events(truth, people, catalog, spec.events, start_ms, events_rng)
    return World(
        spec=spec,
        videos=videos_table(catalog, truth),
        products=products_table(catalog, truth),
        users=users_table(people, truth),
        events=events_table(events, truth),
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
    np.savez(out / "truth.npz", **world.truth.to_arrays())  # type: ignore[arg-type]


def load_truth(world_dir: Path) -> Truth:
    """The ground truth written by `write_world`."""
    with np.load(Path(world_dir) / "truth.npz", allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    summary = Path(world_dir) / "world.json"
    if "start_ms" not in arrays and summary.is_file():  # written before the clock
        start = date.fromisoformat(json.loads(summary.read_text())["window"]["start"])
        arrays["start_ms"] = np.array((start - date(1970, 1, 1)).days * DAY_MS, dtype=np.int64)
    return Truth.from_arrays(arrays)


def _truth(spec: WorldSpec, catalog: Catalog, people: Population) -> Truth:
    """Assemble the oracle from the sampled latent arrays."""
    return Truth(
        topics=np.array(TOPICS),
        user_ids=id_strings("u", spec.users),
        video_ids=id_strings("v", spec.videos),
        product_ids=id_strings("p", spec.products),
        user_topics=people.topics,
        user_topics_late=people.topics_late,
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
        video_news=catalog.video_news,
        product_topics=catalog.product_topics,
        product_quality=catalog.product_quality,
        product_risk=catalog.product_risk,
        product_once=np.array([KINDS[k].once for k in catalog.product_kind], dtype=bool),
        product_until_ms=catalog.product_until_ms,
        start_ms=spec.start_ms,
        end_ms=spec.end_ms,
        news_half_life_hours=spec.news_half_life_hours,
        news_appeal=spec.news_appeal,
    )


def _summary(world: World) -> dict:
    """world.json: what a reader needs to know without opening the data."""
    spec, truth = world.spec, world.truth
    actions = world.events.column("action").value_counts().to_pylist()
    return {
        "generator": "sandbox.world.generate",
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
            "fresh_videos": int((truth.video_from_ms >= spec.start_ms).sum()),
            "news_videos": int(truth.video_news.sum()),
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
