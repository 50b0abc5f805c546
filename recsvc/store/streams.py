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
from recsvc.store.gateway import (
    Gateway,
)


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
        """Append exposures to their stream; the number dropped (the stream was full)."""
        return await self._append(
            "exposures", self._expose, self.keys.exposures, exposures, max_len
        )

    async def log_cards(self, cards: list[PageCards], max_len: int) -> int:
        """Append pages' card records to their stream; the number dropped (the stream was
        full)."""
        return await self._append("cards", self._cards, self.keys.cards, cards, max_len)

    async def _append(
        self,
        operation: str,
        script: AsyncScript,
        stream: str,
        records: Sequence[Exposure | PageCards],
        max_len: int,
    ) -> int:
        if not records:
            return 0
        args: list[Any] = [max_len, len(records)]
        for record in records:
            args += record.fields()
        appended = await self._call(operation, lambda: script(keys=[stream], args=args))
        return 0 if int(appended) > 0 else len(records)

    async def stream_stats(self) -> dict[str, int]:
        """Lengths of the event, exposure and card streams, and the events the nightly
        consumer group has not read yet (its lag; the whole stream before a first drain)."""

        async def work() -> list[Any]:
            pipe = self.client.pipeline(transaction=False)
            pipe.xlen(self.keys.events)
            pipe.xlen(self.keys.exposures)
            pipe.xinfo_groups(self.keys.events)
            pipe.xlen(self.keys.cards)
            return await pipe.execute(raise_on_error=False)

        events, exposures, groups, cards = await self._call("streams", work, probe=True)
        lag = events if isinstance(events, int) else 0
        if isinstance(groups, list):
            for group in groups:
                name = group.get("name", b"")
                if (name.decode() if isinstance(name, bytes) else name) == DRAIN_GROUP:
                    lag = int(group.get("lag") or 0) + int(group.get("pending") or 0)
        return {
            "events": events if isinstance(events, int) else 0,
            "exposures": exposures if isinstance(exposures, int) else 0,
            "events_not_drained": lag,
            "cards": cards if isinstance(cards, int) else 0,
        }
