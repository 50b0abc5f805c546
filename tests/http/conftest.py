"""Fixtures of the tests through a real service: a directory of models, and the planted model
published into a private real Redis with its catalogue, served by the real app on loopback.
What they build on is in tests/http/builders.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.http import planted
from tests.http.builders import (
    PLANTED_VERSION,
    load_planted_catalog,
    publish_model,
    service_settings,
    serving,
)


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "models"
    planted.write_planted_model(directory, PLANTED_VERSION)
    return directory


@pytest.fixture
def service(redis_url: str, models_dir: Path) -> Iterator[httpx.Client]:
    """The planted model published, its catalogue loaded, the app serving it."""
    publish_model(redis_url, models_dir / PLANTED_VERSION)
    load_planted_catalog(redis_url)
    with serving(service_settings(redis_url, models_dir)) as client:
        yield client
