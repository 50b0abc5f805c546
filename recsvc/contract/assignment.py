"""Deterministic assignment of users to experiments and variants: no storage, any language.

Every decision is a bucket in [0, 10000) computed from a string, so the app backend (Java,
Go, ...) computes the same variant as the service from the same definition
(docs/assignment.md gives the rules step by step and test vectors):

    bucket(text) = int.from_bytes(SHA-256(UTF-8(text))[:8], "big") mod 10000

For a user `u` and an experiment with salt `s`:

1. namespace: when the experiment has a namespace `n` with range [lo, hi) (shares of 1),
   the user is eligible only if lo·10000 <= bucket("n:" + u) < hi·10000. Experiments of one
   namespace with disjoint ranges never share a user.
2. traffic: the user is in the experiment if bucket(s + ":traffic:" + u) < traffic·10000.
   Widening the share only adds users: nobody already in moves out or changes variant.
3. variant: bucket(s + ":variant:" + u) falls in one variant's slice of [0, 10000); slices
   follow the variants' order, each round(cumulative weight·10000) wide. Changing a weight
   moves only the users between the old and the new slice boundaries.

The traffic and variant buckets are independent hashes, so the users of a 10% experiment
split across variants exactly as the users of a 100% one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

BUCKETS = 10_000


def bucket(text: str) -> int:
    """The bucket of a string: the first 8 bytes of its SHA-256, big-endian, mod 10,000."""
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def in_namespace(namespace: str, user_id: str, low: float, high: float) -> bool:
    """Whether the user falls in the namespace slice [low, high) (shares of 1)."""
    return round(low * BUCKETS) <= bucket(f"{namespace}:{user_id}") < round(high * BUCKETS)


def in_traffic(salt: str, user_id: str, traffic: float) -> bool:
    """Whether the user is among the experiment's `traffic` share."""
    return bucket(f"{salt}:traffic:{user_id}") < round(traffic * BUCKETS)


def boundaries(weights: Sequence[float]) -> list[int]:
    """The upper bucket of each variant's slice: round(cumulative weight × 10,000); the last
    is always 10,000."""
    total, edges = 0.0, []
    for weight in weights:
        total += weight
        edges.append(round(total * BUCKETS))
    if edges:
        edges[-1] = BUCKETS
    return edges


def variant_index(salt: str, user_id: str, edges: Sequence[int]) -> int:
    """Index of the user's variant, given the slice boundaries of `boundaries`."""
    position = bucket(f"{salt}:variant:{user_id}")
    return next(i for i, edge in enumerate(edges) if position < edge)
