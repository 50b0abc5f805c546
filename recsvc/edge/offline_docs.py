"""The API docs pages (/docs: Swagger UI, /redoc: ReDoc) with every asset served by the service
itself, so that they work on a network that reaches nothing outside (a bank's, for one).

FastAPI's own pages load swagger-ui-bundle.js, swagger-ui.css and redoc.standalone.js from the
jsDelivr CDN, the favicon from fastapi.tiangolo.com and ReDoc's fonts from Google Fonts; where
those hosts are out of reach the page stays blank. Here the assets come from the PyPI package
`fastapi-offline` (MIT; its wheel ships Swagger UI 5 and ReDoc 2 as plain files in
`fastapi_offline/static/`): they are installed with the service and versioned by its
requirement, not copied into this repository, and the browser fetches them from this service
only. Only the files are used, not that package's `FastAPIOffline` app factory: the service
builds its own app. The Google Fonts stylesheet is left out (ReDoc falls back to local fonts),
and the pages' Content-Security-Policy keeps the one image the ReDoc bundle names on a CDN
(Redocly's logo, hidden when it does not load) from being asked for at all.

The caller creates the app with `docs_url=None, redoc_url=None` (so that FastAPI registers no
CDN page at the same paths) and calls `install_offline_docs`. Every URL in the pages carries the
request's `root_path` (a proxy prefix, or the path a parent app mounts this one at) and the
schema is read from `app.openapi_url`; with no schema (`openapi_url=None`) there are no pages.
Swagger UI's OAuth2 redirect page is not served: the API's keys are HTTP bearer tokens, typed
into the Authorize dialog, with no OAuth2 flow to return from.

`PUBLIC_PATHS` are the paths to let through without an API key; the schema at
`app.openapi_url` (/openapi.json) must be open too, or the pages have nothing to show.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from starlette.responses import HTMLResponse, Response

ASSET_PACKAGE: Final = "fastapi_offline"  # PyPI: fastapi-offline
ASSET_DIRECTORY: Final = "static"

DOCS_URL: Final = "/docs"
REDOC_URL: Final = "/redoc"
ASSETS_URL: Final = "/docs/assets"

# file name in the package -> its Content-Type
ASSET_TYPES: Final[dict[str, str]] = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "redoc.standalone.js": "text/javascript; charset=utf-8",
    "favicon.png": "image/png",
}

PUBLIC_PATHS: Final[tuple[str, ...]] = (
    DOCS_URL,
    REDOC_URL,
    *(f"{ASSETS_URL}/{name}" for name in ASSET_TYPES),
)

# ReDoc's bundle draws Redocly's logo from its CDN (hard-coded; it hides itself on error): the
# pages' images come from this service, or the browser makes no request for them at all
PAGE_HEADERS: Final[dict[str, str]] = {"Content-Security-Policy": "img-src 'self' data:"}

# The URLs are not versioned: a day, then a revalidation that the ETag makes a 304.
CACHE_CONTROL: Final = "public, max-age=86400"


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str
    etag: str


def load_assets() -> dict[str, Asset]:
    """The assets, read once from the installed package; a missing one fails at start-up (not
    as a blank page in a user's browser)."""
    try:
        directory = resources.files(ASSET_PACKAGE) / ASSET_DIRECTORY
    except ModuleNotFoundError as error:
        raise RuntimeError(
            f"the API docs need the package {ASSET_PACKAGE!r} (pip install fastapi-offline)"
        ) from error
    assets: dict[str, Asset] = {}
    for name, media_type in ASSET_TYPES.items():
        path = directory / name
        if not path.is_file():
            raise RuntimeError(f"the installed {ASSET_PACKAGE} has no {ASSET_DIRECTORY}/{name}")
        body = path.read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        assets[name] = Asset(body=body, media_type=media_type, etag=etag)
    return assets


def install_offline_docs(app: FastAPI, *, title: str) -> None:
    """Serve /docs, /redoc and their assets from this app; `title` heads the pages' titles."""
    if app.docs_url is not None or app.redoc_url is not None:
        raise ValueError(
            "create the app with docs_url=None and redoc_url=None: FastAPI's own pages "
            f"(docs_url={app.docs_url!r}, redoc_url={app.redoc_url!r}) load a CDN's assets"
        )
    if app.openapi_url is None:
        return  # no schema, no docs: as FastAPI does
    openapi_url = app.openapi_url
    assets = load_assets()
    # no validator badge (a request to validator.swagger.io); the app's own parameters win
    swagger_parameters: dict[str, Any] = {"validatorUrl": None, **(app.swagger_ui_parameters or {})}

    async def swagger_ui(request: Request) -> HTMLResponse:
        root = _root_path(request)
        page = get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{title} - Swagger UI",
            swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            oauth2_redirect_url=None,
            init_oauth=app.swagger_ui_init_oauth,
            swagger_ui_parameters=swagger_parameters,
        )
        page.headers.update(PAGE_HEADERS)
        return page

    async def redoc(request: Request) -> HTMLResponse:
        root = _root_path(request)
        page = get_redoc_html(
            openapi_url=root + openapi_url,
            title=f"{title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        )
        page.headers.update(PAGE_HEADERS)
        return page

    app.add_route(DOCS_URL, swagger_ui, include_in_schema=False)
    app.add_route(REDOC_URL, redoc, include_in_schema=False)
    for name, asset in assets.items():
        app.add_route(f"{ASSETS_URL}/{name}", _serve(asset), include_in_schema=False)


def _root_path(request: Request) -> str:
    root: str = request.scope.get("root_path", "")
    return root.rstrip("/")


def _serve(asset: Asset) -> Callable[[Request], Awaitable[Response]]:
    """An endpoint answering with `asset` (GET and HEAD), or 304 to a matching If-None-Match."""
    headers = {
        "Cache-Control": CACHE_CONTROL,
        "ETag": asset.etag,
        "X-Content-Type-Options": "nosniff",
    }

    async def endpoint(request: Request) -> Response:
        wanted = request.headers.get("if-none-match", "")
        tags = {tag.strip().removeprefix("W/") for tag in wanted.split(",")}
        if asset.etag in tags or "*" in tags:
            return Response(status_code=304, headers=headers)
        return Response(asset.body, media_type=asset.media_type, headers=headers)

    return endpoint
