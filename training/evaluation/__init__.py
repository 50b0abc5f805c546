"""Evaluation: ranking metrics, scorers (the model, popularity, an oracle, the live model),
the evaluation run and its printed report.

May import `training.data`, `training.models` (factors), `recsvc.feed` (the ranker) and
`recsvc.contract`.
"""
