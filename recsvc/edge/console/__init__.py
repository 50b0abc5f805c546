"""The operators' console: one page at /console, everything in it served by this service (no
CDN, no external font), its data read and written through the admin API with the admin key.
The page, its script and its style are the files beside this module (package data).

The page itself holds no data and no secret, so it is served without a key; the operator
types the admin key into it, the page keeps it in the tab's sessionStorage (gone when the tab
closes) and sends it as a bearer token with every call, like any other client. What it shows
and does, each through the route named:

- Models: the current model and the challenger, their versions, windows, parameters and
  offline metrics, and what this replica serves (GET /v1/admin/models);
- Catalogue: videos or products with their status, filtered and paged, each retired or made
  live in one click (GET /v1/admin/catalog/{kind}, PUT /v1/catalog/{kind}/{id}/status);
- Experiments: the stored definition, edited, validated without storing, saved (GET/PUT
  /v1/admin/experiments, POST /v1/admin/experiments/validate);
- Campaigns: the rules this replica serves (active now or not) and the stored definition,
  edited, validated, dry-run on a sample of users (users targeted and feeds acted on per
  rule, unknown items), saved (GET/PUT /v1/admin/campaigns, POST
  /v1/admin/campaigns/validate, POST /v1/admin/campaigns/dry-run);
- Users: a user's profile, whether the model has their vector, their recent events, and
  their next feed explained, the campaign rules and pins in it and each card's category
  count and cap (GET /v1/users/{id}, GET /v1/users/{id}/feed/explain).

Everything from the API is put into the page as text (textContent), never as HTML: a
catalogue title cannot inject markup. The Content-Security-Policy allows this page's own
script and style (by their hashes) and calls to this origin only.
"""

from __future__ import annotations

import base64
import hashlib
from importlib import resources
from typing import Final

from fastapi import APIRouter
from starlette.responses import HTMLResponse

router = APIRouter(include_in_schema=False)


def _asset(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def _digest(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


STYLE: Final = _asset("console.css")
SCRIPT: Final = _asset("console.js")
# str.replace, not format(): the style and the script are full of braces
PAGE: Final = _asset("console.html").replace("{style}", STYLE).replace("{script}", SCRIPT)
POLICY: Final = (
    f"default-src 'none'; script-src {_digest(SCRIPT)}; style-src {_digest(STYLE)}; "
    "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)


@router.get("/console", response_class=HTMLResponse)
async def console() -> HTMLResponse:
    """The console page (no data in it: everything comes from the admin API, with the key
    the operator types in)."""
    headers = {
        "Content-Security-Policy": POLICY,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }
    return HTMLResponse(PAGE, headers=headers)
