"""The A/B analysis: attribution of outcomes to exposures, statistics and the report
(text, JSON and HTML).

May import `training.data` and `recsvc.contract`.
"""
