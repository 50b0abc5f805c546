"""Slow and idle clients against a real `recsvc serve`, with real sockets (issue 13, defect 4):
headers and bodies that stop arriving are cut off, connections past the cap are closed at
once, and each closure is counted and logged (once per reason a minute, not per connection).

The timeouts are set low (1 s) so that the tests are quick; they check when a socket closes
against them with a margin for a busy machine.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from sandbox.embedded_redis import EmbeddedRedis
from tests.builders import APP_KEY, auth_header
from tests.http.served import Served, planted_recsvc_serve

pytestmark = [pytest.mark.slow, pytest.mark.serial]

HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.0
KEEP_ALIVE = 3.0
MAX_CONNECTIONS = 4
MARGIN = 1.5  # seconds a loaded machine may add to a timeout
CLOSED = "recsvc_connections_closed_total"
HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: recsvc\r\n\r\n"


@pytest.fixture(scope="module")
def served(
    redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """One service for the module (each start costs seconds); the tests compare counters."""
    directory = tmp_path_factory.mktemp("http-timeouts")
    with planted_recsvc_serve(
        redis_server,
        directory,
        RECSVC_LOG_JSON="true",
        RECSVC_HEADER_TIMEOUT_SECONDS=str(HEADER_TIMEOUT),
        RECSVC_BODY_TIMEOUT_SECONDS=str(BODY_TIMEOUT),
        RECSVC_KEEP_ALIVE_SECONDS=str(KEEP_ALIVE),
        RECSVC_MAX_CONNECTIONS=str(MAX_CONNECTIONS),
    ) as service:
        yield service


def connect(served: Served) -> socket.socket:
    return socket.create_connection((served.host, served.port), timeout=10)


def seconds_until_closed(sock: socket.socket, since: float, limit: float) -> float:
    """Read (and drop) what arrives until the server closes the socket; the seconds from
    `since` until then. Fails if it is still open after `limit` seconds."""
    while True:
        sock.settimeout(max(since + limit - time.monotonic(), 0.01))
        try:
            if not sock.recv(65536):
                break
        except ConnectionResetError:
            break
        except TimeoutError:
            raise AssertionError(f"the socket is still open after {limit:g}s") from None
    return time.monotonic() - since


def read_response(sock: socket.socket) -> tuple[int, bytes]:
    """One HTTP/1.1 response with a Content-Length: its status and body."""
    sock.settimeout(10)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed before a response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    while len(body) < int(headers["content-length"]):
        body += sock.recv(65536)
    return int(lines[0].split()[1]), body


def closed(served: Served, reason: str) -> float:
    return served.metric(CLOSED, reason=reason)


def test_a_connection_that_does_not_finish_its_headers_is_closed_within_the_timeout(
    served: Served,
) -> None:
    before = closed(served, "header_timeout")
    opened = time.monotonic()
    with connect(served) as silent, connect(served) as half:
        half.sendall(b"GET /v1/feed?user_id=u-1 HTTP/1.1\r\nHost: recsvc\r\nUser-Agent: sl")
        for sock in (silent, half):
            seconds = seconds_until_closed(sock, opened, HEADER_TIMEOUT + MARGIN)
            assert seconds >= HEADER_TIMEOUT - 0.1
    assert closed(served, "header_timeout") - before == 2


def test_a_body_that_stalls_is_answered_408_and_the_connection_closed(served: Served) -> None:
    before = closed(served, "body_timeout")
    head = (
        "POST /v1/events HTTP/1.1\r\nHost: recsvc\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {APP_KEY}\r\nContent-Length: 200\r\n\r\n"
    )
    with connect(served) as sock:
        sock.sendall(head.encode() + b'{"events": [')
        sent = time.monotonic()
        status, body = read_response(sock)
        answered = time.monotonic() - sent
        seconds_until_closed(sock, sent, BODY_TIMEOUT + MARGIN)
    assert status == 408
    assert "not received within" in json.loads(body)["detail"]
    assert BODY_TIMEOUT - 0.1 <= answered <= BODY_TIMEOUT + MARGIN
    assert closed(served, "body_timeout") - before == 1


def test_a_body_sent_in_pieces_within_the_timeout_is_served(served: Served) -> None:
    body = b'{"events": []}'
    head = (
        "POST /v1/events HTTP/1.1\r\nHost: recsvc\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {APP_KEY}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    with connect(served) as sock:
        sock.sendall(head.encode() + body[:5])
        time.sleep(BODY_TIMEOUT / 2)
        sock.sendall(body[5:])
        status, _ = read_response(sock)
    assert status == 422  # an empty batch: the body arrived and was read


def test_on_a_kept_alive_connection_keep_alive_governs_idleness_and_headers_are_timed(
    served: Served,
) -> None:
    before = closed(served, "header_timeout")
    with connect(served) as sock:
        sock.sendall(HEALTHZ)
        assert read_response(sock)[0] == 200
        time.sleep(HEADER_TIMEOUT + 0.5)  # idle longer than the header timeout: still open
        sock.sendall(HEALTHZ)
        assert read_response(sock)[0] == 200
        answered = time.monotonic()
        seconds = seconds_until_closed(sock, answered, KEEP_ALIVE + MARGIN)
        assert seconds >= KEEP_ALIVE - 0.1  # closed by the keep-alive timeout, not counted
    assert closed(served, "header_timeout") == before

    with connect(served) as sock:
        sock.sendall(HEALTHZ)
        assert read_response(sock)[0] == 200
        answered = time.monotonic()
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHo")  # the next request's headers stall
        seconds = seconds_until_closed(sock, answered, KEEP_ALIVE + MARGIN)
        assert seconds >= KEEP_ALIVE - 0.1  # timed from the response: never under keep-alive
    assert closed(served, "header_timeout") - before == 1


def test_past_the_connection_cap_new_connections_are_closed_at_once_and_service_resumes(
    served: Served,
) -> None:
    before = {reason: closed(served, reason) for reason in ("header_timeout", "over_limit")}
    opened = time.monotonic()
    idle = [connect(served) for _ in range(MAX_CONNECTIONS)]
    time.sleep(0.3)  # accepted: the cap is reached
    try:
        for _ in range(3):
            with connect(served) as extra:
                seconds_until_closed(extra, time.monotonic(), 0.5)  # well before any timeout
        for sock in idle:  # then the slow ones are cut
            seconds_until_closed(sock, opened, HEADER_TIMEOUT + MARGIN)
    finally:
        for sock in idle:
            sock.close()
    feed = httpx.get(served.url + "/v1/feed?user_id=u-1", headers=auth_header(), timeout=5)
    assert feed.status_code == 200

    assert closed(served, "over_limit") - before["over_limit"] == 3
    assert closed(served, "header_timeout") - before["header_timeout"] == MAX_CONNECTIONS
    assert served.metric("recsvc_open_connections") == 1  # the scrape's own
    logged = [json.loads(line) for line in served.log().splitlines()]
    over = [line for line in logged if line.get("reason") == "over_limit"]
    assert len(over) == 1, over  # one line a minute per reason, not one per connection
    assert "RECSVC_MAX_CONNECTIONS" in over[0]["message"]


def test_the_connection_cap_and_timeouts_are_logged_at_start_up(served: Served) -> None:
    lines = [json.loads(line) for line in served.log().splitlines()]
    limits = [line for line in lines if line["message"].startswith("HTTP limits")]
    assert limits and f"{MAX_CONNECTIONS} open connections" in limits[0]["message"]
