"""`recsvc ab report`: an experiment's variants compared (training.ab.report does the work)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from training.cli.options import Json, emit, fail, service_settings
from training.data.events import EventDataError


def ab_report(
    experiment: Annotated[str, typer.Argument(help="The experiment's name.")],
    events: Annotated[Path, typer.Option(help="Events directory (day partitions).")] = Path(
        "data/events"
    ),
    exposures: Annotated[
        Path, typer.Option(help="Exposures directory (day partitions, from recsvc drain).")
    ] = Path("data/exposures"),
    definition: Annotated[
        Path | None,
        typer.Option(
            help="The experiments' TOML definition (default: the one in Redis, read through "
            "RECSVC_REDIS_URL and RECSVC_REDIS_PREFIX)."
        ),
    ] = None,
    window_hours: Annotated[
        float,
        typer.Option(
            help="Events without a feed's request id count this long after one.",
            min=0,
            max=24 * 366,
        ),
    ] = 24.0,
    alpha: Annotated[float, typer.Option(help="Significance level.", min=0.0001, max=0.5)] = 0.05,
    sequential: Annotated[
        bool,
        typer.Option(
            "--sequential", help="Always-valid p-values and intervals, for a report read daily."
        ),
    ] = False,
    videos: Annotated[
        Path | None,
        typer.Option(help="videos.jsonl with each video's duration_s (watch time; else 60 s)."),
    ] = None,
    as_json: Json = False,
    html: Annotated[
        Path | None,
        typer.Option(
            "--html",
            metavar="FILE",
            help="Also write the report as one self-contained HTML page, with a chart.",
        ),
    ] = None,
) -> None:
    """Compare an experiment's variants: per-metric differences, SRM check, attribution."""
    from datetime import timedelta

    from training.ab.report import (
        ReportError,
        build_report,
        find_experiment,
        load_durations,
        load_exposures,
        report_text,
    )
    from training.data.events import load_events

    try:
        note = None
        if definition is None:
            chosen, note = _from_redis(experiment)
        else:
            chosen = find_experiment(definition.read_text(encoding="utf-8"), experiment)
        shown = load_exposures(exposures)
        outcomes, loaded = load_events(events)
        durations = load_durations(videos) if videos is not None else None
        report = build_report(
            shown,
            outcomes,
            chosen,
            window=timedelta(hours=window_hours),
            durations=durations,
            alpha=alpha,
            sequential=sequential,
        )
    except (ReportError, EventDataError, OSError, UnicodeDecodeError) as exc:
        fail(str(exc))
    if loaded.rows_bad:
        report["notes"].append(f"{loaded.rows_bad:,} invalid event row(s) left out")
    if note:
        report["notes"].append(note)
    text = report_text(report)
    if html is not None:
        from training.ab.html import write_html

        try:
            write_html(report, html)
        except OSError as exc:
            fail(f"cannot write the HTML report {html}: {exc.strerror or exc}")
        text += f"\nHTML report written to {html}"
    emit(report, text, as_json)


def _from_redis(experiment: str) -> tuple[Any, str | None]:
    """The experiment from the definition in Redis, or from the newest one ever stored that
    has it (an experiment that has ended), through RECSVC_REDIS_URL and RECSVC_REDIS_PREFIX."""
    from recsvc.contract.keys import Keys
    from recsvc.store.client import REDIS_ERRORS, sync_client
    from training.ab.report import find_in_history

    settings = service_settings("the Redis that holds the experiments' definition")
    client = sync_client(settings.redis_url or "", settings.redis_cluster, timeout=30)
    keys = Keys(settings.redis_prefix)
    try:
        stored = client.get(keys.experiments_definition)
        history = client.lrange(keys.experiments_history, 0, -1)
    except REDIS_ERRORS as exc:
        fail(f"cannot read the experiments' definition from Redis: {exc}")
    finally:
        client.close()
    current = stored.decode() if isinstance(stored, bytes) else stored
    entries = [e.decode() if isinstance(e, bytes) else str(e) for e in history]  # type: ignore[union-attr]
    return find_in_history(experiment, current, entries)
