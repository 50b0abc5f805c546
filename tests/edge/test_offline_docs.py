"""The API docs pages work with no network but loopback: every asset they name is served by the
app itself (checked over real HTTP from uvicorn), and a headless Chromium that can reach nothing
else draws them (a screenshot that is not blank, the operations in the DOM, no request made
anywhere but to the app). Served at the root and mounted under a prefix (a `root_path`)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import httpx
import numpy as np
import pytest
import uvicorn
from fastapi import FastAPI
from matplotlib.image import imread
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.types import ASGIApp

from recsvc.edge.offline_docs import ASSETS_URL, PUBLIC_PATHS, install_offline_docs

API_TITLE = "Widget Ledger API"  # the schema's title: only a page that rendered shows it
PAGE_TITLE = "Widget docs"  # the HTML <title>s
OPERATIONS = {"/widgets": "List the widgets", "/widgets/{widget_id}": "Fetch one widget"}
WINDOW = (1200, 900)  # the browser's viewport, px
PREFIXES = ("", "/api")  # served at the root, and mounted under /api (root_path "/api")
CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
}
# the page's own assets and the schema: what each page must ask for (prefix first)
EXPECTED_ASSETS = {
    "/docs": {"swagger-ui-bundle.js", "swagger-ui.css", "favicon.png"},
    "/redoc": {"redoc.standalone.js", "favicon.png"},
}
GET_COLOUR = {"/docs": "#61affe", "/redoc": "#2f8132"}  # each UI's badge of a GET operation


def widget_app(openapi_url: str | None = "/openapi.json") -> FastAPI:
    app = FastAPI(
        title=API_TITLE, version="1.2.3", openapi_url=openapi_url, docs_url=None, redoc_url=None
    )

    @app.get("/widgets", summary=OPERATIONS["/widgets"])
    async def list_widgets() -> list[int]:
        return [1, 2]

    @app.get("/widgets/{widget_id}", summary=OPERATIONS["/widgets/{widget_id}"])
    async def get_widget(widget_id: int) -> dict[str, int]:
        return {"id": widget_id}

    return app


def docs_app() -> FastAPI:
    app = widget_app()
    install_offline_docs(app, title=PAGE_TITLE)
    return app


@contextmanager
def serving(app: ASGIApp) -> Iterator[str]:
    """`app` under uvicorn in a thread, on a loopback port the OS picks; its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:  # a flag uvicorn sets once it listens
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture(scope="module", params=PREFIXES, ids=["root", "mounted"])
def site(request: pytest.FixtureRequest) -> Iterator[str]:
    """The base URL the docs are under: the app served alone, or mounted at /api."""
    prefix: str = request.param
    app: ASGIApp = docs_app()
    if prefix:
        app = Starlette(routes=[Mount(prefix, app=app)])
    with serving(app) as base:
        yield base + prefix


