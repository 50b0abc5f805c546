"""The service sends nothing out: onnxruntime's telemetry is off before it loads a model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.http import planted

LOAD_A_MODEL = """
import sys
import recsvc.feed.ranker
import onnxruntime
onnxruntime.InferenceSession(sys.argv[1])
"""


def test_loading_a_model_leaves_no_onnxruntime_device_id_behind(tmp_path: Path) -> None:
    planted.write_planted_model(tmp_path / "models", "v1")
    home = tmp_path / "home"
    home.mkdir()
    environment = {k: v for k, v in os.environ.items() if k != "ORT_DISABLE_TELEMETRY"}
    subprocess.run(
        [sys.executable, "-c", LOAD_A_MODEL, str(tmp_path / "models" / "v1" / "model.onnx")],
        env={**environment, "HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache")},
        check=True,
    )
    assert not (home / ".cache" / "Microsoft").exists()
