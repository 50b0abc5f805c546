"""What a replica serves from: the current model and catalogue, swapped in as one snapshot.

A `Snapshot` is immutable; a request takes the current one once and uses it throughout, so a
reload never changes a request midway and never drops one. The watcher polls Redis for the
model pointer and the catalogue revision; a new model directory is loaded and verified off the
event loop and swapped in only when it passes, otherwise the old one stays.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from recsvc.contract.campaigns import Campaigns, parse_campaigns
from recsvc.contract.catalog import Catalog
from recsvc.contract.experiments import Experiments, parse_experiments, require_published
from recsvc.contract.manifest import is_version_dir, version_dirs
from recsvc.feed.attach import ItemRules
from recsvc.feed.fresh import Learned
from recsvc.feed.model import ServingModel
from recsvc.service.fresh import FreshLearner
from recsvc.service.trends import LiveTrends
from recsvc.store.control import Pointer
from recsvc.store.gateway import RedisUnavailable
from recsvc.store.state import FeatureStore

log = logging.getLogger("recsvc.service.snapshot")
REFUSED_RETRY_SECONDS = 30.0


@dataclass(frozen=True)
class Snapshot:
    model: ServingModel | None = None
    catalog: Catalog = field(default_factory=Catalog)
    rules: ItemRules | None = None
    experiments: Experiments = field(default_factory=Experiments.empty)
    experiments_revision: str | None = None
    campaigns: Campaigns = field(default_factory=Campaigns)
    campaigns_revision: str | None = None
    # Models that experiment variants ask for besides the current one: "challenger" or a
    # pinned version, each with its rules under the catalogue.
    others: dict[str, tuple[ServingModel, ItemRules | None]] = field(default_factory=dict)
    # The current model's fresh videos' collaborative vectors (recsvc.service.fresh); the
    # other models' fresh videos keep their metadata vectors.
    learned: Mapping[str, Learned] = field(default_factory=dict)

    def resolve(self, key: str) -> tuple[ServingModel | None, ItemRules | None]:
        """The model (and rules) a variant's `model` names; the current one for "current", and
        also when the one named is not loaded (the exposure then names what was served)."""
        model, rules = self.others.get(key, (None, None))
        if key == "current" or model is None or rules is None:
            return self.model, self.rules
        return model, rules

    def with_other(self, key: str, model: ServingModel | None) -> Snapshot:
        others = {k: v for k, v in self.others.items() if k != key}
        if model is not None:
            others[key] = (model, _rules(model, self.catalog))
        return replace(self, others=others)

    def with_model(self, model: ServingModel) -> Snapshot:
        return replace(self, model=model, rules=_rules(model, self.catalog), learned={})

    def with_catalog(self, catalog: Catalog) -> Snapshot:
        others = {k: (m, _rules(m, catalog)) for k, (m, _) in self.others.items()}
        rules = _rules(self.model, catalog, self.learned)
        return replace(self, catalog=catalog, rules=rules, others=others)

    def with_learned(self, learned: Mapping[str, Learned]) -> Snapshot:
        """The current model's fresh videos with these collaborative vectors."""
        if self.model is None or self.rules is None:
            return replace(self, learned=learned)
        fresh = self.model.fresh_videos(self.catalog, learned)
        return replace(self, learned=learned, rules=self.rules.with_fresh(fresh))


def _rules(
    model: ServingModel | None, catalog: Catalog, learned: Mapping[str, Learned] | None = None
) -> ItemRules | None:
    """The rules of a model under a catalogue, with the catalogue's videos the model does not
    know as its fresh table; None (no feeds) until both are loaded."""
    if model is None or catalog.revision is None:
        return None
    manifest = model.ranking.manifest
    rules = ItemRules.compile(manifest.video_ids, manifest.product_ids, catalog)
    return rules.with_fresh(model.fresh_videos(catalog, learned or {}))


