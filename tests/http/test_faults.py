"""Faults under load, with real processes: `recsvc serve` in its own process, a real
redis-server, and concurrent clients requesting feeds and posting events throughout.

- Redis killed (SIGKILL): every feed still answers 200, marked `degraded` while Redis is
  gone; no 5xx anywhere except the events' 503 with Retry-After; back to normal once Redis
  returns (the time it takes is printed), and for good: no connection to the killed server is
  used again.
- Redis paused (`CLIENT PAUSE`): every feed still answers 200; those in flight during the
  pause are served degraded, given up at their deadline (the service's own count says so),
  and answered before the pause ends. (The latency target, p99 under the
  Redis timeout plus 20 ms, is measured by bench/redis_pause.py against a baseline of the
  same run: no timing assertion here.)
- A model flip and a rollback: no request fails, and every answer names one of the two.
- A corrupted model: the publisher refuses it; a copy corrupted only on the replica's disk is
  refused by the replica, which keeps serving the old version and shows the refusal in
  /metrics and /readyz.
- One hostile user (150 batches of 1,000 purchases of made-up products, and that user's feed
  every 0.9 s): the other users' feeds stay non-degraded and their events accepted.

Each test prints its figure (`pytest -s` shows them). Where a test shows that something did
not happen (no relapse, no retry, no switch back), it first waits for what would have shown
it: the replica's polls (tests.http.polls) or a number of requests answered, never a sleep.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from recsvc.contract.keys import Keys
from recsvc.contract.manifest import MODEL_FILE, sha256_file
from recsvc.service.metrics import DEGRADED_CAUSES
from sandbox.embedded_redis import EmbeddedRedis, free_port
from tests.builders import ADMIN_KEY, auth_header, cli_environment
from tests.http import planted
from tests.http.builders import (
    PLANTED_VERSION,
    event_body,
    eventually,
    load_planted_catalog,
    publish_model,
)
from tests.http.load import Load, Outcome, event_burst, percentile
from tests.http.polls import wait_for_polls

pytestmark = [pytest.mark.slow, pytest.mark.serial]

RECSVC = str(Path(sys.executable).with_name("recsvc"))
SECOND_VERSION = "20260102T000000000000Z-second"
REDIS_TIMEOUT_MS = 100
SERVICE_ENVIRONMENT = {
    "RECSVC_POLL_SECONDS": "0.2",
    "RECSVC_REDIS_TIMEOUT_MS": str(REDIS_TIMEOUT_MS),
    "RECSVC_REDIS_RETRY_SECONDS": "0.5",
    "RECSVC_LOG_JSON": "true",
    "RECSVC_ACCESS_LOG": "true",  # each request's time as the service measured it
}


# -- the processes ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ServiceProcess:
    """A running `recsvc serve` and where its output goes."""

    url: str
    log: Path
    process: subprocess.Popen[bytes]

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.url + path, headers=auth_header(ADMIN_KEY), timeout=5)

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def seconds_by_request_id(self) -> dict[str, float]:
        """Each request's time inside the service, from its access log."""
        found = {}
        for line in self.log.read_text(errors="replace").splitlines():
            if line.startswith('{"') and '"message": "request"' in line:
                entry = json.loads(line)
                found[entry["request_id"]] = entry["ms"] / 1000
        return found


