"""The recsvc command line: one app whose offline commands come from the training package."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from recsvc import __version__

RECSVC = str(Path(sys.executable).with_name("recsvc"))


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([RECSVC, *args], capture_output=True, text=True, check=False)


def test_help_lists_the_offline_commands_when_training_is_installed() -> None:
    result = run("--help")
    assert result.returncode == 0
    for command in ("synth", "train", "evaluate", "version"):
        assert command in result.stdout
    assert result.stderr == ""


def test_version_prints_the_package_version() -> None:
    result = run("version")
    assert result.returncode == 0 and result.stdout.strip() == __version__


def test_python_dash_m_runs_the_same_cli() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "recsvc", "version"], capture_output=True, text=True, check=False
    )
    assert result.stdout.strip() == __version__


def test_an_unknown_command_is_a_usage_error() -> None:
    result = run("serve-everything")
    assert result.returncode == 2 and "No such command" in result.stderr


def test_serve_refuses_a_bad_setting_naming_the_variable() -> None:
    env = {"PATH": "/usr/bin:/bin", "RECSVC_REDIS_URL": "redis://127.0.0.1:1/0"}
    result = subprocess.run(
        [RECSVC, "serve"],
        capture_output=True,
        text=True,
        check=False,
        env={**env, "RECSVC_MAX_ATTACHED_PER_PAGE": "-2"},
    )
    assert result.returncode == 2
    assert "RECSVC_MAX_ATTACHED_PER_PAGE" in result.stderr and "Traceback" not in result.stderr
    result = subprocess.run(
        [RECSVC, "serve"], capture_output=True, text=True, check=False, env={"PATH": "/usr/bin"}
    )
    assert result.returncode == 2 and "RECSVC_REDIS_URL" in result.stderr


@pytest.mark.parametrize(
    "setting",
    [
        {"RECSVC_REDIS_TIMEOUT_MS": "abc"},
        {"RECSVC_REDIS_URL": "notaurl"},
        {"RECSVC_APP_API_KEYS": ""},
    ],
    ids=["not a number", "not a Redis URL", "no keys"],
)
def test_serve_refusing_its_settings_says_so_in_one_json_log_line(setting: dict) -> None:
    """With RECSVC_LOG_JSON (default true) every stderr line is JSON, the refusal included:
    a log pipeline that reads JSON must not lose why a pod does not start."""
    env = {"PATH": "/usr/bin:/bin", "RECSVC_REDIS_URL": "redis://127.0.0.1:1/0", **setting}
    result = subprocess.run(
        [RECSVC, "serve"], capture_output=True, text=True, check=False, env=env, timeout=60
    )
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    entry = json.loads(lines[0])
    assert entry["level"] == "error" and "RECSVC_" in entry["message"]


def test_serve_without_api_keys_refuses_to_start_naming_the_variables() -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("RECSVC_")}
    result = subprocess.run(
        [RECSVC, "serve"],
        capture_output=True,
        text=True,
        check=False,
        env={**environment, "RECSVC_REDIS_URL": "redis://127.0.0.1:1/0"},
        timeout=60,
    )
    assert result.returncode == 2
    assert "RECSVC_APP_API_KEYS and RECSVC_ADMIN_API_KEYS: not set" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_redis_url_is_shown_without_its_password() -> None:
    from recsvc.cli.main import redacted

    assert redacted("redis://:s3cret@cache:6379/0") == "redis://:***@cache:6379/0"
    assert redacted("rediss://app:s3cret@cache/0") == "rediss://app:***@cache/0"
    assert redacted("redis://cache:6379/0") == "redis://cache:6379/0"
