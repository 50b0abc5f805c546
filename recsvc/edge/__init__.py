"""The HTTP edge: app assembly, routes, the request gate, keys, limits and schemas.

Owns everything that knows about HTTP: the FastAPI app (app), its routes (routes), the gate
in front of them (gate: auth, rate limits, body size, timing), API keys (auth), the request
and response schemas (schemas), the OpenAPI security description (api_docs) and the uvicorn
server (server). May import `recsvc.service`, `recsvc.feed`, `recsvc.store`, `recsvc.admin`
and `recsvc.contract`. Nothing but the CLI imports the edge.
"""
