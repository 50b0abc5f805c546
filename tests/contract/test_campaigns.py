"""Campaign definitions (recsvc.contract.campaigns): what each kind needs, schedules at their
edges, quiet hours across midnight and in a time zone, targeting, and the refusal of any
rule that asks to set aside a seller's rule."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from recsvc.contract.campaigns import CampaignError, Kind, parse_campaigns


def one(body: str) -> object:
    (campaign,) = parse_campaigns(f'[[campaign]]\nname = "c"\n{body}\n').campaigns
    return campaign


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def refusal(body: str) -> str:
    with pytest.raises(CampaignError) as caught:
        parse_campaigns(f'[[campaign]]\nname = "c"\n{body}\n')
    return str(caught.value)


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        ('kind = "boost"\ntopics = ["savings"]\nstrength = 1.5', Kind.BOOST),
        ('kind = "bury"\ncategories = ["credit"]\nstrength = 2', Kind.BURY),
        ('kind = "pin"\nvideo = "v1"\nslot = 3', Kind.PIN),
        ('kind = "exclude"\nvideos = ["v1", "v2"]\nproducts = ["p1"]', Kind.EXCLUDE),
        ('kind = "cap"\ncategories = ["wealth", "fund"]\ndaily_cap = 1', Kind.CAP),
    ],
)
def test_each_kind_with_what_it_needs_is_valid(body: str, kind: Kind) -> None:
    assert one(body).kind is kind  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ('kind = "boost"\ntopics = ["savings"]', "a boost rule needs a strength"),
        ('kind = "bury"\nstrength = 1', "a bury rule names what it acts on"),
        ('kind = "pin"\nvideo = "v1"', "a pin rule needs a video and a slot"),
        ('kind = "pin"\nvideo = "v1"\nslot = 1\ntopics = ["x"]', "a pin rule does not take topics"),
        ('kind = "cap"\ncategories = ["fund"]', "a cap rule needs categories and a daily_cap"),
        ('kind = "cap"\ndaily_cap = 1\ncategories = ["fund"]\nstrength = 1',
         "a cap rule does not take strength"),
        ('kind = "exclude"', "an exclude rule names what it acts on"),
        ('kind = "boost"\nvideos = ["v1"]\nstrength = 1000', "strength"),
        ('kind = "boost"\nvideos = ["not an id"]\nstrength = 1', "not ids"),
        ('kind = "pin"\nvideo = "v1"\nslot = 0', "slot"),
        ('kind = "promote"\nvideos = ["v1"]', "kind"),
    ],
)  # fmt: skip
def test_a_rule_missing_or_misusing_a_field_is_refused_by_name(body: str, problem: str) -> None:
    message = refusal(body)
    assert "campaign 1 (c)" in message
    assert problem in message


def test_every_problem_of_a_definition_is_named_at_once() -> None:
    text = (
        '[[campaign]]\nname = "a"\nkind = "pin"\nvideo = "v1"\n'
        '[[campaign]]\nname = "b"\nkind = "boost"\nvideos = ["v1"]\nstrength = 1\n'
        'timezone = "Nowhere/City"\n'
        '[[campaign]]\nname = "b"\nkind = "exclude"\nvideos = ["v2"]\n'
    )
    with pytest.raises(CampaignError) as caught:
        parse_campaigns(text)
    message = str(caught.value)
    assert "campaign 1 (a): a pin rule needs a video and a slot" in message
    assert "campaign 2 (b): timezone: 'Nowhere/City' is not a time zone" in message
    assert "campaign name 'b' is used twice" not in message  # b (2) was refused on its own
    with pytest.raises(CampaignError, match="campaign name 'b' is used twice"):
        parse_campaigns(text.replace('timezone = "Nowhere/City"\n', ""))


def test_a_schedule_starts_at_its_start_and_ends_just_before_its_end() -> None:
    rule = one('kind = "exclude"\nvideos = ["v1"]\nstart = 2026-12-01T00:00:00Z\n'
               "end = 2026-12-02T00:00:00")  # no offset: UTC  # fmt: skip
    assert not rule.active(ts("2026-11-30T23:59:59.999"))  # type: ignore[attr-defined]
    assert rule.active(ts("2026-12-01T00:00:00"))  # type: ignore[attr-defined]
    assert rule.active(ts("2026-12-01T23:59:59.999"))  # type: ignore[attr-defined]
    assert not rule.active(ts("2026-12-02T00:00:00"))  # type: ignore[attr-defined]
    message = refusal('kind = "exclude"\nvideos = ["v1"]\nstart = 2026-12-02T00:00:00Z\n'
                      "end = 2026-12-01T00:00:00Z")  # fmt: skip
    assert "is not after start" in message


def test_quiet_hours_across_midnight_in_the_rules_time_zone() -> None:
    rule = one('kind = "exclude"\nvideos = ["v1"]\nquiet_hours = ["22:00", "07:00"]\n'
               'timezone = "Europe/Berlin"')  # UTC+1 in December  # fmt: skip
    assert rule.active(ts("2026-12-01T20:59:00"))  # type: ignore[attr-defined]  # 21:59 there
    assert not rule.active(ts("2026-12-01T21:00:00"))  # type: ignore[attr-defined]  # 22:00
    assert not rule.active(ts("2026-12-01T23:30:00"))  # type: ignore[attr-defined]  # 00:30
    assert not rule.active(ts("2026-12-02T05:59:00"))  # type: ignore[attr-defined]  # 06:59
    assert rule.active(ts("2026-12-02T06:00:00"))  # type: ignore[attr-defined]  # 07:00
    daytime = one('kind = "exclude"\nvideos = ["v1"]\nquiet_hours = ["09:00", "17:00"]')
    assert daytime.active(ts("2026-12-01T08:59:00"))  # type: ignore[attr-defined]
    assert not daytime.active(ts("2026-12-01T09:00:00"))  # type: ignore[attr-defined]
    assert daytime.active(ts("2026-12-01T17:00:00"))  # type: ignore[attr-defined]
    assert "HH:MM" in refusal('kind = "exclude"\nvideos = ["v1"]\nquiet_hours = ["7:00", "9"]')
    assert "no time at all" in refusal(
        'kind = "exclude"\nvideos = ["v1"]\nquiet_hours = ["07:00", "07:00"]'
    )


def test_targeting_matches_every_field_set() -> None:
    rule = one('kind = "exclude"\nvideos = ["v1"]\n[campaign.target]\nsegments = ["young"]\n'
               'lifecycles = ["new"]\nrisk_tolerance = [2, 4]\nsurfaces = ["home"]\n'
               'variants = ["exp:b"]')  # fmt: skip
    targets = rule.targets  # type: ignore[attr-defined]
    assert targets("young", "new", 3, "home", ["exp:b", "other:a"])
    assert not targets("old", "new", 3, "home", ["exp:b"])
    assert not targets("young", "active", 3, "home", ["exp:b"])
    assert not targets("young", "new", 5, "home", ["exp:b"])
    assert not targets("young", "new", None, "home", ["exp:b"])  # unknown tolerance
    assert not targets("young", "new", 3, "product_page", ["exp:b"])
    assert not targets("young", "new", 3, "home", ["exp:a"])
    everyone = one('kind = "exclude"\nvideos = ["v1"]')
    assert everyone.targets(None, None, None, "after_video", [])  # type: ignore[attr-defined]
    assert "1 <= low <= high <= 5" in refusal(
        'kind = "exclude"\nvideos = ["v1"]\n[campaign.target]\nrisk_tolerance = [4, 2]'
    )
    assert "not 'experiment:variant' pairs" in refusal(
        'kind = "exclude"\nvideos = ["v1"]\n[campaign.target]\nvariants = ["exp"]'
    )


@pytest.mark.parametrize(
    "body",
    [
        'kind = "boost"\nproducts = ["p"]\nstrength = 1\nignore_risk = true',
        'kind = "boost"\nproducts = ["p"]\nstrength = 1\noverride_suitability = true',
        'kind = "boost"\nproducts = ["p"]\nstrength = 1\nbypass = ["holdings"]',
        'kind = "pin"\nvideo = "v"\nslot = 1\nshow_retired = true',
        'kind = "boost"\nproducts = ["p"]\nstrength = 1\ndisclosure = "none"',
        'kind = "boost"\nproducts = ["p"]\nstrength = 1\nforce = true',
        'kind = "pin"\nvideo = "v"\nslot = 1\nproducts = ["p"]',
        'kind = "ignore_holdings"\nproducts = ["p"]',
        'kind = "boost"\nproducts = ["p"]\nstrength = 1\n[campaign.target]\nheld = true',
    ],
)
def test_a_rule_that_asks_to_set_aside_a_sellers_rule_is_refused(body: str) -> None:
    message = refusal(body)
    assert (
        "no campaign can override suitability (risk level against tolerance), disclosure, "
        "retirement and holdings" in message
    )


def test_the_active_rules_come_by_priority_then_in_the_definitions_order() -> None:
    text = "".join(
        f'[[campaign]]\nname = "{name}"\nkind = "exclude"\nvideos = ["v"]\npriority = {p}\n'
        for name, p in (("a", 0), ("b", 5), ("c", 0), ("d", 5))
    )
    assert [c.name for c in parse_campaigns(text).active(0.0)] == ["b", "d", "a", "c"]


def test_a_definition_that_is_not_toml_or_not_campaigns_is_refused() -> None:
    with pytest.raises(CampaignError, match="not valid TOML"):
        parse_campaigns("[[campaign]\n")
    with pytest.raises(CampaignError, match=r"unknown top-level key\(s\) \['experiment'\]"):
        parse_campaigns('[[experiment]]\nname = "x"\n')
    assert len(parse_campaigns("# none")) == 0


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ('timezone = "America"', "'America' is not a time zone"),
        ('timezone = "__pycache__"', "is not a time zone"),
        ("end = 9999-12-31T23:59:59-12:00", "end: must be from 2000 to 2199"),
        ("start = 0001-01-01T00:00:00+12:00", "start: must be from 2000 to 2199"),
        ("priority = true", "priority: Input should be a valid integer"),
        ("strength = 1\nslot = true", "slot: Input should be a valid integer"),
        ('strength = "1.5"', "strength"),
    ],
)
def test_odd_values_are_refused_by_name_never_an_error(body: str, problem: str) -> None:
    message = refusal(f'kind = "bury"\nvideos = ["v1"]\n{body}')
    assert problem in message, message


def test_strict_numbers_and_a_byte_order_mark() -> None:
    assert "daily_cap" in refusal('kind = "cap"\ncategories = ["fund"]\ndaily_cap = true')
    assert "risk_tolerance" in refusal(
        'kind = "exclude"\nvideos = ["v1"]\n[campaign.target]\nrisk_tolerance = [true, 3]'
    )
    text = '\ufeff[[campaign]]\nname = "c"\nkind = "exclude"\nvideos = ["v"]\n'
    (rule,) = parse_campaigns(text).campaigns
    assert rule.name == "c"


def test_a_huge_bad_definition_gets_a_short_refusal() -> None:
    unknown = "\n".join(f"key{i} = 1" for i in range(3000))
    text = f'[[campaign]]\nname = "{"n" * 200_000}"\nkind = "exclude"\nvideos = ["v"]\n{unknown}\n'
    with pytest.raises(CampaignError) as caught:
        parse_campaigns(text)
    message = str(caught.value)
    assert len(message) < 40_000  # at most 100 problems, each naming its rule in short
    assert "campaign 1 (" + "n" * 63 + "…)" in message and "and 2901 more problems" in message
