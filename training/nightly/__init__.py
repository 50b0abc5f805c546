"""The nightly job: drain, retrain, compare, gate and publish (run, the steps in order, with
what it is asked to do in spec, its window of events in window, what it reads of the live side
in live, the gate in decision and the report it writes in report), its Prometheus metrics file
(metrics) and the metrics-history chart (chart).

May import the other `training` packages, `recsvc.registry`, `recsvc.store` and
`recsvc.contract`.
"""
