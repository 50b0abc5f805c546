"""The stream layouts as stored (recsvc.contract.shards), for the jobs with a synchronous
client: the drain, the erasure sweep, the audit CLI. (A replica reads them in its poll.)"""

from __future__ import annotations

from recsvc.contract.keys import Keys
from recsvc.contract.shards import Layouts
from recsvc.store.client import SyncClient


def stored_layouts(client: SyncClient, keys: Keys) -> Layouts:
    """Every layout the streams were split into (LayoutError for a stored value that cannot
    be read)."""
    return Layouts.from_json(client.get(keys.stream_layouts))  # type: ignore[arg-type]


def user_shards(client: SyncClient, keys: Keys, name: str, user_id: str) -> list[str]:
    """The shards of the stream `name` that may hold `user_id`'s entries: theirs in each
    layout ever used."""
    return keys.user_streams(name, user_id, stored_layouts(client, keys).ever())
