"""The streams beside ingestion: exposures logged for the A/B report, and the sizes of the
event and exposure streams (what the nightly drain has not taken yet).
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from redis.commands.core import AsyncScript

from recsvc.contract.records import EXPOSURE_FIELDS, Exposure
from recsvc.store.gateway import (
    Gateway,
)


def _xadd_pairs(names: tuple[str, ...]) -> str:
    """`'name', ARGV[o + k]` for each field: the script's XADD arguments, from the record."""
    return ", ".join(f"'{name}', ARGV[o + {k}]" for k, name in enumerate(names, 1))


DRAIN_GROUP = "nightly"  # the consumer group the nightly job drains the streams with


# Appends the exposures of a batch's feeds (users in experiments only), unless the stream is
# full: then nothing is appended and the count of dropped exposures is returned negated (the
# service counts them; a full stream means the drain has stopped). ARGV: max stream length,
# exposure count, then one value per EXPOSURE_FIELDS name for each exposure.
EXPOSE_SCRIPT = f"""
local maxlen, n = tonumber(ARGV[1]), tonumber(ARGV[2])
if redis.call('XLEN', KEYS[1]) + n > maxlen then return -n end
for i = 0, n - 1 do
  local o = 2 + i * {len(EXPOSURE_FIELDS)}
  redis.call('XADD', KEYS[1], '*', {_xadd_pairs(EXPOSURE_FIELDS)})
end
return n
"""


class StreamStore(Gateway):
    """The exposure log and the streams' sizes."""

    @cached_property
    def _expose(self) -> AsyncScript:
        return self.client.register_script(EXPOSE_SCRIPT)

    async def log_exposures(self, exposures: list[Exposure], max_len: int) -> int:
        """Append exposures to their stream; the number dropped (the stream was full)."""
        if not exposures:
            return 0
        args: list[Any] = [max_len, len(exposures)]
        for exposure in exposures:
            args += exposure.fields()
        keys = [self.keys.exposures]
        appended = await self._call("exposures", lambda: self._expose(keys=keys, args=args))
        return 0 if int(appended) > 0 else len(exposures)

    async def stream_stats(self) -> dict[str, int]:
        """Lengths of the event and exposure streams, and the events the nightly consumer
        group has not read yet (its lag; the whole stream before a first drain)."""

        async def work() -> list[Any]:
            pipe = self.client.pipeline(transaction=False)
            pipe.xlen(self.keys.events)
            pipe.xlen(self.keys.exposures)
            pipe.xinfo_groups(self.keys.events)
            return await pipe.execute(raise_on_error=False)

        events, exposures, groups = await self._call("streams", work, probe=True)
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
        }
