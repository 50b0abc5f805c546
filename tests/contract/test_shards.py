"""The streams' shard layout: which shard takes a user's entries, where the shards' slots lie
in a Redis Cluster, and the history of shard counts a change leaves behind."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from redis.crc import key_slot as redis_key_slot

from recsvc.contract.keys import Keys
from recsvc.contract.shards import (
    CLUSTER_SLOTS,
    Layout,
    LayoutError,
    Layouts,
    key_slot,
    shard_of,
    shard_tag,
)

KEYS = Keys("recsvc")


def test_one_shard_keeps_the_names_from_before_sharding() -> None:
    assert KEYS.stream("events") == KEYS.events == "recsvc:events"
    assert KEYS.stream("exposures") == KEYS.exposures
    assert KEYS.stream("cards") == KEYS.cards
    assert KEYS.event_marker(KEYS.stream_tag(0, 1), "u1", "e1") == KEYS.event_accepted("u1", "e1")
    assert KEYS.trend(5) == KEYS.trend(5, KEYS.stream_tag(0, 1)) == "recsvc:trend:{recsvc:events}:5"


def test_a_users_entries_go_to_one_shard_of_every_stream_and_it_shares_their_slot() -> None:
    for user in ("u1", "acct:R:42", "ü-7"):
        shard = shard_of(user, 8)
        tag = KEYS.stream_tag(shard, 8)
        streams = [KEYS.user_stream(name, user, 8) for name in ("events", "exposures", "cards")]
        slots = {key_slot(s) for s in streams}
        slots |= {key_slot(KEYS.event_marker(tag, user, "e1")), key_slot(KEYS.trend(9, tag))}
        assert len(slots) == 1, streams
    assert shard_of("u1", 1) == 0


def test_users_spread_evenly_over_the_shards() -> None:
    counts = Counter(shard_of(f"user-{i}", 8) for i in range(80_000))
    assert sorted(counts) == list(range(8))
    assert max(counts.values()) / min(counts.values()) < 1.1


@pytest.mark.parametrize("shards", [2, 3, 4, 6, 8, 16, 64])
def test_each_shard_lies_in_its_own_share_of_the_cluster_slots(shards: int) -> None:
    width = CLUSTER_SLOTS / shards
    for shard in range(shards):
        slot = key_slot(KEYS.stream("events", shard, shards))
        assert shard * width <= slot < (shard + 1) * width
    # so three masters with equal ranges hold a shard each as soon as there are three
    masters = {key_slot(KEYS.stream("events", s, 3)) * 3 // CLUSTER_SLOTS for s in range(3)}
    assert masters == {0, 1, 2}


def test_the_slot_is_the_one_redis_computes() -> None:
    for key in ("recsvc:events", "recsvc:events:{recsvc:s8.3.1}", "a{b}c", "a{}c", "{x"):
        assert key_slot(key) == redis_key_slot(key.encode())
    assert shard_tag("p", 1, 4) == shard_tag("p", 1, 4)  # stable


def test_a_change_takes_effect_after_the_switch_delay_and_is_remembered() -> None:
    start = Layouts()
    assert start.current == start.in_effect() == 1 and start.ever() == (1,)
    four = start.changed_to(4, now=1000.0, delay=30.0)
    assert four.history == (Layout(1, 0.0, 1030.0), Layout(4, 1030.0))
    assert four.in_effect(now=1029.0) == 1 and four.in_effect(now=1030.0) == 4
    # before the switch a retry is also looked for in the upcoming layout, after it in the
    # retired one for the dedup window
    assert four.in_use(600, now=1010.0) == (1, 4)
    assert four.in_use(600, now=1500.0) == (4, 1)
    assert four.in_use(600, now=2000.0) == (4,)
    three = four.changed_to(3, now=5000.0, delay=0.0)
    assert three.current == three.in_effect(now=5000.0) == 3
    assert three.ever() == (3, 4, 1)
    assert three.changed_to(3) is three
    assert Layouts.from_json(three.to_json()) == three


def test_a_change_before_the_last_one_took_effect_replaces_it() -> None:
    pending = Layouts().changed_to(4, now=100.0, delay=30.0)
    replaced = pending.changed_to(6, now=110.0, delay=30.0)
    assert replaced.history == (Layout(1, 0.0, 140.0), Layout(6, 140.0))  # 4 was never used
    back = pending.changed_to(1, now=110.0, delay=30.0)
    assert back.history == (Layout(1, 0.0),)


def test_back_to_a_count_used_before_counts_it_once() -> None:
    layouts = Layouts().changed_to(4, now=10.0, delay=0).changed_to(1, now=20.0, delay=0)
    assert layouts.changed_to(4, now=30.0, delay=0).ever() == (4, 1)


@pytest.mark.parametrize(
    ("stored", "problem"),
    [
        ("not json", "cannot be read"),
        (json.dumps([{"shards": 0, "since": 0, "until": None}]), "between 1 and"),
        (json.dumps([{"shards": 2, "since": 0}]), "cannot be read"),
        (json.dumps([{"shards": 2, "since": 0, "until": 5}]), "no current layout"),
        (json.dumps([]), "no current layout"),
    ],
)
def test_a_stored_value_that_cannot_be_read_is_named(stored: str, problem: str) -> None:
    with pytest.raises(LayoutError, match=problem):
        Layouts.from_json(stored)


def test_a_shard_count_out_of_range_is_refused() -> None:
    with pytest.raises(LayoutError, match="between 1 and 1024"):
        Layouts().changed_to(0)
    with pytest.raises(LayoutError, match="not 5000"):
        Layouts().changed_to(5000)
