"""User vectors as packed bytes: int8 components with one float32 scale.

64 dimensions take 68 bytes (about 170 bytes per user in Redis with the key), against 256 for
float32. The scale is max|x| / 127, so each component is off by at most scale / 2: relative
error under 0.4% of the largest component, far below what changes a ranking.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

SCALE_BYTES = 4


def encode(vector: np.ndarray) -> bytes:
    """Pack one float vector [d]."""
    return encode_many(vector[None, :])[0]


def encode_many(vectors: np.ndarray) -> list[bytes]:
    """Pack the rows of a float matrix [n, d]."""
    x = np.asarray(vectors, dtype=np.float32)
    if x.ndim != 2 or not np.isfinite(x).all():
        raise ValueError("vectors must be a finite [n, d] matrix")
    scale = np.abs(x).max(axis=1) / 127.0
    scale[scale == 0] = 1.0
    q = np.clip(np.rint(x / scale[:, None]), -127, 127).astype(np.int8)
    packed = np.empty((len(x), SCALE_BYTES + x.shape[1]), dtype=np.uint8)
    packed[:, :SCALE_BYTES] = scale.astype("<f4").view(np.uint8).reshape(-1, SCALE_BYTES)
    packed[:, SCALE_BYTES:] = q.view(np.uint8)
    return [row.tobytes() for row in packed]


def decode(packed: bytes, dimension: int) -> np.ndarray:
    """Unpack one vector; a wrong length is a ValueError (a vector of another model)."""
    if len(packed) != SCALE_BYTES + dimension:
        raise ValueError(
            f"packed vector of {len(packed)} bytes, expected {SCALE_BYTES + dimension}"
        )
    scale = np.float32(np.frombuffer(packed, dtype="<f4", count=1)[0])
    components = np.frombuffer(packed, dtype=np.int8, offset=SCALE_BYTES).astype(np.float32)
    decoded: np.ndarray = components * scale
    return decoded


def decode_many(packed: Sequence[bytes], dimension: int) -> np.ndarray:
    """Unpack several vectors [n, d], each as `decode` would, in a few numpy calls."""
    size = SCALE_BYTES + dimension
    if any(len(p) != size for p in packed):
        raise ValueError(f"packed vectors must all be {size} bytes")
    rows = np.frombuffer(b"".join(packed), dtype=np.uint8).reshape(len(packed), size)
    scales = rows[:, :SCALE_BYTES].copy().view("<f4").astype(np.float32)  # [n, 1]
    components = rows[:, SCALE_BYTES:].view(np.int8).astype(np.float32)
    decoded: np.ndarray = components * scales
    return decoded
