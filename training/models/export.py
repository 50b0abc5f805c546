"""Export trained factors as a model directory: the ONNX ranking graph plus its manifest.

The graph ranks videos and picks, for each ranked video, the best attachable product:

    video_score[b, v]   = user[b] · V[v] + video_bias[b, v]
    top-k videos by video_score (ties: lower index first, as ONNX TopK specifies)
    product_score[b, j, p] = a · (user[b] · P[p]) + b' · (V[top_j] · P[p]) + product_bias[b, p]
    best product per ranked video: ArgMax (ties: lower index first)

with (a, b') = attach_weights. A bias of -inf filters an item. Batch size and k are dynamic.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from recsvc.contract.manifest import (
    MODEL_FILE,
    PROJECTION_FILE,
    USER_GRAM_FILE,
    Manifest,
    sha256_file,
    write_manifest,
)
from training.data.matrix import ItemIndex
from training.models.factors import Factors

OPSET = 17
IR_VERSION = 8  # onnx 1.23 writes IR 14 by default; onnxruntime 1.31 loads at most 13


def ranking_graph(videos: np.ndarray, products: np.ndarray) -> onnx.ModelProto:
    """The ranking graph over fixed video [V, d] and product [P, d] factor matrices."""
    dim = videos.shape[1]
    videos_t = numpy_helper.from_array(np.ascontiguousarray(videos.T, np.float32), "videos_t")
    products_t = numpy_helper.from_array(np.ascontiguousarray(products.T, np.float32), "products_t")
    video_product = numpy_helper.from_array(
        np.ascontiguousarray(videos @ products.T, np.float32), "video_product"
    )
    nodes = [
        helper.make_node("MatMul", ["user", "videos_t"], ["user_video"]),
        helper.make_node("Add", ["user_video", "video_bias"], ["video_scores"]),
        helper.make_node(
            "TopK", ["video_scores", "k"], ["video_score", "video_index"], axis=1, sorted=1
        ),
        helper.make_node("MatMul", ["user", "products_t"], ["user_product"]),
        helper.make_node("Gather", ["attach_weights", "zero"], ["weight_user"]),
        helper.make_node("Gather", ["attach_weights", "one"], ["weight_video"]),
        helper.make_node("Mul", ["user_product", "weight_user"], ["user_part"]),
        helper.make_node("Add", ["user_part", "product_bias"], ["user_part_biased"]),
        helper.make_node("Unsqueeze", ["user_part_biased", "axis1"], ["user_part_3d"]),
        helper.make_node("Gather", ["video_product", "video_index"], ["chosen_vp"], axis=0),
        helper.make_node("Mul", ["chosen_vp", "weight_video"], ["video_part"]),
        helper.make_node("Add", ["video_part", "user_part_3d"], ["attach_scores"]),
        helper.make_node("ArgMax", ["attach_scores"], ["product_index"], axis=2, keepdims=0),
        helper.make_node("ReduceMax", ["attach_scores"], ["product_score"], axes=[2], keepdims=0),
    ]
    constants = [
        videos_t,
        products_t,
        video_product,
        numpy_helper.from_array(np.array(0, np.int64), "zero"),
        numpy_helper.from_array(np.array(1, np.int64), "one"),
        numpy_helper.from_array(np.array([1], np.int64), "axis1"),
    ]
    n_videos, n_products = len(videos), len(products)
    graph = helper.make_graph(
        nodes,
        "recsvc_rank",
        inputs=[
            helper.make_tensor_value_info("user", TensorProto.FLOAT, ["batch", dim]),
            helper.make_tensor_value_info("video_bias", TensorProto.FLOAT, ["batch", n_videos]),
            helper.make_tensor_value_info("product_bias", TensorProto.FLOAT, ["batch", n_products]),
            helper.make_tensor_value_info("k", TensorProto.INT64, [1]),
            helper.make_tensor_value_info("attach_weights", TensorProto.FLOAT, [2]),
        ],
        outputs=[
            helper.make_tensor_value_info("video_index", TensorProto.INT64, ["batch", "k"]),
            helper.make_tensor_value_info("video_score", TensorProto.FLOAT, ["batch", "k"]),
            helper.make_tensor_value_info("product_index", TensorProto.INT64, ["batch", "k"]),
            helper.make_tensor_value_info("product_score", TensorProto.FLOAT, ["batch", "k"]),
        ],
        initializer=constants,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


def new_version(now: datetime | None = None) -> str:
    """A version id that sorts by time and is unique: UTC timestamp plus random suffix."""
    now = now or datetime.now(UTC)
    return now.strftime("%Y%m%dT%H%M%S%fZ") + "-" + np.random.default_rng().bytes(3).hex()


def export_model(
    out_root: Path,
    item_factors: np.ndarray,
    video_ids: np.ndarray,
    product_ids: np.ndarray,
    info: dict[str, Any],
    version: str | None = None,
    extra_arrays: dict[str, np.ndarray] | None = None,
) -> Path:
    """Write models/<version>/ with the graph, the arrays fold-in needs and the manifest.

    `info` gives the manifest's params, data_window and metrics; `extra_arrays` (for example
    popularity counts, user factors for publishing) are written beside and checksummed too.
    """
    version = version or new_version()
    directory = out_root / version
    directory.mkdir(parents=True, exist_ok=False)
    n_videos = len(video_ids)
    videos = item_factors[:n_videos].astype(np.float32)
    products = item_factors[n_videos:].astype(np.float32)
    onnx.save(ranking_graph(videos, products), directory / MODEL_FILE)
    arrays = {
        "item_factors.npy": item_factors.astype(np.float32),
        "item_gram.npy": (item_factors.T @ item_factors).astype(np.float32),  # YᵀY for fold-in
        **(extra_arrays or {}),
    }
    for name, array in arrays.items():
        np.save(directory / name, array, allow_pickle=False)
    files = sorted([MODEL_FILE, *arrays])
    manifest = Manifest(
        version=version,
        created_at=datetime.now(UTC).isoformat(),
        dimension=int(item_factors.shape[1]),
        video_ids=[str(v) for v in video_ids],
        product_ids=[str(p) for p in product_ids],
        data_window=dict(info.get("data_window", {})),
        metrics=dict(info.get("metrics", {})),
        params=dict(info.get("params", {})),
        opset=OPSET,
        ir_version=IR_VERSION,
        files={name: sha256_file(directory / name) for name in files},
    )
    write_manifest(manifest, directory)
    return directory


def export_factors(
    models_dir: Path,
    factors: Factors,
    index: ItemIndex,
    data_window: dict[str, Any],
    metrics: dict[str, Any],
    popularity: dict[str, np.ndarray] | None = None,
    params: dict[str, Any] | None = None,
) -> Path:
    """Export a fit with its user factors and ids (for publishing), any popularity arrays and
    extra manifest params (e.g. the confidence weights, which fold-in needs)."""
    arrays = {
        **(popularity or {}),
        **({} if factors.projection is None else {PROJECTION_FILE: factors.projection}),
        "user_factors.npy": factors.user,
        # XᵀX of the users: the item-side closed form over a new video's viewers needs it
        USER_GRAM_FILE: (factors.user.T.astype(np.float64) @ factors.user).astype(np.float32),
        "user_ids.npy": index.user_ids.astype(str),
    }
    info = {
        "params": {**factors.params.as_dict(), **(params or {})},
        "data_window": data_window,
        "metrics": metrics,
    }
    return export_model(
        models_dir, factors.item, index.video_ids, index.product_ids, info, extra_arrays=arrays
    )
