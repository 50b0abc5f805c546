"""The words of the A/B report in plain language: each metric and each term the page shows,
defined for a reader who is not a statistician; and what the sequential mode's intervals mean.
The HTML page ends with them (training.ab.html); the text report says SEQUENTIAL's words."""

from __future__ import annotations

from typing import Any

from training.ab.stats import METRICS

AMOUNTS = frozenset(m.name for m in METRICS if m.amount)

_METRICS = {
    "video_ctr": "Of the videos shown in the feeds, the share the user viewed or clicked "
    "(a view and a click of one video in one feed count once).",
    "attach_click_rate": "Of the product cards shown under the videos, the share clicked.",
    "attach_conversion": "Purchases of shown products per product card shown.",
    "purchases_per_user": "Those purchases per user of the variant.",
    "amount_per_user": "The money those purchases brought in, per user of the variant, in "
    "{currency} (refunds not subtracted).",
    "watch_seconds_per_user": "Seconds of video watched per user: the share of each viewed "
    "video watched times its length.",
}

_TERMS = (
    (
        "control, treatment",
        "The control is the variant every other one (a treatment) is "
        "compared with, usually the feed as it is today.",
    ),
    (
        "users, exposures",
        "A user is in the report from the first feed of the experiment shown "
        "to them (an exposure); the exposures are the feeds they were shown.",
    ),
    (
        "relative difference",
        "Treatment divided by control, minus 1: +10% means the treatment's "
        "value is 10% higher than the control's.",
    ),
    (
        "interval (CI)",
        "The range of relative differences the data are consistent with: the "
        "true difference lies in a 95% interval in 95 of 100 experiments. An interval that "
        "contains 0 means no difference has been shown.",
    ),
    (
        "p, p-value",
        "The chance of a difference at least this large if the variants truly "
        "performed the same. Small means the difference is unlikely to be luck.",
    ),
    (
        "Holm, Holm p",
        "Six metrics give six chances of a fluke. Holm's correction raises the "
        "p-values so that, across the metrics, the chance of any false 'significant' stays at "
        "alpha. A metric is significant when its Holm p is below alpha.",
    ),
    ("significant", "Holm p below alpha: the difference is unlikely to be chance."),
    ("alpha", "The accepted chance of calling a difference real when it is not (0.05: 5%)."),
    (
        "SRM (sample ratio mismatch)",
        "Checks that users split between the variants as the "
        "definition's weights say. An alarm means the assignment or the logging is broken and no "
        "number in the report can be trusted.",
    ),
    (
        "CUPED",
        "A variance reduction: what users did before the experiment explains part of "
        "how differently they behave in it, and removing that part narrows the intervals without "
        "moving the estimate. The JSON report has every comparison with and without it.",
    ),
    (
        "MDE (minimum detectable effect)",
        "The smallest relative difference the experiment, at "
        "its size so far, would detect with 80% power (80 chances in 100).",
    ),
    (
        "fixed horizon",
        "The default mode: p-values and intervals valid when the report is read "
        "once, at a size or date fixed in advance. Reading it every day and stopping at the first "
        "significant result makes false winners far more likely than alpha.",
    ),
    (
        "sequential, always-valid",
        "The --sequential mode: p-values and intervals (confidence "
        "sequences) that stay valid however often the report is read, so one may stop the first "
        "day one is significant. They are wider than fixed-horizon ones, and a p-value of 1 means "
        "no evidence has built up yet, not that the variants are the same.",
    ),
    (
        "breakdown",
        "The comparison within one group of users (a segment, a lifecycle stage, "
        "a surface), each user in the group of their first exposure. Exploratory: not "
        "Holm-corrected, so a subgroup that looks significant is a lead, not a result.",
    ),
    (
        "cumulative effect",
        "The primary metric's relative difference as a report made at the "
        "end of each day would have shown it, on the users exposed up to that day.",
    ),
)

SEQUENTIAL = (
    "Sequential mode: the intervals are always-valid {confidence} confidence sequences. They "
    "contain the true difference on every day at once, {confidence} of the time, however often "
    "the report is read, so it is safe to stop the first day one of them excludes 0. They are "
    "wider than a fixed-horizon interval on any one day, and the always-valid p-value stays at 1 "
    "until evidence builds up: p = 1 means 'no evidence yet', not 'no difference'; read the "
    "interval."
)


def glossary(report: dict[str, Any]) -> list[tuple[str, str]]:
    """(term, definition) of every metric, then of every other term on the page."""
    currency = report.get("currency") or "the report's currency"
    metrics = [(m.name, _METRICS[m.name].format(currency=currency)) for m in METRICS]
    return metrics + list(_TERMS)


def sequential_words(report: dict[str, Any]) -> str:
    """What the sequential mode's intervals mean, at the report's confidence."""
    return SEQUENTIAL.format(confidence=f"{1 - report['alpha']:.0%}")
