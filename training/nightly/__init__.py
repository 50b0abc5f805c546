"""The nightly job: drain, retrain, compare, gate and publish (run), its Prometheus metrics
file (metrics) and the metrics-history chart (chart).

May import the other `training` packages, `recsvc.registry`, `recsvc.store` and
`recsvc.contract`.
"""
