"""The operators' console (/console) in a real headless Chromium, driven by Playwright,
against a real service and Redis: it signs in with the admin key, shows the models, lists
and retires catalogue items, validates and saves experiments, shows, validates, dry-runs and saves
campaign rules, looks a user up (their feed explained, campaigns and card caps in it); it
refuses a wrong key, shows hostile text as text, and breaks none of its own
Content-Security-Policy. Screenshots go to RECSVC_CONSOLE_SCREENSHOTS when set (for a
reviewer's eyes)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandbox.embedded_redis import EmbeddedRedis
from tests.builders import ADMIN_KEY
from tests.http.builders import PLANTED_VERSION, event_body, eventually

sync_api = pytest.importorskip("playwright.sync_api", reason="the test extra's playwright")
EVIL = "<img src=x onerror=\"document.title='owned'\">"
BAD_DEFINITION = (
    '[[experiment]]\nname = "cards"\n'
    '[[experiment.variant]]\nname = "a"\nweight = 0.7\n'
    '[[experiment.variant]]\nname = "b"\nweight = 0.5\n'
)
REFUSED = "Failed to load resource: the server responded with a status of 4"
GOOD_DEFINITION = BAD_DEFINITION.replace("0.7", "0.5")
SERVING_RULES = (
    '[[campaign]]\nname = "credit-week"\nkind = "boost"\ntopics = ["credit"]\nstrength = 2\n'
    "priority = 3\nstart = 2020-01-01T00:00:00Z\nend = 2199-01-01T00:00:00Z\n"
    '[campaign.target]\nsegments = ["young"]\nrisk_tolerance = [1, 3]\n'
    '[[campaign]]\nname = "later"\nkind = "exclude"\nvideos = ["v02"]\n'
    "start = 2199-01-01T00:00:00Z\n"
)
BAD_RULES = '[[campaign]]\nname = "lift"\nkind = "boost"\ntopics = ["saving"]\n'
# the young users' home page leads with v31; a cap on deposit cards; a video nobody knows
NEW_RULES = (
    '[[campaign]]\nname = "young-credit"\nkind = "pin"\nvideo = "v31"\nslot = 1\n'
    '[campaign.target]\nsegments = ["young"]\n'
    '[[campaign]]\nname = "calm-deposits"\nkind = "cap"\ncategories = ["deposit"]\n'
    "daily_cap = 2\n"
    '[[campaign]]\nname = "gone"\nkind = "exclude"\nvideos = ["v-nope"]\n'
)


@pytest.fixture(scope="module")
def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    pytest.skip("no headless Chromium here: install Debian's chromium, as .ci/run does")


@pytest.fixture
def page(chromium: str, service: httpx.Client) -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        tab = browser.new_page(viewport={"width": 1280, "height": 1400})
        # console errors (a CSP violation is one; the API's refusals the tests provoke are
        # not) and uncaught exceptions
        tab.problems = []
        tab.on("console", lambda m: m.type == "error" and not m.text.startswith(REFUSED)
               and tab.problems.append(m.text))  # fmt: skip
        tab.on("pageerror", lambda e: tab.problems.append(str(e)))
        tab.goto(f"{service.base_url}/console")
        try:
            yield tab
        finally:
            browser.close()


def sign_in(page: Any, key: str) -> None:
    page.fill("#key", key)
    page.click("#sign-in")


def shot(page: Any, tmp_path: Path, name: str, section: str | None = None) -> None:
    """The whole page, or one section of it (a CSS selector)."""
    path = tmp_path / f"console-{name}.png"
    if section is None:
        page.screenshot(path=str(path), full_page=True)
    else:
        page.locator(section).screenshot(path=str(path))
    assert path.stat().st_size > 10_000  # drawn, not blank
    if keep := os.environ.get("RECSVC_CONSOLE_SCREENSHOTS"):
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(keep) / path.name)


def test_an_operator_sees_models_retires_a_product_saves_experiments_looks_up_a_user(
    page: Any, service: httpx.Client, tmp_path: Path
) -> None:
    assert page.text_content("#models-body") == "Sign in to load."
    sign_in(page, ADMIN_KEY)
    page.wait_for_selector("#models-body table")
    current = page.locator("#models-body tr", has_text="current")
    assert PLANTED_VERSION in current.inner_text()
    assert PLANTED_VERSION in page.text_content("#models-serving")
    page.wait_for_selector("#catalog-body td:text-is('v00')")
    shot(page, tmp_path, "signed-in")

    # Catalogue: products, retire one in one click; every replica reads it from Redis.
    page.select_option("#catalog-kind", "products")
    row = page.locator("#catalog-body tr", has_text="p-ins")
    row.get_by_role("button", name="Retire").click()
    page.wait_for_selector("#catalog-body span.status-retired[data-id='p-ins']")
    assert "p-ins is now retired" in page.text_content("#catalog-result")
    assert service.get("/v1/catalog/products/p-ins").json()["status"] == "retired"
    assert eventually(  # the list is the replica's catalogue: it has the change within a poll
        lambda: (
            service.get("/v1/admin/catalog/products", params={"status": "retired"}).json()["total"]
            == 1
        )
    )
    page.select_option("#catalog-status", "retired")
    sync_api.expect(page.locator("#catalog-body tr")).to_have_count(2)  # the head, p-ins
    assert page.text_content("#catalog-page") == "1–1 of 1"

    # Experiments: a bad definition is refused with its problem named; a good one saved.
    page.fill("#experiments-text", BAD_DEFINITION)
    page.click("#experiments-validate")
    page.wait_for_selector("#experiments-result .problem")
    assert "weights" in page.text_content("#experiments-result")
    page.fill("#experiments-text", GOOD_DEFINITION)
    page.click("#experiments-validate")
    page.wait_for_selector("#experiments-result .ok")
    assert page.text_content("#experiments-result") == "Valid: cards."
    assert not service.get("/v1/admin/experiments").json()["definition"]  # not stored
    page.click("#experiments-save")
    page.wait_for_selector("#experiments-result .ok >> text=Saved as revision")
    assert service.get("/v1/admin/experiments").json()["definition"] == GOOD_DEFINITION

    # Users: the profile, the vector, the recent events.
    events = [event_body("u-ins", "v00", "view", watch_ratio=0.5)]
    assert service.post("/v1/events", json={"events": events}).status_code == 202
    page.fill("#user-id", "u-ins")
    page.click("#user-look-up")
    page.wait_for_selector("#user-body table")
    text = page.inner_text("#user-body")
    assert f"vector in {PLANTED_VERSION}: yes" in text
    assert "v00\tvideo\tview\t0.5" in text
    # and their next feed, explained: each score's parts, each card's checks
    page.wait_for_selector("#user-body td:text-is('v01')")
    explained = page.inner_text("#user-body")
    assert "Their next feed, explained" in explained and "Explaining uses no daily cap" in explained
    first = page.locator("#user-body table").nth(1).locator("tr").nth(1).inner_text()
    assert first.split("\t")[:2] == ["1", "v01"]  # v00 was just seen
    assert "risk 1 (allowed up to 1)" in explained  # the insurance user's card, checked
    shot(page, tmp_path, "user")
    assert page.problems == []


def test_a_wrong_key_is_refused_and_hostile_text_stays_text(
    page: Any, service: httpx.Client, tmp_path: Path
) -> None:
    sign_in(page, "not-the-admin-key-0123456789")
    page.wait_for_selector("#models-body .problem")
    assert "refused the key (401)" in page.text_content("#models-body")

    video = {"video_id": "v-evil", "title": EVIL, "topics": ["saving"]}
    assert service.put("/v1/catalog/videos/v-evil", json=video).status_code == 200
    sign_in(page, ADMIN_KEY)
    page.fill("#catalog-search", "v-evil")
    page.wait_for_selector("#catalog-body td:text-is('v-evil')")
    cell = page.locator("#catalog-body tr", has_text="v-evil").locator("td").nth(1)
    assert cell.text_content() == EVIL  # shown as text
    assert page.locator("#catalog-body img").count() == 0  # never parsed as markup
    assert page.title() == "recsvc console"
    policy = service.get("/console").headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "script-src 'sha256-" in policy
    assert page.problems == []


def test_an_operator_sees_validates_dry_runs_and_saves_campaign_rules(
    page: Any, service: httpx.Client, tmp_path: Path
) -> None:
    # Rules stored through the API: once this replica serves them, the section lists them.
    stored = service.put("/v1/admin/campaigns", content=SERVING_RULES.encode())
    assert stored.status_code == 200, stored.text
    first = stored.json()["revision"]
    assert eventually(
        lambda: service.get("/v1/admin/campaigns").json()["serving_revision"] == first
    )
    sign_in(page, ADMIN_KEY)
    page.wait_for_selector("#campaigns-serving table")
    assert page.input_value("#campaigns-text") == SERVING_RULES
    assert page.text_content("#campaigns-state") == (
        f"Stored revision {first}; this replica serves {first}."
    )
    rows = [r.split("\t") for r in page.inner_text("#campaigns-serving table").split("\n")]
    assert rows == [
        ["name", "kind", "priority", "acts on", "schedule", "target", "active now"],
        ["credit-week", "boost", "3", "topics credit; strength 2",
         "from 2020-01-01T00:00:00Z to 2199-01-01T00:00:00Z",
         "segments young; risk tolerance 1–3", "yes"],
        ["later", "exclude", "0", "videos v02", "from 2199-01-01T00:00:00Z", "everyone", "no"],
    ]  # fmt: skip

    # Validate: a bad definition is refused in the page, its problem named; nothing stored.
    page.fill("#campaigns-text", BAD_RULES)
    page.click("#campaigns-validate")
    page.wait_for_selector("#campaigns-result .problem")
    assert page.text_content("#campaigns-result") == (
        "Refused: campaign 1 (lift): a boost rule needs a strength "
        "(in units of the user's score spread)"
    )
    # a bad query parameter of the dry run is a 422 too, its problem named as text
    page.fill("#campaigns-users", "0")
    page.click("#campaigns-dry-run")
    page.wait_for_selector("#campaigns-result .problem >> text=users:")
    assert "greater than or equal to 1" in page.text_content("#campaigns-result")
    page.fill("#campaigns-users", "1000")

    # Dry run: on every user with a profile, what the new rules would touch.
    for user, segment in (("u-save", "young"), ("u-ins", "young"), ("u-inv", "retired")):
        response = service.put(f"/v1/users/{user}/profile", json={"segment": segment})
        assert response.status_code == 200, response.text
    page.fill("#campaigns-text", NEW_RULES)
    page.click("#campaigns-validate")
    page.wait_for_selector("#campaigns-result .ok")
    assert page.text_content("#campaigns-result") == "Valid: young-credit, calm-deposits, gone."
    page.click("#campaigns-dry-run")
    page.wait_for_selector("#campaigns-result .dry-run")
    report = page.inner_text("#campaigns-result")
    assert "users scanned: 3 · feeds compared: 3 · feeds changed: 2" in report
    assert "on 3 users with a profile (all of them), on home." in report
    rows = [r.split("\t") for r in page.inner_text("#campaigns-result table").split("\n")]
    assert rows == [
        ["rule", "kind", "active then", "users targeted", "feeds acted on"],
        ["young-credit", "pin", "yes", "2", "2"],
        ["calm-deposits", "cap", "yes", "3", "0"],  # nobody at the cap: no card held back
        ["gone", "exclude", "yes", "3", "0"],
    ]
    assert "Unknown items (they match nothing until they exist): gone: v-nope." in report
    assert service.get("/v1/admin/campaigns").json()["serving_revision"] == first  # a read
    shot(page, tmp_path, "campaigns", "#campaigns")

    # Save: stored, then served by the replica, and the section shows what it serves.
    page.click("#campaigns-save")
    page.wait_for_selector("#campaigns-result .ok >> text=Saved as revision")
    served = service.get("/v1/admin/campaigns").json()
    assert served["definition"] == NEW_RULES and served["revision"] != first
    assert eventually(
        lambda: service.get("/v1/admin/campaigns").json()["serving_revision"] == served["revision"]
    )
    page.wait_for_selector("#campaigns-serving td:text-is('young-credit')")
    assert page.text_content("#campaigns-state") == (
        f"Stored revision {served['revision']}; this replica serves {served['revision']}."
    )
    assert page.input_value("#campaigns-text") == NEW_RULES

    # A user's explained feed: the pinned video, its rule; the card's category count and cap.
    page.fill("#user-id", "u-save")
    page.click("#user-look-up")
    page.wait_for_selector("#user-body td:text-is('v31 (pinned)')")
    explained = page.locator("#user-body table").nth(1)
    first_row = explained.locator("tr").nth(1).inner_text().split("\t")
    assert first_row[:2] == ["1", "v31 (pinned)"] and first_row[8] == "pinned by young-credit"
    cards = explained.inner_text()
    assert "p-dep: risk 1" in cards
    assert "deposit cards today 0 of a cap of 2; campaigns calm-deposits" in cards
    shot(page, tmp_path, "campaigns-user")
    assert page.problems == []


def test_campaigns_without_redis_say_so_in_the_page(
    page: Any, service: httpx.Client, redis_server: EmbeddedRedis
) -> None:
    sign_in(page, ADMIN_KEY)
    page.wait_for_selector("#campaigns-serving p:text-is('No campaign rule serving.')")
    redis_server.stop()  # the next test's redis_url starts it again
    try:
        page.fill("#campaigns-text", NEW_RULES)
        page.click("#campaigns-save")
        page.wait_for_selector("#campaigns-result .problem")
        message = page.text_content("#campaigns-result")
        assert message.startswith("The service cannot answer now (503): ")
        assert message.endswith(" s.") and "try again in " in message  # its Retry-After
        assert "{" not in message  # a sentence, not JSON
    finally:
        redis_server.start()
    # the browser logs the 503 itself; nothing else went wrong
    assert [p for p in page.problems if "status of 503" not in p] == []
