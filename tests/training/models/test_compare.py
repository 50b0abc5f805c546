"""`recsvc compare`: candidates parsed with every fault named, fitted on one split and
scored with the baselines over the same users, each against the first."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.builders import block_events, write_events_parquet
from training.data.events import EventFormat
from training.data.splits import Protocol, SplitSpec
from training.models.compare import parse_candidate, run_compare
from training.models.pipeline import Source


def test_a_candidate_names_its_parameters() -> None:
    candidate = parse_candidate("big-ease:algorithm=ease, regularization=200,factors=32")
    assert candidate.name == "big-ease"
    assert candidate.params.algorithm == "ease" and candidate.params.factors == 32
    assert candidate.params.regularization == 200.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x:factor=3", "unknown parameter 'factor'; did you mean 'factors'"),
        ("x:factors=many", "factors='many' is not a number"),
        ("x:algorithm=svd", "algorithm must be als, bpr or ease"),
        ("x:factors=0", "factors must be at least 1, not 0"),
        ("factors=3", "write it NAME:key=value"),
    ],
)
def test_a_bad_candidate_is_named(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_candidate(text)


def source(tmp_path: Path) -> Source:
    events = block_events(groups=3, users_per_group=30, videos_per_group=12, days=6)
    path = tmp_path / "events.parquet"
    write_events_parquet(path, events.to_pylist())
    return Source(path, EventFormat.PARQUET)


def test_candidates_and_baselines_are_scored_against_the_first(tmp_path: Path) -> None:
    candidates = [
        parse_candidate("als:factors=4,iterations=5"),
        parse_candidate("same:factors=4,iterations=5"),  # the reference again
        parse_candidate("ease:algorithm=ease,regularization=10,factors=8"),
    ]
    report = run_compare(source(tmp_path), SplitSpec(Protocol.TEMPORAL), candidates, threads=1)
    rows = {row["name"]: row for row in report["rows"]}
    assert list(rows) == ["als", "same", "ease", "popularity", "trending_24h"]
    assert "versus_reference" not in rows["als"]
    same = rows["same"]["versus_reference"]["ndcg_at_10"]
    assert same["low"] <= 0 <= same["high"]  # one model against itself: no difference
    popularity = rows["popularity"]["versus_reference"]["ndcg_at_10"]
    assert popularity["value"] == pytest.approx(
        rows["popularity"]["ndcg_at_10"] - rows["als"]["ndcg_at_10"]
    )
    assert rows["ease"]["params"]["algorithm"] == "ease"


def test_a_split_without_times_has_no_trending_baseline(tmp_path: Path) -> None:
    report = run_compare(
        source(tmp_path), SplitSpec(Protocol.PER_USER), [parse_candidate("a:factors=4")], threads=1
    )
    assert [row["name"] for row in report["rows"]] == ["a", "popularity"]


def test_the_command_refuses_a_misspelt_parameter_before_any_work(tmp_path: Path) -> None:
    recsvc = str(Path(sys.executable).with_name("recsvc"))
    result = subprocess.run(
        [recsvc, "compare", "--interactions", str(tmp_path / "none.csv"),
         "--candidate", "a:factors=4", "--candidate", "b:regularisation=3"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "did you mean 'regularization'" in " ".join(result.stderr.split())
