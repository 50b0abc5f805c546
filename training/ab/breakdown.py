"""The A/B report's breakdowns: every metric, each treatment against the control, within each
group of users by segment, lifecycle and surface.

A user belongs to the group of their first exposure in the experiment (the segment and
lifecycle they had, the surface they were shown it on), so that a user who moves from "new"
to "active" mid-way is counted once, where the experiment found them. A null value (the
profile was unknown; the surface before surfaces were recorded is "home", training.ab.inputs)
is a group of its own, UNKNOWN.

Within a group the comparison is the report's own (training.ab.stats.compare) on the group's
users only. A group with fewer than `min_users` users in the control or in the treatment gets
no numbers ("too few users"). Breakdowns are exploratory: many groups give many chances of a
fluke and nothing corrects for them, so a row carries `excludes_zero` (its interval misses 0,
uncorrected) rather than "significant", and CAUTION says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from training.ab.attribution import names_experiment
from training.ab.counting import variant_users
from training.ab.stats import METRICS, VariantData, compare

DIMENSIONS = ("segment", "lifecycle", "surface")
UNKNOWN = "unknown"
MIN_USERS = 10  # per variant and group: below it a delta-method interval means little
CAUTION = (
    "Breakdowns are exploratory: they are not Holm-corrected across groups, and with many "
    "groups some interval will miss 0 by chance alone, so a subgroup that looks significant is "
    "a lead to test in its own experiment, not a result."
)


def first_exposure_groups(exposures: pa.Table, experiment: str) -> dict[str, dict[str, str]]:
    """user -> {dimension: group} as of the user's first exposure in the experiment."""
    table = exposures.filter(names_experiment(exposures, experiment))
    usable = pc.and_(table.column("user_id").is_valid(), table.column("ts").is_valid())
    table = table.filter(usable).select(["user_id", "ts", *DIMENSIONS])
    table = table.take(pc.sort_indices(table, [("user_id", "ascending"), ("ts", "ascending")]))
    users = np.asarray(table.column("user_id").to_pylist(), dtype=object)
    first = np.ones(len(users), dtype=bool)
    first[1:] = users[1:] != users[:-1]
    table = table.filter(pa.array(first))
    columns = {dim: pc.fill_null(table.column(dim), UNKNOWN).to_pylist() for dim in DIMENSIONS}
    return {
        user: {dim: columns[dim][i] or UNKNOWN for dim in DIMENSIONS}
        for i, user in enumerate(users[first].tolist())
    }


def breakdowns(
    exposures: pa.Table,
    experiment: str,
    variants: Mapping[str, VariantData],
    control: str,
    *,
    alpha: float = 0.05,
    sequential: bool = False,
    tau2: float | None = None,
    min_users: int = MIN_USERS,
) -> dict[str, Any]:
    """The report's `breakdowns`: per dimension, per group, the users of each variant and each
    treatment's metric rows against the control (None when too few users)."""
    ids = variant_users(exposures, experiment)
    groups_of = first_exposure_groups(exposures, experiment)
    dimensions = []
    for dim in DIMENSIONS:
        labels = {
            name: np.asarray([groups_of[u][dim] for u in ids.get(name, [])], dtype=object)
            for name in variants
        }
        seen = {label for values in labels.values() for label in values.tolist()}
        groups = []
        for group in sorted(seen - {UNKNOWN}) + sorted(seen & {UNKNOWN}):
            within = {name: _subset(data, labels[name] == group) for name, data in variants.items()}
            groups.append(_group(group, within, control, alpha, sequential, tau2, min_users))
        dimensions.append({"dimension": dim, "groups": groups})
    return {
        "assigned_by": "first exposure",
        "min_users": min_users,
        "caution": CAUTION,
        "dimensions": dimensions,
    }


def _group(
    group: str,
    within: Mapping[str, VariantData],
    control: str,
    alpha: float,
    sequential: bool,
    tau2: float | None,
    min_users: int,
) -> dict[str, Any]:
    comparisons = []
    for name, data in within.items():
        if name == control:
            continue
        few = min(data.users, within[control].users) < min_users
        rows = None
        if not few:
            results = compare(within[control], data, alpha=alpha, sequential=sequential, tau2=tau2)
            rows = [_row(result.as_dict()) for result in results]
        comparisons.append({"treatment": name, "too_few_users": few, "metrics": rows})
    return {
        "group": group,
        "users": {name: data.users for name, data in within.items()},
        "comparisons": comparisons,
    }


def _row(result: dict[str, Any]) -> dict[str, Any]:
    """A metric row without Holm's columns, which a breakdown does not earn."""
    row = {k: v for k, v in result.items() if k not in ("adjusted_p", "significant")}
    low, high = row["ci_low"], row["ci_high"]
    row["excludes_zero"] = (low is not None and low > 0) or (high is not None and high < 0)
    return row


def _subset(data: VariantData, mask: np.ndarray) -> VariantData:
    """The variant's users where `mask` holds (mask in the order of its arrays)."""
    if not len(mask):
        mask = np.zeros(data.users, dtype=bool)
    return VariantData(data.name, *(getattr(data, f.name)[mask] for f in fields(data)[1:]))


def shown_metrics(report: dict[str, Any]) -> list[str]:
    """The metrics the text and the page break down: the primary one, else every metric."""
    primary = (report.get("definition") or {}).get("primary_metric")
    return [primary] if primary else [m.name for m in METRICS]
