"""Time `--backend dask` against a bare dask map and the local engine, side by side, in one run.

    python bench/bench_dask.py [--tasks 500] [--repeat 3]

Starts its own cluster on 127.0.0.1 (`dask scheduler` on a port the OS picks, two `run worker`
with one slot without GPU each) and runs N trivial tasks (`true`) three ways, in turns:

1. `run -y sweep.yaml --backend dask` (each task run by the single-task executor in a worker
   process, with param.json, stat.json and a log, reported at the terminal as it ends);
2. a bare `client.map` of the same shell commands through `subprocess.run` on the same workers
   (no files, no bookkeeping: the floor of running N commands through dask);
3. the local engine, `run -y sweep.yaml -r '' ''` (two slots here, no dask).

Each is a whole process (interpreter start, imports, connecting) timed from start to exit; the
median of the rounds is printed with the ratios (target: dask within 1.5x of the bare map), and
the CPU time that the cluster's processes (scheduler, workers, their guardians and commands)
and the submitting process spent, which says where the time goes on a machine with few cores.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Tuple

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / ".work" / "dask"
PYTHON = sys.executable
RUN = [PYTHON, "-m", "runner"]
TICK = os.sysconf("SC_CLK_TCK")

BARE = """
import subprocess, sys
from distributed import Client

def shell(command):
    return subprocess.run(command, shell=True).returncode

client = Client(sys.argv[1])
codes = client.gather(client.map(shell, ["true"] * int(sys.argv[2]), pure=False))
assert codes == [0] * int(sys.argv[2]), codes
client.close()
"""


def env() -> Dict[str, str]:
    return dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))


def start_cluster() -> Tuple[str, List[subprocess.Popen]]:
    info = WORK / "scheduler.json"
    info.unlink(missing_ok=True)
    scheduler = subprocess.Popen(
        [PYTHON, "-m", "dask", "scheduler", "--host", "127.0.0.1", "--port", "0",
         "--dashboard-address", ":0", "--scheduler-file", str(info)], cwd=WORK, env=env(),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    processes = [scheduler]
    deadline = time.monotonic() + 60
    while not info.exists() or "address" not in info.read_text():
        if time.monotonic() > deadline:
            raise SystemExit("the dask scheduler did not start")
        time.sleep(0.1)
    address = json.loads(info.read_text())["address"]
    logs = []
    for n in range(2):
        log = WORK / f"worker-{n}.log"
        logs.append(log)
        processes.append(subprocess.Popen(
            RUN + ["worker", "--scheduler", address, "-r", ""], cwd=WORK, env=env(),
            stdout=log.open("w"), stderr=subprocess.STDOUT))
    while not all("Ctrl-C stops them" in log.read_text() for log in logs):
        if time.monotonic() > deadline:
            raise SystemExit("run worker did not start: " + " ".join(p.read_text() for p in logs))
        time.sleep(0.1)
    return address, processes


def stop(processes: List[subprocess.Popen]) -> None:
    for proc in reversed(processes):
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def descendants(roots: List[int]) -> List[int]:
    children: Dict[int, List[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], list(roots)
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def cluster_cpu(roots: List[int]) -> Dict[int, float]:
    """pid -> CPU seconds (its own and its reaped children's) of every process of the cluster."""
    cpu = {}
    for pid in descendants(roots):
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        cpu[pid] = sum(int(x) for x in fields[11:15]) / TICK
    return cpu


def timed(argv: List[str], roots: List[int]) -> Tuple[float, float, float]:
    """(wall seconds, CPU seconds of the cluster, CPU seconds of the process itself)."""
    before = cluster_cpu(roots)
    own = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=WORK, env=env(), capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:6])} ...: exit status {done.returncode}\n"
                         f"{done.stdout[-2000:]}{done.stderr[-2000:]}")
    after = cluster_cpu(roots)
    mine = resource.getrusage(resource.RUSAGE_CHILDREN)
    cluster = sum(after[p] - before.get(p, 0.0) for p in after)
    return wall, cluster, (mine.ru_utime + mine.ru_stime) - (own.ru_utime + own.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    try:
        import distributed
    except ImportError:
        raise SystemExit("needs dask.distributed: pip install '.[dask]'") from None
    WORK.mkdir(parents=True, exist_ok=True)
    (WORK / "sweep.yaml").write_text(
        "template:\n  t: 'true'\n---\n"
        f"i: [{', '.join(str(i) for i in range(args.tasks))}]\n")
    print(f"python {sys.version.split()[0]}, distributed {distributed.__version__}, "
          f"{os.cpu_count()} cores; {args.tasks} tasks of `true` on 2 workers; "
          f"median of {args.repeat} rounds")
    address, processes = start_cluster()
    roots = [p.pid for p in processes]
    rows: Dict[str, List[Tuple[float, float, float]]] = {"dask": [], "bare": [], "local": []}
    outputs = []  # deleted at the end only (see README: Performance, on deleting many files)
    try:
        for round_ in range(args.repeat):
            outputs += [f"out-{round_}", f"out-local-{round_}"]
            for directory in outputs[-2:]:
                shutil.rmtree(WORK / directory, ignore_errors=True)
            rows["dask"].append(timed(RUN + ["-y", "sweep.yaml", "-o", outputs[-2], "-q",
                                             "--backend", "dask", "--scheduler", address], roots))
            rows["bare"].append(timed([PYTHON, "-c", BARE, address, str(args.tasks)], roots))
            rows["local"].append(timed(RUN + ["-y", "sweep.yaml", "-o", outputs[-1], "-q", "-r",
                                              "", ""], roots))
    finally:
        stop(processes)
        for directory in outputs:
            shutil.rmtree(WORK / directory, ignore_errors=True)
    names = {"dask": "run --backend dask", "bare": "bare client.map + subprocess.run",
             "local": "run (local engine, 2 slots)"}
    median = {k: tuple(statistics.median(r[i] for r in v) for i in range(3))
              for k, v in rows.items()}
    print(f"  {'':34} {'wall s':>7} {'ms/task':>8} {'cluster CPU s':>14} {'own CPU s':>10}")
    for key, (wall, cluster, own) in median.items():
        print(f"  {names[key]:34} {wall:7.2f} {1000 * wall / args.tasks:8.2f} {cluster:14.2f} "
              f"{own:10.2f}")
    dask, bare, local = median["dask"][0], median["bare"][0], median["local"][0]
    print(f"  run --backend dask / bare map: {dask / bare:.2f}x (target <= 1.5x); "
          f"/ local engine: {dask / local:.2f}x")


if __name__ == "__main__":
    main()
