"""Surfaces as configured, page tokens and the context blend (recsvc.feed.placement and
recsvc.feed.compute.with_context), without a service."""

from __future__ import annotations

import numpy as np
import pytest

from recsvc.contract.domain import ProductCategory
from recsvc.feed.compute import with_context
from recsvc.feed.placement import (
    HOME,
    MAX_TOKEN_LENGTH,
    MAX_TOKEN_VIDEOS,
    PageTokenError,
    SurfacesError,
    page_token,
    parse_surfaces,
    read_page_token,
    split_ids,
)
from recsvc.service.settings import SettingsError, load_settings


def test_home_is_always_there_and_a_configured_surface_takes_its_fields() -> None:
    assert parse_surfaces("") == {"home": HOME}
    surfaces = parse_surfaces(
        '{"product_page": {"page_size": 6, "attach": true, "max_attached": 1, '
        '"product_categories": ["deposit", "fund"], "context_weight": 0.8}}'
    )
    assert set(surfaces) == {"home", "product_page"}
    page = surfaces["product_page"]
    assert (page.page_size, page.attach, page.max_attached, page.context_weight) == (
        6,
        True,
        1,
        0.8,
    )
    assert page.product_categories == {ProductCategory.DEPOSIT, ProductCategory.FUND}
    assert parse_surfaces('{"home": {"page_size": 10}}')["home"].page_size == 10


def test_every_problem_of_a_surfaces_setting_is_named() -> None:
    with pytest.raises(SurfacesError) as caught:
        parse_surfaces(
            '{"Bad Name": {}, "a": {"page_size": 0, "product_categories": ["gold"]}, '
            '"b": {"colour": "red"}}'
        )
    message = str(caught.value)
    assert "'Bad Name': a surface name" in message
    assert "a.page_size: Input should be greater than or equal to 1" in message
    assert "a.product_categories.0: Input should be" in message
    assert "b.colour: Extra inputs are not permitted" in message
    with pytest.raises(SurfacesError, match="not JSON"):
        parse_surfaces("{home")
    with pytest.raises(SurfacesError, match="must be a JSON object"):
        parse_surfaces("[]")


def test_the_setting_is_checked_at_start_up_naming_its_variable() -> None:
    with pytest.raises(SettingsError, match=r"RECSVC_SURFACES: .*x\.attach"):
        load_settings(surfaces='{"x": {"attach": "perhaps"}}')


def test_a_page_token_reads_back_for_its_own_session_only() -> None:
    token = page_token("u1", "home", None, ["v1", "v2", "v3"])
    assert read_page_token(token, "u1", "home", None) == ("v1", "v2", "v3")
    for user, surface, context in (("u2", "home", None), ("u1", "pdp", None), ("u1", "home", "v9")):
        with pytest.raises(PageTokenError, match="another user, surface or context"):
            read_page_token(token, user, surface, context)
    for forged in ("", "x", token[:-5], "eJw" + "A" * 20):
        with pytest.raises(PageTokenError, match="not a page token"):
            read_page_token(forged, "u1", "home", None)


def test_a_long_session_remembers_its_latest_videos() -> None:
    shown = [f"v{i}" for i in range(MAX_TOKEN_VIDEOS + 50)]
    kept = read_page_token(page_token("u1", "home", None, shown), "u1", "home", None)
    assert kept == tuple(shown[50:])


def test_exclude_takes_ids_and_names_the_bad_one() -> None:
    assert split_ids("v1,p2,,v1") == {"v1", "p2"}
    with pytest.raises(ValueError, match="'no way' is not an id"):
        split_ids("v1,no way")
    with pytest.raises(ValueError, match="at most 3 ids"):
        split_ids("a,b,c,d", limit=3)


def test_the_context_blend_keeps_the_users_length_and_turns_by_the_weight() -> None:
    user = np.array([2.0, 0.0], dtype=np.float32)
    item = np.array([0.0, 5.0], dtype=np.float32)
    half = with_context(user, item, 0.5)
    assert half is not None
    np.testing.assert_allclose(half, [np.sqrt(2), np.sqrt(2)], rtol=1e-6)  # 45°, length 2
    whole = with_context(user, item, 1.0)
    assert whole is not None
    np.testing.assert_allclose(whole, [0.0, 2.0], atol=1e-6)
    assert with_context(user, item, 0.0) is not None
    np.testing.assert_allclose(with_context(user, item, 0.0), user)  # type: ignore[arg-type]
    # no user vector: the item's own; no (or a zero) item vector: the user's
    np.testing.assert_allclose(with_context(None, item, 0.5), item)  # type: ignore[arg-type]
    assert with_context(user, None, 0.5) is user
    assert with_context(user, np.zeros(2, np.float32), 0.5) is user


def test_a_token_of_the_longest_ids_stays_within_its_length() -> None:
    longest = "u" * 64
    shown = [f"{i:064d}" for i in range(200)]
    token = page_token(longest, "s" * 32, "c" * 64, shown)
    assert len(token) <= MAX_TOKEN_LENGTH
    kept = read_page_token(token, longest, "s" * 32, "c" * 64)
    assert 80 <= len(kept) < 200 and kept == tuple(shown[-len(kept) :])  # the latest
