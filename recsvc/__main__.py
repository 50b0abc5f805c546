"""`python -m recsvc` runs the CLI."""

from recsvc.cli import main

main()
