"""The evaluation report's tuning table: the trials the choice was made among come first, and
the report says which they are."""

from typing import Any

from training.evaluation.report import tuning_lines


def trial(number: int, phase: str, score: float) -> dict[str, Any]:
    return {"number": number, "phase": phase, "score": score, "seconds": 0.1,
            "params": {"algorithm": "als", "factors": 8}}  # fmt: skip


def test_the_trials_chosen_among_are_listed_first_even_when_others_scored_higher() -> None:
    tuning = {
        "objective": "video NDCG@10",
        "validation": "temporal split",
        "seconds": 1.0,
        "chosen_among": ["recency", "trending"],
        # a single-day search score is higher than the three-day means it is not compared with
        "trials": [
            trial(0, "search", 0.9),
            trial(1, "screen", 0.8),
            trial(2, "trending", 0.5),
            trial(3, "recency", 0.6),
        ],  # fmt: skip
    }
    lines = tuning_lines(tuning, top=3)
    assert "chosen among the recency, trending trials" in lines[1]
    listed = [line.split()[1] for line in lines[3:]]
    assert listed == ["recency", "trending", "search"]


def test_a_search_chosen_among_all_its_trials_says_nothing_more() -> None:
    tuning = {"objective": "o", "validation": "v", "seconds": 1.0, "chosen_among": ["search"],
              "trials": [trial(0, "search", 0.2), trial(1, "search", 0.4)]}  # fmt: skip
    lines = tuning_lines(tuning)
    assert not any("chosen among" in line for line in lines)
    assert [line.split()[0] for line in lines[2:]] == ["1", "0"]
