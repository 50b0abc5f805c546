"""Erasing a user (DELETE /v1/users/{id}), in two steps.

At once (`erase_user`): the erasure is recorded (Keys.erasures: the user id and the time), then
every key of the user the service can name without searching is deleted in one transaction
(they share the user's hash tag, so one slot): the user's vector under every generation in
the registry, the profile, upstream holdings, purchases, recent items, the backfill marker
and the daily caps of the days still kept. The next feed finds an unknown user.

At the next nightly run (training.data.erasure): what had to be searched for. The user's
entries in the event and exposure streams, the dedup markers of their events, their entries
among the viewers of new videos, any other key under their hash tag (a Redis Cluster's
per-event markers), and their rows in the drained partitions; then the record goes. Recording
first means a deletion cut short by a failure is finished there.
"""

from __future__ import annotations

from datetime import datetime

from recsvc.store.client import transaction
from recsvc.store.gateway import Gateway, utc_day
from recsvc.store.users import CAPS_TTL_SECONDS

DAY_SECONDS = 86400


class ErasureStore(Gateway):
    """The service's half of a user's erasure."""

    async def erase_user(self, user_id: str, at: datetime) -> int:
        """Record the erasure (at `at`) and delete the user's own keys; the number deleted."""
        keys = self.keys
        moment = at.timestamp()

        async def work() -> int:
            await self.client.hset(keys.erasures, user_id, at.isoformat())  # type: ignore[misc]
            generations = await self.client.hkeys(keys.model_generations)  # type: ignore[misc]
            # the days whose caps may still be kept: their TTL is two days after the day
            kept = CAPS_TTL_SECONDS // DAY_SECONDS + 2
            days = sorted({utc_day(moment - d * DAY_SECONDS) for d in range(kept)})
            doomed = [
                *(keys.vector(int(g), user_id) for g in generations),
                keys.profile(user_id),
                keys.holdings(user_id),
                keys.purchased(user_id),
                keys.recent(user_id),
                keys.backfilled(user_id),
                *(keys.caps(user_id, day) for day in days),
            ]
            pipe = await transaction(self.client)
            pipe.delete(*doomed)
            (deleted,) = await pipe.execute()
            return int(deleted)

        return await self._call("erase_user", work)
