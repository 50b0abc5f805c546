"""An experiment definition with a number that is not finite (`range = [0.0, inf]`) is refused
through the admin endpoint (422 naming the field) and through `recsvc experiments load` (one
line naming the file and the field, exit 1), and the definition stored before keeps
serving."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.builders import cf_vs_popular, cli_environment

RECSVC = str(Path(sys.executable).with_name("recsvc"))
NAMESPACED = 'name = "ranker"\nnamespace = "ranking"\nrange = [0.0, {}]'


def definition(range_end: str) -> str:
    return cf_vs_popular(0.5, 0.5).replace('name = "ranker"', NAMESPACED.format(range_end), 1)


@pytest.mark.parametrize("number", ["inf", "nan", "-inf"])
def test_the_api_refuses_a_range_that_is_not_finite_naming_it(
    service: httpx.Client, number: str
) -> None:
    assert service.put("/v1/admin/experiments", content=definition("0.5")).status_code == 200
    refused = service.put("/v1/admin/experiments", content=definition(number))
    assert refused.status_code == 422, refused.text
    detail = refused.json()["detail"]
    assert "experiment 1 (ranker): range[1]: Input should be a finite number" in detail
    stored = service.get("/v1/admin/experiments").json()["definition"]
    assert stored == definition("0.5")  # the one before stays


def test_the_cli_refuses_a_range_that_is_not_finite_in_one_line(
    redis_url: str, models_dir: Path, tmp_path: Path
) -> None:
    path = tmp_path / "infinite.toml"
    path.write_text(definition("inf"))
    result = subprocess.run(
        [RECSVC, "experiments", "load", str(path)],
        env=cli_environment(redis_url, models_dir),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode in (1, 2), result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert str(path) in result.stderr and "range[1]: Input should be a finite" in result.stderr
