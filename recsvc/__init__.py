"""recsvc: content recommendation and product attach for financial apps (the online half)."""

__version__ = "0.1.0"
