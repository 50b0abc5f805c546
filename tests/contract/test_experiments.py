"""Experiment definitions: what a valid TOML definition means, and a clear refusal, naming the
experiment, variant and field, for each way a definition can be wrong."""

from __future__ import annotations

import re

import pytest

from recsvc.contract.experiments import ExperimentError, parse_experiments

RANKER = """
[[experiment]]
name = "ranker"
traffic = 0.5
namespace = "ranking"
range = [0.0, 0.5]
control = "cf"

[[experiment.variant]]
name = "cf"
weight = 0.5
ranker = "cf"

[[experiment.variant]]
name = "popular"
weight = 0.5
ranker = "popular"
attach = false
"""

ATTACH = """
[[experiment]]
name = "attach-weights"

[[experiment.variant]]
name = "even"
weight = 0.5

[[experiment.variant]]
name = "video-heavy"
weight = 0.5
attach_video_weight = 3.0
max_attached_per_page = 5
"""


def test_a_valid_definition_assigns_about_its_traffic_share_with_each_variants_overrides() -> None:
    experiments = parse_experiments(RANKER)
    assigned = [experiments.assign(f"u{i}") for i in range(10_000)]
    inside = [a[0] for a in assigned if a]
    assert 0.22 < len(inside) / 10_000 < 0.28  # half of the namespace's half
    by_variant = {a.variant: a.overrides for a in inside}
    assert by_variant == {"cf": {"ranker": "cf"}, "popular": {"ranker": "popular", "attach": False}}
    assert experiments.experiments[0].control_variant == "cf"


def test_experiments_in_other_namespaces_overlap_when_they_set_different_parameters() -> None:
    experiments = parse_experiments(RANKER + ATTACH)
    both = [a for a in (experiments.assign(f"u{i}") for i in range(2000)) if len(a) == 2]
    assert both and {a.experiment for a in both[0]} == {"ranker", "attach-weights"}


def test_the_salt_defaults_to_the_name_and_a_new_salt_reshuffles_users() -> None:
    salted = RANKER.replace('name = "ranker"', 'name = "ranker"\nsalt = "ranker-v2"')
    first, second = parse_experiments(RANKER), parse_experiments(salted)
    users = [f"u{i}" for i in range(2000)]
    same = sum(first.assign(u) == second.assign(u) for u in users)
    assert same < 0.9 * len(users)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ('weight = 0.5\nranker = "popular"', 'weight = 0.6\nranker = "popular"'),
            "experiment 1 (ranker): variant weights sum to 1.1, not 1",
        ),
        (
            ("attach = false", "attach = false\ncolour = 3"),
            "experiment 1 (ranker): variant 2 (popular).colour: not a setting of a variant "
            "(known: attach, attach_user_weight,",
        ),
        (
            ('ranker = "popular"', 'ranker = "random"'),
            "variant 2 (popular).ranker: Input should be 'cf' or 'popular'",
        ),
        (("traffic = 0.5", "traffic = 1.5"), "experiment 1 (ranker): traffic: Input should be"),
        (
            ('control = "cf"', 'control = "treatment"'),
            "control 'treatment' is not one of the variants",
        ),
        (("range = [0.0, 0.5]", "range = [0.6, 0.5]"), "range must be [low, high)"),
        (('name = "popular"', 'name = "cf"'), "variant names repeat"),
        (
            ("traffic = 0.5", "traffic = 0.5\nbudget = 3"),
            "experiment 1 (ranker): budget: not a setting of an experiment (known: control, end,",
        ),
        (('name = "ranker"', 'name = "has space"'), "experiment 1 (has space): name:"),
        (("[[experiment]]", "[[experiments]]"), "unknown top-level key(s) ['experiments']"),
        (("[[experiment]]", "[[experiment]"), "not valid TOML"),
    ],
)
def test_a_bad_definition_is_refused_naming_what_is_wrong(
    change: tuple[str, str], message: str
) -> None:
    old, new = change
    assert old in RANKER
    with pytest.raises(ExperimentError) as refused:
        parse_experiments(RANKER.replace(old, new, 1))
    assert message in str(refused.value)


def test_a_single_variant_is_not_an_experiment() -> None:
    one = RANKER.split('[[experiment.variant]]\nname = "popular"')[0].replace(
        "0.5\nranker", "1.0\nranker"
    )
    with pytest.raises(ExperimentError, match="variant: List should have at least 2 items"):
        parse_experiments(one)


