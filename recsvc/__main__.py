"""`python -m recsvc` runs the CLI."""

from recsvc.cli.main import main

main()
