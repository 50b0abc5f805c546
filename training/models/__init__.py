"""Models: fitting (factors), tuning (tuner), the ONNX export (export) and the train and
evaluate runs (pipeline).

May import `training.data`, `training.evaluation` and `recsvc.contract`.
"""
