"""ALS on Spark (training.models.spark_als), in Spark local mode with a real JVM.

Its factors have implicit's form (a row per user and per item of the index, zero where the
matrix has nothing) and rank a planted structure as implicit does with the same parameters;
and a nightly run with `--engine spark` promotes a model that the service then serves.
Skips, saying why, where pyspark or Java is missing (scripts/test installs the `spark` extra;
.ci/run installs Debian's OpenJDK 17).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from tests.builders import cli_environment
from tests.http.builders import service_settings, serving
from training.models.factors import FitParams, fit

RECSVC = str(Path(sys.executable).with_name("recsvc"))


def _missing() -> str | None:
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return "pyspark is not installed (the 'spark' extra)"
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        return "no Java runtime (Debian: openjdk-17-jre-headless)"
    return None


pytestmark = pytest.mark.skipif(
    _missing() is not None and os.environ.get("CI") != "true", reason=str(_missing())
)
# One core for Spark here: the suite runs another test file on the other one (scripts/test).
SPARK_MASTER = "local[1]"


@pytest.fixture(autouse=True)
def one_core(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPARK_MASTER", SPARK_MASTER)


def planted(seed: int = 0) -> tuple[sp.csr_matrix, np.ndarray]:
    """Two communities of 150 users over 40 items each (items 0-39 and 40-79): each user has
    eight cells in their own half, and a few users none at all; their community."""
    rng = np.random.default_rng(seed)
    rows, cols, values = [], [], []
    community = np.repeat([0, 1], 150)
    for user, side in enumerate(community):
        if user % 50 == 49:
            continue  # no cell: stays a zero row
        for item in rng.choice(40, size=8, replace=False):
            rows.append(user)
            cols.append(side * 40 + item)
            values.append(float(rng.integers(1, 4)))
    matrix = sp.csr_matrix((values, (rows, cols)), shape=(300, 80), dtype=np.float32)
    return matrix, community


def test_spark_factors_have_implicits_form_and_find_the_same_communities() -> None:
    matrix, community = planted()
    params = FitParams(factors=8, regularization=0.1, alpha=5.0, iterations=4, seed=1)
    ours = fit(matrix, params)
    spark = fit(matrix, replace(params, ensemble=2), engine="spark")
    # an ensemble, as implicit's: each seed's fit side by side
    assert spark.user.shape == (300, 16) and spark.item.shape == (80, 16)
    assert spark.user.dtype == np.float32
    assert not np.allclose(spark.item[:, :8], spark.item[:, 8:])  # two seeds, two fits
    empty = np.flatnonzero(np.diff(matrix.indptr) == 0)
    assert len(empty) == 6 and not spark.user[empty].any()  # a user with no cell: zeros

    def own_side_share(user: np.ndarray, item: np.ndarray) -> float:
        """Of each user's top 10 unseen items, the share in their own community's half."""
        scores = user @ item.T
        scores[matrix.nonzero()] = -np.inf
        top = np.argsort(-scores, axis=1)[:, :10]
        present = np.diff(matrix.indptr) > 0
        return float(((top // 40) == community[:, None])[present].mean())

    assert own_side_share(ours.user, ours.item) > 0.95
    for block in (slice(0, 8), slice(8, 16)):
        assert own_side_share(spark.user[:, block], spark.item[:, block]) > 0.95


def test_spark_fits_als_only() -> None:
    from training.models.factors import ModelFitError

    matrix, _ = planted()
    with pytest.raises(ModelFitError, match="ALS only, not 'bpr'"):
        fit(matrix, FitParams(algorithm="bpr"), engine="spark")


def test_a_nightly_run_on_spark_promotes_a_model_the_service_serves(
    redis_url: str, tmp_path: Path
) -> None:
    from sandbox.world.generate import WorldSpec, generate_world, write_world

    world = tmp_path / "world"
    spec = WorldSpec(users=300, videos=40, products=6, events=6_000, days=4, seed=5)
    write_world(generate_world(spec), world)
    env = {**cli_environment(redis_url, tmp_path / "models"), "SPARK_MASTER": SPARK_MASTER}
    load = [RECSVC, "catalog", "load", "--videos", str(world / "catalog/videos.jsonl"),
            "--products", str(world / "catalog/products.jsonl")]  # fmt: skip
    subprocess.run(load, env=env, check=True, capture_output=True)
    command = [RECSVC, "nightly", "--events", str(world / "events"), "--reports",
               str(tmp_path / "reports"), "--no-tune", "--engine", "spark",
               "--factors", "8", "--iterations", "3"]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr + done.stdout
    assert "published as current" in done.stdout
    (version,) = [p.name for p in (tmp_path / "models").iterdir() if p.is_dir()]
    with serving(service_settings(redis_url, tmp_path / "models")) as client:
        answer = client.get("/v1/feed", params={"user_id": "u00001", "n": 5})
        assert answer.status_code == 200, answer.text
        feed = answer.json()
        assert feed["model_version"] == version
        assert feed["degraded"] is False and len(feed["items"]) == 5
