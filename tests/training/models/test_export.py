"""The exported ranking graph computes what the numpy reference means, and the loader refuses
every artifact it cannot trust, naming the file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from recsvc.contract.manifest import ArtifactError
from recsvc.feed.ranker import RankingModel
from training.models.export import export_model


def reference(user, videos, products, video_bias, product_bias, k, weights):  # type: ignore[no-untyped-def]
    """The ranking in float64 numpy: stable order, so ties go to the lower index."""
    scores = user.astype(np.float64) @ videos.T + video_bias
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    top_scores = np.take_along_axis(scores, top, axis=1)
    a, b = weights
    attach = (
        a * (user.astype(np.float64) @ products.T)[:, None, :]
        + b * (videos[top].astype(np.float64) @ products.T)
        + product_bias[:, None, :]
    )
    return top, top_scores, attach.argmax(axis=2), attach.max(axis=2)


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray, int]:
    rng = np.random.default_rng(0)
    n_videos, n_products, dim = 400, 30, 16
    items = rng.normal(size=(n_videos + n_products, dim)).astype(np.float32)
    directory = export_model(
        tmp_path_factory.mktemp("models"),
        items,
        np.array([f"v{i}" for i in range(n_videos)]),
        np.array([f"p{i}" for i in range(n_products)]),
        {"params": {"factors": dim}},
    )
    return directory, items, n_videos


@pytest.mark.parametrize("batch", [1, 256])
def test_onnx_matches_the_numpy_reference(
    artifact: tuple[Path, np.ndarray, int], batch: int
) -> None:
    directory, items, n_videos = artifact
    model = RankingModel.load(directory)
    videos, products = items[:n_videos], items[n_videos:]
    rng = np.random.default_rng(batch)
    for _ in range(5):
        user = rng.normal(size=(batch, items.shape[1])).astype(np.float32)
        video_bias = np.where(rng.random((batch, n_videos)) < 0.2, -np.inf, 0).astype(np.float32)
        product_bias = np.where(rng.random((batch, 30)) < 0.3, -np.inf, 0).astype(np.float32)
        k = int(rng.integers(1, 40))
        weights = (float(rng.uniform(0, 2)), float(rng.uniform(0, 2)))
        got = model.rank(user, video_bias, product_bias, k, weights)
        want = reference(user, videos, products, video_bias, product_bias, k, weights)
        np.testing.assert_array_equal(got.video_index, want[0])
        np.testing.assert_allclose(got.video_score, want[1], rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(got.product_index, want[2])
        np.testing.assert_allclose(got.product_score, want[3], rtol=1e-5, atol=1e-5)


def test_edge_cases(artifact: tuple[Path, np.ndarray, int]) -> None:
    directory, items, n_videos = artifact
    model = RankingModel.load(directory)
    user = np.ones((1, items.shape[1]), np.float32)
    only_three = np.full((1, n_videos), -np.inf, np.float32)
    only_three[0, [5, 50, 7]] = 0
    no_products = np.full((1, 30), -np.inf, np.float32)
    got = model.rank(user, only_three, no_products, k=10)
    eligible = np.isfinite(got.video_score[0])
    assert sorted(got.video_index[0][eligible]) == [5, 7, 50]  # fewer results, never filtered
    assert not np.isfinite(got.product_score).any()  # every product filtered: no attach
    assert model.rank(user, only_three, no_products, k=10_000).video_index.shape == (1, n_videos)
    empty = model.rank(
        np.empty((0, items.shape[1]), np.float32), np.empty((0, n_videos)), np.empty((0, 30)), k=5
    )
    assert empty.video_index.shape == (0, 5)
    ties = model.rank(
        np.zeros((1, items.shape[1]), np.float32),
        np.zeros((1, n_videos), np.float32),
        np.zeros((1, 30), np.float32),
        k=4,
        attach_weights=(1.0, 0.0),
    )
    assert ties.video_index[0].tolist() == [0, 1, 2, 3]  # equal scores: lower index first
    assert ties.product_index[0].tolist() == [0, 0, 0, 0]


def test_the_manifest_records_the_artifact(artifact: tuple[Path, np.ndarray, int]) -> None:
    directory, items, n_videos = artifact
    manifest = json.loads((directory / "manifest.json").read_text())
    assert manifest["dimension"] == items.shape[1]
    assert len(manifest["video_ids"]) == n_videos and len(manifest["product_ids"]) == 30
    assert manifest["ir_version"] <= 13 and manifest["opset"] >= 13
    assert set(manifest["files"]) == {"model.onnx", "item_factors.npy", "item_gram.npy"}


def corrupt(directory: Path, tmp_path: Path, change) -> Path:  # type: ignore[no-untyped-def]
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(directory, copy)
    change(copy)
    return copy


def test_the_loader_refuses_a_truncated_file(artifact, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    def truncate(d: Path) -> None:
        data = (d / "model.onnx").read_bytes()
        (d / "model.onnx").write_bytes(data[: len(data) // 2])

    with pytest.raises(ArtifactError, match=r"model\.onnx: sha256 .*truncated"):
        RankingModel.load(corrupt(artifact[0], tmp_path, truncate))


def test_the_loader_refuses_a_wrong_dimension(artifact, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    def widen(d: Path) -> None:
        manifest = json.loads((d / "manifest.json").read_text())
        manifest["dimension"] = 32
        (d / "manifest.json").write_text(json.dumps(manifest))

    with pytest.raises(ArtifactError, match=r"item_factors\.npy: shape"):
        RankingModel.load(corrupt(artifact[0], tmp_path, widen))


def test_the_loader_refuses_a_missing_id_list(artifact, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    def drop(d: Path) -> None:
        manifest = json.loads((d / "manifest.json").read_text())
        del manifest["product_ids"]
        (d / "manifest.json").write_text(json.dumps(manifest))

    with pytest.raises(ArtifactError, match=r"manifest\.json: missing field\(s\) product_ids"):
        RankingModel.load(corrupt(artifact[0], tmp_path, drop))


def test_the_loader_refuses_a_missing_file_and_a_missing_manifest(artifact, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    gone = corrupt(artifact[0], tmp_path, lambda d: (d / "item_gram.npy").unlink())
    with pytest.raises(ArtifactError, match=r"item_gram\.npy: missing"):
        RankingModel.load(gone)
    with pytest.raises(ArtifactError, match=r"manifest\.json: missing"):
        RankingModel.load(tmp_path / "nowhere")


def test_train_export_load_rank_round_trip_on_a_synthetic_world(tmp_path: Path) -> None:
    import subprocess
    import sys

    recsvc = str(Path(sys.executable).with_name("recsvc"))

    def run(*args: str) -> str:
        result = subprocess.run([recsvc, *args], capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stderr
        return result.stdout

    world, factors, models = tmp_path / "world", tmp_path / "factors", tmp_path / "models"
    run(
        "synth",
        "--out",
        str(world),
        "--users",
        "2000",
        "--videos",
        "200",
        "--products",
        "20",
        "--events",
        "40000",
        "--seed",
        "5",
    )
    report = json.loads(
        run(
            "train",
            "--world",
            str(world),
            "--out",
            str(factors),
            "--models-dir",
            str(models),
            "--factors",
            "8",
            "--json",
        )
        .strip()
        .splitlines()[-1]
    )
    model = RankingModel.load(Path(report["model_dir"]))
    users = np.load(Path(report["model_dir"]) / "user_factors.npy", allow_pickle=False)
    n_videos, n_products = model.n_videos, model.n_products
    ranked = model.rank(users[:50], np.zeros((50, n_videos)), np.zeros((50, n_products)), k=10)
    want = np.argsort(-(users[:50] @ model.item_factors[:n_videos].T), axis=1, kind="stable")
    np.testing.assert_array_equal(ranked.video_index, want[:, :10])
    assert ranked.product_index.min() >= 0 and ranked.product_index.max() < n_products

    out = run("export", "--factors", str(factors), "--models-dir", str(models))
    versions = sorted(p.name for p in models.iterdir())
    assert len(versions) == 2 and versions[1] in out  # ids sort by time
    again = RankingModel.load(models / versions[1])
    np.testing.assert_array_equal(again.item_factors, model.item_factors)


def test_a_single_video_catalogue_ranks_it_or_nothing(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    items = rng.normal(size=(1 + 3, 4)).astype(np.float32)
    model = RankingModel.load(
        export_model(tmp_path, items, np.array(["v0"]), np.array(["p0", "p1", "p2"]), {})
    )
    user = rng.normal(size=(2, 4)).astype(np.float32)
    got = model.rank(user, np.array([[0.0], [-np.inf]]), np.zeros((2, 3)), k=5)
    assert got.video_index.tolist() == [[0], [0]]
    assert np.isfinite(got.video_score[0, 0]) and not np.isfinite(got.video_score[1, 0])


def test_the_loader_refuses_a_graph_onnxruntime_cannot_load(artifact, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import onnx

    from recsvc.contract.manifest import sha256_file

    def future_ir(d: Path) -> None:
        model = onnx.load(d / "model.onnx")
        model.ir_version = 99  # a version no runtime knows
        onnx.save(model, d / "model.onnx")
        manifest = json.loads((d / "manifest.json").read_text())
        manifest["files"]["model.onnx"] = sha256_file(d / "model.onnx")  # checksum is right
        (d / "manifest.json").write_text(json.dumps(manifest))

    with pytest.raises(ArtifactError, match=r"model\.onnx: onnxruntime refuses it"):
        RankingModel.load(corrupt(artifact[0], tmp_path, future_ir))
