"""The ranking model on the service side: load a model directory safely, rank with onnxruntime.

Loading checks every file's sha256 against the manifest, the array shapes against the
manifest's id lists and dimension, and that onnxruntime accepts the graph; any fault is an
ArtifactError naming the file. Ranking results with a score of -inf (every eligible item
filtered) are dropped by the caller's rules, never served.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from recsvc.contract.manifest import (
    INPUTS,
    MODEL_FILE,
    OUTPUTS,
    ArtifactError,
    Manifest,
    load_array,
    read_manifest,
    sha256_file,
)
from recsvc.feed.foldin import ensemble_size

REQUIRED_FILES = (MODEL_FILE, "item_factors.npy", "item_gram.npy")


def session_options() -> ort.SessionOptions:
    """Options for low latency on a small server.

    One intra-op thread: a replica serves many small requests at once, and splitting one
    ranking call over cores costs more in synchronisation than it saves. No spinning: idle
    worker threads would otherwise burn the cores that other requests need. The memory arena
    stays on: it reuses buffers across calls of the same shapes.
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.enable_cpu_mem_arena = True
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


@dataclass(frozen=True)
class Ranked:
    """Top-k videos and the best product under each: arrays of shape [B, k]."""

    video_index: np.ndarray
    video_score: np.ndarray
    product_index: np.ndarray
    product_score: np.ndarray


class RankingModel:
    """A verified model directory and its onnxruntime session."""

    def __init__(
        self,
        directory: Path,
        manifest: Manifest,
        session: ort.InferenceSession,
        item_factors: np.ndarray,
        item_gram: np.ndarray,
    ) -> None:
        self.directory = directory
        self.manifest = manifest
        self.session = session
        self.item_factors = item_factors
        self.item_gram = item_gram

    @property
    def n_videos(self) -> int:
        return len(self.manifest.video_ids)

    @property
    def n_products(self) -> int:
        return len(self.manifest.product_ids)

    @classmethod
    def load(cls, directory: Path) -> RankingModel:
        """Verify and load a model directory; refuse it with an ArtifactError otherwise."""
        manifest = read_manifest(directory)
        _check_files(directory, manifest)
        items = load_array(directory / "item_factors.npy")
        gram = load_array(directory / "item_gram.npy")
        n_items, dim = len(manifest.video_ids) + len(manifest.product_ids), manifest.dimension
        if not manifest.video_ids or not manifest.product_ids:
            raise ArtifactError(f"{directory / 'manifest.json'}: empty video or product id list")
        if items.shape != (n_items, dim):
            raise ArtifactError(
                f"{directory / 'item_factors.npy'}: shape {items.shape}, the manifest says "
                f"{(n_items, dim)}"
            )
        if gram.shape != (dim, dim):
            raise ArtifactError(
                f"{directory / 'item_gram.npy'}: shape {gram.shape}, not {(dim, dim)}"
            )
        try:
            ensemble_size(manifest.params, dim)
        except ValueError as exc:
            raise ArtifactError(f"{directory / 'manifest.json'}: params: {exc}") from None
        session = _session(directory / MODEL_FILE, manifest)
        return cls(directory, manifest, session, items, gram)

    def rank(
        self,
        user: np.ndarray,
        video_bias: np.ndarray,
        product_bias: np.ndarray,
        k: int,
        attach_weights: tuple[float, float] = (1.0, 1.0),
    ) -> Ranked:
        """Rank for a batch of users; k is clamped to the number of videos."""
        batch = user.shape[0]
        k = max(0, min(int(k), self.n_videos))
        if batch == 0 or k == 0:
            empty_i, empty_f = np.empty((batch, k), np.int64), np.empty((batch, k), np.float32)
            return Ranked(empty_i, empty_f, empty_i.copy(), empty_f.copy())
        feeds = {
            "user": np.ascontiguousarray(user, np.float32),
            "video_bias": np.ascontiguousarray(video_bias, np.float32),
            "product_bias": np.ascontiguousarray(product_bias, np.float32),
            "k": np.array([k], np.int64),
            "attach_weights": np.asarray(attach_weights, np.float32),
        }
        return Ranked(*self.session.run(list(OUTPUTS), feeds))


def _check_files(directory: Path, manifest: Manifest) -> None:
    for name in REQUIRED_FILES:
        if name not in manifest.files:
            raise ArtifactError(f"{directory / 'manifest.json'}: no checksum for {name}")
    for name, expected in manifest.files.items():
        path = directory / name
        if not path.is_file():
            raise ArtifactError(f"{path}: missing")
        actual = sha256_file(path)
        if actual != expected:
            raise ArtifactError(
                f"{path}: sha256 {actual[:12]}… does not match the manifest's {expected[:12]}… "
                "(truncated or altered file)"
            )


def _session(path: Path, manifest: Manifest) -> ort.InferenceSession:
    try:
        session = ort.InferenceSession(
            str(path), session_options(), providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime raises its own exception types (bad IR, opset, graph)
        raise ArtifactError(f"{path}: onnxruntime refuses it ({exc})") from None
    names = tuple(i.name for i in session.get_inputs())
    if names != INPUTS:
        raise ArtifactError(f"{path}: inputs {names}, expected {INPUTS}")
    shapes = {i.name: i.shape for i in session.get_inputs()}
    expected = {
        "user": manifest.dimension,
        "video_bias": len(manifest.video_ids),
        "product_bias": len(manifest.product_ids),
    }
    for name, size in expected.items():
        if shapes[name][1] != size:
            raise ArtifactError(
                f"{path}: input {name} has width {shapes[name][1]}, the manifest says {size}"
            )
    return session
