"""Structured logs: one JSON object per line, carrying the request id when there is one.

A logged exception is its type and its traceback's frames, never its message (nor those of
its causes): a message may quote request or profile content (a pydantic ValidationError lists
the input values), and docs/api.md promises request and profile contents are never logged.
"""

from __future__ import annotations

import itertools
import json
import logging
import traceback
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

# Ids of requests and feeds: a random prefix per process and a counter; unique without a
# syscall each (uuid4 reads the OS's randomness every time).
_ID_PREFIX = uuid.uuid4().hex[:16]
_id_counter = itertools.count(1)
_CAUSE = "\n\nThe above exception was the direct cause of the following exception:\n\n"
_CONTEXT = "\n\nDuring handling of the above exception, another exception occurred:\n\n"


def new_id() -> str:
    return f"{_ID_PREFIX}{next(_id_counter):016x}"


def _type_name(error: BaseException) -> str:
    kind = type(error)
    name = (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )
    if isinstance(error, BaseExceptionGroup):
        name += f" ({', '.join(_type_name(inner) for inner in error.exceptions)})"
    return name


def describe_exception(error: BaseException) -> str:
    """The traceback as Python prints it, causes first, with each exception's message left
    out: where it failed and with what type, but none of the data it failed on."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        frames = "".join(traceback.format_list(traceback.extract_tb(current.__traceback__)))
        parts.append(f"Traceback (most recent call last):\n{frames}{_type_name(current)}")
        if current.__cause__ is not None:
            parts.append(_CAUSE)
            current = current.__cause__
        elif current.__context__ is not None and not current.__suppress_context__:
            parts.append(_CONTEXT)
            current = current.__context__
        else:
            current = None
    if len(parts) % 2 == 0:  # a cycle ended the walk right after a link
        parts.pop()
    return "".join(reversed(parts))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        rid = request_id.get()
        if rid:
            entry["request_id"] = rid
        if record.exc_info and record.exc_info[1] is not None:
            entry["exception"] = describe_exception(record.exc_info[1])
        return json.dumps(entry)


class TextFormatter(logging.Formatter):
    """`level logger message key=value...`, and an exception as `describe_exception` gives it
    (never the cached `exc_text` another handler's formatter may have filled with the message)."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{record.levelname} {record.name} {record.getMessage()}"
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line += "".join(f" {key}={value}" for key, value in fields.items())
        if record.exc_info and record.exc_info[1] is not None:
            line += "\n" + describe_exception(record.exc_info[1])
        return line


def configure(json_lines: bool, level: int = logging.INFO, *, process: bool = False) -> None:
    """Route the recsvc and uvicorn loggers to stderr, as JSON lines or plain text. What is
    logged never holds an API key or a profile's contents: keys appear as digest labels
    (recsvc.edge.auth), users by id only, exceptions without their messages.

    `process`: the whole process is the service's (`recsvc serve`): the root logger (asyncio,
    libraries) and Python's warnings get the same format, so every line on stderr is one."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if json_lines else TextFormatter())
    for name in ("recsvc", "uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level)
        logger.propagate = False
    if process:
        root = logging.getLogger()
        root.handlers[:] = [handler]
        root.setLevel(logging.WARNING)  # other libraries: what needs an operator's eye
        logging.captureWarnings(True)
