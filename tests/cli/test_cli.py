"""The recsvc command line: one app whose offline commands come from the training package."""

import json
import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

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
    from recsvc.cli.common import redacted

    assert redacted("redis://:s3cret@cache:6379/0") == "redis://:***@cache:6379/0"
    assert redacted("rediss://app:s3cret@cache/0") == "rediss://app:***@cache/0"
    assert redacted("redis://cache:6379/0") == "redis://cache:6379/0"


@pytest.fixture(scope="module")
def cli() -> typer.Typer:
    """What `recsvc` runs (recsvc.cli.app.main, short of running it), in this process."""
    from recsvc.cli.app import app, load_command_groups, unwrap_help

    load_command_groups()
    unwrap_help(app)
    return app


def help_page(cli: typer.Typer, path: tuple[str, ...], columns: int) -> str:
    result = CliRunner().invoke(
        cli, [*path, "--help"], prog_name="recsvc", env={"COLUMNS": str(columns)}
    )
    assert result.exit_code == 0, result.output
    return plain(result.stdout)


def plain(text: str) -> str:
    """Without the styles rich adds where it forces a terminal (FORCE_COLOR, GITHUB_ACTIONS)."""
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def command_paths(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """The app, and every group and command under it (typer's click commands)."""
    yield path
    for name, subcommand in getattr(command, "commands", {}).items():
        yield from command_paths(subcommand, (*path, name))


BORDERS = set("│─╭╮╰╯")
ANNOTATIONS = ("[default:", "[env var:", "[required]")


def words(page: str) -> Counter[str]:
    return Counter(word for word in page.split() if not set(word) <= BORDERS)


def unwrapped_breaks(page: str) -> list[str]:
    """Every line break inside a paragraph of a help page that is not a wrap: the next word
    would have fit on the line it left (a docstring's own line break, which strands a word or
    two of a sentence on a line). Paragraphs: the text outside the panels, between blank
    lines, and the help column of each row of a panel."""
    breaks, outside, panel = [], [], None
    for line in page.splitlines():
        if line.startswith("╭"):
            panel = []
        elif line.startswith("╰"):
            breaks += _panel_breaks(panel or [])
            panel = None
        elif panel is not None:
            panel.append(line[2:-2])  # inside "│ " and " │"
        else:
            outside.append(line.strip())
    width = max(map(len, outside))  # the widest line seen: never more than rich's width
    breaks += [_break(a, b, width) for a, b in zip(outside, outside[1:], strict=False)]
    return [found for found in breaks if found]


def _panel_breaks(rows: list[str]) -> list[str]:
    # The help column starts where most lines' last cell (after two spaces) starts.
    starts = [m.start(1) for row in rows if (m := re.search(r"(?:^|  )(\S)(?!.*  \S)", row))]
    column = max(set(starts), key=starts.count)
    width = max(len(row[column:].rstrip()) for row in rows)
    return [
        _break(a[column:].strip(), b[column:].strip(), width)
        for a, b in zip(rows, rows[1:], strict=False)
        # not a new row (text left of the column), nor typer's [default: ...] below the help
        if not b[:column].strip() and not b[column:].startswith(ANNOTATIONS)
    ]


def _break(line: str, next_line: str, width: int) -> str:
    if line and next_line and len(line) + 1 + len(next_line.split()[0]) <= width:
        return f"{line!r} / {next_line!r}"
    return ""


def test_every_help_page_reads_cleanly_at_80_columns(cli: typer.Typer) -> None:
    """Docstrings are wrapped for the source at ~95 characters; shown as they are, their line
    breaks strand a word or two of a sentence on a line at 80 columns. And rich cuts a word
    wider than its column (an example, a metavar, an environment variable) with an ellipsis."""
    paths = list(command_paths(typer.main.get_command(cli)))
    assert len(paths) > 20 and ("ab", "report") in paths and ("redis", "start") in paths
    for path in paths:
        page, wide = help_page(cli, path, 80), help_page(cli, path, 1000)
        name = " ".join(("recsvc", *path))
        assert [line for line in page.splitlines() if len(line) > 80] == [], name
        assert words(page) == words(wide), f"{name}: a word cut at 80 columns"
        assert unwrapped_breaks(page) == [], name


def test_the_help_pages_checked_are_the_ones_recsvc_prints(cli: typer.Typer) -> None:
    for path in [(), ("train",)]:
        printed = subprocess.run(
            [RECSVC, *path, "--help"],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "COLUMNS": "80"},
        ).stdout
        assert plain(printed) == help_page(cli, path, 80)


def test_a_docstring_wrapped_for_the_source_reads_broken_until_its_help_is_unwrapped() -> None:
    from recsvc.cli.app import unwrap_help

    def promote() -> None:
        """Make the challenger the current model at once; every replica hot-reloads it. The model
        it replaces stays in Redis for the grace period, so `recsvc rollback` can bring it back.

        With --models-dir, the exported model carries per-segment popularity when the users'
        segments are known: --users FILE, or a world's users.csv."""

    def version() -> None:
        """Print the installed recsvc version."""

    app = typer.Typer()
    app.command()(promote)
    app.command()(version)

    listed, shown = help_page(app, (), 80), help_page(app, ("promote",), 80)

    assert unwrapped_breaks(listed) == [
        "'hot-reloads it. The model' / "
        "'it replaces stays in Redis for the grace period, so `recsvc'"
    ]
    assert unwrapped_breaks(shown) == [
        '"users\'" / "segments are known: --users FILE, or a world\'s users.csv."'
    ]
    unwrap_help(app)
    assert unwrapped_breaks(help_page(app, (), 80)) == []
    assert unwrapped_breaks(help_page(app, ("promote",), 80)) == []
