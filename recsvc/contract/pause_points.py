"""Named points where a test can stop a real process, to kill it (SIGKILL) exactly there.

When the environment variable RECSVC_PAUSE_AT names a point that the process reaches, the
process says so on stderr ("paused at <point>") and sleeps. A crash test waits for that line,
then kills the process. Unset (always, outside tests), a pause point costs one dict lookup.

The points: `drain:before-ack` (a chunk's files durable, not yet acknowledged),
`nightly:<stage>` (before each stage of the nightly run: drain, load, split, tune,
fit_holdout, today, evaluate, fit_all, export, publish, prune) and `publish:after-first-chunk` (the
first chunk of a new generation's vectors written, the pointer not yet moved).
"""

from __future__ import annotations

import os
import sys
import time

PAUSE_ENV = "RECSVC_PAUSE_AT"


def pause_point(name: str, detail: str = "") -> None:
    """Sleep here (for a test to kill the process) when RECSVC_PAUSE_AT names this point."""
    if os.environ.get(PAUSE_ENV) != name:
        return
    print(f"paused at {name}{f' ({detail})' if detail else ''}", file=sys.stderr, flush=True)
    time.sleep(600)
