"""The offline commands (train, evaluate, nightly, drain, ab ...), registered with the
`recsvc` CLI through the `recsvc.commands` entry point. Thin: parse options, call, print.

May import any `training` package and, for the `--world` option only, `sandbox`.
"""
