"""psweep-db2table: print a database as a text table for quick queries."""

from __future__ import annotations

import argparse
import sys
import textwrap
from typing import Any, Sequence

from runner.errors import choices_text, did_you_mean
from runner.sweep.errors import SweepDependencyError, SweepValueError
from runner.sweep.scripts.common import run_main

# The formats psweep 0.16's help lists; it hands -f to tabulate, which knows these and more.
PSWEEP_FORMATS = (
    "plain",
    "simple",
    "grid",
    "fancy_grid",
    "pipe",
    "orgtbl",
    "jira",
    "presto",
    "psql",
    "rst",
    "mediawiki",
    "moinmoin",
    "youtrack",
    "html",
    "latex",
    "latex_raw",
    "latex_booktabs",
    "textile",
)

EPILOG = """\
formats: every table format of the tabulate package, e.g.
  {formats}

examples:
  view a table with many columns without line wrapping:
      psweep-db2table calc/database.pk | less -S
  select some columns:
      psweep-db2table calc/database.pk _run_id study param_a
  print the column names (all of them with -a):
      psweep-db2table calc/database.pk | head -n1 | tr -s ' '

For serious queries use pandas: df = runner.sweep.df_read('calc/database.pk')
""".format(formats="\n  ".join(textwrap.wrap(", ".join(PSWEEP_FORMATS), 76)))


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="psweep-db2table",
        description="Convert a psweep database pickle file to a table, for quick queries.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "-f",
        dest="tablefmt",
        metavar="<tablefmt>",
        default="simple",
        help="tabulate's table format, e.g. simple, grid, fancy_grid, psql (default: simple)",
    )
    parser.add_argument(
        "-a",
        dest="all",
        action="store_true",
        help="print all columns; default skips _prefix columns such as _run_id",
    )
    parser.add_argument("-i", dest="index", action="store_true", help="print the index")
    parser.add_argument("file", metavar="<file>", help="database file, e.g. calc/database.pk")
    parser.add_argument(
        "columns",
        metavar="<column>",
        nargs="*",
        help="columns to print (default: all but _prefix ones)",
    )
    return parser


def _tabulate() -> Any:
    try:
        import tabulate
    except ImportError as ex:
        raise SweepDependencyError("tabulate", "sweep", "psweep-db2table") from ex
    return tabulate


def render(df: Any, fmt: str, showindex: bool) -> str:
    """`df` as a table in tabulate's format `fmt`, as psweep prints it."""
    tabulate = _tabulate()
    formats = sorted(tabulate.tabulate_formats)
    if fmt not in formats:  # tabulate would fall back to "simple" without a word
        raise SweepValueError(
            f"unknown table format {fmt!r}{did_you_mean(fmt, formats)}; "
            f"choose from {choices_text(formats)}"
        )
    return tabulate.tabulate(df, headers="keys", tablefmt=fmt, showindex=showindex)


def run_db2table(args: argparse.Namespace) -> int:
    import runner.sweep as ps

    df = ps.df_read(args.file)
    if not args.all:
        cols = args.columns or [col for col in df.columns if not str(col).startswith("_")]
        unknown = [col for col in cols if col not in df.columns]
        if unknown:
            raise SweepValueError(
                f"{args.file} has no column {unknown[0]!r}"
                f"{did_you_mean(unknown[0], map(str, df.columns))}; "
                f"columns: {choices_text(map(str, df.columns))}"
            )
        df = df[cols]
    print(render(df, args.tablefmt, args.index))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(make_parser(), run_db2table, argv)


if __name__ == "__main__":
    sys.exit(main())
