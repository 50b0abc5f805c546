"""The streams beside ingestion: exposures logged for the A/B report, every card served with
its checks (the audit), and the sizes of the event and exposure streams (what the nightly
drain has not taken yet).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import Any

from redis.commands.core import AsyncScript

from recsvc.contract.records import EXPOSURE_FIELDS, PAGE_CARD_FIELDS, Exposure, PageCards
from recsvc.store.client import run_per_slot
from recsvc.store.gateway import Gateway


def _xadd_pairs(names: tuple[str, ...]) -> str:
    """`'name', ARGV[o + k]` for each field: the script's XADD arguments, from the record."""
    return ", ".join(f"'{name}', ARGV[o + {k}]" for k, name in enumerate(names, 1))


DRAIN_GROUP = "nightly"  # the consumer group the nightly job drains the streams with


def append_script(names: tuple[str, ...]) -> str:
    """A script that appends records of these fields to the stream KEYS[1], unless it is
    full: then nothing is appended and the count of dropped records is returned negated (the
    service counts them; a full stream means the drain has stopped). ARGV: max stream
    length, record count, then one value per name for each record."""
    return f"""
local maxlen, n = tonumber(ARGV[1]), tonumber(ARGV[2])
if redis.call('XLEN', KEYS[1]) + n > maxlen then return -n end
for i = 0, n - 1 do
  local o = 2 + i * {len(names)}
  redis.call('XADD', KEYS[1], '*', {_xadd_pairs(names)})
end
return n
"""


# The exposures of a batch's feeds (users in experiments only), and its cards.
EXPOSE_SCRIPT = append_script(EXPOSURE_FIELDS)
CARDS_SCRIPT = append_script(PAGE_CARD_FIELDS)


class StreamStore(Gateway):
    """The exposure log and the streams' sizes."""

    @cached_property
    def _expose(self) -> AsyncScript:
        return self.client.register_script(EXPOSE_SCRIPT)

    @cached_property
    def _cards(self) -> AsyncScript:
        return self.client.register_script(CARDS_SCRIPT)

    async def log_exposures(self, exposures: list[Exposure], max_len: int) -> int:
        """Append exposures to their users' shards; the number dropped (a shard was full)."""
        return await self._append("exposures", self._expose, exposures, max_len)

    async def log_cards(self, cards: list[PageCards], max_len: int) -> int:
        """Append pages' card records to their users' shards; the number dropped (a shard
        was full)."""
        return await self._append("cards", self._cards, cards, max_len)

    async def _append(
        self,
        name: str,
        script: AsyncScript,
        records: Sequence[Exposure | PageCards],
        max_len: int,
    ) -> int:
        """One script per shard the records go to (pipelined: one round trip)."""
        if not records:
            return 0
        shards = self.layouts.in_effect()
        groups: dict[str, list[Exposure | PageCards]] = {}
        for record in records:
            groups.setdefault(self.keys.user_stream(name, record.user_id, shards), []).append(
                record
            )
        calls = []
        for stream, group in groups.items():
            args: list[Any] = [max_len, len(group)]
            for record in group:
                args += record.fields()
            calls.append(([stream], args))
        replies = await self._call(name, lambda: run_per_slot(self.client, script, calls))
        dropped = zip(groups.values(), replies, strict=True)
        return sum(len(group) for group, reply in dropped if int(reply) <= 0)

    async def stream_stats(self) -> dict[str, int]:
        """Lengths of the event, exposure and card streams (every shard of every layout ever
        used), and the events the nightly consumer group has not read yet (its lag; the whole
        stream before a first drain)."""
        counts = self.layouts.ever()
        names = ("events", "exposures", "cards")
        streams = [(name, s) for n in counts for name in names for s in self.keys.streams(name, n)]
        events = [s for name, s in streams if name == "events"]

        async def work() -> list[Any]:
            pipe = self.client.pipeline(transaction=False)
            for _, stream in streams:
                pipe.xlen(stream)
            for stream in events:
                pipe.xinfo_groups(stream)
            return await pipe.execute(raise_on_error=False)

        replies = await self._call("streams", work, probe=True)
        lengths, groups = replies[: len(streams)], replies[len(streams) :]
        totals = dict.fromkeys(names, 0)
        for (name, _), length in zip(streams, lengths, strict=True):
            totals[name] += length if isinstance(length, int) else 0
        event_lengths = [
            n for (name, _), n in zip(streams, lengths, strict=True) if name == "events"
        ]
        lag = sum(map(_not_drained, groups, event_lengths))
        return {**totals, "events_not_drained": lag}


def _not_drained(groups: Any, length: Any) -> int:
    """The entries of a stream the drain has not acknowledged: the drain group's lag and
    pending entries, or the whole stream when the group does not exist yet."""
    lag = length if isinstance(length, int) else 0
    if isinstance(groups, list):
        for group in groups:
            name = group.get("name", b"")
            if (name.decode() if isinstance(name, bytes) else name) == DRAIN_GROUP:
                lag = int(group.get("lag") or 0) + int(group.get("pending") or 0)
    return lag
