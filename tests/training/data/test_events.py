"""Loading events from files: formats, validation reasons, line numbers, the threshold."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.builders import (
    event_row,
    event_rows,
    write_event_partitions,
    write_events_csv,
    write_events_parquet,
    write_movielens,
)
from training.data.duplicates import repeats, string_hashes
from training.data.events import (
    EVENT_SCHEMA,
    BadReason,
    BadRow,
    EventDataError,
    EventFormat,
    ValidationReport,
    load_events,
)

REPO_ROOT = Path(__file__).resolve().parents[3]
MOVIELENS_100K = REPO_ROOT / "../shared/data/ml-100k/u.data"
NOON = datetime(2026, 11, 1, 12, tzinfo=UTC)
NOON_UNIX = 1_793_534_400  # NOON as unix seconds


def load_all(path: Path, fmt: EventFormat = EventFormat.AUTO) -> tuple[pa.Table, ValidationReport]:
    """Load without the threshold, to look at the report."""
    return load_events(path, fmt, max_bad_share=1.0)


def assert_only(report: ValidationReport, reason: str, count: int) -> None:
    """`reason` counted `count` times, every other reason 0, and no row unaccounted for."""
    assert report.bad_counts == {r.value: (count if r == reason else 0) for r in BadReason}
    assert report.rows_read == report.rows_accepted + sum(report.bad_counts.values())


# One bad row among 20, at index 9: physical line 11 of the CSV (the header is line 1).
CSV_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("missing_id", {"user_id": ""}, "user_id=null"),  # an empty CSV field reads as null
    ("missing_id", {"event_id": None}, "event_id=null"),
    ("missing_id", {"item_id": None}, "item_id=null"),
    ("bad_timestamp", {"ts": "yesterday"}, "ts='yesterday'"),
    ("bad_timestamp", {"ts": None}, "ts=null"),
    ("bad_timestamp", {"ts": "2026-02-30T10:00:00Z"}, "ts='2026-02-30T10:00:00Z'"),
    ("bad_timestamp", {"ts": "2026-13-01T10:00:00"}, "ts='2026-13-01T10:00:00'"),
    ("unknown_action", {"action": "like"}, "action='like'"),
    ("unknown_action", {"action": "VIEW"}, "action='VIEW'"),  # the vocabulary is lower case
    ("unknown_item_type", {"item_type": "podcast"}, "item_type='podcast'"),
    ("unknown_item_type", {"item_type": None}, "item_type=null"),
    ("watch_ratio_out_of_range", {"watch_ratio": 100.5}, "watch_ratio='100.5'"),
    ("watch_ratio_out_of_range", {"watch_ratio": -0.1}, "watch_ratio='-0.1'"),
    ("watch_ratio_out_of_range", {"watch_ratio": "NaN"}, "watch_ratio='NaN'"),
    ("watch_ratio_out_of_range", {"watch_ratio": "half"}, "watch_ratio='half'"),
    ("bad_amount", {"amount": -5}, "amount='-5'"),
    ("bad_amount", {"amount": "nan"}, "amount='nan'"),
    ("bad_amount", {"amount": "inf"}, "amount='inf'"),
    ("bad_amount", {"amount": "5 EUR"}, "amount='5 EUR'"),
]


@pytest.mark.parametrize(("reason", "fields", "detail"), CSV_CASES)
def test_each_csv_fault_is_counted_with_file_line_field_and_value(
    tmp_path: Path, reason: str, fields: dict[str, Any], detail: str
) -> None:
    rows = event_rows(20)
    rows[9] = event_row(9, **fields)
    path = write_events_csv(tmp_path / "events.csv", rows)

    table, report = load_all(path)

    assert_only(report, reason, 1)
    assert report.examples[reason] == [BadRow(reason, str(path), 11, detail)]
    assert table.num_rows == report.rows_accepted == 19
    assert "e0009" not in table.column("event_id").to_pylist()


@pytest.mark.parametrize(
    ("reason", "fields", "detail"),
    [
        ("missing_id", {"user_id": ""}, "user_id=''"),
        ("bad_timestamp", {"ts": None}, "ts=null"),
        ("unknown_action", {"action": "like"}, "action='like'"),
        ("unknown_item_type", {"item_type": "podcast"}, "item_type='podcast'"),
        ("watch_ratio_out_of_range", {"watch_ratio": 100.5}, "watch_ratio=100.5"),
        ("watch_ratio_out_of_range", {"watch_ratio": float("nan")}, "watch_ratio=nan"),
        ("bad_amount", {"amount": -5.0}, "amount=-5.0"),
        ("bad_amount", {"amount": float("nan")}, "amount=nan"),
    ],
)
def test_each_parquet_fault_is_counted_with_its_row_number(
    tmp_path: Path, reason: str, fields: dict[str, Any], detail: str
) -> None:
    rows = event_rows(20, amount=1.0)
    rows[9] = event_row(9, **{"amount": 1.0, **fields})
    path = write_events_parquet(tmp_path / "events.parquet", rows)

    table, report = load_all(path)

    assert_only(report, reason, 1)
    assert report.examples[reason] == [BadRow(reason, str(path), 10, detail)]
    assert table.num_rows == 19


def test_a_repeated_event_id_keeps_the_first_and_names_where_it_was_kept(tmp_path: Path) -> None:
    rows = event_rows(20)
    rows[9] = event_row(9, event_id="e0002")
    rows[15] = event_row(15, event_id="e0002")
    path = write_events_csv(tmp_path / "events.csv", rows)

    table, report = load_all(path)

    assert_only(report, "duplicate_event_id", 2)
    kept = f"event_id='e0002', first kept at {path}:4"
    assert report.examples["duplicate_event_id"] == [
        BadRow("duplicate_event_id", str(path), 11, kept),
        BadRow("duplicate_event_id", str(path), 17, kept),
    ]
    assert table.column("event_id").to_pylist().count("e0002") == 1
    assert table.column("ts").to_pylist()[2] == rows[2]["ts"]  # the first one stayed


def test_a_duplicate_of_a_bad_row_is_kept_since_the_bad_row_is_not(tmp_path: Path) -> None:
    rows = event_rows(10)
    rows[3] = event_row(3, event_id="e0008", action="like")
    path = write_events_csv(tmp_path / "events.csv", rows)

    table, report = load_all(path)

    assert_only(report, "unknown_action", 1)
    assert table.column("event_id").to_pylist().count("e0008") == 1


def test_a_row_with_several_faults_counts_once_under_the_first_reason(tmp_path: Path) -> None:
    rows = event_rows(5)
    rows[1] = event_row(1, user_id="", action="like", watch_ratio=700, event_id="e0000")
    rows[2] = event_row(2, action="like", item_type="podcast", amount=-1)
    path = write_events_csv(tmp_path / "events.csv", rows)

    _, report = load_all(path)

    assert report.bad_counts["missing_id"] == 1
    assert report.bad_counts["unknown_action"] == 1
    assert report.rows_bad == 2
    assert report.rows_accepted == 3


def test_examples_keep_the_first_five_rows_of_a_reason_in_order(tmp_path: Path) -> None:
    rows = event_rows(30)
    for i in range(10, 17):
        rows[i] = event_row(i, action="like")
    path = write_events_csv(tmp_path / "events.csv", rows)

    _, report = load_all(path)

    assert report.bad_counts["unknown_action"] == 7
    assert [bad.line for bad in report.examples["unknown_action"]] == [12, 13, 14, 15, 16]
    assert all(report.examples[r] == [] for r in report.examples if r != "unknown_action")


def test_a_bad_share_at_the_threshold_passes(tmp_path: Path) -> None:
    rows = event_rows(100)
    rows[50] = event_row(50, action="like")
    path = write_events_csv(tmp_path / "events.csv", rows)

    table, report = load_events(path)  # default max_bad_share 0.01: 1 of 100 is not over

    assert report.bad_share == pytest.approx(0.01)
    assert table.num_rows == 99


def test_a_bad_share_over_the_threshold_raises_naming_the_first_bad_row(tmp_path: Path) -> None:
    rows = event_rows(100)
    rows[70] = event_row(70, action="like")
    rows[40] = event_row(40, amount=-3)
    path = write_events_csv(tmp_path / "events.csv", rows)

    with pytest.raises(EventDataError) as raised:
        load_events(path)

    message = str(raised.value)
    assert f"{path}:42: bad_amount: amount='-3'" in message  # row 40 comes before row 70
    assert "2 of 100 events are bad" in message
    assert "bad by reason: unknown_action=1, bad_amount=1" in message
    assert raised.value.report is not None
    assert raised.value.report.rows_bad == 2


def test_max_bad_share_zero_rejects_a_single_bad_row(tmp_path: Path) -> None:
    rows = event_rows(1000)
    rows[999] = event_row(999, item_type="podcast")
    path = write_events_parquet(tmp_path / "events.parquet", rows)

    with pytest.raises(EventDataError, match=r"events\.parquet:1000: unknown_item_type"):
        load_events(path, max_bad_share=0.0)


@pytest.mark.parametrize("share", [-0.1, 1.5, float("nan")])
def test_max_bad_share_outside_zero_to_one_is_refused(tmp_path: Path, share: float) -> None:
    path = write_events_csv(tmp_path / "events.csv", event_rows(3))
    with pytest.raises(ValueError, match="max_bad_share"):
        load_events(path, max_bad_share=share)


def test_csv_timestamps_may_be_iso_with_or_without_zone_or_unix_seconds(tmp_path: Path) -> None:
    stamps = {
        "2026-11-01T12:00:00Z": NOON,
        "2026-11-01T12:00:00": NOON,  # no zone means UTC
        "2026-11-01 13:30:00+01:30": NOON,
        "2026-11-01T07:00:00-05:00": NOON,
        "2026-11-01T12:00:00.123456789Z": NOON + timedelta(milliseconds=123),  # truncated
        "2026-11-01": NOON - timedelta(hours=12),
        str(NOON_UNIX): NOON,
        f"{NOON_UNIX}.5": NOON + timedelta(milliseconds=500),
    }
    rows = [event_row(i, ts=text) for i, text in enumerate(stamps)]
    path = write_events_csv(tmp_path / "events.csv", rows)

    table, report = load_events(path, max_bad_share=0.0)

    assert table.schema == EVENT_SCHEMA
    assert table.column("ts").to_pylist() == list(stamps.values())
    assert report.rows_accepted == len(stamps)


def test_a_csv_loads_into_the_normalised_schema_with_its_values(tmp_path: Path) -> None:
    rows = [event_row(0, amount=12.5, item_type="product", action="purchase"), event_row(1)]
    path = write_events_csv(tmp_path / "events.csv", rows)

    table, _ = load_events(path)

    assert table.schema == EVENT_SCHEMA
    got = table.to_pylist()
    assert got[0] == {**rows[0], "ts": rows[0]["ts"]}
    assert got[1]["watch_ratio"] == 0.5
    assert got[1]["amount"] is None


def test_csv_lines_are_physical_lines_despite_blank_lines_and_crlf(tmp_path: Path) -> None:
    good = write_events_csv(tmp_path / "good.csv", event_rows(2)).read_text().splitlines()
    bad = write_events_csv(tmp_path / "bad.csv", [event_row(5, action="like")])
    bad_line = bad.read_text().splitlines()[1]
    path = tmp_path / "events.csv"
    path.write_bytes("\r\n".join([good[0], good[1], "", "", good[2], bad_line, ""]).encode())

    _, report = load_all(path)

    assert report.examples["unknown_action"][0].line == 6


def test_csv_lines_count_a_quoted_value_that_spans_two_lines(tmp_path: Path) -> None:
    rows = event_rows(4)
    rows[1] = event_row(1, request_id="two\nlines")
    rows[3] = event_row(3, action="like")
    path = write_events_csv(tmp_path / "events.csv", rows)

    table, report = load_all(path)

    assert report.examples["unknown_action"][0].line == 6
    assert table.column("request_id").to_pylist()[1] == "two\nlines"


def test_quoted_values_spanning_lines_load_at_any_size(tmp_path: Path) -> None:
    rows = event_rows(20_000, request_id="two\nlines")  # 2 MB: several of Arrow's blocks
    rows[-1] = event_row(19_999, action="like")
    path = write_events_csv(tmp_path / "events.csv", rows)

    table, report = load_all(path)

    assert table.num_rows == 19_999
    assert report.examples["unknown_action"][0].line == 1 + 2 * 19_999 + 1


def test_a_directory_of_parquet_partitions_finds_duplicates_across_files(tmp_path: Path) -> None:
    root = tmp_path / "events"
    day1 = write_events_parquet(root / "day=2026-11-01" / "part-0.parquet", event_rows(10))
    day2_rows = event_rows(10, start=10)
    day2_rows[6] = event_row(16, event_id="e0003")
    day2 = write_events_parquet(root / "day=2026-11-02" / "part-0.parquet", day2_rows)
    (root / "_SUCCESS").write_text("")
    (root / "day=2026-11-01" / ".part-0.parquet.crc").write_bytes(b"not parquet")

    table, report = load_all(root)

    assert report.files == [str(day1), str(day2)]
    assert_only(report, "duplicate_event_id", 1)
    assert report.examples["duplicate_event_id"] == [
        BadRow("duplicate_event_id", str(day2), 7, f"event_id='e0003', first kept at {day1}:4")
    ]
    expected = [f"e{i:04d}" for i in range(20) if i != 16]
    assert table.column("event_id").to_pylist() == expected


@pytest.mark.parametrize("duplicates", [321, 1500])  # the good rows sliced out, or copied
def test_synthetic_partitions_with_planted_duplicates_lose_exactly_those(
    tmp_path: Path, duplicates: int
) -> None:
    write_event_partitions(
        tmp_path, n_rows=20_000, n_days=4, n_users=500, n_items=300, duplicates=duplicates
    )

    table, report = load_events(tmp_path, max_bad_share=0.1)

    assert_only(report, "duplicate_event_id", duplicates)
    assert table.num_rows == 20_000 - duplicates
    assert table.schema == EVENT_SCHEMA
    assert len(set(table.column("event_id").to_pylist())) == table.num_rows


def test_parquet_columns_are_normalised_and_missing_optional_ones_are_null(tmp_path: Path) -> None:
    raw = pa.table(
        {
            "event_id": ["a", "b"],
            "ts": pa.array([NOON.replace(tzinfo=None)] * 2, pa.timestamp("us")),  # naive: UTC
            "user_id": pa.array([7, 8], pa.int64()),
            "item_id": pa.array(["v1", "v2"]).dictionary_encode(),
            "item_type": ["video", "product"],
            "action": ["view", "click"],
            "extra": [1, 2],
        }
    )
    path = tmp_path / "events.parquet"
    pq.write_table(raw, path)

    table, report = load_events(path, max_bad_share=0.0)

    assert table.schema == EVENT_SCHEMA
    assert table.column("ts").to_pylist() == [NOON, NOON]
    assert table.column("user_id").to_pylist() == ["7", "8"]
    assert table.column("item_id").to_pylist() == ["v1", "v2"]
    assert table.column("watch_ratio").null_count == 2
    assert table.column("amount").null_count == 2
    assert report.rows_accepted == 2


def test_parquet_ts_may_be_unix_seconds_or_a_zoned_timestamp(tmp_path: Path) -> None:
    seconds = write_events_parquet(
        tmp_path / "seconds.parquet", [event_row(0, ts=NOON_UNIX), event_row(1, ts=None)]
    )
    berlin = pa.array([NOON], pa.timestamp("s", tz="Europe/Berlin"))
    zoned = tmp_path / "zoned.parquet"
    pq.write_table(
        pa.table({**{k: [v] for k, v in event_row(2).items() if k != "ts"}, "ts": berlin}), zoned
    )

    from_seconds, report = load_all(seconds)
    from_zoned, _ = load_all(zoned)

    assert from_seconds.column("ts").to_pylist() == [NOON]
    assert_only(report, "bad_timestamp", 1)
    assert from_zoned.column("ts").to_pylist() == [NOON]


def test_a_movielens_file_becomes_video_views_and_bad_ratings_are_counted(tmp_path: Path) -> None:
    path = write_movielens(
        tmp_path / "u.data",
        [
            (1, 10, 5, 881250949),
            (2, 20, 3, 881250950),
            (3, 30, 0, 881250951),
            (4, 40, 6, 881250952),
            (5, 50, "x", 881250953),
            (6, 60, 4, "soon"),
            ("", 70, 4, 881250954),
            (8, 80, 1, 881250955),
        ],
    )

    table, report = load_all(path)

    assert table.schema == EVENT_SCHEMA
    assert table.to_pylist()[1] == {
        "event_id": "ml-2",
        "ts": datetime.fromtimestamp(881250950, UTC),
        "user_id": "2",
        "item_id": "20",
        "item_type": "video",
        "action": "view",
        "watch_ratio": pytest.approx(0.6),
        "request_id": None,
        "amount": None,
    }
    assert table.column("event_id").to_pylist() == ["ml-1", "ml-2", "ml-8"]
    assert table.column("watch_ratio").to_pylist() == pytest.approx([1.0, 0.6, 0.2])
    assert report.bad_counts["bad_rating"] == 3
    assert [(b.line, b.detail) for b in report.examples["bad_rating"]] == [
        (3, "rating='0'"),
        (4, "rating='6'"),
        (5, "rating='x'"),
    ]
    assert report.examples["bad_timestamp"] == [BadRow("bad_timestamp", str(path), 6, "ts='soon'")]
    assert report.bad_counts["missing_id"] == 1
    assert report.rows_read == 8


def test_movielens_event_ids_follow_physical_lines(tmp_path: Path) -> None:
    path = tmp_path / "ratings.tsv"
    path.write_text("1\t10\t5\t881250949\n\n2\t20\t3\t881250950\n")

    table, _ = load_events(path, EventFormat.MOVIELENS)

    assert table.column("event_id").to_pylist() == ["ml-1", "ml-3"]


def test_the_real_movielens_100k_file_loads_whole() -> None:
    if not MOVIELENS_100K.is_file():
        pytest.skip(f"MovieLens-100K not found at {MOVIELENS_100K.resolve()}")

    table, report = load_events(MOVIELENS_100K)

    assert report.rows_read == report.rows_accepted == table.num_rows == 100_000
    assert len(set(table.column("user_id").to_pylist())) == 943
    assert len(set(table.column("item_id").to_pylist())) == 1_682


def test_rows_read_are_accepted_or_counted_across_files_and_reasons(tmp_path: Path) -> None:
    first = event_rows(50)
    first[3] = event_row(3, user_id=None)
    first[4] = event_row(4, ts="never")
    first[5] = event_row(5, watch_ratio=200)
    second = event_rows(50, start=50)
    second[0] = event_row(50, event_id="e0001")
    second[1] = event_row(51, item_type="podcast")
    second[2] = event_row(52, amount=-1)
    second[3] = event_row(53, action="share")
    write_events_csv(tmp_path / "a.csv", first)
    write_events_csv(tmp_path / "b.csv", second)

    table, report = load_all(tmp_path)

    assert report.rows_read == 100
    assert report.rows_accepted == table.num_rows == 93
    assert report.rows_read == report.rows_accepted + sum(report.bad_counts.values())
    assert sorted(n for n in report.bad_counts.values() if n) == [1] * 7
    assert report.bad_counts["bad_rating"] == 0


def test_bad_first_and_last_rows_leave_exactly_the_rows_between(tmp_path: Path) -> None:
    rows = event_rows(6)
    rows[0] = event_row(0, action="like")
    rows[5] = event_row(5, action="like")
    rows[3] = event_row(3, action="like")
    path = write_events_parquet(tmp_path / "events.parquet", rows)

    table, _ = load_all(path)

    assert table.column("event_id").to_pylist() == ["e0001", "e0002", "e0004"]


def test_only_bad_rows_leave_an_empty_table_in_the_schema(tmp_path: Path) -> None:
    path = write_events_csv(tmp_path / "events.csv", event_rows(3, action="like"))

    table, report = load_all(path)

    assert table.num_rows == report.rows_accepted == 0
    assert table.schema == EVENT_SCHEMA


def test_the_report_is_json_ready_and_its_summary_names_each_reason(tmp_path: Path) -> None:
    rows = event_rows(10)
    rows[2] = event_row(2, action="like")
    path = write_events_csv(tmp_path / "events.csv", rows)

    _, report = load_all(path)
    as_json = json.loads(json.dumps(report.to_dict()))

    assert as_json["rows_bad"] == 1
    assert as_json["bad_share"] == pytest.approx(0.1)
    assert as_json["examples"]["unknown_action"] == [
        {"reason": "unknown_action", "file": str(path), "line": 4, "detail": "action='like'"}
    ]
    summary = report.summary()
    assert "10 rows read from 1 file(s), 9 accepted, 1 bad (10%)" in summary
    assert f"unknown_action: 1, e.g. {path}:4 action='like'" in summary
    assert "missing_id" not in summary


def test_a_header_only_csv_loads_no_rows(tmp_path: Path) -> None:
    table, report = load_events(write_events_csv(tmp_path / "events.csv", []))
    assert table.num_rows == report.rows_read == 0
    assert table.schema == EVENT_SCHEMA


def test_a_path_that_does_not_exist_is_named(tmp_path: Path) -> None:
    with pytest.raises(EventDataError, match="nowhere.*no such file"):
        load_events(tmp_path / "nowhere")


def test_an_empty_directory_is_named(tmp_path: Path) -> None:
    (tmp_path / "_SUCCESS").write_text("")
    with pytest.raises(EventDataError, match=f"{tmp_path}: directory holds no event files"):
        load_events(tmp_path)


def test_a_file_in_an_unknown_format_is_named(tmp_path: Path) -> None:
    write_events_csv(tmp_path / "a.csv", event_rows(2))
    (tmp_path / "b.json").write_text("{}")
    with pytest.raises(EventDataError, match=r"b\.json: unknown event file format"):
        load_events(tmp_path)


@pytest.mark.parametrize("writer", [write_events_csv, write_events_parquet])
def test_a_missing_required_column_is_named_with_its_file(tmp_path: Path, writer: Any) -> None:
    columns = ["event_id", "ts", "user_id", "item_type", "action", "watch_ratio"]
    path = writer(
        tmp_path / ("events" + (".csv" if writer is write_events_csv else ".parquet")),
        event_rows(3),
        columns=columns,
    )
    with pytest.raises(EventDataError, match=f"{path}: missing required column.*item_id"):
        load_events(path)


def test_a_corrupt_parquet_file_is_named(tmp_path: Path) -> None:
    good = write_events_parquet(tmp_path / "good.parquet", event_rows(100))
    cut = tmp_path / "cut.parquet"
    cut.write_bytes(good.read_bytes()[:-100])
    with pytest.raises(EventDataError, match=f"{cut}: cannot read Parquet"):
        load_events(cut)


def test_a_ragged_csv_row_is_named_with_its_line(tmp_path: Path) -> None:
    lines = write_events_csv(tmp_path / "good.csv", event_rows(3)).read_text().splitlines()
    path = tmp_path / "events.csv"
    path.write_text("\n".join([lines[0], lines[1], "", lines[2], "e9,2026-11-01,u1", lines[3]]))
    with pytest.raises(EventDataError, match=f"{path}:5: cannot parse"):
        load_events(path)


def test_an_empty_csv_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text("")
    with pytest.raises(EventDataError, match=f"{path}: empty CSV file"):
        load_events(path)


def test_string_hashes_read_sliced_chunks_and_mixed_lengths() -> None:
    values = ["x", "abc", "a-much-longer-event-id", "abc", "", "x", "abd", "e0000000001"]
    sliced = pa.chunked_array([pa.array(["pad", *values]).slice(1)])

    hashes = string_hashes(sliced)

    assert hashes.tolist() == string_hashes(pa.chunked_array([values])).tolist()
    by_value = dict(zip(values, hashes.tolist(), strict=True))
    assert len(set(by_value.values())) == len(by_value)  # distinct strings, distinct hashes
    assert hashes[1] == hashes[3] and hashes[0] == hashes[5]


def test_repeats_compares_values_exactly_whatever_the_hashes_said() -> None:
    values = pa.chunked_array([["a", "b", "a"], ["c", "b", "a"]])
    rows = pa.array(range(6)).to_numpy()
    later, kept = repeats(values, rows)
    assert (later.tolist(), kept.tolist()) == ([2, 4, 5], [0, 1, 0])
    # Candidates picked by a (colliding) hash need not all repeat: "c" alone is not one.
    later, kept = repeats(values, rows[[0, 3, 5]])
    assert (later.tolist(), kept.tolist()) == ([5], [0])


@pytest.mark.parametrize("ratio", [1.0, 1.5, 5.0, 100.0])
def test_a_replay_watch_ratio_is_accepted_and_kept_as_given(tmp_path: Path, ratio: float) -> None:
    """A ratio above 1 is a replay (real logs: about 14% of KuaiRand's rows): valid up to
    recsvc.contract.domain.WATCH_RATIO_MAX; training caps it in confidence, not on reading."""
    path = write_events_csv(tmp_path / "events.csv", [event_row(0, watch_ratio=ratio)])

    table, report = load_events(path, max_bad_share=0.0)

    assert report.rows_bad == 0
    assert table.column("watch_ratio").to_pylist() == [ratio]
