"""Users' segments from a users file, and the per-segment popularity table built from them.
(From the profiles in Redis: test_nightly.py, and tests/cluster/test_segments.py.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.builders import event_table
from training.data.events import EventDataError
from training.data.matrix import build_interactions
from training.data.segments import Segments, read_users_file, segment_popularity


def test_a_users_file_gives_the_segment_of_each_user_who_has_one(tmp_path: Path) -> None:
    path = tmp_path / "users.csv"
    path.write_text("user_id,risk_tolerance,segment\nu1,3,savers\nu2,1,\nu3,5,traders\n")
    segments = read_users_file(path)
    assert segments.of == {"u1": "savers", "u3": "traders"}
    assert segments.source == str(path)


def test_a_file_without_a_segment_column_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "users.csv"
    path.write_text("user_id,risk_tolerance\nu1,3\n")
    with pytest.raises(EventDataError, match=f"{path}: not a users file with user_id and segment"):
        read_users_file(path)


def test_the_table_counts_each_segments_users_per_video_and_impressions_count_nothing() -> None:
    events = event_table(
        [
            {"user_id": "u1", "item_id": "v1", "action": "view", "watch_ratio": 0.5},
            {"user_id": "u1", "item_id": "v1", "action": "view", "watch_ratio": 0.9},
            {"user_id": "u2", "item_id": "v1", "action": "view", "watch_ratio": 0.2},
            {"user_id": "u2", "item_id": "v2", "action": "impression"},
            {"user_id": "u3", "item_id": "v2", "action": "view", "watch_ratio": 1.0},
            {"user_id": "u4", "item_id": "v2", "action": "view", "watch_ratio": 1.0},
        ]
    )
    interactions = build_interactions(events)
    segments = Segments({"u1": "a", "u2": "a", "u3": "b", "someone": "c"}, "test")
    table = segment_popularity(segments, interactions)
    assert table["segment_ids.npy"].tolist() == ["a", "b"]  # u4 has none, c nobody trained
    assert interactions.index.video_ids.tolist() == ["v1", "v2"]
    np.testing.assert_array_equal(table["segment_video_popularity.npy"], [[2, 0], [0, 1]])


def test_no_trained_user_with_a_segment_means_no_table() -> None:
    interactions = build_interactions(event_table([{"user_id": "u1", "item_id": "v1"}]))
    assert segment_popularity(Segments({}, "test"), interactions) == {}
