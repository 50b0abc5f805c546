"""Benchmark of one ranking call through a loaded model artifact, against a bare ONNX
MatMul+TopK over the same video matrix, measured in the same run.

10k videos × 200 products × 64 dimensions by default. Reports p50/p99 of a B=1 call through
`RankingModel.rank` (verified artifact, the graph with product attach) and of the bare graph
with the same session options, plus batch throughput at B=256.
Usage: python bench/rank.py [--videos N --products N --dim N --calls N]
The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from recsvc.feed.ranker import RankingModel, session_options
from training.models.export import IR_VERSION, OPSET, export_model


def bare_graph(videos: np.ndarray) -> onnx.ModelProto:
    """user [B, d] @ videosᵀ, then TopK: the least any ranking can do."""
    nodes = [
        helper.make_node("MatMul", ["user", "videos_t"], ["scores"]),
        helper.make_node("TopK", ["scores", "k"], ["values", "indices"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "bare",
        [
            helper.make_tensor_value_info("user", TensorProto.FLOAT, ["batch", videos.shape[1]]),
            helper.make_tensor_value_info("k", TensorProto.INT64, [1]),
        ],
        [
            helper.make_tensor_value_info("values", TensorProto.FLOAT, ["batch", "k"]),
            helper.make_tensor_value_info("indices", TensorProto.INT64, ["batch", "k"]),
        ],
        [numpy_helper.from_array(np.ascontiguousarray(videos.T), "videos_t")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    return model


def timings_us(call, calls: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    for _ in range(min(200, calls)):  # warm-up
        call()
    samples = np.empty(calls)
    for i in range(calls):
        started = time.perf_counter_ns()
        call()
        samples[i] = (time.perf_counter_ns() - started) / 1000
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--videos", type=int, default=10_000)
    parser.add_argument("--products", type=int, default=200)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--calls", type=int, default=5_000)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    items = rng.normal(size=(args.videos + args.products, args.dim)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        directory = export_model(
            Path(tmp),
            items,
            np.array([f"v{i}" for i in range(args.videos)]),
            np.array([f"p{i}" for i in range(args.products)]),
            {},
        )
        model = RankingModel.load(directory)
    bare = ort.InferenceSession(
        bare_graph(items[: args.videos]).SerializeToString(),
        session_options(),
        providers=["CPUExecutionProvider"],
    )
    user = rng.normal(size=(1, args.dim)).astype(np.float32)
    video_bias = np.zeros((1, args.videos), np.float32)
    product_bias = np.zeros((1, args.products), np.float32)
    k = np.array([args.k], np.int64)

    # interleave the two in rounds so that machine noise hits both alike
    rank_samples, bare_samples = [], []
    for _ in range(5):
        rank_samples.append(
            timings_us(lambda: model.rank(user, video_bias, product_bias, args.k), args.calls // 5)
        )
        bare_samples.append(
            timings_us(lambda: bare.run(None, {"user": user, "k": k}), args.calls // 5)
        )
    rank_us, bare_us = np.concatenate(rank_samples), np.concatenate(bare_samples)

    batch = 256
    users = rng.normal(size=(batch, args.dim)).astype(np.float32)
    vb, pb = (
        np.zeros((batch, args.videos), np.float32),
        np.zeros((batch, args.products), np.float32),
    )
    batch_us = timings_us(lambda: model.rank(users, vb, pb, args.k), 50)

    result = {
        "benchmark": "rank",
        "videos": args.videos,
        "products": args.products,
        "dim": args.dim,
        "k": args.k,
        "calls": len(rank_us),
        "rank_p50_us": round(float(np.percentile(rank_us, 50)), 1),
        "rank_p99_us": round(float(np.percentile(rank_us, 99)), 1),
        "bare_p50_us": round(float(np.percentile(bare_us, 50)), 1),
        "bare_p99_us": round(float(np.percentile(bare_us, 99)), 1),
        "ratio_p50": round(float(np.percentile(rank_us, 50) / np.percentile(bare_us, 50)), 3),
        "batch256_users_per_s": round(batch / (float(np.median(batch_us)) / 1e6)),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
