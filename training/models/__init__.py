"""Models: fitting (factors), tuning (tuner), the ONNX export (export), the map from a
video's metadata to the item space (metadata) and the train and evaluate runs (pipeline).

May import `training.data`, `training.evaluation`, `recsvc.feed` (the service's own
closed form, which the metadata map's prior is chosen with) and `recsvc.contract`.
"""
