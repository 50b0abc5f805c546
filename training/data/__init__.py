"""Event data: readers and validation, the interaction matrix, splits, the stream drain,
catalogue checks and user segments.

May import `recsvc.contract` and `recsvc.store` (the drain reads the streams).
"""
