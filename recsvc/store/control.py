"""What a replica polls and operators set: the model pointers (current and challenger, with
their generations), the catalogue revision and the experiments definition.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property, partial
from typing import Any

from redis.commands.core import AsyncScript

from recsvc.contract.shards import SWITCH_SECONDS, LayoutError, Layouts, check_shards
from recsvc.store.client import (
    transaction,
)
from recsvc.store.gateway import (
    Gateway,
    log,
    new_revision,
    str_or_none,
)


@dataclass(frozen=True)
class Pointer:
    version: str
    generation: int


@dataclass(frozen=True)
class Poll:
    pointer: Pointer | None
    catalog_revision: str | None
    experiments_revision: str | None
    challenger: Pointer | None = None
    campaigns_revision: str | None = None


# Stores ARGV[2] at KEYS[1] if it still holds ARGV[1] ('' for nothing): 1, else 0.
SWAP_SCRIPT = """
if (redis.call('GET', KEYS[1]) or '') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
return 1
"""
HISTORY_KEPT = 1000  # definitions kept in the history (Keys.experiments_history), newest


class ControlStore(Gateway):
    """The pointers a replica polls: models, catalogue revision, experiments."""

    async def poll(self) -> Poll:
        """The current-model pointer, the catalogue and experiments revisions and the
        challenger pointer, in one round trip (a probe: always tries). Pipelined GETs rather
        than an MGET: on a Cluster the three groups are in three slots."""

        async def work() -> list[Any]:
            pipe = self.client.pipeline(transaction=False)
            pipe.get(self.keys.model_current)
            pipe.get(self.keys.catalog_revision)
            pipe.get(self.keys.experiments_revision)
            pipe.get(self.keys.model_challenger)
            pipe.get(self.keys.campaigns_revision)
            pipe.get(self.keys.stream_layouts)
            return await pipe.execute()

        raw_pointer, catalog, experiments, challenger, campaigns, layouts = await self._call(
            "poll", work, probe=True
        )
        self._take_layouts(layouts)
        return Poll(
            parse_pointer(raw_pointer),
            str_or_none(catalog),
            str_or_none(experiments),
            parse_pointer(challenger),
            str_or_none(campaigns),
        )

    def _take_layouts(self, raw: bytes | None) -> None:
        """Serve the stream layouts polled (a value that cannot be read keeps the last)."""
        if raw == self._layouts_raw:
            return
        if raw is None:  # gone (a failover lost the key): the shards in use are still there
            log.error("stream layouts missing in Redis; keeping %s shards", self.layouts.current)
            return
        try:
            self.layouts = Layouts.from_json(raw)
        except LayoutError as exc:
            log.error("stream layouts ignored: %s", exc)
            return
        self._layouts_raw = raw

    async def stored_layouts(self) -> Layouts:
        """The layouts as stored (LayoutError for a value that cannot be read)."""
        raw = await self._call("layouts", lambda: self.client.get(self.keys.stream_layouts))
        return Layouts.from_json(raw)

    async def set_stream_shards(self, shards: int, delay: float = SWITCH_SECONDS) -> Layouts:
        """Split the streams into `shards` from `delay` seconds on (every replica polls the
        change before); the layouts stored. LayoutError for a count out of range."""
        check_shards(shards)
        for _ in range(10):
            raw = await self._call("layouts", lambda: self.client.get(self.keys.stream_layouts))
            changed = Layouts.from_json(raw).changed_to(shards, delay=delay)
            stored = await self._call("layouts", partial(self._swap, raw, changed))
            if stored:
                self._take_layouts(changed.to_json().encode())
                return changed
        raise LayoutError("the stream layouts kept changing under us: try again")

    async def _swap(self, raw: bytes | str | None, changed: Layouts) -> Any:
        """Store `changed` if the layouts still read `raw`: 1, else 0."""
        args = [raw or "", changed.to_json()]
        return await self._swap_layouts(keys=[self.keys.stream_layouts], args=args)

    @cached_property
    def _swap_layouts(self) -> AsyncScript:
        return self.client.register_script(SWAP_SCRIPT)

    async def generation_of(self, version: str) -> int | None:
        """The newest generation of `version` whose vectors are still in Redis, if any."""
        raw = await self._call(
            "generations", lambda: self.client.hgetall(self.keys.model_generations)
        )
        now = time.time()
        found = []
        for field, value in raw.items():
            try:
                entry = json.loads(value)
            except ValueError:
                continue
            if entry.get("version") != version or entry.get("state") == "writing":
                continue
            if entry.get("state") == "expiring" and entry.get("expires_at", 0) < now:
                continue
            found.append(int(field))
        return max(found) if found else None

    async def experiments(self) -> tuple[str | None, str]:
        """The experiments' revision and TOML definition, read together."""
        return await self._definition(
            "experiments", self.keys.experiments_revision, self.keys.experiments_definition
        )

    async def campaigns(self) -> tuple[str | None, str]:
        """The campaign rules' revision and TOML definition, read together."""
        return await self._definition(
            "campaigns", self.keys.campaigns_revision, self.keys.campaigns_definition
        )

    async def _definition(
        self, what: str, revision_key: str, text_key: str
    ) -> tuple[str | None, str]:
        async def work() -> list[Any]:
            pipe = await transaction(self.client)
            pipe.get(revision_key)
            pipe.get(text_key)
            return await pipe.execute()

        revision, definition = await self._call(what, work, probe=True)
        return str_or_none(revision), (definition or b"").decode()

    async def put_experiments(self, definition: str) -> str:
        """Store a (validated) definition with a new revision, and keep it in the history;
        the revision."""
        return await self._put_definition(
            "experiments",
            definition,
            self.keys.experiments_definition,
            self.keys.experiments_revision,
            self.keys.experiments_history,
        )

    async def put_campaigns(self, definition: str) -> str:
        """Store a (validated) campaign definition with a new revision, kept in the
        history; the revision."""
        return await self._put_definition(
            "campaigns",
            definition,
            self.keys.campaigns_definition,
            self.keys.campaigns_revision,
            self.keys.campaigns_history,
        )

    async def _put_definition(
        self, what: str, definition: str, text_key: str, revision_key: str, history_key: str
    ) -> str:
        revision = new_revision()

        entry = {
            "revision": revision,
            "stored_at": datetime.now(UTC).isoformat(),
            "definition": definition,
        }

        async def work() -> list[Any]:
            pipe = await transaction(self.client)
            pipe.set(text_key, definition)
            pipe.set(revision_key, revision)
            pipe.rpush(history_key, json.dumps(entry))
            pipe.ltrim(history_key, -HISTORY_KEPT, -1)
            return await pipe.execute()

        await self._call(what, work)
        return revision


def parse_pointer(raw: bytes | str | None) -> Pointer | None:
    """The model pointer; None when absent or malformed (then the replica keeps its model)."""
    if raw is None:
        return None
    try:
        value = json.loads(raw)
        return Pointer(str(value["version"]), int(value["generation"]))
    except (ValueError, KeyError, TypeError) as exc:
        log.error("malformed model pointer %r ignored (%s)", raw, exc)
        return None
