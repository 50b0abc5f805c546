"""Locks in Redis for the one-at-a-time jobs (publish, rollback, promote, the nightly run).

A lock is held while its holder lives and no longer: a heartbeat renews it, a SIGKILLed
holder on this host is recognised as dead and its lock taken over at once, another host's
lock lapses with its TTL. Release never deletes a lock someone else now holds, and a lease
that lost its lock says so before anything visible is done under it.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import redis

from recsvc.registry.locks import LockHeld, LockLost, new_token, redis_lock

KEY = "test:lock"
BUSY = "another run is in progress"


def test_a_second_holder_is_refused_with_the_holder_named(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    with redis_lock(client, KEY, "nightly run", BUSY):
        with pytest.raises(LockHeld) as refused, redis_lock(client, KEY, "another", BUSY):
            pass
        message = str(refused.value)
        assert BUSY in message and "nightly run" in message and "pid" in message
        assert 0 < client.ttl(KEY) <= 60
    assert client.get(KEY) is None  # released


def test_a_lock_left_by_a_killed_process_on_this_host_is_taken_over_at_once(
    redis_url: str,
) -> None:
    holder = textwrap.dedent(
        f"""
        import sys, time, redis
        from recsvc.registry.locks import redis_lock
        client = redis.Redis.from_url({redis_url!r})
        with redis_lock(client, {KEY!r}, "doomed run", "busy"):
            print("holding", flush=True)
            time.sleep(60)
        """
    )
    process = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "holding"
    client = redis.Redis.from_url(redis_url)
    with pytest.raises(LockHeld, match="doomed run"), redis_lock(client, KEY, "me", BUSY):
        pass  # alive: refused
    process.send_signal(signal.SIGKILL)
    process.wait()
    process.stdout.close()
    assert client.ttl(KEY) > 0  # the dead holder's lock is still there...
    with redis_lock(client, KEY, "next run", BUSY):  # ...and taken over without waiting
        assert json.loads(client.get(KEY) or b"{}")["what"] == "next run"


def test_another_hosts_lock_is_respected_until_its_ttl_lapses(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    token = {"what": "cron on node-7", "host": "node-7", "pid": 1, "id": "x", "since": "-"}
    client.set(KEY, json.dumps(token), px=800)
    with pytest.raises(LockHeld, match="node-7"), redis_lock(client, KEY, "me", BUSY):
        pass
    time.sleep(1.0)
    with redis_lock(client, KEY, "me", BUSY):
        pass


def test_a_lock_that_is_not_ours_in_any_readable_form_is_never_taken_over(
    redis_url: str,
) -> None:
    client = redis.Redis.from_url(redis_url)
    client.set(KEY, "started by an older version", ex=30)
    with pytest.raises(LockHeld, match="older version"), redis_lock(client, KEY, "me", BUSY):
        pass


def test_the_heartbeat_keeps_the_lock_for_as_long_as_the_holder_lives(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    with redis_lock(client, KEY, "long run", BUSY, ttl=1) as lease:
        time.sleep(2.5)  # two and a half TTLs
        assert client.exists(KEY) and not lease.lost
        other = redis.Redis.from_url(redis_url)
        with pytest.raises(LockHeld), redis_lock(other, KEY, "other", BUSY):
            pass
    assert not client.exists(KEY)


def test_a_lease_whose_lock_was_taken_is_lost_and_release_leaves_the_new_holder(
    redis_url: str,
) -> None:
    client = redis.Redis.from_url(redis_url)
    with redis_lock(client, KEY, "slow run", BUSY, ttl=1) as lease:
        client.set(KEY, "someone else's token")  # e.g. it expired during a long pause
        time.sleep(0.6)  # the heartbeat (every ttl/3) finds it
        assert lease.lost
        with pytest.raises(LockLost):
            lease.check()
    assert client.get(KEY) == b"someone else's token"


def test_a_holder_in_another_pid_namespace_is_never_judged_dead_by_its_pid(
    redis_url: str,
) -> None:
    """Two containers may share a host name while each has its own pid 1: a pid seen from
    here says nothing about a process there, so only the TTL ends such a lock."""
    client = redis.Redis.from_url(redis_url)
    token = json.loads(new_token("nightly in another container"))
    token.update(namespace="another-boot/pid:[4026530000]", pid=999_999, started=1)
    client.set(KEY, json.dumps(token), ex=30)
    with pytest.raises(LockHeld, match="another container"), redis_lock(client, KEY, "me", BUSY):
        pass


def test_a_pid_reused_by_a_later_process_does_not_keep_a_dead_holders_lock(
    redis_url: str,
) -> None:
    client = redis.Redis.from_url(redis_url)
    token = json.loads(new_token("a run that died"))
    token.update(pid=1, started=-1)  # pid 1 is alive, but not the process that took the lock
    client.set(KEY, json.dumps(token), ex=30)
    with redis_lock(client, KEY, "next run", BUSY):
        assert json.loads(client.get(KEY) or b"{}")["what"] == "next run"
