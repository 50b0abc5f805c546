"""The offline half: reading events, fitting and tuning models, evaluation, the nightly job
and the A/B analysis.

Packages: data (reading and validating events, splits), models (fitting, tuning, export),
evaluation (metrics, baselines, the live scorer), nightly (the job), ab (the analysis) and cli
(the commands, the composition root). May import `recsvc.contract`, `recsvc.registry`,
`recsvc.store` and `recsvc.feed` (the ranker, to score with exactly what the service serves);
never the edge or the service layer, except the CLI reading the service's settings for Redis.
Only the CLI may import `sandbox` (its `--world` option). tests/test_layers.py holds the table.
"""
