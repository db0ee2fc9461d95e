#!/usr/bin/env python3
"""`run report` on a 10,000-task output directory: how long writing it takes, and opening it.

    python bench/bench_report.py [--tasks N] [--repeat R] [--no-browser]

The output directory is written the way a run writes it, through the store (`param.json`,
`stat.json` with two commands per task on 8 GPU slots over about a day, logs, `metrics.json`;
3% of the tasks failed, 1% timed out, a few still running), into bench/.work/report/. Then
`run report` writes the report R times (median and range printed), and, where Chromium is
installed, the report is opened in headless Chromium and timed until its page says it is drawn.
Target: a few seconds for each.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / ".work" / "report"
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from runner.store.files import write_atomic  # noqa: E402
from runner.store.sweep import Store  # noqa: E402
from runner.task import Task  # noqa: E402

SLOTS = 8


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


def make_output(output: Path, count: int) -> None:
    """`count` tasks: lr x layers x optimizer x seed, run as a day of work on 8 slots."""
    rng = random.Random(0)
    store = Store(str(output))
    grid = itertools.product([0.1, 0.03, 0.01, 0.003, 0.001], [2, 4, 8, 16], ["adam", "sgd"],
                             range(10**6))
    free = [datetime(2026, 11, 21, 8, 0, tzinfo=timezone.utc)] * SLOTS
    stamp = "2026-11-21.08_00_00"
    for index, (lr, layers, optimizer, seed) in zip(range(count), grid):
        name = f"Lr_{lr}-Layers_{layers}-Optimizer_{optimizer}-Seed_{seed}"
        directory = output / name
        params = {"lr": lr, "layers": layers, "optimizer": optimizer, "seed": seed,
                  "_name": name, "_output": str(directory), "_datetime": stamp}
        task = Task(name, params, {"train": "python train.py", "evaluate": "python eval.py"})
        store.lock(task)
        store.write_params(task, {c: f"{line} > log.{c}.{stamp} 2>&1"
                                  for c, line in task.commands.items()})
        slot = min(range(SLOTS), key=lambda s: free[s])
        fate = rng.random()
        state, start = {}, free[slot]
        for command in ("train", "evaluate"):
            log = str(directory / f"log.{command}.{stamp}")
            seconds = rng.uniform(30, 90) if command == "train" else rng.uniform(2, 6)
            end = start + timedelta(seconds=seconds)
            status, exit_status = "done", 0
            if command == "train" and fate < 0.03:
                status, exit_status = "failed", 1
            elif command == "train" and fate < 0.04:
                status, exit_status = "timeout", None
            elif index >= count - SLOTS:
                status, exit_status = "running", None
            entry = {"code": 0 if status == "done" else 1, "status": status,
                     "exit_status": exit_status, "signal": 9 if status == "timeout" else None,
                     "start": iso(start), "end": None if status == "running" else iso(end),
                     "duration": None if status == "running" else round(seconds, 3),
                     "slot": slot, "host": "bench", "gpus": str(slot), "log": log}
            state[command] = entry
            lines = [f"step {i} loss {1 / (i + 1):.4f}" for i in range(40)]
            if status == "failed":
                lines += ["Traceback (most recent call last):", "RuntimeError: CUDA error"]
            Path(log).write_text("\n".join(lines) + "\n")
            start = end
            if status != "done":
                break
        store.write_state(task, state)
        free[slot] = start
        if state.get("evaluate", {}).get("status") == "done":
            loss = (1 - min(lr, 0.5)) ** (40 / layers) + rng.gauss(0, 0.01)
            write_atomic(str(directory / "metrics.json"), json.dumps(
                {"loss": loss, "accuracy": 1 - loss / 2, "val": {"loss": loss * 1.1}}).encode())


def time_report(output: Path, html: Path) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "runner", "report", "-o", str(output),
                    "--html", str(html)], check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
    return time.perf_counter() - started


def time_open(html: Path) -> str:
    from browser import Browser, find_chromium

    if not find_chromium():
        return "no chromium: not measured"
    with Browser(timeout=120) as browser:
        page = browser.open(html.as_uri(), "!!document.querySelector('#results tbody tr')")
        shown = page.load_seconds
        started = time.monotonic()
        page.wait_for("document.body.dataset.ready", 120)
        drawn = shown + time.monotonic() - started
        rows = page.evaluate("document.querySelectorAll('#results tbody tr').length")
        parts = page.evaluate("JSON.stringify(window.reportTimings)")
        errors = page.errors
    return (f"summary and table ({rows} rows) shown after {shown:.2f} s, every plot drawn after "
            f"{drawn:.2f} s (ms per part: {parts}); "
            f"{'errors: ' + '; '.join(errors) if errors else 'no script error'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args()
    output = WORK / f"output-{args.tasks}"
    if not (output / ".complete").exists():
        shutil.rmtree(output, ignore_errors=True)
        output.mkdir(parents=True)
        started = time.perf_counter()
        make_output(output, args.tasks)
        (output / ".complete").write_text("")
        print(f"wrote {args.tasks} tasks in {time.perf_counter() - started:.1f} s: {output}")
    html = WORK / f"report-{args.tasks}.html"
    times = [time_report(output, html) for _ in range(args.repeat)]
    print(f"run report, {args.tasks} tasks: median {statistics.median(times):.2f} s "
          f"(min {min(times):.2f}, max {max(times):.2f}; {args.repeat} runs, "
          f"python startup included); {os.path.getsize(html) / 2**20:.1f} MiB")
    if not args.no_browser:
        print(f"opening it in headless Chromium: {time_open(html)}")


if __name__ == "__main__":
    main()
