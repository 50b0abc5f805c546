"""The code stays ruff- and mypy-clean: the checks run with the suite, not only by hand.

They start when the session has collected them (tests/conftest.py), in the background, and
each test waits for its own: mypy's half a minute of one core overlaps the other tests, which
leave the second core mostly idle."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHECKS = {
    "ruff-check": ["ruff", "check", "."],
    "ruff-format": ["ruff", "format", "--check", "."],
    "mypy": ["mypy", "recsvc", "training", "sandbox"],
}


def start(name: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", *CHECKS[name]],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.mark.parametrize("name", list(CHECKS))
def test_static_checks_pass(name: str, request: pytest.FixtureRequest) -> None:
    started: dict[str, subprocess.Popen[str]] = getattr(request.config, "static_checks", {})
    process = started.pop(name, None) or start(name)
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 0, output
