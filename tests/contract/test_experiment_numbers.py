"""Every number of an experiment definition is finite: TOML spells infinity and not-a-number
(`inf`, `-inf`, `nan`), and each is refused naming the experiment, variant and field, never a
crash (a 500 from the API, a traceback from the CLI: see tests/http)."""

from __future__ import annotations

import pytest

from recsvc.contract.experiments import ExperimentError, parse_experiments

RANKER = """
[[experiment]]
name = "ranker"
traffic = 0.5
namespace = "ranking"
range = [0.0, 0.5]

[[experiment.variant]]
name = "cf"
weight = 0.5
ranker = "cf"

[[experiment.variant]]
name = "popular"
weight = 0.5
ranker = "popular"
attach_user_weight = 1.0
"""


@pytest.mark.parametrize("number", ["inf", "+inf", "-inf", "nan", "-nan"])
@pytest.mark.parametrize(
    ("old", "template", "field"),
    [
        ("range = [0.0, 0.5]", "range = [0.0, {}]", "experiment 1 (ranker): range[1]:"),
        ("range = [0.0, 0.5]", "range = [{}, 0.5]", "experiment 1 (ranker): range[0]:"),
        ("traffic = 0.5", "traffic = {}", "experiment 1 (ranker): traffic:"),
        (
            'weight = 0.5\nranker = "popular"',
            'weight = {}\nranker = "popular"',
            "variant 2 (popular).weight:",
        ),
        (
            "attach_user_weight = 1.0",
            "attach_user_weight = {}",
            "variant 2 (popular).attach_user_weight:",
        ),
    ],
)
def test_a_number_that_is_not_finite_is_refused_naming_its_field(
    number: str, old: str, template: str, field: str
) -> None:
    assert old in RANKER
    with pytest.raises(ExperimentError) as refused:
        parse_experiments(RANKER.replace(old, template.format(number), 1))
    assert f"{field} Input should be a finite number" in str(refused.value)


def test_a_huge_range_end_is_refused_as_out_of_range_not_a_crash() -> None:
    with pytest.raises(ExperimentError, match=r"range\[1\]: Input should be less than or equal"):
        parse_experiments(RANKER.replace("range = [0.0, 0.5]", "range = [0.0, 1e308]"))
