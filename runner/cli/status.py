"""`run status -o DIR [--json]`: every task's state, read from the files (and from the engines
that ran them), for any kind of task directory: a sweep's output or a launch's runs/<name>."""

from __future__ import annotations

import json
import sys
from typing import List

from runner.cli.common import EXIT_FAILED, EXIT_OK, ArgumentParser, command, finite, plural

COMMAND_WIDTH = 60  # characters of a job's command shown in the table


def make_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="run status", description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", default="output", metavar="DIR",
                        help="output directory, or a launch's runs/<name> (default: output)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return parser


@command
def main(argv: List[str]) -> int:
    from runner.results import collect_states
    from runner.store.state import count_states

    args = make_parser().parse_args(argv)
    store, states = collect_states(args.output)
    counts = count_states(states)
    failed = any(s.state.value in ("failed", "timeout") for s in states)
    if args.json:
        json.dump(finite({"output": args.output, "kind": store.kind, "counts": counts,
                          "tasks": [s.to_json() for s in states]}), sys.stdout, indent=2,
                  default=str, allow_nan=False)
        sys.stdout.write("\n")
        return EXIT_FAILED if failed else EXIT_OK
    jobs = store.kind == "runfile"
    rows = [("JOB" if jobs else "TASK", "STATE", "COMMAND" if jobs else "COMMANDS", "DURATION",
             "GPUS", "LAST")]
    for state in states:
        entries = [e for e in state.commands.values() if isinstance(e, dict)]
        durations = [e.get("duration") or 0 for e in entries]
        durations = [d for d in durations if isinstance(d, (int, float))]
        last = max((str(e.get("end") or e.get("start") or "") for e in entries), default="")
        gpus = next((e.get("gpus") for e in entries if e.get("gpus") is not None), "")
        if jobs:
            text = next(iter(state.commands), "")
            what = text if len(text) <= COMMAND_WIDTH else text[:COMMAND_WIDTH - 3] + "..."
        else:
            what = " ".join(f"{c}:{e.get('status')}" for c, e in state.commands.items())
        rows.append((state.name, state.label, what or "-",
                     f"{sum(durations):.1f}s" if any(durations) else "-", str(gpus or "-"),
                     last[:19].replace("T", " ") or "-"))
    if any(state.note for state in states):  # unreadable files, or what an engine added
        rows = [row + (note,) for row, note in zip(rows, ["NOTE"] + [s.note for s in states])]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    total = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    out.append(f"{plural(len(states), 'job' if jobs else 'task')}: {total or 'none'}")
    sys.stdout.write("\n".join(out) + "\n")
    return EXIT_FAILED if failed else EXIT_OK
