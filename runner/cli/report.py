"""`run report -o DIR [--html FILE] [--metric NAME] [--open]`: one self-contained HTML file
with the summary, results table, plots, timeline and failures of a sweep or launch directory."""

from __future__ import annotations

import os
import sys
from typing import List

from runner.cli.common import EXIT_OK, ArgumentParser, command


def make_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="run report",
        description="Write one self-contained HTML file (no server, no network needed) that "
                    "shows an output directory or a launch directory (runs/NAME): summary, "
                    "results table, parallel coordinates, the metric against each varying "
                    "param, the timeline of every command, and the failures.")
    parser.add_argument("-o", "--output", default="output", metavar="DIR",
                        help="output directory of a sweep, or runs/NAME of run launch "
                             "(default: output)")
    parser.add_argument("--html", metavar="FILE",
                        help="where to write the report (default: DIR/report.html)")
    parser.add_argument("--metric", metavar="NAME",
                        help="the metric that colours the plots (default: the first metric)")
    parser.add_argument("--open", action="store_true",
                        help="open the report in the web browser when written")
    return parser


@command
def main(argv: List[str]) -> int:
    from runner.errors import UsageError
    from runner.report import write_report
    from runner.store import open_directory

    args = make_parser().parse_args(argv)
    open_directory(args.output)
    if args.html is not None:
        folder = os.path.dirname(os.path.abspath(args.html))
        if os.path.isdir(args.html):
            raise UsageError(f"--html {args.html}: is a directory; name the file to write, "
                             f"e.g. {os.path.join(args.html, 'report.html')}")
        if not os.path.isdir(folder):
            raise UsageError(f"--html {args.html}: no such folder {folder}; create it first "
                             f"or write the report elsewhere")
    warnings: List[str] = []
    path = write_report(args.output, args.html, args.metric, warnings)
    for warning in warnings:
        sys.stderr.write(f"run: warning: {warning}\n")
    sys.stdout.write(f"report: {path}\n")
    if args.open:
        import webbrowser

        if not webbrowser.open("file://" + os.path.abspath(path)):
            sys.stderr.write("run report: no web browser found; open the file above yourself\n")
    return EXIT_OK
