"""The development commands of the `recsvc` CLI: `synth` (a synthetic world), `simulate` (its
users against a running service) and `redis start/stop` (a private redis-server for demos).

Registered through the `recsvc.commands` entry point. This module imports nothing beyond
typer, so that it loads in the serving image: the world and the simulator need the training
extra's pyarrow and are imported inside the commands, which say so when it is missing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

Seed = Annotated[int, typer.Option(help="Random seed.")]
Json = Annotated[bool, typer.Option("--json", help="End with one JSON object on the last line.")]
TRAIN_EXTRA = "needs the 'train' extra (pip install 'recsvc[train]')"


def synth(
    out: Annotated[Path, typer.Option(help="Directory to write the world into.")] = Path(
        "data/world"
    ),
    users: Annotated[int, typer.Option(min=1)] = 20_000,
    videos: Annotated[int, typer.Option(min=1)] = 1_000,
    products: Annotated[int, typer.Option(min=1)] = 60,
    events: Annotated[int, typer.Option(min=1, help="Approximate number of events.")] = 400_000,
    days: Annotated[int, typer.Option(min=2)] = 14,
    fresh_share: Annotated[
        float, typer.Option(min=0, max=1, help="Share of videos published during the window.")
    ] = 0.0,
    news_share: Annotated[
        float, typer.Option(min=0, max=1, help="Share of videos that are news (fading).")
    ] = 0.0,
    news_half_life: Annotated[
        float, typer.Option(min=0.01, help="Hours in which a news video's appeal halves.")
    ] = 12.0,
    drift: Annotated[
        float, typer.Option(min=0, max=1, help="How far interests move over the window.")
    ] = 0.0,
    seed: Seed = 42,
    replace: Annotated[
        bool, typer.Option("--replace", help="Replace an existing world in --out.")
    ] = False,
) -> None:
    """Generate a synthetic financial-app world with a planted ground truth."""
    import shutil

    try:
        from sandbox.world.generate import WorldSpec, generate_world, write_world
    except ImportError as exc:
        _fail(f"synth {TRAIN_EXTRA}: {exc}")

    if out.exists() and not out.is_dir():
        raise typer.BadParameter(f"{out} exists and is not a directory", param_hint="--out")
    if replace and (out / "world.json").exists():
        shutil.rmtree(out)  # only ever a directory that holds a world
    try:
        spec = WorldSpec(
            users=users, videos=videos, products=products, events=events, days=days, seed=seed,
            fresh_share=fresh_share, news_share=news_share,
            news_half_life_hours=news_half_life, drift=drift,
        )  # fmt: skip
        write_world(generate_world(spec), out)
    except (OSError, ValueError) as exc:
        _fail(
            f"{exc} (--replace overwrites a previous world)"
            if isinstance(exc, FileExistsError)
            else str(exc)
        )
    typer.echo(
        f"wrote a world of {users:,} users, {videos:,} videos, {products:,} products to {out}"
    )


def simulate(
    world: Annotated[Path, typer.Option(help="The synthetic world whose users to simulate.")],
    url: Annotated[str, typer.Option(help="The running service.")] = "http://127.0.0.1:8000",
    days: Annotated[int, typer.Option(help="Simulated days.", min=1)] = 1,
    users_per_day: Annotated[
        int, typer.Option(help="Users asking for a feed each day.", min=1)
    ] = 1000,
    concurrency: Annotated[int, typer.Option(help="Users at once.", min=1, max=256)] = 16,
    experiments: Annotated[
        Path | None,
        typer.Option(help="An experiments definition (TOML) to serve first (admin endpoint)."),
    ] = None,
    clock_start: Annotated[
        str | None,
        typer.Option(
            help="Run on the world's clock from this instant (ISO 8601, or 'last-day': the "
            "start of the world's last day): each hour publishes its new videos through the "
            "catalogue API (admin key) and its users respond by the truth at that hour."
        ),
    ] = None,
    hour_seconds: Annotated[
        float, typer.Option(min=0.01, help="Wall seconds per simulated hour (with --clock-start).")
    ] = 4.0,
    seed: Seed = 0,
    json_output: Json = False,
) -> None:
    """Drive a running service with a world's users: they ask for feeds and respond to them
    (views, clicks on attached products, purchases) by the world's ground truth."""
    try:
        from sandbox.simulate import Clock, load_experiments, world_instant
        from sandbox.simulate import simulate as run_simulation
    except ImportError as exc:
        _fail(f"simulate {TRAIN_EXTRA}: {exc}")

    if not (world / "truth.npz").is_file():
        raise typer.BadParameter(f"{world} is not a world (no truth.npz)", param_hint="--world")
    try:
        clock = None
        if clock_start is not None:
            clock = Clock(world_instant(world, clock_start), hour_seconds)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--clock-start") from None
    try:
        if experiments is not None:
            load_experiments(url.rstrip("/"), experiments.read_text(encoding="utf-8"))
        report = run_simulation(
            url.rstrip("/"), world, days, users_per_day, seed, concurrency, clock=clock,
            progress=_progress,
        )  # fmt: skip
    except (OSError, ValueError, KeyError, UnicodeDecodeError) as exc:
        _fail(f"simulation stopped: {exc}")
    if report.feeds == 0:
        _fail(f"no feed was served by {url}: is the service running there?")
    failures = "".join(f"; {what}: {n:,}" for what, n in sorted(report.failures.items()))
    retried = f"; {report.retries:,} requests retried after Retry-After" if report.retries else ""
    published = (
        f"{report.videos_published:,} new videos published ({report.failed_publishes:,} failed); "
        if clock
        else ""
    )
    text = (
        f"{report.feeds:,} feeds over {report.days} day(s) ({report.failed_feeds:,} failed): "
        f"{report.views:,} views, {report.clicks:,} clicks, {report.purchases:,} purchases; "
        f"{published}by variant {report.by_variant} in {report.seconds}s{failures}{retried}"
    )
    _emit(report.as_dict(), text, json_output)