def test_two_experiments_of_a_namespace_must_not_overlap() -> None:
    second = RANKER.replace('name = "ranker"', 'name = "ranker-2"').replace(
        "[0.0, 0.5]", "[0.4, 1.0]"
    )
    with pytest.raises(ExperimentError, match="share namespace ranking with overlapping ranges"):
        parse_experiments(RANKER + second)
    disjoint = second.replace("[0.4, 1.0]", "[0.5, 1.0]")
    assert len(parse_experiments(RANKER + disjoint)) == 2  # same parameter, disjoint users


def test_experiments_that_can_share_users_must_not_set_the_same_parameter() -> None:
    other = RANKER.replace('name = "ranker"', 'name = "ranker-2"').replace(
        'namespace = "ranking"', 'namespace = "other"'
    )
    with pytest.raises(ExperimentError, match=r"ranker and ranker-2 can share users and both set"):
        parse_experiments(RANKER + other)


def test_a_name_used_twice_is_refused() -> None:
    with pytest.raises(ExperimentError, match="experiment name 'ranker' is used twice"):
        parse_experiments(RANKER + RANKER.replace("[0.0, 0.5]", "[0.5, 1.0]"))


def test_a_pinned_model_version_must_exist() -> None:
    pinned = RANKER.replace('ranker = "popular"', 'ranker = "cf"\nmodel = "20260101T000000Z-old"')
    with pytest.raises(
        ExperimentError, match="model version '20260101T000000Z-old' does not exist"
    ):
        parse_experiments(pinned, version_exists=lambda version: False)
    assert parse_experiments(pinned, version_exists=lambda version: True).models_used() == {
        "20260101T000000Z-old"
    }
    challenger = RANKER.replace('ranker = "popular"', 'model = "challenger"')
    parse_experiments(challenger, version_exists=lambda version: False)  # not a version name


def test_every_problem_is_named_at_once() -> None:
    bad = RANKER.replace("traffic = 0.5", "traffic = 2").replace("attach = false", "colour = 1")
    with pytest.raises(ExperimentError) as refused:
        parse_experiments(bad)
    assert "traffic" in str(refused.value) and "colour" in str(refused.value)


def test_an_empty_definition_has_no_experiments() -> None:
    assert len(parse_experiments("")) == 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("experiment = 1", "experiment must be [[experiment]] tables"),
        ("[experiment]\nname = 'x'", "experiment must be [[experiment]] tables"),
        ("experiment = [1]", "experiment must be [[experiment]] tables"),
        ("[[experiment]]\nname = 'x'\nvariant = [1, 2]", "variant must be [[experiment.variant]]"),
    ],
)
def test_a_definition_of_the_wrong_shape_is_refused_not_a_crash(text: str, message: str) -> None:
    with pytest.raises(ExperimentError, match=re.escape(message)):
        parse_experiments(text)


def test_two_experiments_sharing_a_salt_are_refused() -> None:
    """The same salt splits users the same way: each experiment would measure both changes."""
    other = ATTACH.replace('name = "attach-weights"', 'name = "attach-weights"\nsalt = "ranker"')
    with pytest.raises(ExperimentError, match="share the salt 'ranker'"):
        parse_experiments(RANKER + other)


@pytest.mark.parametrize("name", ["ab:x", "a,b"])
def test_names_cannot_hold_the_separators_of_the_variant_string(name: str) -> None:
    with pytest.raises(ExperimentError, match="name"):
        parse_experiments(RANKER.replace('name = "ranker"', f'name = "{name}"'))
    with pytest.raises(ExperimentError, match="name"):
        parse_experiments(RANKER.replace('name = "popular"', f'name = "{name}"'))


@pytest.mark.parametrize("traffic", ["0.00125", "0.00001"])
def test_shares_go_in_whole_buckets_so_every_language_rounds_alike(traffic: str) -> None:
    with pytest.raises(ExperimentError, match="not a whole number of buckets"):
        parse_experiments(RANKER.replace("traffic = 0.5", f"traffic = {traffic}"))
    assert len(parse_experiments(RANKER.replace("traffic = 0.5", "traffic = 0.0013"))) == 1


def test_a_definition_nested_too_deeply_is_refused_not_a_crash() -> None:
    with pytest.raises(ExperimentError, match="nested too deeply"):
        parse_experiments("x = " + "[" * 50_000 + "]" * 50_000)


