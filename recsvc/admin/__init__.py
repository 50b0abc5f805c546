"""Admin loaders: catalogue and profile files read, validated and written to Redis.

Used by the CLI and the admin routes. May import `recsvc.store` and `recsvc.contract`.
"""
