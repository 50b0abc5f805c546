"""The A/B report as one HTML page: self-contained, escaped, honest about missing numbers and a
broken split, and drawn as intended by a real headless Chromium (a screenshot and the DOM)."""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from matplotlib.image import imread

from recsvc.contract.experiments import Experiment, parse_experiments
from tests.training.ab.builders import (
    EXP,
    event,
    event_table,
    exposure,
    exposure_table,
    recsvc,
    report_arguments,
)
from training.ab.breakdown import CAUTION
from training.ab.html import DOWN, UP, render_html
from training.ab.report import build_report
from training.ab.stats import METRICS

# three variants: `cards` converts attached cards three times as often, `quiet` gets half the
# video views (and so watch time) of the control; everything else is alike
WEIGHTS = {"control": 0.4, "cards": 0.3, "quiet": 0.3}
VIEW = {"control": 0.3, "cards": 0.3, "quiet": 0.15}
BUY = {"control": 0.03, "cards": 0.09, "quiet": 0.03}
DEFINITION = f'[[experiment]]\nname = "{EXP}"\ncontrol = "control"\n' + "".join(
    f'[[experiment.variant]]\nname = "{name}"\nweight = {weight}\n'
    for name, weight in WEIGHTS.items()
)
EVIL = '<script>alert("x")</script>'
WINDOW = (1200, 1600)  # the browser's viewport, px


def planted(users: int = 1_000, seed: int = 3) -> tuple[list[dict], list[dict]]:
    """Exposures and events of `users` split exactly as WEIGHTS say; each user's segment and
    lifecycle by their number (every tenth unknown, five a variant "returning": too few), half
    on the search surface."""
    rng = np.random.default_rng(seed)
    exposures, events = [], []
    for variant, weight in WEIGHTS.items():
        for u in range(round(users * weight)):
            user = f"{variant}{u}"
            for feed in range(1 + rng.poisson(2)):
                request, hours = f"{user}-{feed}", feed * 20 + rng.uniform(0, 4)
                videos = [f"v{i}" for i in rng.choice(50, 4, replace=False)]
                cards = [f"p{rng.integers(10)}", None, f"p{rng.integers(10)}", None]
                profile = {
                    "segment": None if u % 10 == 0 else ("saver", "spender")[u % 2],
                    "lifecycle": "returning" if u < 5 else "new",
                    "surface": ("home", "search")[u % 2],
                }
                exposures.append(exposure(request, user, hours, variant, videos, cards, **profile))
                for video in videos:
                    if rng.random() < VIEW[variant]:
                        ratio = float(rng.uniform())
                        events.append(event(user, video, "view", hours + 0.01, request, ratio))
                for card in filter(None, cards):
                    if rng.random() < 0.1:
                        events.append(event(user, card, "click", hours + 0.02, request))
                    if rng.random() < BUY[variant]:
                        events.append(
                            event(user, card, "purchase", hours + 0.05, request, amount=20.0)
                        )
    return exposures, events


def three_variants() -> Experiment:
    return parse_experiments(DEFINITION).experiments[0]


@pytest.fixture(scope="module")
def logs() -> tuple[list[dict], list[dict]]:
    return planted()


@pytest.fixture(scope="module")
def report(logs: tuple[list[dict], list[dict]]) -> dict[str, Any]:
    exposures, events = logs
    return build_report(exposure_table(exposures), event_table(events), three_variants())


