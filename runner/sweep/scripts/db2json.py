"""psweep-db2json: print a database as JSON (for jq and friends)."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from runner.sweep.scripts.common import ORIENTS, run_main

EPILOG = """\
examples:
  psweep-db2json calc/database.pk | jq . -C | less -R
  psweep-db2json calc/database.pk | jq -r '.[]|._run_id' | sort -u
  psweep-db2json calc/database.pk | jq -r '.[]|[._time_utc,.study,._run_id]|@tsv' | column -t
"""


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="psweep-db2json",
        description="Convert a psweep database pickle file to JSON, e.g. for queries with jq.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "-o",
        dest="orient",
        metavar="<orient>",
        default="records",
        choices=ORIENTS,
        help=f"DataFrame.to_json(orient=<orient>): {', '.join(ORIENTS)} (default: %(default)s)",
    )
    parser.add_argument("file", metavar="<file>", help="database file, e.g. calc/database.pk")
    return parser


def run_db2json(args: argparse.Namespace) -> int:
    import runner.sweep as ps

    print(ps.df_to_json(ps.df_read(args.file), orient=args.orient))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(make_parser(), run_db2json, argv)


if __name__ == "__main__":
    sys.exit(main())
