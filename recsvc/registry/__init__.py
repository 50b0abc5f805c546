"""The model registry: publish, rollback, promote and prune model versions, under locks.

A library: the CLI and the nightly job call it; the service only reads the pointers it writes.
Owns publishing a version's vectors to Redis (publish), the version history and rollback
(versions) and the Redis locks that keep two writers apart (locks). May import
`recsvc.store`, `recsvc.contract` and `recsvc.feed` (a model is verified with the service's own
ranker before it is published).
"""
