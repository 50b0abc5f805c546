"""The A/B report's inputs from disk: the drained exposure files, the videos' durations and the
experiment's definition; and ReportError, what a report that cannot be made raises."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from recsvc.contract.experiments import Experiment, ExperimentError, parse_experiments
from training.data.drain import EXPOSURE_SCHEMA


class ReportError(ValueError):
    """A report that cannot be made (no exposures, an unknown experiment, unreadable input)."""


# Exposure columns that files drained before them lack: read as empty lists (explored), the
# home surface (every page was the home feed's before surfaces existed) or unknown (null:
# the user's segment and lifecycle).
ADDED_LATER: dict[str, object] = {
    "explored": [],
    "surface": "home",
    "segment": None,
    "lifecycle": None,
}


def load_exposures(path: Path) -> pa.Table:
    """Every exposure file under `path` (day partitions, as `recsvc drain` writes them)."""
    if not path.is_dir():
        raise ReportError(f"{path}: no such directory of exposures")
    files = sorted(
        file
        for file in path.rglob("*.parquet")
        if not any(part[0] in "._" for part in file.relative_to(path).parts)
    )
    if not files:
        raise ReportError(f"{path}: no exposure files (*.parquet); has recsvc drain run?")
    tables = []
    for file in files:
        try:
            names = pq.read_schema(file).names
            missing = [name for name in EXPOSURE_SCHEMA.names if name not in names]
            if set(missing) - ADDED_LATER.keys():
                raise ReportError(f"{file}: not an exposure file (no {', '.join(missing)} column)")
            table = pq.read_table(file, columns=[n for n in EXPOSURE_SCHEMA.names if n in names])
            for name in missing:  # a file drained before the column existed: none recorded
                value = ADDED_LATER[name]
                column = pa.array([value] * table.num_rows, EXPOSURE_SCHEMA.field(name).type)
                table = table.append_column(name, column)
            tables.append(table.select(EXPOSURE_SCHEMA.names).cast(EXPOSURE_SCHEMA))
        except (OSError, pa.ArrowException) as exc:
            first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ReportError(f"{file}: unreadable exposure file: {first_line}") from None
    return pa.concat_tables(tables)


def load_durations(path: Path) -> dict[str, float]:
    """video_id -> duration_s from a JSON-lines catalogue (a world's catalog/videos.jsonl)."""
    durations = {}
    try:
        with path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    durations[str(record["video_id"])] = float(record["duration_s"])
                except (ValueError, KeyError, TypeError) as exc:
                    raise ReportError(
                        f"{path}:{number}: needs video_id and a numeric duration_s ({exc!r})"
                    ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ReportError(f"{path}: {exc}") from None
    return durations


def find_in_history(
    name: str, current: str | None, history: list[str]
) -> tuple[Experiment, str | None]:
    """The experiment called `name`: in the current definition, else in the newest stored
    definition that has it (entries of Keys.experiments_history, JSON, oldest first), with a
    note saying which; ReportError when none has it."""
    if current is not None:
        try:
            return find_experiment(current, name), None
        except ReportError:
            pass
    for raw in reversed(history):
        try:
            entry = json.loads(raw)
            experiment = find_experiment(entry["definition"], name)
        except (ValueError, KeyError, TypeError, ReportError):
            continue
        note = (
            f"{name} is no longer in the served definition: read from the one stored at "
            f"{entry.get('stored_at')} (revision {entry.get('revision')})"
        )
        return experiment, note
    if current is None and not history:
        raise ReportError("no experiments' definition in Redis (recsvc experiments load FILE)")
    raise ReportError(f"unknown experiment {name!r}: in no definition ever stored")


def find_experiment(definition: str, name: str) -> Experiment:
    """The experiment called `name` in a TOML definition."""
    try:
        experiments = parse_experiments(definition).experiments
    except ExperimentError as exc:
        raise ReportError(f"the experiments' definition is not valid: {exc}") from None
    for experiment in experiments:
        if experiment.name == name:
            return experiment
    known = ", ".join(e.name for e in experiments) or "none"
    raise ReportError(f"unknown experiment {name!r} (the definition has: {known})")
