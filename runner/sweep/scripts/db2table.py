"""psweep-db2table: print a database as a text table for quick queries."""

from __future__ import annotations

import argparse
import numbers
import sys
from typing import Any, Sequence

from runner.errors import choices_text, did_you_mean
from runner.sweep.errors import SweepError, SweepValueError
from runner.sweep.scripts.common import run_main

BUILTIN_FORMATS = ("plain", "simple", "grid", "pipe", "orgtbl", "psql", "rst", "tsv")
TABULATE_FORMATS = (
    "fancy_grid",
    "jira",
    "presto",
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
formats built in: {builtin}
formats that need the tabulate package: {tab}

examples:
  view a table with many columns without line wrapping:
      psweep-db2table calc/database.pk | less -S
  select some columns:
      psweep-db2table calc/database.pk _run_id study param_a
  print the column names (all of them with -a):
      psweep-db2table calc/database.pk | head -n1 | tr -s ' '

For serious queries use pandas: df = runner.sweep.df_read('calc/database.pk')
""".format(builtin=", ".join(BUILTIN_FORMATS), tab=", ".join(TABULATE_FORMATS))


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
        help="table format (default: simple)",
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


def _cell(val: Any) -> str:
    if val is None:
        return ""
    if isinstance(val, float):
        return format(val, "g")
    return str(val)


def _is_number(val: Any) -> bool:
    return isinstance(val, numbers.Number) and not isinstance(val, bool)


def _decimal_align(cells: list[str]) -> list[str]:
    """Number cells padded so that their decimal points line up."""
    heads = [cell.split(".")[0] for cell in cells]
    fracs = [cell[len(head) :] for cell, head in zip(cells, heads)]
    hw, fw = max(map(len, heads), default=0), max(map(len, fracs), default=0)
    return [
        head.rjust(hw) + frac.ljust(fw) if cell else ""
        for cell, head, frac in zip(cells, heads, fracs)
    ]


def make_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str) -> str:
    """A text table in one of BUILTIN_FORMATS, laid out as tabulate does (numbers at the point)."""
    cols = list(zip(*rows)) if rows else [()] * len(headers)
    numeric = [bool(col) and all(_is_number(v) or v is None for v in col) for col in cols]
    texts = [[_cell(val) for val in col] for col in cols]
    texts = [_decimal_align(t) if num else t for t, num in zip(texts, numeric)]
    if fmt == "rst":
        headers = [h if str(h) else ".." for h in headers]
    widths = [max([len(str(h)) + 2, *map(len, t)]) for h, t in zip(headers, texts)]
    aligned = [
        [c.rjust(w) if num else c.ljust(w) for c in t] for t, num, w in zip(texts, numeric, widths)
    ]
    head = [
        str(h).rjust(w) if num else str(h).ljust(w) for h, num, w in zip(headers, numeric, widths)
    ]
    body = [list(cells) for cells in zip(*aligned)] if rows else []

    def open_line(cells: Sequence[str], sep: str = "  ") -> str:
        return sep.join(cells).rstrip()

    def boxed_line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(cells) + " |"

    def rule(char: str, sep: str, left: str, right: str, pad: int) -> str:
        return left + sep.join(char * (w + pad) for w in widths) + right

    if fmt == "plain":
        return "\n".join(open_line(c) for c in [head, *body])
    if fmt == "tsv":
        return "\n".join(open_line(c, "\t") for c in [head, *body])
    if fmt == "simple":
        return "\n".join([open_line(head), rule("-", "  ", "", "", 0), *map(open_line, body)])
    if fmt == "rst":
        edge = rule("=", "  ", "", "", 0)
        return "\n".join([edge, open_line(head), edge, *map(open_line, body), edge])
    if fmt == "grid":
        out = [rule("-", "+", "+", "+", 2), boxed_line(head), rule("=", "+", "+", "+", 2)]
        for cells in body:
            out += [boxed_line(cells), rule("-", "+", "+", "+", 2)]
        return "\n".join(out if body else [*out, rule("-", "+", "+", "+", 2)])
    if fmt == "pipe":
        marks = [
            ("-" * (w + 1) + ":") if num else (":" + "-" * (w + 1))
            for w, num in zip(widths, numeric)
        ]
        return "\n".join([boxed_line(head), "|" + "|".join(marks) + "|", *map(boxed_line, body)])
    if fmt == "orgtbl":
        return "\n".join([boxed_line(head), rule("-", "+", "|", "|", 2), *map(boxed_line, body)])
    if fmt == "psql":
        edge = rule("-", "+", "+", "+", 2)
        return "\n".join(
            [edge, boxed_line(head), rule("-", "+", "|", "|", 2), *map(boxed_line, body), edge]
        )
    raise SweepValueError(f"unknown table format {fmt!r}")


def render(df: Any, fmt: str, showindex: bool) -> str:
    """`df` as a table in format `fmt`, built in or through tabulate."""
    if fmt in BUILTIN_FORMATS:
        headers = ([""] if showindex else []) + [str(col) for col in df.columns]
        rows = [
            ([idx] if showindex else []) + list(row)
            for idx, row in zip(df.index, df.itertuples(index=False, name=None))
        ]
        return make_table(headers, rows, fmt)
    if fmt not in TABULATE_FORMATS:
        raise SweepValueError(
            f"unknown table format {fmt!r}{did_you_mean(fmt, BUILTIN_FORMATS + TABULATE_FORMATS)}; "
            f"choose from {choices_text(BUILTIN_FORMATS + TABULATE_FORMATS)}"
        )
    try:
        from tabulate import tabulate
    except ImportError as ex:
        raise SweepError(
            f"table format {fmt!r} needs the tabulate package (pip install tabulate); "
            f"built in are {choices_text(BUILTIN_FORMATS)}"
        ) from ex
    return tabulate(df, headers="keys", tablefmt=fmt, showindex=showindex)


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
