"""The `recsvc` command line: thin modules that parse options, call a library and print.

The composition root of the online half: it may import any `recsvc` package. Offline command
groups are registered by `training` and `sandbox` through the `recsvc.commands` entry point.
"""
