"""`run results -o output [--csv FILE | --json FILE] [--sort COL] [--columns COL ...]`:
every task's params, state, timings and metrics as one table."""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from typing import Any, List

from runner.cli.common import EXIT_OK, ArgumentParser, command, finite, plural


def make_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="run results", description=__doc__.splitlines()[0].split(": ")[-1]
                            + " every task's params, state, timings and metrics as one table")
    parser.add_argument("-o", "--output", default="output", metavar="DIR",
                        help="output directory (default: output)")
    out = parser.add_mutually_exclusive_group()
    out.add_argument("--csv", metavar="FILE", help="write CSV to FILE ('-' for stdout)")
    out.add_argument("--json", metavar="FILE", help="write JSON records to FILE ('-' for stdout)")
    parser.add_argument("--sort", metavar="COL",
                        help="sort rows by this column; -COL sorts descending (missing values "
                             "last either way)")
    parser.add_argument("--columns", nargs="+", metavar="COL",
                        help="show only these columns (default: params, _state, _runtime, "
                             "metrics)")
    parser.add_argument("--all", action="store_true", help="show every column in the table")
    return parser


@command
def main(argv: List[str]) -> int:
    from runner.errors import UsageError, did_you_mean
    from runner.results import collect_rows, table_columns

    args = make_parser().parse_args(_join_sort(argv))
    for path in (args.csv, args.json):
        if path and path != "-":
            _check_destination(path)
    warnings: List[str] = []
    rows = collect_rows(args.output, warnings)
    for warning in warnings:
        sys.stderr.write(f"run: warning: {warning}\n")
    columns = table_columns(rows)
    records = [r.as_dict() for r in rows]
    if args.columns:
        unknown = [c for c in args.columns if c not in columns]
        if unknown:
            raise UsageError(f"--columns {unknown[0]}: no such column; columns are "
                             f"{', '.join(columns)}")
        shown = list(args.columns)
    elif args.all or args.csv or args.json:
        shown = columns
    else:
        shown = [c for c in columns if not c.startswith("_")]
        shown[len(rows[0].params) if rows else 0:0] = ["_name", "_state", "_runtime"]
    if args.sort:
        descending = args.sort.startswith("-") and args.sort not in columns
        column = args.sort[1:] if descending else args.sort
        if column not in columns:
            raise UsageError(f"--sort {args.sort}: no such column{did_you_mean(column, columns)};"
                             f" columns are {', '.join(columns)}")
        records.sort(key=lambda r: _sort_key(r.get(column)), reverse=descending)
        records.sort(key=lambda r: _sort_key(r.get(column))[0])  # missing values stay last
    if args.json:
        _write(args.json, json.dumps([{c: finite(r.get(c)) for c in shown} for r in records],
                                     indent=2, default=str, allow_nan=False) + "\n")
    elif args.csv:
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=shown, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(records)
        _write(args.csv, text.getvalue())
    else:
        table = [shown] + [[_cell(r.get(c)) for c in shown] for r in records]
        widths = [max(len(row[i]) for row in table) for i in range(len(shown))]
        for row in table:
            sys.stdout.write("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() + "\n")
        sys.stdout.write(f"{plural(len(records), 'task')}\n")
    return EXIT_OK


def _check_destination(path: str) -> None:
    from runner.errors import UsageError

    if os.path.isdir(path):
        raise UsageError(f"{path}: is a directory; name the file to write")
    folder = os.path.dirname(path) or "."
    if not os.path.isdir(folder):
        raise UsageError(f"{path}: no folder {folder}; create it first or write elsewhere")
    if not os.access(folder, os.W_OK):
        raise UsageError(f"{path}: cannot write into {folder}; choose a writable folder")


def _join_sort(argv: List[str]) -> List[str]:
    """`--sort -loss` as `--sort=-loss`: argparse would take `-loss` for an option."""
    out = list(argv)
    for i, arg in enumerate(out[:-1]):
        if arg == "--sort" and out[i + 1].startswith("-"):
            out[i:i + 2] = [f"--sort={out[i + 1]}"]
            break
    return out


def _sort_key(value: Any):
    """Numbers before strings before missing values, so mixed columns still sort."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return (1, str(value)) if value is not None else (2, "")
    return (0, value)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        text = repr(value)
        return text if len(text) <= 10 else f"{value:.6g}"
    return str(value)


def _write(path: str, text: str) -> None:
    """Write to stdout ('-') or, atomically, to the file `path`."""
    if path == "-":
        sys.stdout.write(text)
        return
    from runner.store.files import write_atomic

    write_atomic(path, text.encode())
