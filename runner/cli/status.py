"""`run status -o output [--json]`: every task's state, read from the files alone."""

from __future__ import annotations

import json
import sys
from typing import List

from runner.cli.common import EXIT_OK, ArgumentParser, command


def make_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="run status", description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", default="output", metavar="DIR",
                        help="output directory (default: output)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return parser


@command
def main(argv: List[str]) -> int:
    from runner.store.status import collect_states, count_states
    from runner.store.sweep import Store, existing_output

    args = make_parser().parse_args(argv)
    store = Store(existing_output(args.output))
    states = collect_states(store)
    counts = count_states(states)
    if args.json:
        json.dump({"output": args.output, "counts": counts,
                   "tasks": [s.to_json() for s in states]}, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
        return EXIT_OK
    rows = [("TASK", "STATE", "COMMANDS", "DURATION", "GPUS", "LAST")]
    for state in states:
        entries = state.commands.values()
        durations = [e.get("duration") or 0 for e in entries]
        last = max((e.get("end") or e.get("start") or "" for e in entries), default="")
        gpus = next((e.get("gpus") for e in entries if e.get("gpus") is not None), "")
        rows.append((state.name, state.state.value,
                     " ".join(f"{c}:{e['status']}" for c, e in state.commands.items()),
                     f"{sum(durations):.1f}s" if any(durations) else "-", gpus or "-",
                     last[:19].replace("T", " ") or "-"))
    if any(state.note for state in states):  # an engine (SLURM) had something to add
        rows = [row + (note,) for row, note in zip(rows, ["NOTE"] + [s.note for s in states])]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        sys.stdout.write("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() + "\n")
    total = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    sys.stdout.write(f"{len(states)} tasks: {total or 'none'}\n")
    return EXIT_OK
