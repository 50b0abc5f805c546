"""Assignment: the documented hash, the test vectors of docs/assignment.md, and the
properties the app backend relies on (deterministic, stable under widening, minimal moves
when a weight changes, independent of the traffic share)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from recsvc.contract.assignment import (
    BUCKETS,
    boundaries,
    bucket,
    in_namespace,
    in_traffic,
    variant_index,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "assignment.md"
SALT, NAMESPACE = "ranker-2026-11", "ranking"
NAMES, WEIGHTS = ["cf", "popular", "cf-strong-attach"], [0.5, 0.3, 0.2]
USERS = [f"u{i:06d}" for i in range(20_000)]


def documented_vectors() -> list[list[str]]:
    text = DOC.read_text()
    table = text.split("<!-- test vectors: read by tests/contract/test_assignment.py -->")[1]
    rows = [line for line in table.splitlines() if re.match(r"\| u\d", line)]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows]


def test_the_bucket_is_the_first_8_bytes_of_sha256_big_endian_mod_10000() -> None:
    assert bucket("ranker-2026-11:traffic:u00042") == 0x4F0AC485C4463048 % 10_000 == 2184
    text = "any salt:variant:u1"
    digest = hashlib.sha256(text.encode()).hexdigest()
    assert bucket(text) == int(digest[:16], 16) % 10_000


def test_the_documented_vectors_hold() -> None:
    vectors = documented_vectors()
    assert len(vectors) >= 10
    edges = boundaries(WEIGHTS)
    for user, ns_bucket, eligible, t_bucket, in_t, v_bucket, variant in vectors:
        assert bucket(f"{NAMESPACE}:{user}") == int(ns_bucket), user
        assert in_namespace(NAMESPACE, user, 0.0, 0.6) is (eligible == "yes"), user
        assert bucket(f"{SALT}:traffic:{user}") == int(t_bucket), user
        assert in_traffic(SALT, user, 0.5) is (in_t == "yes"), user
        assert bucket(f"{SALT}:variant:{user}") == int(v_bucket), user
        expected = NAMES[variant_index(SALT, user, edges)] if eligible == in_t == "yes" else None
        assert (variant if variant != "(none)" else None) == expected, user
    assert {row[6] for row in vectors} == {"(none)", *NAMES}  # every outcome is pinned


def test_edges_are_cumulative_weights_in_buckets_and_end_at_10000() -> None:
    assert boundaries([0.5, 0.3, 0.2]) == [5000, 8000, 10_000]
    assert boundaries([1 / 3, 1 / 3, 1 / 3]) == [3333, 6667, 10_000]


def test_buckets_are_uniform_enough_for_a_fair_split() -> None:
    counts = [0] * 10
    for user in USERS:
        counts[bucket(f"s:{user}") * 10 // BUCKETS] += 1
    assert all(abs(c - 2000) < 200 for c in counts), counts  # ±10% of 2,000 per decile


def test_widening_the_traffic_share_moves_nobody_already_assigned() -> None:
    edges = boundaries(WEIGHTS)
    before = {u: variant_index(SALT, u, edges) for u in USERS if in_traffic(SALT, u, 0.1)}
    after = {u: variant_index(SALT, u, edges) for u in USERS if in_traffic(SALT, u, 0.3)}
    assert set(before) < set(after)
    assert all(after[u] == before[u] for u in before)
    assert 0.25 < len(after) / len(USERS) < 0.35


@pytest.mark.parametrize(
    ("old", "new"), [([0.5, 0.5], [0.6, 0.4]), ([0.5, 0.3, 0.2], [0.5, 0.2, 0.3])]
)
def test_changing_weights_moves_only_the_users_between_the_old_and_new_edges(
    old: list[float], new: list[float]
) -> None:
    moved = sum(
        variant_index(SALT, u, boundaries(old)) != variant_index(SALT, u, boundaries(new))
        for u in USERS
    )
    shift = sum(abs(a - b) for a, b in zip(boundaries(old), boundaries(new), strict=True))
    assert moved / len(USERS) == pytest.approx(shift / BUCKETS, abs=0.01)


def test_the_split_among_variants_does_not_depend_on_the_traffic_share() -> None:
    edges = boundaries([0.5, 0.5])
    for traffic in (0.1, 1.0):
        chosen = [u for u in USERS if in_traffic(SALT, u, traffic)]
        share = sum(variant_index(SALT, u, edges) == 0 for u in chosen) / len(chosen)
        assert 0.45 < share < 0.55, (traffic, share)
