"""Ids may contain ':' (recsvc.contract.domain.ID_PATTERN), and the dedup marker of an accepted
event
names both its user and its event: `acct` + `R:42` and `acct:R` + `42` are two events, each
stored, neither a duplicate of the other (issue 13, defect 2). The marker the INGEST script
writes is the one recsvc.contract.keys names."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import redis

from recsvc.contract.keys import Keys

KEYS = Keys()
# (user, event) pairs whose old marker was one string: "<user>:<event>"
SAME_OLD_MARKER = [("acct", "R:4:2"), ("acct:R", "4:2"), ("acct:R:4", "2")]


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def event(user_id: str, event_id: str) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "ts": datetime.now(UTC).isoformat(),
        "user_id": user_id,
        "item_id": "v10",
        "item_type": "video",
        "action": "view",
    }


def stored(client: redis.Redis) -> list[tuple[str, str]]:
    return [
        (fields[b"user_id"].decode(), fields[b"event_id"].decode())
        for _, fields in client.xrange(KEYS.events)
    ]


def test_events_whose_ids_joined_with_a_colon_are_equal_are_each_stored(
    service: httpx.Client, redis_client: redis.Redis
) -> None:
    for user, event_id in SAME_OLD_MARKER:  # one batch each, as separate clients would send
        response = service.post("/v1/events", json={"events": [event(user, event_id)]})
        assert response.status_code == 202, response.text
        assert (response.json()["accepted"], response.json()["duplicates"]) == (1, 0)
    assert stored(redis_client) == SAME_OLD_MARKER
    # In one batch too, and a retry of them all is all duplicates.
    batch = [event(user, event_id + "-b") for user, event_id in SAME_OLD_MARKER]
    assert service.post("/v1/events", json={"events": batch}).json()["accepted"] == 3
    again = service.post("/v1/events", json={"events": batch}).json()
    assert (again["accepted"], again["duplicates"]) == (0, 3)


def test_the_marker_the_script_writes_is_the_one_keys_names(
    service: httpx.Client, redis_client: redis.Redis
) -> None:
    user, event_id = SAME_OLD_MARKER[1]
    assert service.post("/v1/events", json={"events": [event(user, event_id)]}).status_code == 202
    marker = KEYS.event_accepted(user, event_id)
    assert redis_client.exists(marker)
    assert 0 < redis_client.ttl(marker) <= 7 * 86400  # RECSVC_EVENT_DEDUP_DAYS
    markers = {key.decode() for key in redis_client.scan_iter(match=f"{KEYS.prefix}:ev:*")}
    assert markers == {marker}
    assert len({KEYS.event_accepted(u, e) for u, e in SAME_OLD_MARKER}) == len(SAME_OLD_MARKER)


def test_a_marker_of_the_old_format_is_no_new_events_marker(
    service: httpx.Client, redis_client: redis.Redis
) -> None:
    """Markers written before the upgrade (`<user>:<event>`) stay until they expire; none can
    be read as the marker of another event now (which would drop that event as a duplicate)."""
    # The old marker of user "4" and event "acct:R:42"; the new one of user "acct" and event
    # "R:42" has the length 4 too, followed by '/', a character no id holds.
    redis_client.set(f"{KEYS.prefix}:ev:{{{KEYS.events}}}:4:acct:R:42", "1")
    response = service.post("/v1/events", json={"events": [event("acct", "R:42")]})
    assert response.json()["accepted"] == 1