def rows_of(report: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """(metric, treatment) -> the metric result."""
    return {
        (row["metric"], comparison["treatment"]): row
        for comparison in report["comparisons"]
        for row in comparison["metrics"]
    }


class Chart(HTMLParser):
    """The page as it shows it: the forest plot's rows (per (metric, treatment): whether it is
    inside the SVG, marked significant, its interval bars and its "significant" labels); the
    cumulative charts (per treatment: the days of its dots, its bands); the breakdown tables
    (per dimension: each row's group, classes and cell texts); the glossary's terms."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.rows: dict[tuple[str, str], dict[str, Any]] = {}
        self.current: tuple[str, str] | None = None
        self.svgs = 0  # forest plots
        self.in_svg = 0
        self.scripts = 0
        self.cumulative: dict[str, dict[str, Any]] = {}
        self.trend: str | None = None
        self.breakdowns: dict[str, list[dict[str, Any]]] = {}
        self.table: str | None = None
        self.cell: list[str] | None = None
        self.terms: list[str] = []
        self.term: list[str] | None = None
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        classes = (attributes.get("class") or "").split()
        self.svgs += tag == "svg" and "forest" in classes
        self.in_svg += tag == "svg"
        self.scripts += tag == "script"
        self._others(tag, attributes, classes)
        if tag == "g" and "row" in classes:
            self.current = (attributes["data-metric"] or "", attributes["data-treatment"] or "")
            self.rows[self.current] = {
                "in_svg": self.in_svg > 0,
                "significant": "significant" in classes,
                "bars": 0,
                "labels": 0,
            }
        elif self.current and tag == "rect" and "ci" in classes:
            self.rows[self.current]["bars"] += 1
        elif self.current and tag == "text" and "significant-label" in classes:
            self.rows[self.current]["labels"] += 1

    def _others(self, tag: str, attributes: dict[str, str | None], classes: list[str]) -> None:
        if tag == "svg" and "cumulative" in classes:
            self.trend = attributes["data-treatment"] or ""
            self.cumulative[self.trend] = {"days": [], "bands": 0}
        elif self.trend is not None and tag == "circle" and "point" in classes:
            self.cumulative[self.trend]["days"].append(attributes["data-day"])
        elif self.trend is not None and tag == "polygon" and "band" in classes:
            self.cumulative[self.trend]["bands"] += 1
        elif tag == "table" and "breakdown" in classes:
            self.table = attributes["data-dimension"] or ""
            self.breakdowns[self.table] = []
        elif self.table is not None and tag == "tr" and "data-group" in attributes:
            row = {"group": attributes["data-group"], "classes": classes, "cells": []}
            self.breakdowns[self.table].append(row)
        elif self.table is not None and tag == "td" and self.breakdowns[self.table]:
            self.cell = []
            self.breakdowns[self.table][-1]["cells"].append(self.cell)
        elif tag == "dt":
            self.term = []

    def handle_data(self, data: str) -> None:
        for texts in (self.cell, self.term):
            if texts is not None:
                texts.append(data)

    def handle_endtag(self, tag: str) -> None:
        self.in_svg -= tag == "svg"
        if tag == "g":
            self.current = None
        elif tag == "svg":
            self.trend = None
        elif tag == "table":
            self.table = None
        elif tag == "td":
            self.cell = None
        elif tag == "dt" and self.term is not None:
            self.terms.append("".join(self.term))
            self.term = None


# ---- the page itself -------------------------------------------------------------------------


def test_the_page_is_self_contained_and_names_every_metric_and_variant(
    report: dict[str, Any],
) -> None:
    page = render_html(report)
    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r"""(?:src|href|xlink:href)\s*=\s*["']?\s*(?:[a-z]+:)?//""", page, re.I)
    assert not re.search(r"<link|<script|@import|url\(", page, re.I)
    for metric in METRICS:
        assert metric.name in page
    for name in WEIGHTS:
        assert f'<td class="name">{name}</td>' in page
    assert "SRM ok" in page and "do not trust" not in page
    chart = Chart(page)
    assert chart.svgs == 1
    assert set(chart.rows) == set(rows_of(report))


def test_the_planted_effects_are_the_significant_rows_in_their_colours(
    report: dict[str, Any],
) -> None:
    rows = rows_of(report)
    significant = {key for key, row in rows.items() if row["significant"]}
    assert {("attach_conversion", "cards"), ("video_ctr", "quiet")} <= significant
    assert ("attach_click_rate", "cards") not in significant
    chart = Chart(render_html(report))
    assert {key for key, row in chart.rows.items() if row["significant"]} == significant
    page = render_html(report)
    assert f'fill="{UP}"' in page and f'fill="{DOWN}"' in page  # up green, down red
    assert "Significant at alpha 0.05 (Holm-corrected):" in page


def test_an_srm_alarm_tells_the_reader_not_to_trust_the_results(
    logs: tuple[list[dict], list[dict]],
) -> None:
    exposures, events = logs
    # a logging bug loses every exposure of a third of `cards`' users
    kept = [row for row in exposures if row["user_id"] not in {f"cards{u}" for u in range(100)}]
    report = build_report(exposure_table(kept), event_table(events), three_variants())
    assert report["srm"]["alarm"]
    page = render_html(report)
    assert '<div class="srm alarm" role="alert">' in page
    assert "SRM ALARM: do not trust these results." in page
    assert report["srm"]["message"] in page
    assert "Untrusted (SRM alarm)" in page


def test_every_string_from_the_report_is_escaped(report: dict[str, Any]) -> None:
    hostile = copy.deepcopy(report)
    hostile["experiment"] = hostile["control"] = EVIL
    hostile["variants"][0]["name"] = EVIL
    hostile["comparisons"][0]["treatment"] = EVIL
    hostile["comparisons"][0]["metrics"][0]["metric"] = EVIL
    hostile["comparisons"][0]["metrics"][0]["note"] = EVIL
    hostile["srm"]["message"] = EVIL
    hostile["notes"] = [EVIL, "a & b"]
    page = render_html(hostile)
    assert "<script" not in page.lower()
    assert Chart(page).scripts == 0
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "a &amp; b" in page


def test_numbers_the_report_leaves_none_show_a_dash_and_the_note(
    logs: tuple[list[dict], list[dict]],
) -> None:
    exposures, events = logs
    # `quiet` served nobody: every comparison against it is undefined
    served = [row for row in exposures if not row["user_id"].startswith("quiet")]
    report = build_report(exposure_table(served), event_table(events), three_variants())
    quiet = {
        key: row for key, row in rows_of(report).items() if key[1] == "quiet"
    }  # every number None, each with a note
    assert all(row["relative_difference"] is None and row["note"] for row in quiet.values())
    page = render_html(report)
    note = next(iter(quiet.values()))["note"]
    assert f'title="{note}">–<sup>1</sup></td>' in page
    assert f'<ol class="footnotes"><li>{note}</li>' in page
    assert f"no estimate: {note}" in page
    chart = Chart(page)
    assert all(chart.rows[key]["bars"] == 0 for key in quiet)
    assert all(chart.rows[key]["bars"] == 1 for key in chart.rows if key[1] == "cards")

    # an interval without an upper end runs to the axis' edge and ends in an arrow
    unbounded = copy.deepcopy(report)
    unbounded["comparisons"][0]["metrics"][0]["ci_high"] = None
    page = render_html(unbounded)
    assert 'class="beyond"' in page and ", +inf]" in page


def test_the_breakdowns_show_each_group_with_its_users_and_too_few_users(
    report: dict[str, Any],
) -> None:
    page = render_html(report)
    assert CAUTION in page and "group of their first exposure" in page
    tables = Chart(page).breakdowns
    assert list(tables) == ["segment", "lifecycle", "surface"]

    def users(dimension: str, group: str, treatment: str) -> set[str]:
        return {
            "".join(row["cells"][3])
            for row in tables[dimension]
            if row["group"] == group and "".join(row["cells"][1]) == treatment
        }

    # by hand from planted(): control's 400 users are u0..u399, cards' 300 u0..u299; even u are
    # savers, odd spenders, every tenth (u % 10 == 0) unknown; u0..u4 "returning"
    assert users("segment", "saver", "cards") == {"160 / 120"}
    assert users("segment", "spender", "cards") == {"200 / 150"}
    assert users("segment", "unknown", "quiet") == {"40 / 30"}
    assert users("surface", "search", "cards") == {"200 / 150"}
    returning = [row for row in tables["lifecycle"] if row["group"] == "returning"]
    assert len(returning) == 2  # one row per treatment, no metric rows
    assert all("too-few" in row["classes"] for row in returning)
    assert all("too few users" in "".join(row["cells"][4]) for row in returning)
    new = [row for row in tables["lifecycle"] if row["group"] == "new"]
    assert len(new) == 2 * len(METRICS)  # no primary metric: every metric
    # quiet's halved video views show in both segments, marked a lead, not a result
    for segment in ("saver", "spender"):
        [row] = [
            r
            for r in tables["segment"]
            if r["group"] == segment and "".join(r["cells"][1]) == "quiet"
            and "".join(r["cells"][2]) == "video_ctr"
        ]  # fmt: skip
        assert "lead" in row["classes"] and "".join(row["cells"][-1]) == "misses 0: a lead"


def test_the_glossary_defines_every_metric_and_term_and_amounts_carry_the_currency(
    report: dict[str, Any],
) -> None:
    priced = {**report, "currency": "JPY"}
    page = render_html(priced)
    terms = Chart(page).terms
    for metric in METRICS:
        assert metric.name in terms
    for word in ("SRM", "Holm", "CUPED", "MDE", "interval", "sequential", "always-valid"):
        assert any(word in term for term in terms), word
    amount = rows_of(report)[("amount_per_user", "cards")]["treatment"]
    assert f"<td>{amount:,.2f} JPY</td>" in page
    assert "per user of the variant, in JPY" in page


def test_the_sequential_page_says_what_its_intervals_mean(
    logs: tuple[list[dict], list[dict]],
) -> None:
    exposures, events = logs
    report = build_report(
        exposure_table(exposures), event_table(events), three_variants(), sequential=True
    )
    assert any(row["adjusted_p"] == 1.0 for row in rows_of(report).values())
    page = render_html(report)
    assert '<p class="sequential">Sequential mode: the intervals are always-valid 95%' in page
    assert "p = 1 means &#x27;no evidence yet&#x27;" in page
    assert "1.0000" not in page and "<td>1</td>" in page
    assert "These are always-valid intervals: reading them every day is safe." in page


# ---- in a real browser -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if found := shutil.which(name):
            return found
    pytest.skip(
        "no headless Chromium on this machine: install Debian's chromium "
        "(apt-get install chromium), as .ci/run does"
    )


def browse(chromium: str, page: Path, profile: Path, *args: str) -> str:
    result = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            f"--window-size={WINDOW[0]},{WINDOW[1]}",
            *args,
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def pixels_of(image: np.ndarray, colour: str) -> int:
    rgb = tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return int((image == rgb).all(axis=-1).sum())


def test_chromium_draws_one_bar_per_row_and_marks_the_significant_ones(
    chromium: str, report: dict[str, Any], tmp_path: Path
) -> None:
    # the last row as too few users leave it: no upper end, a footnote (a superscript in SVG)
    report = copy.deepcopy(report)
    last = report["comparisons"][-1]["metrics"][-1]
    last["ci_high"], last["note"] = None, "the interval's upper end is too large to represent"
    page = tmp_path / "report.html"
    page.write_text(render_html(report), encoding="utf-8")
    screenshot = tmp_path / "report.png"
    browse(chromium, page, tmp_path / "profile", f"--screenshot={screenshot}")
    dom = browse(chromium, page, tmp_path / "profile", "--dump-dom")

    # the browser's own DOM: every row inside the one SVG (a stray HTML tag in SVG text would
    # have ended it), one bar in every row, the significant ones marked and labelled
    chart = Chart(dom)
    expected = rows_of(report)
    assert chart.svgs == 1
    assert set(chart.rows) == set(expected)
    for key, row in chart.rows.items():
        assert row["in_svg"], key
        assert row["bars"] == 1, key
        assert row["significant"] == expected[key]["significant"], key
        assert row["labels"] == int(expected[key]["significant"]), key

    # the cumulative charts: one per treatment, a dot a day, one band; the breakdowns; the glossary
    days = [p["day"] for p in report["cumulative"]["series"][0]["points"]]
    assert len(days) == 8  # feeds every 20 h from 2026-11-02 08:00, up to six of them
    assert chart.cumulative == {name: {"days": days, "bands": 1} for name in ("cards", "quiet")}
    assert set(chart.breakdowns) == {"segment", "lifecycle", "surface"}
    assert {row["group"] for row in chart.breakdowns["segment"]} == {"saver", "spender", "unknown"}
    assert [m.name for m in METRICS] == chart.terms[: len(METRICS)]

    # the screenshot: the viewport's size, and the chart drawn in its colours
    header = screenshot.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n" and header[12:16] == b"IHDR"
    assert (int.from_bytes(header[16:20]), int.from_bytes(header[20:24])) == WINDOW
    image = np.round(imread(screenshot)[..., :3] * 255).astype(np.int64)
    packed = (image[..., 0] << 16) | (image[..., 1] << 8) | image[..., 2]
    assert len(np.unique(packed)) > 100  # text, tables, a chart: not a blank page
    # bars and dots of 3 significant rows up (cards) and 2 down (quiet), several hundred px each
    assert pixels_of(image, UP) > 1_000
    assert pixels_of(image, DOWN) > 500


# ---- the command line ------------------------------------------------------------------------


@pytest.fixture
def on_disk(logs: tuple[list[dict], list[dict]], tmp_path: Path) -> list[str]:
    """--exposures, --events and --definition of the planted experiment."""
    exposures, events = logs
    return report_arguments(exposures, events, tmp_path)


def test_the_cli_writes_the_page_and_still_ends_with_the_json(
    on_disk: list[str], tmp_path: Path
) -> None:
    out = tmp_path / "pages" / "report.html"
    result = recsvc("ab", "report", EXP, *on_disk, "--html", str(out), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert f"HTML report written to {out}" in result.stdout
    assert out.read_text(encoding="utf-8") == render_html(report)
    assert [path.name for path in out.parent.iterdir()] == ["report.html"]  # no temporary left


def test_the_cli_refuses_an_unwritable_page_in_one_line(on_disk: list[str], tmp_path: Path) -> None:
    result = recsvc("ab", "report", EXP, *on_disk, "--html", str(tmp_path))  # a directory
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"error: cannot write the HTML report {tmp_path}: ")
