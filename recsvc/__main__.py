"""`python -m recsvc` runs the CLI."""

from recsvc.cli.app import main

main()
