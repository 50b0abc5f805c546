"""What the command modules of the `recsvc` CLI share: the settings a command needs, failing
with a message and an exit code, and running a coroutine against the configured Redis."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, NoReturn, TypeVar

import typer

from recsvc.contract.keys import Keys
from recsvc.service.settings import Settings, SettingsError, load_settings
from recsvc.store.client import REDIS_ERRORS, async_client

T = TypeVar("T")

Json = Annotated[bool, typer.Option("--json", help="End with one JSON object on the last line.")]


def settings_with_redis() -> Settings:
    """The RECSVC_* settings, with a Redis URL; a bad or missing one is exit 2 naming it."""
    try:
        settings = load_settings()
    except SettingsError as exc:
        fail(str(exc), code=2)
    if settings.redis_url is None:
        fail("RECSVC_REDIS_URL: not set (the Redis to use, e.g. redis://127.0.0.1:6379/0)", 2)
    return settings


def redacted(url: str) -> str:
    """A Redis URL fit for a log: its password (redis://user:secret@host) replaced."""
    return re.sub(r"(?<=://)([^:@/]*):[^@/]*@", r"\1:***@", url)


def fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"recsvc: {message}", err=True)
    raise typer.Exit(code)


def run_with_redis(settings: Settings, work: Callable[[Any, Keys], Awaitable[T]]) -> T:
    """`work(client, keys)` against the settings' Redis; a Redis or disk error fails naming it."""

    async def main() -> T:
        client = async_client(settings.redis_url or "", settings.redis_cluster, timeout=30)
        try:
            return await work(client, Keys(settings.redis_prefix))
        finally:
            await client.aclose()

    try:
        return asyncio.run(main())
    except REDIS_ERRORS as exc:
        fail(f"Redis at {redacted(settings.redis_url or '')}: {exc}")
    except OSError as exc:  # the disk (a models directory), or a socket error redis let through
        fail(str(exc))
