"""The operators' console (/console) in a real headless Chromium, driven by Playwright,
against a real service and Redis: it signs in with the admin key, shows the models, lists
and retires catalogue items, validates and saves experiments, looks a user up; it refuses
a wrong key, shows hostile text as text, and breaks none of its own Content-Security-Policy.
Screenshots go to RECSVC_CONSOLE_SCREENSHOTS when set (for a reviewer's eyes)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

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


def shot(page: Any, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"console-{name}.png"
    page.screenshot(path=str(path), full_page=True)
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
