"""`python -m runner` is the `run` command."""

import sys

from runner.cli import main

if __name__ == "__main__":
    sys.exit(main())
