"""What the service writes on stderr (issue 13, defects 5 and 14): an error's message, which may
quote a profile, never reaches a log line, whichever layer logs it; and `recsvc serve` writes
one JSON object per line from its first line to its last."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel
from starlette.types import ASGIApp, Receive, Scope, Send

from recsvc.edge import server
from recsvc.edge.app import create_app
from recsvc.service import logs
from sandbox.embedded_redis import free_port
from tests.builders import ADMIN_KEY, APP_KEY, auth_header
from tests.http.builders import (
    PLANTED_VERSION,
    load_planted_catalog,
    publish_model,
    service_settings,
)
from tests.http.served import recsvc_serve

SECRET = "acct-4711-private-banking"


class Holding(BaseModel):
    product_id: str
    units: int


class FailsOutsideTheGate:
    """A layer outside the gate that fails on /v1/outside: its error reaches uvicorn's own
    logging ("Exception in ASGI application")."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/v1/outside":
            raise RuntimeError(f"outside the gate: {SECRET}")
        await self.app(scope, receive, send)


def app_with_failing_routes(redis_url: str, models_dir: Path) -> FastAPI:
    """The real app, JSON logs, plus routes that fail with the secret in their messages."""
    app = create_app(service_settings(redis_url, models_dir, log_json=True, access_log=True))

    @app.get("/v1/invalid-response", response_model=Holding)
    async def invalid_response() -> dict[str, str]:
        return {"product_id": "p-1", "units": SECRET}  # pydantic quotes the input it refuses

    @app.get("/v1/chained")
    async def chained() -> None:
        try:
            raise KeyError(SECRET)
        except KeyError as exc:
            raise RuntimeError(f"profile of {SECRET} unreadable") from exc

    app.add_middleware(FailsOutsideTheGate)
    return app


@contextmanager
def serving_app(app: FastAPI) -> Iterator[httpx.Client]:
    """`app` under uvicorn on a free loopback port, in a thread, and a client sending the
    admin key."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the service did not start"
        time.sleep(0.01)
    try:
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers=auth_header(ADMIN_KEY), timeout=10
        ) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.mark.parametrize("path", ["/v1/invalid-response", "/v1/chained"])
def test_an_error_in_a_route_is_a_json_500_and_its_message_is_not_logged(
    redis_url: str, models_dir: Path, capfd: pytest.CaptureFixture[str], path: str
) -> None:
    publish_model(redis_url, models_dir / PLANTED_VERSION)
    load_planted_catalog(redis_url)
    with serving_app(app_with_failing_routes(redis_url, models_dir)) as client:
        capfd.readouterr()
        response = client.get(path)
    logged = capfd.readouterr().err
    assert response.status_code == 500
    assert response.json() == {"detail": "internal error"}
    assert SECRET not in logged
    errors = [json.loads(line) for line in logged.splitlines() if '"level": "error"' in line]
    assert len(errors) == 1
    assert errors[0]["request_id"] == response.headers["x-request-id"]
    assert "Traceback" in errors[0]["exception"]  # where it failed, and with what type
    assert "RuntimeError" in errors[0]["exception"] or "ValidationError" in errors[0]["exception"]


def test_an_error_uvicorn_logs_itself_carries_no_message_either(
    redis_url: str, models_dir: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    with serving_app(app_with_failing_routes(redis_url, models_dir)) as client:
        capfd.readouterr()
        response = client.get("/v1/outside")
    logged = capfd.readouterr().err  # (uvicorn logs it after the response)
    assert response.status_code == 500
    assert "Exception in ASGI application" in logged
    assert "RuntimeError" in logged
    assert SECRET not in logged


def test_a_failed_start_up_is_logged_by_type_and_frames_only(
    redis_url: str, models_dir: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    settings = service_settings(redis_url, models_dir, log_json=True)
    app = create_app(settings)

    @asynccontextmanager
    async def failing(app: FastAPI) -> AsyncIterator[None]:
        raise RuntimeError(f"catalogue of {SECRET} unreadable")
        yield

    app.router.lifespan_context = failing
    logs.configure(json_lines=True)  # as `recsvc serve` does before uvicorn starts
    capfd.readouterr()
    with pytest.raises(SystemExit):
        server.build(app, settings, "127.0.0.1", free_port(), limit=10).run()
    logged = capfd.readouterr().err
    assert SECRET not in logged
    errors = [json.loads(line) for line in logged.splitlines() if '"level": "error"' in line]
    assert errors[0]["message"] == "Exception in the application's start-up"
    assert errors[0]["exception"].rstrip().endswith("RuntimeError")
    assert errors[-1]["message"] == "Application startup failed. Exiting."


def test_every_line_recsvc_serve_writes_is_a_json_object_from_start_to_shutdown(
    redis_url: str, models_dir: Path, tmp_path: Path
) -> None:
    publish_model(redis_url, models_dir / PLANTED_VERSION)
    load_planted_catalog(redis_url)
    output = tmp_path / "service.log"
    with recsvc_serve(
        redis_url, models_dir, output, RECSVC_LOG_JSON="true", RECSVC_ACCESS_LOG="true"
    ) as served:
        feed = httpx.get(f"{served.url}/v1/feed?user_id=u-1", headers=auth_header(APP_KEY))
        assert feed.status_code == 200
    assert served.process.returncode in (0, -signal.SIGTERM)  # uvicorn re-raises the signal
    lines = output.read_text().splitlines()
    entries = []
    for number, line in enumerate(lines, 1):
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"line {number} of {len(lines)} is not JSON: {line!r}")
    assert all(isinstance(entry, dict) and entry["message"] for entry in entries)
    messages = [entry["message"] for entry in entries]
    assert any(m.startswith("Started server process") for m in messages[:3])
    assert messages[-1].startswith("Finished server process")
    requests = [e for e in entries if e["message"] == "request" and e["route"] == "/v1/feed"]
    assert [r["request_id"] for r in requests] == [feed.headers["x-request-id"]]