@contextmanager
def recsvc_serve(redis_url: str, models_dir: Path, log: Path) -> Iterator[ServiceProcess]:
    """`recsvc serve` on a free loopback port, ready (GET /readyz 200); stopped afterwards."""
    port = free_port()
    environment = {**cli_environment(redis_url, models_dir), **SERVICE_ENVIRONMENT}
    with log.open("wb") as output:
        process = subprocess.Popen(
            [RECSVC, "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    service = ServiceProcess(f"http://127.0.0.1:{port}", log, process)
    try:

        def ready() -> bool:
            assert process.poll() is None, f"recsvc serve exited:\n{service.log_tail()}"
            try:
                return service.get("/readyz").status_code == 200
            except httpx.TransportError:
                return False

        assert eventually(ready, timeout=30), f"recsvc serve not ready:\n{service.log_tail()}"
        yield service
        assert process.poll() is None, f"recsvc serve died:\n{service.log_tail()}"
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def service_process(redis_url: str, models_dir: Path, tmp_path: Path) -> Iterator[ServiceProcess]:
    """The planted model published, its catalogue loaded, `recsvc serve` serving them."""
    publish_model(redis_url, models_dir / PLANTED_VERSION)
    load_planted_catalog(redis_url)
    with recsvc_serve(redis_url, models_dir, tmp_path / "service.log") as service:
        yield service


def recsvc(redis_url: str, models_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run a `recsvc` command (publish, rollback) as an operator would."""
    environment = cli_environment(redis_url, models_dir)
    return subprocess.run(
        [RECSVC, *args], env=environment, capture_output=True, text=True, check=False
    )


@contextmanager
def redis_killed(server: EmbeddedRedis) -> Iterator[None]:
    """SIGKILL the session's Redis; whatever happens, it runs again (empty) afterwards."""
    assert server.process is not None
    os.kill(server.process.pid, signal.SIGKILL)
    server.stop()  # reaps the killed process
    try:
        yield
    finally:
        if server.process is None:
            server.start()


class PointerWatch:
    """Reads the current-model pointer every 5 ms in a thread; when each version appeared."""

    def __init__(self, redis_url: str) -> None:
        self.client = redis.Redis.from_url(redis_url)
        self.seen: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            raw = self.client.get(Keys().model_current)
            version = json.loads(raw)["version"] if raw else ""
            if not self.seen or self.seen[-1][1] != version:
                self.seen.append((time.monotonic(), version))
            time.sleep(0.005)

    def moved_to(self, version: str) -> float:
        """When the pointer last moved to `version`."""
        return max(at for at, seen in self.seen if seen == version)

    def __enter__(self) -> PointerWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.client.close()


# -- reading outcomes and metrics ------------------------------------------------------------
def server_errors(outcomes: list[Outcome]) -> list[Outcome]:
    """Every answer that is a failure of the service: no HTTP answer, or a 5xx other than an
    event batch's 503 with Retry-After (the documented "Redis unreachable, retry")."""
    return [
        o
        for o in outcomes
        if o.status == 0
        or (o.status >= 500 and not (o.kind == "events" and o.status == 503 and o.retry_after))
    ]


def metric_samples(service: ServiceProcess, name: str) -> list[tuple[dict[str, str], float]]:
    """Every sample of `name` in /metrics: its labels and value."""
    return [
        (sample.labels, float(sample.value))
        for family in text_string_to_metric_families(service.get("/metrics").text)
        for sample in family.samples
        if sample.name == name
    ]


def metric(service: ServiceProcess, name: str, **labels: str) -> float:
    """One sample of /metrics (0 when absent)."""
    for found, value in metric_samples(service, name):
        if all(found.get(k) == v for k, v in labels.items()):
            return value
    return 0.0


def degraded_by_cause(service: ServiceProcess) -> Counter[str]:
    """Feeds the service served degraded so far, by cause (see recsvc.service.metrics)."""
    samples = metric_samples(service, "recsvc_degraded_responses_total")
    return Counter({labels["cause"]: value for labels, value in samples})


def redis_errors(service: ServiceProcess, kind: str | None = None) -> float:
    """Failed Redis calls the service counted so far (of one kind: timeout, unreachable,
    refused), over every operation."""
    samples = metric_samples(service, "recsvc_redis_errors_total")
    return sum(value for labels, value in samples if kind is None or labels["kind"] == kind)


def restore_data(redis_url: str, models_dir: Path) -> None:
    """A restarted Redis is empty: publish the model and load the catalogue again."""
    publish_model(redis_url, models_dir / PLANTED_VERSION)
    load_planted_catalog(redis_url)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


# -- Redis killed ----------------------------------------------------------------------------
BURST = 24  # event posts at once
AFTER_BURST_FEEDS = 400  # feeds answered after the burst, each of which a relapse would degrade


def test_redis_killed_under_load_feeds_stay_200_degraded_events_503_and_it_recovers(
    service_process: ServiceProcess,
    redis_server: EmbeddedRedis,
    redis_url: str,
    models_dir: Path,
) -> None:
    with Load(service_process.url) as load:
        time.sleep(1)  # paces: healthy feeds first
        # A burst opens many connections to Redis, idle in the pool when Redis dies.
        assert event_burst(service_process.url, BURST) == [202] * BURST
        time.sleep(1)  # paces: healthy feeds after it
        healthy_until = time.monotonic()
        with redis_killed(redis_server):
            killed = time.monotonic()
            time.sleep(5)  # the outage
            restarting = time.monotonic()
            redis_server.start()
            returned = time.monotonic()
        restore_data(redis_url, models_dir)

        def recovered_feeds() -> list[Outcome]:
            return [f for f in load.feeds() if f.started >= returned and f.degraded is False]

        assert eventually(lambda: bool(recovered_feeds()), timeout=12)
        # None of those connections may fail a request now (each failure would also make
        # the service stop calling Redis for a while: feeds degraded again).
        failed_calls = redis_errors(service_process)
        after_burst = event_burst(service_process.url, BURST)
        burst_ended = time.monotonic()
        # Where a relapse would show: the replica's polls, and many feeds answered since.
        wait_for_polls(service_process.get, redis_url, 2)

        def fed_since_the_burst() -> bool:
            since = [f for f in load.feeds() if f.started > burst_ended]
            return len(since) >= AFTER_BURST_FEEDS

        assert eventually(fed_since_the_burst, timeout=30)
    failed_since_the_burst = redis_errors(service_process) - failed_calls
    feeds, events = load.feeds(), load.events()
    recovery = min(f.ended for f in recovered_feeds()) - returned

    failures = server_errors(load.outcomes)
    assert failures == [], f"{len(failures)} failures, e.g. {failures[:3]}"
    assert Counter(f.status for f in feeds) == {200: len(feeds)}
    # Before: healthy.
    before = [f for f in feeds if f.ended < healthy_until]
    assert before and not any(f.degraded for f in before)
    # While Redis is down: feeds degraded, events refused with Retry-After.
    down = [f for f in feeds if f.within(killed, restarting)]
    assert len(down) > 100 and all(f.degraded for f in down)
    events_down = [e for e in events if e.within(killed, restarting)]
    refused = [e for e in events_down if e.status == 503 and int(e.retry_after or 0) >= 1]
    assert events_down and len(refused) == len(events_down), Counter(
        (e.status, e.retry_after) for e in events_down
    )
    # Back (the wait above gave it 12 s; how fast is a printed figure, not asserted), and for
    # good.
    assert after_burst == [202] * BURST, f"after recovery: {Counter(after_burst)}"
    assert failed_since_the_burst == 0  # the service's own count of failed Redis calls
    settled = [f for f in feeds if f.started > returned + recovery + 1]
    relapses = [round(f.started - returned, 3) for f in settled if f.degraded]
    assert settled and relapses == [], f"degraded again at {relapses} s after Redis returned"
    assert events[-1].status == 202
    print(
        f"\nFIGURE redis-killed: {len(feeds)} feeds, all 200, 0 5xx; "
        f"{len(down)}/{len(down)} degraded during the {restarting - killed:.1f} s outage; "
        f"events 503 with Retry-After while down: {len(refused)}/{len(events_down)}; "
        f"first non-degraded feed {recovery:.2f} s after Redis returned (target < 10 s); "
        f"then {BURST}/{BURST} event posts at once accepted, no feed degraded again"
    )


# -- Redis paused ----------------------------------------------------------------------------
PAUSE_MS = 2500
PAUSE_CLIENTS = 16
PAUSE_MARKER = "test:pause-marker"  # a key outside the service's prefix


@pytest.mark.parametrize("mode", ["all", "write"])
def test_redis_paused_under_load_feeds_answer_200_degraded_at_their_deadline_before_it_ends(
    service_process: ServiceProcess, redis_url: str, mode: str
) -> None:
    """CLIENT PAUSE holds every command (ALL) or every write and every script (WRITE) without
    closing a connection: the slow Redis that timeouts exist for. Sixteen clients, so that
    more requests can queue behind those the pause holds than a second batch needs to start.

    How fast those feeds are (p99 under the Redis timeout plus 20 ms) is measured by
    bench/redis_pause.py, against the same figures before the pause; here, what shows that no
    request waited out the pause, whatever the machine's speed: the service counts the
    degraded feeds as given up at their deadline (and its Redis calls as timed out), and more
    degraded feeds than there are clients were answered before the pause ended."""
    degraded_before = degraded_by_cause(service_process)
    timeouts_before = redis_errors(service_process, "timeout")
    with Load(service_process.url, feed_clients=PAUSE_CLIENTS, feeds_per_second=10) as load:
        time.sleep(2)  # paces: healthy feeds before the pause
        paused = time.monotonic()
        with redis.Redis.from_url(redis_url) as client:
            client.execute_command("CLIENT", "PAUSE", PAUSE_MS, mode.upper())
            # A write is held (under ALL and under WRITE) until the pause ends.
            client.set(PAUSE_MARKER, 1)
        released = time.monotonic()
        # The pause began after `paused`, so it lasted until this at least.
        resumed = paused + PAUSE_MS / 1000

        def healthy_again() -> bool:
            return any(f.started > released and f.degraded is False for f in load.feeds())

        assert eventually(healthy_again, timeout=15), "feeds still degraded after the pause"
    feeds = load.feeds()
    degraded = Counter(degraded_by_cause(service_process))
    degraded.subtract(degraded_before)
    timeouts = redis_errors(service_process, "timeout") - timeouts_before
    during = [f for f in feeds if f.started < resumed and f.ended > paused]  # in flight
    degraded_during = [f for f in during if f.degraded]
    while_held = [f for f in degraded_during if f.ended < resumed]
    healthy = [f.latency for f in feeds if f.ended < paused]
    latencies = [f.latency for f in during]
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    failures = server_errors(load.outcomes)
    inside = service_process.seconds_by_request_id()
    inside_during = [inside[f.request_id] for f in during if f.request_id in inside]
    print(
        f"\nFIGURE redis-paused ({mode.upper()}, {PAUSE_MS} ms): {len(during)} feeds during the "
        f"pause, {len(degraded_during)} degraded, {len(while_held)} of them answered before it "
        f"ended; the service counted degraded feeds by cause {dict(degraded)} and "
        f"{timeouts:.0f} Redis timeouts; {len(failures)} failures. Latency (not asserted: "
        f"bench/redis_pause.py measures it) p50 {ms(p50)}, p99 {ms(p99)}, "
        f"max {ms(max(latencies))}; before it p99 "
        f"{ms(percentile(healthy, 99))}; inside the service p99 "
        f"{ms(percentile(inside_during, 99))}, max {ms(max(inside_during))}"
    )
    assert failures == [], f"{len(failures)} failures, e.g. {failures[:3]}"
    assert Counter(f.status for f in feeds) == {200: len(feeds)}
    assert len(during) > 100 and degraded_during
    # The service's own account agrees with the clients': every degraded feed counted, by
    # cause; some given up at their deadline while Redis held their commands, and the Redis
    # calls ended by the service's timeout.
    assert sum(degraded.values()) == sum(1 for f in feeds if f.degraded), dict(degraded)
    assert set(degraded) <= set(DEGRADED_CAUSES) and degraded["deadline"] > 0, dict(degraded)
    assert timeouts > 0
    # Degraded answers that came before the pause ended did not wait for Redis; more of them
    # than there are clients (each waits for its answer before it sends again).
    assert len(while_held) > PAUSE_CLIENTS, f"{len(while_held)} answered during the pause"


# -- a model flip and a rollback -------------------------------------------------------------
def switch_figures(feeds: list[Outcome], old: str, new: str, moved: float) -> tuple[float, float]:
    """Seconds from the pointer's move to the first answer naming `new`, and to the last
    answer naming `old`; no request sent after the first `new` answer names `old`."""
    first_new = min(f.ended for f in feeds if f.started >= moved and f.model_version == new)
    late = [f for f in feeds if f.started > first_new and f.model_version == old]
    assert late == [], f"{len(late)} requests sent after the switch got {old}: {late[:3]}"
    last_old = max((f.ended for f in feeds if f.model_version == old), default=moved)
    return first_new - moved, max(0.0, last_old - moved)


def test_a_model_flip_and_a_rollback_under_load_fail_no_request(
    service_process: ServiceProcess, redis_url: str, models_dir: Path
) -> None:
    second = planted.write_planted_model(models_dir, SECOND_VERSION, user_scale=2.0)
    with PointerWatch(redis_url) as pointer, Load(service_process.url) as load:
        time.sleep(2)  # paces: feeds from the planted version first
        published = recsvc(redis_url, models_dir, "publish", str(second))
        assert published.returncode == 0, published.stderr
        assert eventually(lambda: load.feeds()[-1].model_version == SECOND_VERSION)
        # A switch back would come from a poll: the load keeps on through whole polls.
        wait_for_polls(service_process.get, redis_url, 2)
        flipped = len(load.feeds())
        rolled_back = recsvc(redis_url, models_dir, "rollback")
        assert rolled_back.returncode == 0, rolled_back.stderr
        assert eventually(lambda: load.feeds()[-1].model_version == PLANTED_VERSION)
        wait_for_polls(service_process.get, redis_url, 2)
    feeds, events = load.feeds(), load.events()

    failures = [o for o in load.outcomes if o.status not in (200, 202)]
    assert failures == [], f"{len(failures)} of {len(load.outcomes)} failed: {failures[:3]}"
    versions = Counter(f.model_version for f in feeds)
    assert set(versions) == {PLANTED_VERSION, SECOND_VERSION}
    assert not any(f.degraded for f in feeds)
    flip = switch_figures(
        feeds[:flipped], PLANTED_VERSION, SECOND_VERSION, pointer.moved_to(SECOND_VERSION)
    )
    rollback = switch_figures(
        feeds[flipped:], SECOND_VERSION, PLANTED_VERSION, pointer.moved_to(PLANTED_VERSION)
    )
    print(
        f"\nFIGURE model-flip-and-rollback: {len(feeds)} feeds and {len(events)} event posts, "
        f"0 failed; {versions[PLANTED_VERSION]} answered by the planted version, "
        f"{versions[SECOND_VERSION]} by the second; after the pointer moved, the first answer "
        f"from the new version came in {ms(flip[0])} (flip) and {ms(rollback[0])} (rollback), "
        f"the last from the old one in {ms(flip[1])} and {ms(rollback[1])} (replicas poll "
        f"every 0.2 s here; how fast is a figure, not asserted)"
    )


# -- a corrupted model -----------------------------------------------------------------------
def truncate_graph(directory: Path) -> None:
    """model.onnx cut in half: its checksum no longer matches the manifest's."""
    graph = directory / MODEL_FILE
    graph.write_bytes(graph.read_bytes()[: graph.stat().st_size // 2])


def garbage_graph_with_its_checksum(directory: Path) -> None:
    """model.onnx replaced by garbage, and the manifest's checksum updated to match: only
    onnxruntime can tell."""
    graph = directory / MODEL_FILE
    graph.write_bytes(os.urandom(graph.stat().st_size))
    manifest = json.loads((directory / "manifest.json").read_text())
    manifest["files"][MODEL_FILE] = sha256_file(graph)
    (directory / "manifest.json").write_text(json.dumps(manifest))


CORRUPTIONS = {  # how model.onnx is spoiled, and what the refusal says
    "truncated": (truncate_graph, "does not match the manifest"),
    "garbage-with-matching-checksum": (garbage_graph_with_its_checksum, "onnxruntime refuses"),
}


def why(message: str) -> str:
    """What a refusal says about model.onnx, without the path before it."""
    return message.split(f"{MODEL_FILE}: ", 1)[-1].strip()[:60]


@pytest.mark.parametrize("corruption", CORRUPTIONS)
def test_a_corrupted_model_is_refused_and_the_old_one_keeps_serving(
    service_process: ServiceProcess,
    redis_url: str,
    models_dir: Path,
    tmp_path: Path,
    corruption: str,
) -> None:
    corrupt, reason = CORRUPTIONS[corruption]
    corrupted = planted.write_planted_model(tmp_path / "corrupted", SECOND_VERSION, 2.0)
    corrupt(corrupted)
    # The operator's copy is sound, the replica's disk holds a corrupted one (a bad sync).
    sound = planted.write_planted_model(tmp_path / "operator", SECOND_VERSION, 2.0)
    corrupt(planted.write_planted_model(models_dir, SECOND_VERSION, 2.0))
    refused_before = metric(service_process, "recsvc_model_reloads_total", outcome="refused")

    def refusals() -> float:
        found = metric(service_process, "recsvc_model_reloads_total", outcome="refused")
        return found - refused_before

    with PointerWatch(redis_url) as pointer, Load(service_process.url) as load:
        time.sleep(1)  # paces: feeds before the publishes
        by_publisher = recsvc(redis_url, models_dir, "publish", str(corrupted))
        published = recsvc(redis_url, models_dir, "publish", str(sound))
        assert published.returncode == 0, published.stderr
        assert eventually(lambda: refusals() >= 1)
        wait_for_polls(service_process.get, redis_url, 3)  # more polls, requests meanwhile
    feeds = load.feeds()

    # The publisher checks what it publishes: the corrupted directory never moved the pointer.
    assert by_publisher.returncode == 1 and "Traceback" not in by_publisher.stderr
    assert MODEL_FILE in by_publisher.stderr and reason in by_publisher.stderr
    assert [version for _, version in pointer.seen] == [PLANTED_VERSION, SECOND_VERSION]
    # The replica refused its corrupted copy once, and kept serving the old version.
    failures = [o for o in load.outcomes if o.status not in (200, 202)]
    assert failures == [], f"{len(failures)} of {len(load.outcomes)} failed: {failures[:3]}"
    assert {f.model_version for f in feeds} == {PLANTED_VERSION}
    assert {f.source for f in feeds} == {"cf", "popularity"}  # u-unknown has no vector
    assert refusals() == 1  # tried again only after a while, or when published again
    metrics = service_process.get("/metrics").text
    assert f'recsvc_model_info{{version="{PLANTED_VERSION}"}} 1.0' in metrics
    ready = service_process.get("/readyz")
    assert ready.status_code == 200 and ready.json()["model_version"] == PLANTED_VERSION
    last_error = ready.json()["last_error"]
    assert SECOND_VERSION in last_error and MODEL_FILE in last_error and reason in last_error
    print(
        f"\nFIGURE corrupted-model ({corruption}): `recsvc publish` exit 1, "
        f"{why(by_publisher.stderr)!r}; published from a sound copy, the replica refused its "
        f'own: recsvc_model_reloads_total{{outcome="refused"}} +{refusals():.0f}, /readyz 200 '
        f"serving {PLANTED_VERSION}, last_error {why(last_error)!r}; "
        f"{len(feeds)} feeds, 0 failed, all from the old version"
    )


# -- one hostile user ------------------------------------------------------------------------
HOSTILE = "u-hostile"
HOSTILE_BATCHES = 150  # of 1,000 purchases of made-up products each
HOSTILE_FEED_SECONDS = 0.9
HOSTILE_FEEDS_AFTER = 5  # feeds asked once the posts are done (the state is at its largest)
HOSTILE_RETRIES = 5  # tries of a batch answered 503, each after its Retry-After


class HostileUser:
    """One user's client, in two threads: posts HOSTILE_BATCHES batches of purchases of
    made-up products as fast as they are answered (a batch answered 503 again after its
    Retry-After, as a client is told to), and asks for that user's feed every
    HOSTILE_FEED_SECONDS until the posts are done and HOSTILE_FEEDS_AFTER feeds more."""

    def __init__(self, service: ServiceProcess) -> None:
        self.service = service
        self.batches: list[tuple[int, dict]] = []  # each batch's last answer: status, body
        self.refused: list[httpx.Response] = []  # the answers that asked for a retry
        self.feeds: list[tuple[int, bool | None]] = []  # status, degraded
        self._posting = threading.Thread(target=self._post, daemon=True)
        self._feeding = threading.Thread(target=self._feed, daemon=True)

    def _client(self) -> httpx.Client:
        return httpx.Client(base_url=self.service.url, headers=auth_header(), timeout=10)

    def _post(self) -> None:
        with self._client() as client:
            for batch in range(HOSTILE_BATCHES):
                events = [
                    event_body(HOSTILE, f"p-made-up-{batch}-{i}", "purchase", "product")
                    for i in range(1000)
                ]
                response = client.post("/v1/events", json={"events": events})
                for _ in range(HOSTILE_RETRIES):
                    if response.status_code != 503:
                        break
                    self.refused.append(response)
                    time.sleep(float(response.headers.get("retry-after", 0)))
                    response = client.post("/v1/events", json={"events": events})
                body = response.json() if response.status_code == 202 else {}
                self.batches.append((response.status_code, body))

    def _feed(self) -> None:
        with self._client() as client:
            after = 0
            while after < HOSTILE_FEEDS_AFTER:
                after += not self._posting.is_alive()
                response = client.get("/v1/feed", params={"user_id": HOSTILE, "n": 3})
                degraded = response.json().get("degraded") if response.status_code == 200 else None
                self.feeds.append((response.status_code, degraded))
                time.sleep(HOSTILE_FEED_SECONDS)

    def run(self, timeout: float) -> None:
        """Both threads, to their end."""
        self._posting.start()
        self._feeding.start()
        self._posting.join(timeout)
        self._feeding.join(timeout)
        assert not self._posting.is_alive() and not self._feeding.is_alive(), "still running"


def test_one_hostile_user_degrades_no_other_users_feeds_or_events(
    service_process: ServiceProcess, redis_url: str
) -> None:
    """The recipe of issue 13's defect 1: before, every purchase entered the user's state,
    which grew to 150,000 products; each of that user's feeds then held Redis ~100 ms, and
    its one timeout made the replica stop calling Redis for everyone.

    A feed may still be answered degraded at its deadline when the two cores, shared by the
    load, the hostile client, Redis and the service, keep it waiting (`cause="deadline"`):
    counted and printed. None may be degraded for want of Redis (a failed call, the breaker)."""
    causes_before = degraded_by_cause(service_process)
    with Load(service_process.url) as load:
        time.sleep(1)  # paces: the other users' load first
        attack = time.monotonic()
        hostile = HostileUser(service_process)
        hostile.run(timeout=240)
        ended = time.monotonic()
    feeds = [f for f in load.feeds() if f.started >= attack and f.ended <= ended]
    events = [e for e in load.events() if e.started >= attack and e.ended <= ended]
    degraded = sum(1 for f in feeds if f.degraded)
    refused = sum(1 for e in events if e.status == 503)
    accepted = Counter(status for status, _ in hostile.batches)[202]
    # a retry finds the events of a try whose answer was lost already in: duplicates
    stored_once = sum(
        body["accepted"] + body["duplicates"] for status, body in hostile.batches if status == 202
    )
    not_applied = sum(body.get("not_applied", 0) for _, body in hostile.batches)
    new = sum(body.get("accepted", 0) for _, body in hostile.batches)
    with redis.Redis.from_url(redis_url) as client:
        held = client.scard(Keys().purchased(HOSTILE))
        streamed = client.xlen(Keys().events)
    hostile_degraded = sum(1 for _, degraded in hostile.feeds if degraded)
    causes = degraded_by_cause(service_process)
    causes.subtract(causes_before)
    print(
        f"\nFIGURE hostile-user: over {ended - attack:.1f} s, {accepted}/{HOSTILE_BATCHES} "
        f"hostile batches of 1,000 made-up purchases accepted ({len(hostile.refused)} tries "
        f"answered 503 and retried; {not_applied:,} not applied, "
        f"{held} held); {len(hostile.feeds)} hostile feeds, {hostile_degraded} degraded; "
        f"other users: {len(feeds)} feeds, {degraded} degraded, p99 "
        f"{ms(percentile([f.latency for f in feeds], 99))}; {len(events)} event batches, "
        f"{sum(1 for e in events if e.status == 202)} accepted, {refused} answered 503; "
        f"degraded feeds by cause (everyone's) {dict(causes)}"
    )
    failures = server_errors(load.outcomes)
    assert failures == [], f"{len(failures)} failures, e.g. {failures[:3]}"
    # The other users: served as if the hostile one were not there. Redis never failed a
    # call nor was it set aside; a feed late for want of CPU is the only degraded one.
    assert causes["redis_error"] == 0 and causes["breaker_open"] == 0, dict(causes)
    assert len(feeds) > 500 and degraded <= causes["deadline"], dict(causes)
    assert Counter(f.status for f in feeds) == {200: len(feeds)}
    assert events and Counter(e.status for e in events) == {202: len(events)}
    # The hostile user: every event in the stream once, none in the user's state, feeds
    # answered. A batch of its own may be refused now and then (a 1,000-event script over the
    # Redis timeout on loaded cores): a 503 with Retry-After, and accepted when retried.
    assert all(r.headers.get("retry-after") for r in hostile.refused), [
        r.text for r in hostile.refused
    ]
    assert accepted == HOSTILE_BATCHES and stored_once == HOSTILE_BATCHES * 1000
    assert not_applied == new
    assert held == 0 and streamed >= HOSTILE_BATCHES * 1000
    assert len(hostile.feeds) >= 5 and {status for status, _ in hostile.feeds} == {200}