class References(HTMLParser):
    """The URLs a page loads: <script src>, <link href>, and ReDoc's <redoc spec-url>."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.spec_urls: list[str] = []
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "script" and attributes.get("src"):
            self.urls.append(attributes["src"] or "")
        elif tag == "link" and attributes.get("href"):
            self.urls.append(attributes["href"] or "")
        elif tag == "redoc":
            self.spec_urls.append(attributes.get("spec-url") or "")


# ---- over HTTP -------------------------------------------------------------------------------


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_every_asset_a_page_names_is_served_by_the_app(site: str, page: str) -> None:
    prefix = httpx.URL(site).path.rstrip("/")
    with httpx.Client(base_url=site.removesuffix(prefix), timeout=10) as client:
        response = client.get(prefix + page)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        html = response.text
        assert PAGE_TITLE in html
        assert response.headers["content-security-policy"] == "img-src 'self' data:"
        assert "://" not in html  # no CDN, no font host, no absolute URL of any kind
        references = References(html)
        names = set()
        for url in references.urls:
            assert url.startswith(f"{prefix}{ASSETS_URL}/"), url
            name = url.rsplit("/", 1)[1]
            names.add(name)
            asset = client.get(url)
            assert asset.status_code == 200, url
            assert len(asset.content) > 1_000, url
            assert asset.headers["content-type"] == CONTENT_TYPES[Path(name).suffix], url
        assert names == EXPECTED_ASSETS[page]
        # the schema the page reads, under the same prefix
        spec_url = f"{prefix}/openapi.json"
        if page == "/docs":
            assert f"url: '{spec_url}'," in html
        else:
            assert references.spec_urls == [spec_url]
        schema = client.get(spec_url).json()
        assert schema["info"]["title"] == API_TITLE


def test_assets_are_cached_and_revalidated(site: str) -> None:
    url = f"{site}{ASSETS_URL}/swagger-ui-bundle.js"
    with httpx.Client(timeout=10) as client:
        first = client.get(url)
        assert first.status_code == 200
        assert first.headers["cache-control"] == "public, max-age=86400"
        assert first.headers["x-content-type-options"] == "nosniff"
        etag = first.headers["etag"]
        again = client.get(url, headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b""
        assert again.headers["etag"] == etag
        changed = client.get(url, headers={"If-None-Match": '"something-else"'})
        assert changed.status_code == 200 and changed.content == first.content
        head = client.head(url)
        assert head.status_code == 200 and head.content == b""
        assert client.get(f"{site}{ASSETS_URL}/swagger-ui.js.map").status_code == 404


def test_the_schema_lists_no_docs_route_and_public_paths_lists_them_all() -> None:
    app = docs_app()
    assert set(app.openapi()["paths"]) == set(OPERATIONS)
    added = {getattr(route, "path", "") for route in app.routes} - {
        getattr(route, "path", "") for route in widget_app().routes
    }
    assert added == set(PUBLIC_PATHS)
    assert {"/docs", "/redoc", f"{ASSETS_URL}/redoc.standalone.js"} <= added


def test_fastapis_own_cdn_pages_are_refused_and_no_schema_means_no_pages() -> None:
    with pytest.raises(ValueError, match="docs_url=None and redoc_url=None"):
        install_offline_docs(FastAPI(), title=PAGE_TITLE)
    app = widget_app(openapi_url=None)
    routes = len(app.routes)
    install_offline_docs(app, title=PAGE_TITLE)
    assert len(app.routes) == routes


# ---- in a real browser that reaches nothing but loopback ---------------------------------------


@pytest.fixture(scope="module")
def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if found := shutil.which(name):
            return found
    pytest.skip(
        "no headless Chromium on this machine: install Debian's chromium "
        "(apt-get install chromium), as .ci/run does"
    )


@dataclass(frozen=True)
class Browsed:
    origin: str
    dom: str
    screenshot: np.ndarray  # height x width x RGB, 0..255
    requested: list[str]  # the URLs the page itself asked for (scripts, styles, fetches)


def page_requests(net_log: Path, origin: str) -> list[str]:
    """The URLs requested on behalf of a page of `origin` (the browser's own update and
    sign-in checks, which have no such initiator, are left out; the proxy stops them too)."""
    text = net_log.read_text(encoding="utf-8")
    try:
        log = json.loads(text)
    except json.JSONDecodeError:  # a log Chromium did not close: its events list is unended
        log = json.loads(text.rstrip().rstrip(",") + "]}")
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return [
        event["params"]["url"]
        for event in log["events"]
        if event["type"] == start and event.get("params", {}).get("initiator") == origin
    ]


def browse(chromium: str, url: str, scratch: Path) -> Browsed:
    screenshot, net_log = scratch / "page.png", scratch / "net.json"
    result = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--user-data-dir={scratch / 'profile'}",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            # no network but loopback: no name resolves, and everything but 127.0.0.1 goes to
            # a proxy on the discard port, where nothing listens
            "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
            "--proxy-server=127.0.0.1:9",
            "--proxy-bypass-list=127.0.0.1",
            f"--log-net-log={net_log}",
            f"--window-size={WINDOW[0]},{WINDOW[1]}",
            "--virtual-time-budget=5000",  # virtual time: waits for the page's fetches, no more
            f"--screenshot={screenshot}",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    header = screenshot.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n" and header[12:16] == b"IHDR"
    assert (int.from_bytes(header[16:20]), int.from_bytes(header[20:24])) == WINDOW
    origin = str(httpx.URL(url).copy_with(path="/", query=None)).rstrip("/")
    return Browsed(
        origin=origin,
        dom=result.stdout,
        screenshot=np.round(imread(screenshot)[..., :3] * 255).astype(np.int64),
        requested=page_requests(net_log, origin),
    )


@pytest.fixture(scope="module")
def browsed(
    chromium: str, site: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Browsed]:
    """Each page of `site` as the offline browser shows it (one Chromium run a page)."""
    return {
        page: browse(chromium, site + page, tmp_path_factory.mktemp("chromium"))
        for page in ("/docs", "/redoc")
    }


def colour(hex_colour: str) -> np.ndarray:
    return np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)])


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_page_is_drawn_not_blank(browsed: dict[str, Browsed], page: str) -> None:
    image = browsed[page].screenshot
    packed = (image[..., 0] << 16) | (image[..., 1] << 8) | image[..., 2]
    values, counts = np.unique(packed, return_counts=True)
    background = counts.max() / packed.size
    # a page whose script did not run is one colour; a drawn one has text, panels and badges
    assert 1 - background > 0.05, f"{1 - background:.1%} of the pixels differ from the background"
    assert len(values) > 200
    # the UI's own styling: its GET badges, two operations' worth
    assert (image == colour(GET_COLOUR[page])).all(axis=-1).sum() > 1_000


class Rendered(HTMLParser):
    """What a docs UI drew into the DOM: Swagger UI's operation blocks and their paths, ReDoc's
    menu items (by their aria-label) and the texts of headings."""

    def __init__(self, dom: str) -> None:
        super().__init__()
        self.opblocks = 0
        self.paths: list[str] = []
        self.menu: list[str] = []
        self.headings: list[str] = []
        self.in_heading = 0
        self.feed(dom)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        classes = (attributes.get("class") or "").split()
        self.opblocks += "opblock" in classes
        if "opblock-summary-path" in classes:
            self.paths.append(attributes.get("data-path") or "")
        if attributes.get("role") == "menuitem":
            self.menu.append(attributes.get("aria-label") or "")
        if tag in ("h1", "h2"):
            self.in_heading += 1
            self.headings.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("h1", "h2"):
            self.in_heading -= 1

    def handle_data(self, data: str) -> None:
        if self.in_heading:
            self.headings[-1] += data


def test_swagger_ui_renders_every_operation(browsed: dict[str, Browsed]) -> None:
    rendered = Rendered(browsed["/docs"].dom)
    assert rendered.opblocks == len(OPERATIONS)
    assert sorted(rendered.paths) == sorted(OPERATIONS)
    assert any(heading.strip().startswith(API_TITLE) for heading in rendered.headings)


def test_redoc_renders_every_operation(browsed: dict[str, Browsed]) -> None:
    rendered = Rendered(browsed["/redoc"].dom)
    assert sorted(rendered.menu) == sorted(OPERATIONS.values())
    headings = [heading.strip() for heading in rendered.headings]
    assert any(heading.startswith(API_TITLE) for heading in headings)
    assert set(OPERATIONS.values()) <= set(headings)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_page_asks_nothing_of_any_other_host(
    browsed: dict[str, Browsed], site: str, page: str
) -> None:
    requested = browsed[page].requested
    assert requested, "the net log recorded no request of the page"
    assert [url for url in requested if not url.startswith(browsed[page].origin + "/")] == []
    paths = {url.removeprefix(site) for url in requested}
    assets = {f"{ASSETS_URL}/{name}" for name in EXPECTED_ASSETS[page]}
    required = {"/openapi.json"} | {path for path in assets if not path.endswith(".png")}
    assert required <= paths <= required | assets  # the favicon as the browser sees fit