class Serving:
    """Holds the current snapshot and keeps it in step with Redis."""

    def __init__(
        self,
        store: FeatureStore,
        models_dir: Path,
        on_reload: Callable[[str, str], None] | None = None,
        fresh_min_viewers: int = 3,
    ) -> None:
        self.store = store
        self.models_dir = models_dir
        self.snapshot = Snapshot()
        self.on_reload = on_reload or (lambda version, outcome: None)
        # Refused (version, generation) pairs and when: retried after REFUSED_RETRY_SECONDS,
        # since a directory may reach this replica's disk after the pointer does.
        self.refused: dict[tuple[str, int | None], float] = {}
        self.last_error: str | None = None
        self.catalog_missing = False
        # A refused experiments revision and when: retried after REFUSED_RETRY_SECONDS (a
        # pinned version may reach this replica's disk later).
        self.refused_experiments: dict[str, float] = {}
        self.missing_models: set[str] = set()  # named by variants, not published
        self.refused_campaigns: set[str] = set()  # a campaigns revision refused (for good)
        self.trends = LiveTrends()
        self.fresh = FreshLearner(fresh_min_viewers)
        self._fresh_applied = -1  # the learner's revision the snapshot holds

    async def load_version(self, version: str, generation: int | None) -> bool:
        """Load, verify and swap in a model version; keep the current one if it fails."""
        directory = self.models_dir / version
        try:
            model = await asyncio.to_thread(ServingModel.load, directory, generation)
        except Exception as exc:  # any fault of the directory refuses it, never the replica
            self.refused[(version, generation)] = time.monotonic()
            self.last_error = f"model {version} refused: {exc}"
            log.error("%s; keeping %s", self.last_error, self.version or "no model")
            self.on_reload(version, "refused")
            return False
        self.snapshot = self.snapshot.with_model(model)
        self._fresh_applied = -1  # the new snapshot holds no learned vector: apply them again
        log.info("serving model %s (generation %s)", version, generation)
        self.on_reload(version, "loaded")
        return True

    @property
    def version(self) -> str | None:
        model = self.snapshot.model
        return model.version if model else None

    def versions_on_disk(self) -> list[str]:
        """Version directories with a manifest, newest first (versions sort by time)."""
        return sorted(version_dirs(self.models_dir), reverse=True)

    async def start(self) -> None:
        """First load: the pointer's model, or, with Redis unreachable or no pointer yet,
        the newest model on disk that loads (served without user vectors). Feeds wait for a
        catalogue either way: without one, retired videos could not be told apart."""
        try:
            await self.refresh()
        except RedisUnavailable as exc:
            log.warning("starting without Redis: %s", exc)
        except Exception:
            log.exception("first poll failed")
        for version in self.versions_on_disk() if self.snapshot.model is None else []:
            if await self.load_version(version, None):
                break

    async def refresh(self) -> None:
        """One poll: the catalogue revision first (retirements must never wait on a model
        load), then the model pointer."""
        polled = await self.store.poll()
        pointer, revision = polled.pointer, polled.catalog_revision
        held = self.snapshot.catalog.revision
        if revision is None and held is not None:
            # The catalogue vanished from Redis (data lost): keep the last one known, so that
            # retired items stay retired until upstream loads the catalogue again.
            if not self.catalog_missing:
                log.error("catalogue missing in Redis; keeping revision %s", held)
            self.catalog_missing = True
        elif revision != held:
            raw = await self.store.catalog_records()
            # Parsing thousands of records takes tens of milliseconds: off the event loop.
            catalog = await asyncio.to_thread(Catalog.from_raw, *raw)
            catalog = catalog.keeping_retired(self.snapshot.catalog)
            self.snapshot = await asyncio.to_thread(self.snapshot.with_catalog, catalog)
            self.catalog_missing = False
        if polled.experiments_revision != self.snapshot.experiments_revision:
            await self.load_experiments()  # a refused revision is retried after a while
        campaigns = polled.campaigns_revision
        if (
            campaigns != self.snapshot.campaigns_revision
            and campaigns not in self.refused_campaigns
        ):
            await self.load_campaigns()  # a refused revision is not read again
        if pointer is not None and self._is_new(pointer):
            await self.load_version(pointer.version, pointer.generation)
        await self._load_others(polled.challenger)
        await self.refresh_trends()
        await self.refresh_fresh()

    async def refresh_fresh(self) -> None:
        """The current model's fresh videos' collaborative vectors: read when due
        (FreshLearner), swapped in with a fresh table built off the event loop."""
        snapshot = self.snapshot
        model = snapshot.model
        if model is None or snapshot.rules is None:
            return
        if self.fresh.due(time.monotonic()):
            try:
                await self.fresh.refresh(self.store, model, snapshot.rules.fresh)
            except RedisUnavailable as exc:
                log.warning("fresh videos' viewers not read: %s", exc)
        revision, key = self.fresh.revision, model.key
        if revision == self._fresh_applied or self.fresh.model_key != key:
            return
        learned = dict(self.fresh.learned)
        updated = await asyncio.to_thread(snapshot.with_learned, learned)
        current = self.snapshot  # taken again after the await: swap only what was built on
        same_model = current.model is not None and current.model.key == key
        if same_model and current.catalog is snapshot.catalog and updated.rules is not None:
            self.snapshot = replace(current, learned=learned, rules=updated.rules)
            self._fresh_applied = revision

    async def refresh_trends(self) -> None:
        """The live trending counts, read when due (LiveTrends), put into every loaded model
        with a trending prior whose prior was computed from older counts; the counts already
        held are put in even when a read fails. The priors are built off the event loop."""
        snapshot = self.snapshot
        models = [snapshot.model, *(m for m, _ in snapshot.others.values())]
        windows = [m.trending_hours for m in models if m is not None and m.trending_hours]
        if not windows:
            return
        if self.trends.due(time.monotonic()):
            try:
                await self.trends.refresh(self.store, max(windows))
            except RedisUnavailable as exc:
                log.warning("trending counts not read: %s", exc)
        revision = self.trends.revision
        stale = [m for m in models if m is not None and m.trend_revision != revision]
        if not stale:
            return
        updated = await asyncio.to_thread(self._live_models, stale, revision)
        snapshot = self.snapshot  # taken again after the await: swap only what was built on
        self.snapshot = replace(
            snapshot,
            model=updated.get(id(snapshot.model), snapshot.model),
            others={k: (updated.get(id(m), m), r) for k, (m, r) in snapshot.others.items()},
        )

    def _live_models(self, models: list[ServingModel], revision: int) -> dict[int, ServingModel]:
        """Each model (by id) with its prior from the counts of its window, where they cover
        it; else with the prior as exported."""
        updated = {}
        for model in models:
            hours = model.trending_hours
            if hours is None or not self.trends.covered(hours):
                counts: dict[str, int] = {}
            else:
                counts = self.trends.video_counts(hours, model.weights)
            updated[id(model)] = model.with_live_trending(counts, revision)
        return updated

    async def _load_others(self, challenger: Pointer | None) -> None:
        """Hold the models the experiments' variants name (and only those), each with its
        vectors in Redis; a model without them is missing, and its variants get the current
        one (a pinned version's vectors are looked up on every poll: they may expire)."""
        wanted = self.snapshot.experiments.models_used() - {"current"}
        for key in set(self.snapshot.others) - wanted:
            self.snapshot = self.snapshot.with_other(key, None)
        self.missing_models &= wanted
        for key in sorted(wanted):
            if key == "challenger":
                pointer = challenger
            else:  # a pinned version: the newest generation of it still in Redis
                generation = await self.store.generation_of(key)
                pointer = None if generation is None else Pointer(key, generation)
            if pointer is None:
                self._missing(key)
            else:
                self.missing_models.discard(key)
                await self._load_other(key, pointer)

    def _missing(self, key: str) -> None:
        if key in self.snapshot.others:  # e.g. promoted, or a pinned version's vectors expired
            self.snapshot = self.snapshot.with_other(key, None)
        if key in self.missing_models:
            return
        self.missing_models.add(key)
        if key == "challenger":
            self.last_error = "variants ask for the challenger model, and none is published"
        else:
            self.last_error = (
                f"variants ask for model version {key}, and Redis holds no user vectors of it "
                "(never published, or expired)"
            )
        log.error("%s: they get the current model", self.last_error)

    async def _load_other(self, key: str, pointer: Pointer) -> None:
        held = self.snapshot.others.get(key)
        if held is not None and (held[0].version, held[0].generation) == (
            pointer.version,
            pointer.generation,
        ):
            return
        refused_at = self.refused.get((pointer.version, pointer.generation))
        if refused_at is not None and time.monotonic() - refused_at < REFUSED_RETRY_SECONDS:
            return
        directory = self.models_dir / pointer.version
        try:
            model = await asyncio.to_thread(ServingModel.load, directory, pointer.generation)
        except Exception as exc:
            self.refused[(pointer.version, pointer.generation)] = time.monotonic()
            self.last_error = f"{key} model {pointer.version} refused: {exc}"
            log.error("%s; its variants get the current model", self.last_error)
            self.on_reload(pointer.version, "refused")
            return
        self.snapshot = self.snapshot.with_other(key, model)
        log.info("serving %s model %s to its variants", key, pointer.version)
        self.on_reload(pointer.version, "loaded")

    async def load_experiments(self) -> bool:
        """Read the experiments' definition from Redis and serve it if it validates here
        (a pinned model version must be on this replica's disk); else keep the one held."""
        revision, text = await self.store.experiments()
        if revision == self.snapshot.experiments_revision:
            return True
        refused_at = self.refused_experiments.get(revision or "")
        if refused_at is not None and time.monotonic() - refused_at < REFUSED_RETRY_SECONDS:
            return False
        try:
            experiments = self.parse_experiments(text)
        except Exception as exc:  # any fault of a definition refuses it, never the replica
            self.refused_experiments = {revision or "": time.monotonic()}
            self.last_error = f"experiments revision {revision} refused: {exc}"
            log.error(
                "%s; keeping revision %s", self.last_error, self.snapshot.experiments_revision
            )
            return False
        self.snapshot = replace(
            self.snapshot, experiments=experiments, experiments_revision=revision
        )
        self.refused_experiments = {}  # what serves now is no longer refused
        log.info("serving %d experiment(s), revision %s", len(experiments), revision)
        return True

    async def load_campaigns(self) -> bool:
        """Read the campaign rules from Redis and serve them if they validate here (a
        definition stored by an older replica may not); else keep the ones held."""
        revision, text = await self.store.campaigns()
        if revision == self.snapshot.campaigns_revision:
            return True
        if revision is not None and revision in self.refused_campaigns:
            return False
        try:
            campaigns = parse_campaigns(text)
        except Exception as exc:  # any fault of a definition refuses it, never the replica
            self.refused_campaigns = {revision or ""}
            self.last_error = f"campaigns revision {revision} refused: {exc}"
            log.error("%s; keeping revision %s", self.last_error, self.snapshot.campaigns_revision)
            return False
        self.snapshot = replace(self.snapshot, campaigns=campaigns, campaigns_revision=revision)
        self.refused_campaigns = set()  # what serves now is no longer refused
        log.info("serving %d campaign rule(s), revision %s", len(campaigns), revision)
        return True

    def parse_experiments(self, text: str) -> Experiments:
        """A definition this replica can serve, or ExperimentError naming why not."""
        return parse_experiments(text, self.version_exists)

    async def validate_experiments(self, text: str) -> Experiments:
        """A definition fit to store: one this replica can serve, whose pinned versions have
        their user vectors in Redis; else ExperimentError naming why not."""
        experiments = self.parse_experiments(text)
        await require_published(experiments, self.store.generation_of)
        return experiments

    def version_exists(self, version: str) -> bool:
        return is_version_dir(self.models_dir / version)

    def _is_new(self, pointer: Pointer) -> bool:
        model = self.snapshot.model
        refused_at = self.refused.get((pointer.version, pointer.generation))
        if refused_at is not None and time.monotonic() - refused_at < REFUSED_RETRY_SECONDS:
            return False
        return model is None or (model.version, model.generation) != (
            pointer.version,
            pointer.generation,
        )

    async def watch(self, interval: float, stop: asyncio.Event) -> None:
        """Poll every `interval` seconds until `stop` is set; errors are logged, never fatal.

        Stopping by an event, not by cancelling the task: a cancelled Redis call can leave
        redis-py's connection half-closed and hang the shutdown.
        """
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
            if stop.is_set():
                return
            try:
                await self.refresh()
            except RedisUnavailable as exc:
                log.warning("poll: %s", exc)
            except Exception:  # a watcher that dies would freeze the replica's model
                log.exception("poll failed")

    def status(self) -> dict[str, Any]:
        return {
            "model_version": self.version,
            "catalog_revision": self.snapshot.catalog.revision,
            "experiments_revision": self.snapshot.experiments_revision,
            "experiments_refused_revision": next(iter(self.refused_experiments), None),
            "experiments": [e.name for e in self.snapshot.experiments.experiments],
            "campaigns_revision": self.snapshot.campaigns_revision,
            "campaigns": [c.name for c in self.snapshot.campaigns.campaigns],
            "stream_shards": self.store.layouts.in_effect(),
            "other_models": {k: m.version for k, (m, _) in self.snapshot.others.items()},
            "missing_models": sorted(self.missing_models),
            "catalog_missing_in_redis": self.catalog_missing,
            "last_error": self.last_error,
        }
