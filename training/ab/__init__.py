"""The A/B analysis: attribution of outcomes to exposures, statistics and the report
(text, JSON and HTML).

Modules: inputs (reading the drained exposures, durations and the definition; ReportError),
attribution (users to variants, outcome events to exposures), counting (per-user counts per
variant), columnar (their array primitives), stats (the comparisons and the SRM check), cuped
(the comparisons with pre-experiment covariates), breakdown (by segment, lifecycle and
surface), cumulative (the effect by day), verdict (what to do), plan (power and MDE), report
(the JSON-ready report, and the names the CLI imports), glossary (the page's words), text (the
terminal table), html (the page), html_chart (its forest plot), html_trend (its cumulative
charts), html_tables (its tables) and html_format (its values).

May import `training.data` and `recsvc.contract`.
"""
