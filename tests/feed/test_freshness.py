"""Freshness (recsvc.feed.freshness): 2^(−age / half-life) per video, the half-life of a
video's topic (the shortest among its topics that have one, else the default), 0 for a video
without a readable publication time, 1 for one stamped in the future."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recsvc.feed.freshness import Freshness, decay, parse_half_lives, published_seconds


def test_half_lives_per_topic_are_read_and_a_bad_part_is_named() -> None:
    assert parse_half_lives(" market-news=6, explainers = 2160 ,") == (
        ("market-news", 6.0),
        ("explainers", 2160.0),
    )
    assert parse_half_lives("") == ()
    for bad in ("market-news", "=6", "news=0", "news=six", "news=inf"):
        with pytest.raises(ValueError, match=repr(bad)):
            parse_half_lives(bad)


def test_a_video_takes_the_shortest_half_life_of_its_topics() -> None:
    freshness = Freshness(1.0, 100.0, (("news", 6.0), ("rates", 12.0)))
    assert freshness.half_life(("rates", "news")) == 6.0
    assert freshness.half_life(("rates", "other")) == 12.0
    assert freshness.half_life(("other",)) == 100.0 and freshness.half_life(()) == 100.0
    with pytest.raises(ValueError, match="half-life"):
        Freshness(1.0, 0.0)


def test_the_decay_worked_by_hand() -> None:
    now = 1_000_000.0
    published = np.array([now, now - 6 * 3600, now - 12 * 3600, math.nan, now + 3600])
    half_lives = np.array([6.0, 6.0, 6.0, 6.0, 6.0])
    np.testing.assert_allclose(decay(published, half_lives, now), [1.0, 0.5, 0.25, 0.0, 1.0])


def test_publication_times_read_as_the_catalogue_holds_them() -> None:
    assert published_seconds("1970-01-01T01:00:00Z") == 3600.0
    assert published_seconds("1970-01-01T01:00:00") == 3600.0  # no zone: UTC
    assert math.isnan(published_seconds("yesterday")) and math.isnan(published_seconds(None))