def _progress(report: Any) -> None:
    """A line on stderr every few seconds while a simulation runs."""
    share = report.feeds + report.failed_feeds
    typer.echo(
        f"  {share:,} of {report.expected_feeds:,} feeds in {report.seconds:.0f}s "
        f"({report.failed_feeds:,} failed, {report.retries:,} retried)",
        err=True,
    )


def redis_start(
    directory: Annotated[Path, typer.Option("--dir", help="Working directory (log, pid).")],
) -> None:
    """Start a private redis-server on a free loopback port; print its URL."""
    from sandbox.embedded_redis import EmbeddedRedis, EmbeddedRedisError

    try:
        server = EmbeddedRedis(directory).start()
    except EmbeddedRedisError as exc:
        typer.echo(f"recsvc: {exc}", err=True)
        raise typer.Exit(1) from None
    server.detach()
    typer.echo(server.url)


def redis_stop(
    directory: Annotated[Path, typer.Option("--dir", help="The directory given to start.")],
) -> None:
    """Stop the server `recsvc redis start --dir` started."""
    from sandbox.embedded_redis import EmbeddedRedis

    if not EmbeddedRedis.stop_detached(directory):
        typer.echo(f"recsvc: no redis-server running from {directory}", err=True)


def register(app: typer.Typer) -> None:
    """Add the development commands to the recsvc CLI."""
    app.command()(synth)
    app.command()(simulate)
    redis = typer.Typer(no_args_is_help=True, help="A private redis-server for demos.")
    redis.command("start")(redis_start)
    redis.command("stop")(redis_stop)
    app.add_typer(redis, name="redis")


def _emit(report: dict[str, Any], text: str, as_json: bool) -> None:
    typer.echo(text)
    if as_json:
        typer.echo(json.dumps(report, default=str))


def _fail(message: str) -> NoReturn:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=1)
