"""recsvc: content recommendation and product attach for financial apps (the online half)."""

import os

# onnxruntime's Linux wheels (1.32) otherwise create a device id under ~/.cache and send usage
# events to Microsoft (its Privacy.md): a bank's service sends nothing out. Set before any
# recsvc module imports onnxruntime; a value already in the environment wins.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

__version__ = "0.1.0"
