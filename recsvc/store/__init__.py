"""The Redis layer: every read and write of the service's state, under a circuit breaker.

Owns the client and its error set (client), the breaker (breaker), the Lua scripts (scripts),
the Redis durability check (durability) and the feature store (state: user state, ingest,
exposures, catalogue, experiments, stream stats, model pointers). May import
`recsvc.contract` only.
"""