def test_five_planted_problems_are_named_at_once_with_suggestions() -> None:
    text = """
[[experiment]]
name = "cards"
trafic = 0.5

[[experiment.variant]]
name = "three:cards"
weight = 0.7
attach_weight = 2

[[experiment.variant]]
name = "one"
weight = 0.5
ranker = "magic"
"""
    with pytest.raises(ExperimentError) as refused:
        parse_experiments(text)
    problems = str(refused.value).split("; ")
    assert problems == [
        "experiment 1 (cards): variant 1 (three:cards).name: 'three:cards' is not a name: 1 to "
        "64 letters, digits, '_', '.' or '-', starting with a letter or a digit (no ':' or ',': "
        "responses join names with them)",
        "experiment 1 (cards): variant 1 (three:cards).attach_weight: not a setting of a variant "
        "(did you mean 'attach_user_weight' or 'attach_video_weight'?)",
        "experiment 1 (cards): variant 2 (one).ranker: Input should be 'cf' or 'popular'",
        "experiment 1 (cards): trafic: not a setting of an experiment (did you mean 'traffic'?)",
        "experiment 1 (cards): variant weights sum to 1.2, not 1",
    ]


SCHEDULED = """
[[experiment]]
name = "cards"
start = 2026-12-01T00:00:00Z
end = 2026-12-15T00:00:00
owner = "growth team"
hypothesis = "One card sells as well as three"
primary_metric = "attach_conversion"
guardrails = ["video_ctr", "watch_seconds_per_user"]

[[experiment.variant]]
name = "three"
weight = 0.5

[[experiment.variant]]
name = "one"
weight = 0.5
max_attached_per_page = 1
"""


def test_an_experiment_assigns_users_only_between_its_start_and_end() -> None:
    experiments = parse_experiments(SCHEDULED)
    [experiment] = experiments.experiments
    assert experiment.end is not None and experiment.end.tzinfo is not None  # no offset: UTC
    assert experiment.owner == "growth team" and experiment.primary_metric == "attach_conversion"
    start, end = (moment.timestamp() for moment in (experiment.start, experiment.end))  # type: ignore[union-attr]
    assert experiments.assign("u1", start - 1) == []
    assert [a.experiment for a in experiments.assign("u1", start)] == ["cards"]
    assert [a.experiment for a in experiments.assign("u1", end - 1)] == ["cards"]
    assert experiments.assign("u1", end) == []


def test_dates_and_metrics_that_cannot_be_are_named() -> None:
    bad = (
        SCHEDULED.replace("2026-12-15T00:00:00", "2026-11-15T00:00:00")
        .replace('primary_metric = "attach_conversion"', 'primary_metric = "revenue"')
        .replace('"watch_seconds_per_user"]', '"video_ctr", "clicks"]')
    )
    with pytest.raises(ExperimentError) as refused:
        parse_experiments(bad)
    message = str(refused.value)
    assert "primary_metric: Input should be 'video_ctr', 'attach_click_rate'" in message
    assert "guardrails[2]: Input should be 'video_ctr'" in message
    same = SCHEDULED.replace('guardrails = ["video_ctr"', 'guardrails = ["attach_conversion"')
    with pytest.raises(
        ExperimentError, match="attach_conversion is the primary metric and a guard"
    ):
        parse_experiments(same)
    backwards = SCHEDULED.replace("2026-12-15T00:00:00", "2026-11-15T00:00:00")
    with pytest.raises(ExperimentError, match="end 2026-11-15T00:00:00\\+00:00 is not after start"):
        parse_experiments(backwards)


def test_experiments_that_never_run_at_once_may_share_a_namespace_and_parameters() -> None:
    first = SCHEDULED.replace('name = "cards"', 'name = "cards"\nnamespace = "attach"')
    second = (
        first.replace('name = "cards"', 'name = "cards-2"')
        .replace("2026-12-01T00:00:00Z", "2026-12-15T00:00:00Z")
        .replace("2026-12-15T00:00:00\n", "2026-12-30T00:00:00\n")
    )
    assert len(parse_experiments(first + second)) == 2  # one ends as the other starts
    overlapping = second.replace("2026-12-15T00:00:00Z", "2026-12-14T00:00:00Z")
    with pytest.raises(ExperimentError, match="share namespace attach with overlapping ranges"):
        parse_experiments(first + overlapping)
    with pytest.raises(ExperimentError, match="guardrails repeat"):
        parse_experiments(SCHEDULED.replace('["video_ctr",', '["video_ctr", "video_ctr",'))
