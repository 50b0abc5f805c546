"""Log formatting: exceptions are logged by type and frames, never by message."""

from __future__ import annotations

import logging
import sys

import pytest

from recsvc.service.logs import JsonFormatter, TextFormatter, describe_exception

MARKERS = ("private-banking", "p-arrears", "acct-secret")


def load_profile() -> None:
    raise ValueError(f"bad holdings {MARKERS[1]}")


def answer_profile() -> None:
    try:
        load_profile()
    except ValueError as exc:
        try:
            raise KeyError(MARKERS[0]) from exc
        except KeyError:
            raise RuntimeError(f"while reporting {MARKERS[2]}")  # noqa: B904 (a context, on purpose)


def failing() -> BaseException:
    try:
        answer_profile()
    except RuntimeError as exc:
        return exc
    raise AssertionError("did not fail")


def test_an_exception_is_described_by_its_frames_and_types_without_any_message() -> None:
    text = describe_exception(failing())
    for marker in MARKERS:
        assert marker not in text
    # The chain as Python prints it, causes first, each with its frames and type.
    assert text.index("in load_profile") < text.index("\nValueError\n")
    assert "The above exception was the direct cause" in text
    assert "\nKeyError\n" in text
    assert "During handling of the above exception" in text
    assert text.rstrip().endswith("RuntimeError")


def test_a_group_names_the_types_it_holds() -> None:
    group = ExceptionGroup("two failed", [ValueError(MARKERS[0]), OSError(MARKERS[1])])
    text = describe_exception(group)
    assert "ExceptionGroup (ValueError, OSError)" in text
    assert not any(marker in text for marker in MARKERS)


@pytest.mark.parametrize("formatter", [JsonFormatter(), TextFormatter()], ids=["json", "text"])
def test_both_formats_leave_the_message_out_even_when_another_handler_cached_it(
    formatter: logging.Formatter,
) -> None:
    error = failing()
    record = logging.LogRecord(
        "uvicorn.error", logging.ERROR, __file__, 1, "Exception in ASGI application\n", None,
        (type(error), error, error.__traceback__),
    )  # fmt: skip
    logging.Formatter().format(record)  # e.g. pytest's handler: fills record.exc_text
    assert MARKERS[2] in (record.exc_text or "")
    line = formatter.format(record)
    assert "Exception in ASGI application" in line and "RuntimeError" in line
    assert not any(marker in line for marker in MARKERS), line
    assert sys.exc_info() == (None, None, None)
