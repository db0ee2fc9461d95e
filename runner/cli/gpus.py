"""`run gpus [-o DIR] [--json]`: the GPUs now, their processes, and which of our tasks run there."""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Dict, List, Optional

from runner.cli.common import EXIT_OK, ArgumentParser, command

MAX_PROCESSES = 3  # listed per GPU in the table; --json lists all


def make_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="run gpus", description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", metavar="DIR",
                        help="output directory whose running tasks to match against the GPUs' "
                             "processes (default: output, if it exists)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return parser


@command
def main(argv: List[str]) -> int:
    from runner.gpu import open_gpus
    from runner.store import open_directory

    args = make_parser().parse_args(argv)
    output = args.output
    if output is not None:
        open_directory(output)
    if output is None and os.path.isdir("output"):
        output = "output"
    ours = _running_commands(output) if output else {}
    query = open_gpus()
    try:
        rows = [_row(device, query.read(device.index), ours) for device in query.devices()]
    finally:
        query.close()
    if args.json:
        json.dump({"source": query.source, "output": output, "gpus": rows}, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return EXIT_OK
    _print_table(rows, query.source, output)
    return EXIT_OK


def _running_commands(output: str) -> Dict[str, List[Dict[str, Any]]]:
    """'pid' -> [the running command], 'bound' -> every running command (from stat.json)."""
    from runner.identity import HOST
    from runner.store import open_directory

    by_pid: Dict[int, Dict[str, Any]] = {}
    running = []
    for state in open_directory(output).states():
        for name, entry in state.commands.items():
            if entry.get("status") != "running" or entry.get("host") != HOST:
                continue
            record = {"task": state.name, "command": name, "pid": entry.get("pid"),
                      "gpus": str(entry.get("gpus") or "").split(","),
                      "uuids": [d.get("uuid") for d in entry.get("gpu_devices") or []]}
            running.append(record)
            if isinstance(entry.get("pid"), int):
                by_pid[entry["pid"]] = record
    return {"pid": by_pid, "bound": running}


def _row(device, reading, ours: Dict[str, Any]) -> Dict[str, Any]:
    from runner.identity import process_group

    by_pid = ours.get("pid", {})
    processes = []
    tasks: Dict[str, None] = {}
    for proc in reading.processes:
        group = process_group(proc.pid)
        record = by_pid.get(group) if group is not None else None
        record = record or by_pid.get(proc.pid)
        label = f"{record['task']} {record['command']}" if record else None
        if label:
            tasks[label] = None
        processes.append({"pid": proc.pid, "memory": proc.memory, "task": label})
    for record in ours.get("bound", []):  # bound by CUDA_VISIBLE_DEVICES, maybe not allocated yet
        if device.uuid in record["uuids"] or (
                not record["uuids"] and str(device.index) in record["gpus"]):
            tasks.setdefault(f"{record['task']} {record['command']}", None)
    return {"index": device.index, "uuid": device.uuid, "name": device.name,
            "memory_total": reading.memory_total, "memory_used": reading.memory_used,
            "memory_free": reading.memory_free, "utilization": reading.utilization,
            "error": reading.error, "processes": processes, "tasks": list(tasks)}


def _print_table(rows: List[Dict[str, Any]], source: str, output: Optional[str]) -> None:
    from runner.gpu.query import GIB

    table = [("GPU", "NAME", "MEMORY USED/TOTAL", "UTIL", "PROCESSES (PID MEMORY)", "OUR TASKS")]
    for row in rows:
        procs = [f"{p['pid']} {_size(p['memory'])}" for p in row["processes"]]
        if len(procs) > MAX_PROCESSES:
            procs = procs[:MAX_PROCESSES] + [f"+{len(procs) - MAX_PROCESSES} more"]
        memory = (f"{row['memory_used'] / GIB:.1f}/{row['memory_total'] / GIB:.1f} GiB"
                  if not row["error"] else row["error"])
        util = "-" if row["utilization"] is None else f"{row['utilization']:.0f}%"
        table.append((str(row["index"]), row["name"], memory, util, ", ".join(procs) or "-",
                      ", ".join(row["tasks"]) or "-"))
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    for line in table:
        sys.stdout.write("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() + "\n")
    where = f"; our tasks from {output}" if output else ""
    sys.stdout.write(f"{len(rows)} GPU{'s' if len(rows) != 1 else ''} ({source}{where})\n")


def _size(memory: Optional[int]) -> str:
    from runner.gpu.query import format_bytes

    return format_bytes(memory)
