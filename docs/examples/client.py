"""A minimal recsvc client: ask for a user's feed, then report that the user viewed the first video.

    RECSVC_URL=http://127.0.0.1:8000 RECSVC_APP_KEY=<an app key> python client.py u00042

Standard library only. Exit status: 0 done, 1 a request failed (after its retries), 2 bad usage.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from datetime import UTC, datetime
from typing import Any

ATTEMPTS = 5  # one try and up to four retries
RETRY_STATUSES = {429, 502, 503, 504}  # 502 and 504 come from a proxy in front, if any
TIMEOUT_SECONDS = 5.0


class RequestFailed(Exception):
    """A request that failed for good: a status not worth retrying, or retries used up."""


def backoff(attempt: int, retry_after: str | None) -> float:
    """Seconds to wait before retry number `attempt`: the server's Retry-After when it gives
    one, else exponential backoff (0.5 s, 1 s, 2 s, ... up to 8 s); plus jitter, so that
    many clients refused at once do not come back at once."""
    if retry_after is not None and retry_after.strip().isdigit():
        base = float(retry_after)
    else:
        base = min(0.5 * 2 ** (attempt - 1), 8.0)
    return base + random.uniform(0, 0.25 * base + 0.1)


def call(method: str, url: str, key: str, body: Any = None) -> Any:
    """Send one request, retrying 429, 503 and network errors; the decoded JSON answer."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"Authorization": f"Bearer {key}", "Accept": "application/json"}
    if data is not None:
        headers["Content-Type"] = "application/json"
    for attempt in range(1, ATTEMPTS + 1):
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
                return json.load(response)
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")
            if error.code not in RETRY_STATUSES or attempt == ATTEMPTS:
                raise RequestFailed(f"{method} {url}: HTTP {error.code} {detail}") from None
            wait = backoff(attempt, error.headers.get("Retry-After"))
            reason = f"HTTP {error.code} {detail}"
        except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
            # Safe to retry: a feed is a read, and events are deduplicated by event_id.
            if attempt == ATTEMPTS:
                raise RequestFailed(f"{method} {url}: {error}") from None
            wait, reason = backoff(attempt, None), str(error)
        print(f"{method} {url}: {reason}; retry in {wait:.1f}s", file=sys.stderr)
        time.sleep(wait)
    raise AssertionError("unreachable")


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: client.py USER_ID (with RECSVC_URL and RECSVC_APP_KEY set)", file=sys.stderr)
        return 2
    user_id = sys.argv[1]
    base = os.environ.get("RECSVC_URL", "").rstrip("/")
    key = os.environ.get("RECSVC_APP_KEY", "")
    if not base or not key:
        print("set RECSVC_URL and RECSVC_APP_KEY", file=sys.stderr)
        return 2
    try:
        query = urllib.parse.urlencode({"user_id": user_id, "n": 5})
        feed = call("GET", f"{base}/v1/feed?{query}", key)
        print(
            f"feed {feed['request_id']} for {feed['user_id']}: model {feed['model_version']}, "
            f"source {feed['source']}, variant {feed['variant']}, degraded {feed['degraded']}"
        )
        for item in feed["items"]:
            card = item["product"]
            shown = "no product" if card is None else f"{card['product_id']} {card['name']!r}"
            if card is not None and card["disclosure"]:
                shown += f" [{card['disclosure']}]"
            print(f"  {item['rank']:>2}. {item['video_id']}  {shown}")
        if not feed["items"]:
            print("empty feed: nothing to report")
            return 0
        # The user watched 80% of the first video. The event carries the feed's request_id,
        # which joins it to the feed (and to the exposure logged for an A/B test). Its
        # event_id is made once, here: a retry re-sends the same id and cannot count twice.
        event = {
            "event_id": uuid.uuid4().hex,
            "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "user_id": user_id,
            "item_id": feed["items"][0]["video_id"],
            "item_type": "video",
            "action": "view",
            "watch_ratio": 0.8,
            "request_id": feed["request_id"],
        }
        answer = call("POST", f"{base}/v1/events", key, {"events": [event]})
    except RequestFailed as error:
        print(f"failed: {error}", file=sys.stderr)
        return 1
    print(
        f"view event {event['event_id']} (request_id {event['request_id']}): "
        f"accepted {answer['accepted']}, duplicates {answer['duplicates']}"
    )
    return 0 if answer["accepted"] + answer["duplicates"] == 1 else 1


if __name__ == "__main__":
    sys.exit(main())
