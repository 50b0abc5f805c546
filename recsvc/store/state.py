"""The feature store: the service's whole view of Redis, one object over its aggregates.

Each aggregate lives in its own module with its Lua scripts beside it: user state and profiles
(users), event ingestion (ingest), exposures and stream sizes (streams), the live trending
counts (trends), the first viewers of videos the model does not know (fresh), the
catalogue (catalog), the pointers a replica polls (control) and a user's erasure (erasure). All of
them call Redis through one gateway (gateway: the client, the key layout and the circuit
breaker), so one breaker guards every call of a replica.
"""

from __future__ import annotations

from recsvc.store.catalog import CatalogStore
from recsvc.store.control import ControlStore
from recsvc.store.erasure import ErasureStore
from recsvc.store.fresh import FreshStore
from recsvc.store.ingest import IngestStore
from recsvc.store.streams import StreamStore
from recsvc.store.trends import TrendStore
from recsvc.store.users import UserStore


class FeatureStore(
    UserStore,
    IngestStore,
    StreamStore,
    CatalogStore,
    ControlStore,
    TrendStore,
    FreshStore,
    ErasureStore,
):
    """Everything the service reads and writes in Redis, through one breaker."""
