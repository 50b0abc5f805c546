"""A video's metadata as features: what places a video the model has not seen in its item
space. Both halves use it: the trainer learns a linear map from these features to the video
factors (training.models.metadata), the service applies it to a video published since
(recsvc.feed.fresh).

The features of a video are its topics, its creator and its series, each a name with its
kind: `topic:<name>`, `creator:<id>`, `series:<id>`. A feature the map never saw adds nothing:
the video then starts from what the features it shares with known videos say, or from the
average video where it shares none.
"""

from __future__ import annotations

from collections.abc import Iterable

from recsvc.contract.catalog import VideoRecord


def video_features(record: VideoRecord | None) -> list[str]:
    """The features of a video's record (none without a record), each once, in order."""
    if record is None:
        return []
    named: Iterable[str] = (
        *(f"topic:{topic}" for topic in record.topics),
        *((f"creator:{record.creator}",) if record.creator else ()),
        *((f"series:{record.series}",) if record.series else ()),
    )
    return list(dict.fromkeys(named))
