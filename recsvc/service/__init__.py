"""The service layer: work that does I/O under deadlines, between the edge and the store.

Owns the request batcher that computes feeds (batcher), the serving snapshot and the watcher
that swaps in new models and catalogues (snapshot), and the replica's settings, metrics and
logs. May import `recsvc.feed`, `recsvc.store` and `recsvc.contract`; never the edge.
"""
