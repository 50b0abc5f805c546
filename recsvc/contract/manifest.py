"""The model artifact contract: what a model directory holds and how its manifest reads.

Both halves import this module: `training` writes a model directory, `recsvc` checks and loads
it. A directory `models/<version>/` holds `model.onnx`, `manifest.json` and the `.npy` arrays
the service needs; the manifest lists every file with its sha256.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

MODEL_FILE = "model.onnx"
MANIFEST_FILE = "manifest.json"
# Families whose user vector is the user's confidence row times a matrix (low-rank EASE) export
# that matrix, items × dimension: the service folds a user in as Σ c_i · row_i, with no solve.
# Without it, fold-in is the ALS closed form over the item factors.
PROJECTION_FILE = "item_projection.npy"
# The trending prior, one value in [0, 1] per video (what was popular in the last hours of the
# training data), present when the trainer turned it on; the manifest's params then hold
# `trending`: {"weight": w, "hours": h, "until": the data's last event}. The service adds
# w · σ_u · prior[v] to user u's video scores, σ_u the spread of the user's scores over the
# videos (training.models.trending explains the blend).
TRENDING_FILE = "trending_prior.npy"
# Videos published after the model was trained (recsvc.feed.fresh). The metadata map places
# one in the item space from its features (recsvc.contract.metadata): row 0 is the average
# video, row 1 + f what feature f adds; the features' names are in METADATA_FEATURES_FILE, in
# row order. The users' Gram matrix XᵀX (of the exported user factors) is what the item-side
# closed form over a new video's first viewers needs. The manifest's params then hold
# `fresh`: {"regularization": λ}, the weight of the metadata vector as a prior in that closed
# form (how many viewers' worth of evidence the metadata counts for; chosen by the trainer).
METADATA_MAP_FILE = "video_metadata_map.npy"
METADATA_FEATURES_FILE = "video_metadata_features.npy"
USER_GRAM_FILE = "user_gram.npy"
# (a, b) of the attach score a·(user·product) + b·(video·product): the trainer records its
# choice in the params (`attach_weights`); a manifest without one is served with these.
DEFAULT_ATTACH_WEIGHTS = (1.0, 1.0)
# Graph inputs and outputs, by name (the ranking graph's interface).
INPUTS = ("user", "video_bias", "product_bias", "k", "attach_weights")
OUTPUTS = ("video_index", "video_score", "product_index", "product_score")
# What one event of each action adds to a user-item cell: the trainer's defaults, and what the
# service folds in with when a manifest predates `confidence_weights` in its params. A view
# counts times its watch ratio when it has one.
DEFAULT_CONFIDENCE_WEIGHTS = {"impression": 0.0, "view": 1.0, "click": 4.0, "purchase": 16.0}
# A view's watch ratio counts up to this cap in its confidence (view weight × min(ratio, cap)):
# by default a replay (ratio above 1) counts as one whole view. The trainer records its cap in
# the manifest's params (`watch_ratio_cap`), and the service folds in with the same; a
# manifest without one predates replays (every ratio was at most 1), for which 1 is exact.
DEFAULT_WATCH_RATIO_CAP = 1.0


class ArtifactError(ValueError):
    """A model directory that cannot be trusted; the message names the file and the fault."""


@dataclass(frozen=True)
class Manifest:
    version: str
    created_at: str
    dimension: int
    video_ids: list[str]
    product_ids: list[str]
    data_window: dict[str, Any]
    metrics: dict[str, Any]
    params: dict[str, Any]
    opset: int
    ir_version: int
    files: dict[str, str]  # file name -> sha256 hex digest

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_manifest(manifest: Manifest, directory: Path) -> None:
    (directory / MANIFEST_FILE).write_text(json.dumps(manifest.as_dict(), indent=2) + "\n")


def read_manifest(directory: Path) -> Manifest:
    """Parse manifest.json; a missing file or field is an ArtifactError naming it."""
    path = directory / MANIFEST_FILE
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise ArtifactError(f"{path}: missing") from None
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{path}: unreadable ({exc})") from None
    if not isinstance(raw, dict):
        raise ArtifactError(f"{path}: not a JSON object")
    missing = [f.name for f in fields(Manifest) if f.name not in raw]
    if missing:
        raise ArtifactError(f"{path}: missing field(s) {', '.join(missing)}")
    return Manifest(**{f.name: raw[f.name] for f in fields(Manifest)})


def load_array(path: Path) -> np.ndarray:
    """A `.npy` file of the artifact (never a pickle), or an ArtifactError naming it."""
    try:
        array: np.ndarray = np.load(path, allow_pickle=False)
        return array
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{path}: unreadable array ({exc})") from None


def version_dirs(models_dir: Path) -> set[str]:
    """Names of the version directories (those holding a manifest) under `models_dir`."""
    if not models_dir.is_dir():
        return set()
    return {p.name for p in models_dir.iterdir() if is_version_dir(p)}


def is_version_dir(path: Path) -> bool:
    """A model version directory: not hidden (a prune's leftovers are), holding a manifest."""
    return not path.name.startswith(".") and (path / "manifest.json").is_file()
