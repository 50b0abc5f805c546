"""The OpenAPI description's security part: which key each operation needs, and the
refusals every operation may meet before its handler (recsvc.edge.gate; 400 is FastAPI's, for an
unreadable body) as documented responses, so clients and schema-driven tests see them."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from recsvc.edge.auth import Access, KeyRing, access_for

SCHEMES = {Access.APP: "appKey", Access.ADMIN: "adminKey"}
ERROR = {
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {"detail": {"type": "string"}},
                "required": ["detail"],
            }
        }
    }
}
REFUSALS = {
    "400": "The body could not be read as its content type says (e.g. not UTF-8 JSON).",
    "401": "No API key, or an unknown one (`WWW-Authenticate: Bearer`).",
    "403": "The key given is of the other kind (an app key on an admin route, or the reverse).",
    "413": "Request body over RECSVC_MAX_BODY_BYTES.",
    "429": "Over the per-client rate limit; retry after Retry-After seconds.",
}


def document_security(app: FastAPI, keys: KeyRing) -> None:
    """Make `app.openapi()` declare bearer keys per operation and the gate's 4xx answers."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                routes=app.routes,
            )
            _add_security(schema, keys)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _add_security(schema: dict[str, Any], keys: KeyRing) -> None:
    components = schema.setdefault("components", {})
    components["securitySchemes"] = {
        name: {"type": "http", "scheme": "bearer", "description": f"An {access} API key."}
        for access, name in SCHEMES.items()
    }
    for path, operations in schema.get("paths", {}).items():
        access = access_for(path)
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            if access is not Access.OPEN:
                # `{}` too when keys are off for this level: the key is then optional
                needed: list[dict[str, list[str]]] = [{SCHEMES[access]: []}]
                operation["security"] = needed if keys.needs_key(access) else [*needed, {}]
                for status in ("401", "403"):
                    responses.setdefault(status, {"description": REFUSALS[status], **ERROR})
            if "requestBody" in operation:
                responses.setdefault("400", {"description": REFUSALS["400"], **ERROR})
            for status in ("413", "429"):
                responses.setdefault(status, {"description": REFUSALS[status], **ERROR})
