"""`recsvc serve` in a process of its own, as production runs it: for tests of the HTTP server
itself (timeouts, the connection cap, what the process writes on stderr), which an in-process
uvicorn would not exercise."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import redis
from prometheus_client.parser import text_string_to_metric_families

from sandbox.embedded_redis import EmbeddedRedis, free_port
from tests.builders import APP_KEY, auth_header, cli_environment
from tests.http import planted
from tests.http.builders import (
    PLANTED_VERSION,
    eventually,
    load_planted_catalog,
    publish_model,
)

RECSVC = str(Path(sys.executable).with_name("recsvc"))


@dataclass(frozen=True)
class Served:
    """A running `recsvc serve`: its address and the file its stderr and stdout go to."""

    host: str
    port: int
    output: Path
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def metric(self, name: str, **labels: str) -> float:
        """One sample of /metrics (0 when absent)."""
        text = httpx.get(self.url + "/metrics", timeout=5).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(
                    sample.labels.get(k) == v for k, v in labels.items()
                ):
                    return float(sample.value)
        return 0.0

    def log(self) -> str:
        return self.output.read_text(errors="replace")


REDIS_CAUSES = ("redis_error", "breaker_open")  # a feed degraded because Redis was taken away


def total(served: Served, name: str, **labels: str) -> float:
    """The sum of a counter's samples in /metrics whose labels include `labels`."""
    text = httpx.get(served.url + "/metrics", timeout=5).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


def taken_away(served: Served) -> float:
    """Feeds degraded because a Redis call failed or the breaker was open (not the CPU)."""
    return sum(
        total(served, "recsvc_degraded_responses_total", cause=cause) for cause in REDIS_CAUSES
    )


async def feeds_while(
    client: httpx.AsyncClient, user_id: str, feeds: int = 30, interval: float = 0.05
) -> list[bool]:
    """Whether each of `feeds` feeds of one user, `interval` apart, came back degraded (a
    bystander's view while a test loads the service)."""
    degraded = []
    for _ in range(feeds):
        response = await client.get(
            "/v1/feed", params={"user_id": user_id, "n": 3}, headers=auth_header(APP_KEY)
        )
        assert response.status_code == 200, response.text
        degraded.append(bool(response.json()["degraded"]))
        await asyncio.sleep(interval)
    return degraded


@contextmanager
def recsvc_serve(
    redis_url: str, models_dir: Path, output: Path, **environment: str
) -> Iterator[Served]:
    """`recsvc serve` on a free loopback port with these RECSVC_* variables, serving (GET
    /healthz 200); stopped with SIGTERM afterwards, as Kubernetes stops a pod."""
    port = free_port()
    with output.open("wb") as file:
        process = subprocess.Popen(
            [RECSVC, "serve", "--host", "127.0.0.1", "--port", str(port)],
            env={**cli_environment(redis_url, models_dir), **environment},
            stdin=subprocess.DEVNULL,
            stdout=file,
            stderr=file,
            start_new_session=True,
        )
    served = Served("127.0.0.1", port, output, process)

    def up() -> bool:
        assert process.poll() is None, f"recsvc serve exited:\n{served.log()[-3000:]}"
        try:
            return httpx.get(served.url + "/healthz", timeout=5).status_code == 200
        except httpx.TransportError:
            return False

    try:
        assert eventually(up, timeout=30), f"recsvc serve not up:\n{served.log()[-3000:]}"
        yield served
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def planted_recsvc_serve(
    redis_server: EmbeddedRedis, directory: Path, **environment: str
) -> Iterator[Served]:
    """`recsvc serve` over an emptied Redis holding the planted model, published, and its
    catalogue (for a module's tests to share: each start costs seconds)."""
    if redis_server.process is None:
        redis_server.start()
    redis.Redis.from_url(redis_server.url).flushall()
    planted.write_planted_model(directory / "models", PLANTED_VERSION)
    publish_model(redis_server.url, directory / "models" / PLANTED_VERSION)
    load_planted_catalog(redis_server.url)
    with recsvc_serve(
        redis_server.url, directory / "models", directory / "service.log", **environment
    ) as service:
        yield service
