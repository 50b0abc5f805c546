"""`recsvc audit USER`: every product card the user was served, with the checks that let it
through, from the drained card partitions and the card stream not drained yet
(training.data.cards). Exit 1 when a card's record lacks a check or fails one."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from training.cli.options import Json, emit, fail

CardsDir = Annotated[
    Path, typer.Option(help="Cards directory (day partitions): every card served, with its checks.")
]


def audit(
    user: Annotated[str, typer.Argument(help="The user whose cards to list.")],
    since: Annotated[
        str | None, typer.Option(help="Only cards served from this ISO date or time (UTC).")
    ] = None,
    cards: CardsDir = Path("data/cards"),
    json_output: Json = False,
) -> None:
    """List a user's product cards with why each was allowed: the product's risk level
    against what the user may see, held or not when it can be held once, the day's count
    against the daily cap, the disclosure, its category's count against the category's cap,
    the campaign rules that acted on it, the model and the surface.

    Reads the drained partitions under --cards and, when RECSVC_REDIS_URL is set, the cards
    not drained yet. Exit 1 when any card's record lacks a check or fails one."""
    from training.data.cards import audited, cards_in_partitions

    start = _since(since)
    rows = cards_in_partitions(cards, user, start)
    sources = [f"{cards} ({len(rows)} cards)"]
    undrained = _undrained(user, start)
    if undrained is None:
        sources.append("not the stream (RECSVC_REDIS_URL is not set)")
    else:
        rows += undrained
        sources.append(f"the undrained stream ({len(undrained)} cards)")
    checked = audited(rows)
    failing = [row for row in checked if row["problems"]]
    lines = [
        f"{len(checked)} cards served to {user} (from {' and '.join(sources)}); "
        f"{len(failing)} with a check missing or failed"
    ]
    lines += [_line(row) for row in checked]
    emit({"user_id": user, "since": since, "cards": checked, "failing": len(failing)},
         "\n".join(lines), json_output)  # fmt: skip
    if failing:
        raise typer.Exit(code=1)


def _since(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not an ISO date or time, e.g. 2026-12-01", param_hint="--since"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _undrained(user: str, since: datetime | None) -> list[dict[str, Any]] | None:
    """The user's cards in the stream; None without a Redis to read."""
    from recsvc.contract.keys import Keys
    from recsvc.contract.shards import LayoutError
    from recsvc.service.settings import SettingsError, load_settings
    from recsvc.store.client import REDIS_ERRORS, sync_client
    from recsvc.store.layouts import user_shards
    from training.data.cards import STREAM_CHUNK, cards_in_stream

    try:
        settings = load_settings()
    except SettingsError as exc:
        fail(str(exc))
    if settings.redis_url is None:
        return None
    client = sync_client(settings.redis_url, settings.redis_cluster, timeout=30)
    found: list[dict[str, Any]] = []
    try:
        for stream in user_shards(client, Keys(settings.redis_prefix), "cards", user):
            start = "-"
            while True:
                entries: list[Any] = client.xrange(stream, min=start, count=STREAM_CHUNK)  # type: ignore[assignment]
                fields = [{_text(k): _text(v) for k, v in entry.items()} for _, entry in entries]
                found += cards_in_stream(fields, user, since)
                if len(entries) < STREAM_CHUNK:
                    break
                start = "(" + _text(entries[-1][0])
        return found
    except (*REDIS_ERRORS, LayoutError) as exc:
        fail(f"cannot read the card stream: {exc}")
    finally:
        client.close()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _line(row: dict[str, Any]) -> str:
    ts = row["ts"].isoformat(timespec="seconds") if row["ts"] is not None else "?"
    tolerance = "unknown" if row["risk_tolerance"] is None else row["risk_tolerance"]
    checks = (
        f"risk {row['risk_level']} (tolerance {tolerance}, allowed up to "
        f"{row['risk_allowed_up_to']}); {'held' if row['held'] else 'not held'}"
        f"{' (holdable once)' if row['holdable_once'] else ''}; card {row['cap_count']} of "
        f"{row['daily_cap']} today; disclosure "
        f"{'shown' if row['disclosure_shown'] else 'none'}"
        f"{' (required)' if row['disclosure_required'] else ''}; {row['category']} card "
        f"{row['category_count']} today"
        f"{'' if row['category_cap'] in (None, -1) else ' of ' + str(row['category_cap'])}"
        f"{'; campaign rules ' + row['campaigns'] if row.get('campaigns') else ''}"
    )
    verdict = "OK" if not row["problems"] else "PROBLEM: " + "; ".join(row["problems"])
    return (
        f"{ts} {row['surface']} rank {row['rank']} {row['video_id']} -> {row['product_id']} "
        f"[model {row['model_version']}] {checks}: {verdict}"
    )
