"""The client examples of docs/api.md (docs/examples/) against a real `recsvc serve`.

Each asks for a feed and posts a view of its first video carrying the feed's request_id. The
service allows one request a second per key (burst 1), so the event post right after the feed
is refused 429 with Retry-After, and each run shows the example honouring it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from recsvc.contract.keys import Keys
from sandbox.embedded_redis import EmbeddedRedis
from tests.builders import APP_KEY
from tests.http.served import Served, planted_recsvc_serve

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "docs" / "examples"
GUIDE = ROOT / "docs" / "api.md"
FEED_LINE = re.compile(r"^feed (\S+) for (\S+): model (\S+), source (\w+)", re.MULTILINE)
JAVA = shutil.which("java")


@pytest.fixture(scope="module")
def served(
    redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    directory = tmp_path_factory.mktemp("client-examples")
    with planted_recsvc_serve(
        redis_server, directory, RECSVC_RATE_LIMIT_PER_SECOND="1", RECSVC_RATE_LIMIT_BURST="1"
    ) as service:
        yield service


def run_example(
    command: list[str], served: Served, user_id: str, key: str = APP_KEY
) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "RECSVC_URL": served.url, "RECSVC_APP_KEY": key}
    return subprocess.run(
        [*command, user_id],
        env=environment,
        cwd=EXAMPLES,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def posted_views(redis_url: str, user_id: str) -> list[dict[str, str]]:
    """The view events of `user_id` in the service's event stream."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        entries = client.xrange(Keys().events)
    finally:
        client.close()
    return [
        fields
        for _, fields in entries
        if fields["user_id"] == user_id and fields["action"] == "view"
    ]


def assert_feed_and_view(
    result: subprocess.CompletedProcess[str], redis_url: str, user_id: str
) -> None:
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    found = FEED_LINE.search(result.stdout)
    assert found is not None, output
    request_id, shown_user, _, source = found.groups()
    assert (shown_user, source) == (user_id, "cf"), output
    assert "HTTP 429" in result.stderr and "retry in" in result.stderr, output
    assert "accepted 1, duplicates 0" in result.stdout, output
    views = posted_views(redis_url, user_id)
    assert [view["request_id"] for view in views] == [request_id], views
    first_video = re.search(r"^\s+1\. (\S+)", result.stdout, re.MULTILINE)
    assert first_video is not None, output
    assert views[0]["item_id"] == first_video.group(1)
    assert views[0]["item_type"] == "video" and views[0]["watch_ratio"] == "0.8"


def test_python_client_gets_a_feed_and_posts_a_view_with_its_request_id(
    served: Served, redis_server: EmbeddedRedis
) -> None:
    result = run_example([sys.executable, "client.py"], served, "u-ins")
    assert_feed_and_view(result, redis_server.url, "u-ins")


def test_python_client_fails_with_a_non_zero_exit_on_a_refused_key(served: Served) -> None:
    result = run_example([sys.executable, "client.py"], served, "u-ins", key="not-a-key-0123456789")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "HTTP 401" in result.stderr


@pytest.mark.skipif(JAVA is None, reason="no `java` on PATH (OpenJDK 17+ runs Client.java)")
def test_java_client_gets_a_feed_and_posts_a_view_with_its_request_id(
    served: Served, redis_server: EmbeddedRedis
) -> None:
    assert JAVA is not None
    result = run_example([JAVA, "Client.java"], served, "u-save")
    assert_feed_and_view(result, redis_server.url, "u-save")


@pytest.mark.skipif(JAVA is None, reason="no `java` on PATH (OpenJDK 17+ runs Client.java)")
def test_java_client_fails_with_a_non_zero_exit_on_a_refused_key(served: Served) -> None:
    assert JAVA is not None
    result = run_example([JAVA, "Client.java"], served, "u-save", key="not-a-key-0123456789")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "HTTP 401" in result.stderr


@pytest.mark.parametrize("example", ["client.py", "Client.java"])
def test_the_guide_quotes_each_example_whole(example: str) -> None:
    assert (EXAMPLES / example).read_text() in GUIDE.read_text()
