"""The nightly history chart: reports in a directory in, one PNG of the metric across runs out.

The pictures are not compared pixel by pixel: the PNG is checked for what a reader relies on
(a whole, valid file of the agreed size), and what is drawn is checked on the pure data the
chart is drawn from (`series`) and on the figure's texts.
"""

from __future__ import annotations

import json
import struct
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from training.nightly.chart import (
    history_figure,
    load_history,
    metric_label,
    series,
    write_history_chart,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def report(
    day: int,
    decision: str | None,
    new: float | None = None,
    live: float | None = None,
    popularity: float | None = None,
) -> dict[str, Any]:
    """A nightly report of a run on 2026-11-`day` at 02:00 UTC, as training.nightly.run writes
    it."""
    exit_code = {"promote": 0, "gated": 3}.get(decision or "", 1)
    data: dict[str, Any] = {
        "exit_code": exit_code,
        "started_at": f"2026-11-{day:02d}T02:00:03.123456+00:00",
    }
    if decision is not None:
        data["decision"] = decision
    metrics = {
        model: {"ndcg_at_10": value, "precision_at_10": value / 2}
        for model, value in (("new", new), ("live", live), ("popularity", popularity))
        if value is not None
    }
    if metrics:
        data["metrics"] = metrics
    if decision == "promote":
        data["published"] = {"version": f"202611{day:02d}T020512Z-ab12cd"}
    return data


def write(report_dir: Path, name: str, content: dict[str, Any] | str) -> Path:
    report_dir.mkdir(parents=True, exist_ok=True)
    path = report_dir / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from the PNG's IHDR chunk, after checking that it is a PNG at all."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.fixture
def four_nights(tmp_path: Path) -> Path:
    """A first run (no live model yet), a gated run, a failure before evaluation, a promotion."""
    reports = tmp_path / "reports"
    write(reports, "nightly-20261101T020600Z.json", report(1, "promote", 0.20, None, 0.09))
    write(reports, "nightly-20261102T020600Z.json", report(2, "gated", 0.17, 0.20, 0.08))
    write(reports, "nightly-20261103T020000Z.json", report(3, None))
    write(reports, "nightly-20261104T020600Z.json", report(4, "promote", 0.22, 0.21, 0.09))
    return reports


def test_a_history_of_promotions_a_gate_and_a_failure_renders_a_900_by_450_png(
    four_nights: Path, tmp_path: Path
) -> None:
    out = tmp_path / "chart" / "history.png"

    warnings = write_history_chart(four_nights, out)

    assert warnings == []
    assert png_size(out) == (900, 450)  # 9 x 4.5 in at 100 dpi, not cropped by the layout


def test_the_figure_names_the_metric_counts_the_runs_and_labels_every_line_and_decision(
    four_nights: Path,
) -> None:
    history, _ = load_history(four_nights)

    axes = history_figure(history, "ndcg_at_10").axes[0]

    assert axes.get_title() == "Nightly retraining: NDCG@10, 4 runs (2 promoted, 1 gated, 1 failed)"
    assert axes.get_ylabel() == "NDCG@10 on the holdout day"
    legend = axes.get_legend()
    assert legend is not None
    assert [text.get_text() for text in legend.get_texts()] == [
        "new model",
        "live model",
        "popularity baseline",
        "promoted",
        "gated",
        "failed run",
    ]


def test_series_holds_each_reports_values_with_gaps_where_a_model_has_none(
    four_nights: Path,
) -> None:
    history, _ = load_history(four_nights)

    data = series(history, "ndcg_at_10")

    assert data.values == {
        "new": [0.20, 0.17, None, 0.22],
        "live": [None, 0.20, None, 0.21],
        "popularity": [0.09, 0.08, None, 0.09],
    }
    assert data.decisions == ["promote", "gated", "failed", "promote"]
    assert [when.day for when in data.started] == [1, 2, 3, 4]
    assert series(history, "precision_at_10").values["new"] == [0.10, 0.085, None, 0.11]


def test_a_failed_exit_code_wins_over_the_decision_and_an_unknown_decision_is_kept() -> None:
    published_then_failed = {**report(1, "promote", 0.2), "exit_code": 1}
    explicit_failure = report(2, "failed")
    challenger = {**report(3, "promote", 0.2), "decision": "challenger"}

    data = series([published_then_failed, explicit_failure, challenger], "ndcg_at_10")

    assert data.decisions == ["failed", "failed", "challenger"]


def test_values_that_are_not_finite_numbers_are_gaps_not_crashes() -> None:
    odd = {
        "started_at": "2026-11-01T02:00:00+00:00",
        "decision": "gated",
        "metrics": {
            "new": {"ndcg_at_10": float("nan")},
            "live": {"ndcg_at_10": "0.2"},
            "popularity": None,
        },
    }
    not_a_dict = {"started_at": "2026-11-02T02:00:00+00:00", "metrics": [1, 2]}

    data = series([odd, not_a_dict], "ndcg_at_10")

    assert data.values == {"new": [None, None], "live": [None, None], "popularity": [None, None]}


def test_runs_are_ordered_by_started_at_even_when_the_file_names_disagree(tmp_path: Path) -> None:
    # file names sort a, b, c; the runs happened c, a, b
    write(tmp_path, "nightly-20261101T000000Z.json", report(5, "promote", 0.25))
    write(tmp_path, "nightly-20261102T000000Z.json", report(9, "gated", 0.29))
    write(tmp_path, "nightly-20261103T000000Z.json", report(2, "promote", 0.22))

    history, warnings = load_history(tmp_path)

    assert warnings == []
    assert [entry["started_at"][:10] for entry in history] == [
        "2026-11-02",
        "2026-11-05",
        "2026-11-09",
    ]
    assert series(history, "ndcg_at_10").values["new"] == [0.22, 0.25, 0.29]


def test_a_report_without_a_usable_started_at_is_placed_by_its_file_name(tmp_path: Path) -> None:
    write(tmp_path, "nightly-20261104T020000Z.json", report(4, "promote", 0.24))
    write(tmp_path, "nightly-20261103T231500Z.json", {"exit_code": 1})
    write(tmp_path, "nightly-20261102T020000Z.json", {"exit_code": 1, "started_at": "garbled"})

    history, warnings = load_history(tmp_path)

    assert warnings == []
    assert [entry["report_file"] for entry in history] == [
        "nightly-20261102T020000Z.json",
        "nightly-20261103T231500Z.json",
        "nightly-20261104T020000Z.json",
    ]
    assert series(history, "ndcg_at_10").started[1] == datetime(2026, 11, 3, 23, 15, tzinfo=UTC)


def test_a_corrupt_report_is_skipped_and_named_and_the_chart_renders_from_the_others(
    four_nights: Path, tmp_path: Path
) -> None:
    write(four_nights, "nightly-20261105T020600Z.json", '{"exit_code": 0, "metrics": {"ne')
    write(four_nights, "nightly-20261106T020600Z.json", "[1, 2, 3]")
    (four_nights / "nightly-20261107T020600Z.json").write_bytes(b"\xff\xfe not utf-8")
    out = tmp_path / "history.png"

    warnings = write_history_chart(four_nights, out)

    assert len(warnings) == 3
    assert warnings[0].startswith("nightly-20261105T020600Z.json: skipped, cannot be read as JSON")
    assert warnings[1] == "nightly-20261106T020600Z.json: skipped, not a JSON object"
    assert warnings[2].startswith("nightly-20261107T020600Z.json: skipped")
    assert png_size(out) == (900, 450)
    history, _ = load_history(four_nights)
    assert len(history) == 4


@pytest.mark.parametrize("state", ["empty", "missing"])
def test_no_reports_give_a_no_runs_yet_png_not_an_exception(tmp_path: Path, state: str) -> None:
    report_dir = tmp_path / "reports"
    if state == "empty":
        report_dir.mkdir()
    out = tmp_path / "history.png"

    warnings = write_history_chart(report_dir, out)

    assert warnings == []
    assert png_size(out) == (900, 450)
    texts = [text.get_text() for text in history_figure([], "ndcg_at_10").axes[0].texts]
    assert texts == ["no nightly runs yet"]


def test_only_unreadable_reports_give_the_empty_chart_with_a_count_of_them(tmp_path: Path) -> None:
    write(tmp_path, "nightly-20261101T020000Z.json", "{")

    history, warnings = load_history(tmp_path)
    figure = history_figure(history, "ndcg_at_10", unreadable=len(warnings))

    assert [text.get_text() for text in figure.axes[0].texts] == [
        "no nightly runs yet\n(1 unreadable report)"
    ]


def test_a_metric_no_run_reported_says_so_on_the_chart(four_nights: Path) -> None:
    history, _ = load_history(four_nights)

    axes = history_figure(history, "ndcg_at_5").axes[0]

    assert [text.get_text() for text in axes.texts] == ["no run reported ndcg_at_5"]


def test_the_png_replaces_an_earlier_one_and_leaves_no_temporary_file(
    four_nights: Path, tmp_path: Path
) -> None:
    out_dir = tmp_path / "charts"
    out_dir.mkdir()
    out = out_dir / "history.png"
    out.write_bytes(b"an older chart")

    write_history_chart(four_nights, out)

    assert png_size(out) == (900, 450)
    assert [path.name for path in out_dir.iterdir()] == ["history.png"]


def test_a_png_that_cannot_be_put_in_place_raises_and_leaves_no_temporary_file(
    four_nights: Path, tmp_path: Path
) -> None:
    out = tmp_path / "charts" / "history.png"
    out.mkdir(parents=True)  # a directory where the chart should go: the final rename must fail

    with pytest.raises(OSError):
        write_history_chart(four_nights, out)

    assert [path.name for path in out.parent.iterdir()] == ["history.png"]


@pytest.mark.parametrize(
    ("metric", "label"),
    [
        ("ndcg_at_10", "NDCG@10"),
        ("map_at_10", "MAP@10"),
        ("precision_at_5", "Precision@5"),
        ("product_hit_rate", "Product hit rate"),
    ],
)
def test_metric_label(metric: str, label: str) -> None:
    assert metric_label(metric) == label
