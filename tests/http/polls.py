"""A positive signal that a replica has polled Redis, for tests that assert that something did
not happen on its next polls (a refused version retried, a retired record revived, a switch
undone): they wait for the polls themselves rather than sleep for a few poll intervals.

A poll reads the experiments' revision and, when it changed, the definition stored with it,
and /readyz reports the revision the replica holds. Storing a fresh revision beside the same
definition changes nothing the replica serves, and once /readyz reports it, the poll that read
it began after it was stored. Polls run one after another, so the poll that reads the next
fresh revision, stored once the previous one is reported, began after that earlier poll ended.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from functools import partial

import httpx
import redis

from recsvc.contract.keys import Keys
from tests.http.builders import eventually


def wait_for_polls(
    get: Callable[[str], httpx.Response], redis_url: str, polls: int = 1, timeout: float = 10.0
) -> None:
    """Return once the replica answering `get` (a GET of a path, with its keys) has run
    `polls` whole polls, each begun after this call; fail the test if it does not."""

    def held() -> str | None:
        revision: str | None = get("/readyz").json()["experiments_revision"]
        return revision

    def held_is(marker: str) -> bool:
        return held() == marker

    with redis.Redis.from_url(redis_url) as client:
        for _ in range(polls + 1):
            marker = uuid.uuid4().hex  # a revision token, as the service makes them
            client.set(Keys().experiments_revision, marker)
            assert eventually(partial(held_is, marker), timeout), (
                f"the replica did not poll within {timeout} s (it holds revision {held()})"
            )
