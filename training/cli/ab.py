"""`recsvc ab report`: an experiment's variants compared (training.ab.report does the work);
`recsvc ab plan`: the effects an experiment could detect, from the logged history
(training.ab.plan)."""

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
    currency: Annotated[
        str,
        typer.Option(help="The currency of the events' amounts (an ISO 4217 code), for display."),
    ] = "EUR",
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
            currency=currency,
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


def ab_plan(
    events: Annotated[Path, typer.Option(help="Events directory (day partitions).")] = Path(
        "data/events"
    ),
    exposures: Annotated[
        Path, typer.Option(help="Exposures directory (day partitions, from recsvc drain).")
    ] = Path("data/exposures"),
    alpha: Annotated[float, typer.Option(help="Significance level.", min=0.0001, max=0.5)] = 0.05,
    power: Annotated[
        float, typer.Option(help="Chance to detect the effect.", min=0.5, max=0.99)
    ] = 0.8,
    share: Annotated[
        float, typer.Option(help="Share of users in the treatment.", min=0.01, max=0.99)
    ] = 0.5,
    effect: Annotated[
        float, typer.Option(help="The effect to plan for (0.05: +5%).", min=0.001, max=10.0)
    ] = 0.05,
    days: Annotated[
        list[int] | None, typer.Option("--days", help="Durations to give the MDE of.", min=1)
    ] = None,
    comparisons: Annotated[
        int, typer.Option(help="Divide alpha by this (e.g. 6: Holm's worst case).", min=1)
    ] = 1,
    as_json: Json = False,
) -> None:
    """The smallest effect each metric would detect after 7, 14 and 28 days, and the days an
    effect needs, from the drained exposures and events (every user as one group)."""
    from training.ab.plan import plan, plan_text
    from training.ab.report import ReportError, load_exposures
    from training.data.events import load_events

    try:
        shown = load_exposures(exposures)
        outcomes, _ = load_events(events)
        result = plan(
            shown, outcomes, alpha=alpha, power=power, share=share, effect=effect,
            days=tuple(days or (7, 14, 28)), comparisons=comparisons,
        )  # fmt: skip
    except (ReportError, EventDataError, OSError, ValueError) as exc:
        fail(str(exc))
    emit(result, plan_text(result), as_json)
