"""Publishing checks every user id against the service's id rule in one pass; the fast check
must agree with the rule applied id by id, newlines and boundaries included."""

from __future__ import annotations

import re

import numpy as np
import pytest

from recsvc.contract.domain import ID_PATTERN
from recsvc.registry.publish import all_valid_ids

CANDIDATES = [
    "u1", "U-00042", "a.b:c-d_e", "9", "a" * 64,  # valid
    "", "a" * 65, "-lead", ".lead", "has space", "a\nb", "a\n", "\n", "é", "a{b}", "a/b",
]  # fmt: skip


@pytest.mark.parametrize("candidate", CANDIDATES)
def test_one_id_is_valid_exactly_when_the_rule_says_so(candidate: str) -> None:
    expected = re.match(ID_PATTERN, candidate) is not None and "\n" not in candidate
    assert all_valid_ids(np.array([candidate])) is expected


@pytest.mark.parametrize("bad", [c for c in CANDIDATES if not re.fullmatch(ID_PATTERN, c)])
def test_one_bad_id_among_many_good_ones_is_found_wherever_it_is(bad: str) -> None:
    good = [f"u{i}" for i in range(1000)]
    for position in (0, 500, 1000):
        ids = np.array([*good[:position], bad, *good[position:]])
        assert not all_valid_ids(ids), (bad, position)
    assert all_valid_ids(np.array(good))
