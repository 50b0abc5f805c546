"""The map from a video's metadata to the item space, and the prior of a new video's
item-side solve (training.models.metadata), as the export writes them and the service reads
them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recsvc.contract.catalog import VideoRecord
from recsvc.contract.manifest import METADATA_MAP_FILE, USER_GRAM_FILE, read_manifest
from recsvc.feed.foldin import closed_form
from recsvc.feed.model import ServingModel
from tests.builders import block_events
from training.data.events import EventDataError
from training.data.matrix import ConfidenceWeights, build_interactions
from training.data.splits import Dataset
from training.models.factors import FitParams, fit
from training.models.metadata import PRIOR_GRID, fit_metadata_map
from training.models.pipeline import catalog_videos, export_trained


def group_records(video_ids: list[str]) -> dict[str, VideoRecord]:
    """Each block video's topic is its group (`v<g>-<i>`); groups 0 and 1 share a creator."""
    records = {}
    for video in video_ids:
        group = video[1]
        creator = "c-01" if group in "01" else "c-2"
        records[video] = VideoRecord(video_id=video, topics=[f"g{group}"], creator=creator)
    return records


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Dataset]:
    events = block_events(groups=3, users_per_group=20)
    dataset = Dataset(build_interactions(events), events, ConfidenceWeights())
    params = FitParams(factors=8, regularization=0.1, iterations=10, seed=1)
    factors = fit(dataset.interactions.confidence, params, threads=1)
    videos = group_records([str(v) for v in dataset.interactions.index.video_ids])
    out = tmp_path_factory.mktemp("models")
    return export_trained(out, factors, dataset, {"window": {}}, {}, None, videos), dataset


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_a_new_video_is_placed_among_its_topics_videos(exported: tuple[Path, Dataset]) -> None:
    directory, dataset = exported
    model = ServingModel.load(directory, generation=None)
    assert model.placer is not None and model.user_gram is not None
    index = dataset.interactions.index
    videos = model.ranking.item_factors[: len(index.video_ids)]
    groups = np.array([str(v)[1] for v in index.video_ids])
    centres = {g: videos[groups == g].mean(axis=0) for g in "012"}
    for group in "012":
        placed = model.placer.vector(VideoRecord(video_id="v-new", topics=[f"g{group}"]))
        nearest = max(centres, key=lambda g: cosine(placed, centres[g]))
        assert nearest == group
    unknown = model.placer.vector(VideoRecord(video_id="v-new", topics=["elsewhere"]))
    np.testing.assert_allclose(unknown, videos.mean(axis=0), atol=1e-5)


def test_the_export_carries_the_map_the_user_gram_and_the_prior_weight(
    exported: tuple[Path, Dataset],
) -> None:
    directory, _ = exported
    manifest = read_manifest(directory)
    assert {METADATA_MAP_FILE, USER_GRAM_FILE} <= set(manifest.files)
    user_factors = np.load(directory / "user_factors.npy")
    scale = np.trace(user_factors.T @ user_factors) / user_factors.shape[1]
    chosen = manifest.params["fresh"]["regularization"] / scale
    assert min(abs(chosen / g - 1) for g in PRIOR_GRID) < 1e-3  # one of the grid's weights
    np.testing.assert_allclose(
        np.load(directory / USER_GRAM_FILE), user_factors.T @ user_factors, rtol=1e-4, atol=1e-4
    )


def test_without_features_the_map_is_the_average_video() -> None:
    factors = np.arange(12, dtype=np.float32).reshape(4, 3)
    mapped = fit_metadata_map(["a", "b", "c", "d"], {}, factors)
    assert len(mapped.features) == 0
    np.testing.assert_allclose(
        [mapped.placer().vector(r) for r in (None, VideoRecord(video_id="v", topics=["x"]))],
        factors.mean(axis=0)[None].repeat(2, 0),
    )


def test_the_prior_pulls_a_few_viewers_estimate_and_many_viewers_outweigh_it() -> None:
    rng = np.random.default_rng(0)
    users = rng.normal(size=(400, 4))
    truth = np.array([1.0, -0.5, 0.0, 0.3])
    prior = np.array([0.0, 0.0, 1.0, 0.0])  # metadata that places it elsewhere
    gram = users.T @ users  # about 400 I: the prior weighs as much as all users' zeros
    params = {"regularization": 0.1, "alpha": 1.0}
    nothing = closed_form(np.zeros((0, 4)), gram, np.zeros(0), params, 400.0, prior)
    assert cosine(nothing, prior) > 0.95  # no viewer: the prior, shrunk
    liked = users[users @ truth > 1.0]
    many = closed_form(liked, gram, np.full(len(liked), 5.0), params, 400.0, prior)
    few = closed_form(liked[:3], gram, np.full(3, 5.0), params, 400.0, prior)
    assert cosine(many, truth) > cosine(few, truth) > cosine(nothing, truth)
    assert cosine(nothing, prior) > cosine(few, prior) > cosine(many, prior)


def test_a_catalogue_line_that_is_not_a_video_record_is_named(tmp_path: Path) -> None:
    (tmp_path / "videos.jsonl").write_text('{"video_id": "v1"}\n{"video_id": "bad id"}\n')
    with pytest.raises(EventDataError, match=r"videos.jsonl, line 2: not a video record"):
        catalog_videos(tmp_path)
