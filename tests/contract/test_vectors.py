"""User vectors pack into 4 + d bytes and come back within the int8 rounding error."""

from __future__ import annotations

import numpy as np
import pytest

from recsvc.contract import vectors


def test_round_trip_error_is_at_most_half_a_step() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 64)).astype(np.float32)
    packed = vectors.encode_many(x)
    assert {len(p) for p in packed} == {68}
    back = np.stack([vectors.decode(p, 64) for p in packed])
    step = np.abs(x).max(axis=1, keepdims=True) / 127
    assert np.all(np.abs(back - x) <= step / 2 + 1e-6)


def test_rankings_survive_packing() -> None:
    rng = np.random.default_rng(1)
    items = rng.normal(size=(2000, 64)).astype(np.float32)
    user = rng.normal(size=64).astype(np.float32)
    exact = np.argsort(-(items @ user))[:10]
    packed = np.argsort(-(items @ vectors.decode(vectors.encode(user), 64)))[:10]
    assert len(set(exact) & set(packed)) >= 9


def test_zero_vector_and_wrong_length() -> None:
    assert not vectors.decode(vectors.encode(np.zeros(8, np.float32)), 8).any()
    with pytest.raises(ValueError, match="expected 68"):
        vectors.decode(b"\x00" * 36, 64)
    with pytest.raises(ValueError, match="finite"):
        vectors.encode(np.array([1.0, np.nan], np.float32))


def test_decoding_many_at_once_gives_each_vector_as_decoding_it_alone() -> None:
    rng = np.random.default_rng(2)
    packed = vectors.encode_many(rng.normal(size=(50, 64)).astype(np.float32))
    together = vectors.decode_many(packed, 64)
    assert together.dtype == np.float32
    assert np.array_equal(together, np.stack([vectors.decode(p, 64) for p in packed]))
    assert vectors.decode_many([], 64).shape == (0, 64)
    with pytest.raises(ValueError, match="68 bytes"):
        vectors.decode_many([packed[0], b"\x00" * 36], 64)
