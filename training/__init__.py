"""The offline half: reading events, fitting and tuning models, evaluation, the nightly job
and the A/B analysis.

May import `recsvc.contract`, `recsvc.registry`, `recsvc.store` and `recsvc.feed` (the ranker,
to score with exactly what the service serves); never the edge or the service layer.
"""
