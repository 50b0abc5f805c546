"""The Redis layer: every read and write of the service's state, under a circuit breaker.

Owns the client and its error set (client), the circuit breaker (breaker), the gateway every
call goes through (gateway: deadlines, error counting, the breaker), and one module per
aggregate, each with its Lua scripts beside the calls that run them: users (the request-path
reads of a user's vector, state and profile), ingest (events and exposures into the streams,
with dedup and the state they change), streams (lengths, lag and trimming), catalog, and
control (experiments, the model pointer). `state.FeatureStore` assembles them into the one
object the service holds; durability checks Redis' persistence settings. May import
`recsvc.contract` only.
"""
