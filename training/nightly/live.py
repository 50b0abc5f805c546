"""What the run reads of the live side: the live model's training window and the catalogue."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from recsvc.contract.catalog import Catalog
from recsvc.contract.keys import Keys
from recsvc.contract.manifest import ArtifactError, read_manifest
from recsvc.store.client import SyncClient


def trained_until(directory: Path | None) -> datetime | None:
    """The last event a model version was trained on (from its manifest), if known."""
    if directory is None or not (directory / "manifest.json").is_file():
        return None
    try:
        last = read_manifest(directory).data_window.get("last_event")
        moment = datetime.fromisoformat(str(last))
    except (ArtifactError, ValueError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def live_catalog(client: SyncClient, keys: Keys) -> Catalog | None:
    """The catalogue in Redis; None when none was ever loaded."""
    revision = client.get(keys.catalog_revision)
    if revision is None:
        return None
    videos, products = client.hgetall(keys.catalog_videos), client.hgetall(keys.catalog_products)
    text = revision.decode() if isinstance(revision, bytes) else str(revision)
    return Catalog.from_raw(text, videos, products)
