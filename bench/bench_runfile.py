"""Runfiles: `run launch` side by side with batchrun 0.0.14 (and with the core's `run -y`).

    python bench/bench_runfile.py [--peers-venv DIR] [--repeat N] [--only NAME ...]

Run it with the Python of the environment where `runner` is installed. batchrun comes from the
package registry into its own virtual environment (default `bench/.peers/batchrun`, created on
first use; `--peers-venv` points at an existing one). Every case runs in a fresh directory under
`bench/.work/`, each tool as a real process, timed by wall clock from start to exit; with
`--repeat N` the best of N runs counts. Cases:

* queue: 40 jobs, every fourth sleeps 1 s and the others 0.1 s, 4 workers. batchrun runs fixed
  batches of 4 and waits for the slowest of each; `run launch` feeds a work queue.
  Target: our wall time at most 0.6x batchrun's.
* overhead: 2000 trivial jobs (`true`), 2 workers: the wall time per job of `run launch`, of the
  core's `run -y` on 2000 tasks, and of batchrun, and the CPU time per job of each tool's whole
  process tree (steadier than wall time on a shared machine). Target: `run launch` matches the
  core.
* resume: `run launch` on a runfile of 10,000 jobs that all finished (run for real first), which
  has nothing left to do. Target: under 1 s. batchrun resumes from its `metadata.json` alone, so
  for it that file is written in its format (10,000 entries with `status: 0`).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work"
DEFAULT_PEERS = HERE / ".peers" / "batchrun"
BATCHRUN = "batchrun==0.0.14"
RUN = [sys.executable, "-m", "runner"]


def ensure_batchrun(venv: Path) -> Path:
    exe = venv / "bin" / "batchrun"
    if not exe.exists():
        print(f"installing {BATCHRUN} into {venv} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", BATCHRUN], check=True)
    return exe


def fresh(name: str) -> Path:
    directory = WORK / name
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    return directory


CPU: Dict[str, List[float]] = {}  # label -> CPU seconds of each run's process tree


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(argv: List[str], cwd: Path, label: str = "", check: bool = True) -> float:
    """Wall seconds of one run; its CPU seconds (process and children) go to `CPU[label]`."""
    cpu = _children_cpu()
    start = time.perf_counter()
    result = subprocess.run(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    elapsed = time.perf_counter() - start
    CPU.setdefault(label, []).append(_children_cpu() - cpu)
    if check and result.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed in {cwd} ({result.returncode}):\n"
                         f"{result.stderr[-2000:]}")
    return elapsed


def best(repeat: int, tools: Dict[str, Callable[[], float]]) -> Dict[str, float]:
    """The best of `repeat` runs of each tool, taking turns so that load elsewhere hits all."""
    times: Dict[str, List[float]] = {name: [] for name in tools}
    for _ in range(repeat):
        for name, once in tools.items():
            times[name].append(once())
    return {name: min(values) for name, values in times.items()}


def write_runfile(directory: Path, commands: List[str]) -> None:
    (directory / "jobs.runfile").write_text("\n".join(commands) + "\n")


def case_queue(batchrun: Path, repeat: int) -> Dict[str, float]:
    commands = [f"sleep {1 if i % 4 == 0 else 0.1} # job {i}" for i in range(40)]

    def ours() -> float:
        directory = fresh("queue-run")
        write_runfile(directory, commands)
        return timed(RUN + ["launch", "jobs.runfile", "--n_jobs", "4"], directory)

    def peer() -> float:
        directory = fresh("queue-batchrun")
        write_runfile(directory, commands)
        return timed([str(batchrun), "launch", "jobs.runfile", "--n_jobs", "4"], directory)

    return best(repeat, {"run launch": ours, "batchrun": peer})


def case_overhead(batchrun: Path, repeat: int, jobs: int = 2000) -> Dict[str, tuple]:
    commands = [f"true {i}" for i in range(jobs)]

    def ours() -> float:
        directory = fresh("overhead-run")
        write_runfile(directory, commands)
        return timed(RUN + ["launch", "jobs.runfile", "--n_jobs", "2"], directory,
                     "run launch") / jobs

    def core() -> float:
        directory = fresh("overhead-core")
        (directory / "params.yaml").write_text(
            "template:\n  t: true {i}\nresource: ['', '']\n---\n"
            f"i: {json.dumps(list(range(jobs)))}\n")
        return timed(RUN + ["-y", "params.yaml", "-o", "output"], directory,
                     "run -y (core)") / jobs

    def peer() -> float:
        directory = fresh("overhead-batchrun")
        write_runfile(directory, commands)
        return timed([str(batchrun), "launch", "jobs.runfile", "--n_jobs", "2"], directory,
                     "batchrun") / jobs

    CPU.clear()
    wall = best(repeat, {"run launch": ours, "run -y (core)": core, "batchrun": peer})
    return {tool: (seconds, min(CPU[tool]) / jobs) for tool, seconds in wall.items()}


def case_resume(batchrun: Path, repeat: int, jobs: int = 10000) -> Dict[str, float]:
    from runner.spec.runfile import job_id

    commands = [f"true {i}" for i in range(jobs)]
    directory = fresh("resume-run")
    write_runfile(directory, commands)
    print(f"  running {jobs} jobs once to have them finished ...", flush=True)
    first = timed(RUN + ["launch", "jobs.runfile", "--n_jobs", "2"], directory)
    meta = json.loads((directory / "runs/jobs/metadata.json").read_text())
    assert len(meta) == jobs and all(e["status"] == "done" for e in meta.values())
    print(f"  (that took {first:.1f} s)", flush=True)

    peer_dir = fresh("resume-batchrun")
    write_runfile(peer_dir, commands)
    (peer_dir / "runs/jobs").mkdir(parents=True)
    (peer_dir / "runs/jobs/metadata.json").write_text(json.dumps(
        {job_id(c): {"start": 1.7e9, "runtime": 0.001, "status": 0, "command": c,
                     "parameters": {}} for c in commands}, indent=2))
    return best(repeat, {
        "run launch": lambda: timed(RUN + ["launch", "jobs.runfile", "--n_jobs", "2"], directory),
        "batchrun": lambda: timed([str(batchrun), "launch", "jobs.runfile", "--n_jobs", "2"],
                                  peer_dir)})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers-venv", type=Path, default=DEFAULT_PEERS,
                        help=f"virtual environment with {BATCHRUN} (created if missing)")
    parser.add_argument("--repeat", type=int, default=1, help="best of N runs per tool")
    parser.add_argument("--only", nargs="+", choices=("queue", "overhead", "resume"),
                        default=("queue", "overhead", "resume"))
    args = parser.parse_args()
    batchrun = ensure_batchrun(args.peers_venv)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, {BATCHRUN}", flush=True)
    verdicts = []
    if "queue" in args.only:
        print("queue: 40 jobs (every 4th sleeps 1 s, others 0.1 s), 4 workers", flush=True)
        t = case_queue(batchrun, args.repeat)
        ratio = t["run launch"] / t["batchrun"]
        for tool, seconds in t.items():
            print(f"  {tool:<14} {seconds:6.2f} s")
        print(f"  ratio run launch / batchrun: {ratio:.2f}x (target <= 0.6)", flush=True)
        verdicts.append(("queue", ratio <= 0.6))
    if "overhead" in args.only:
        print("overhead: 2000 trivial jobs, 2 workers (wall time per job)", flush=True)
        t = case_overhead(batchrun, args.repeat)
        for tool, (seconds, cpu) in t.items():
            print(f"  {tool:<14} {seconds * 1000:6.2f} ms/job wall, {cpu * 1000:6.2f} ms/job CPU")
        ours, core, peer = t["run launch"], t["run -y (core)"], t["batchrun"]
        wall, cpu = ours[0] / core[0], ours[1] / core[1]
        print(f"  ratio run launch / core: {wall:.2f}x wall, {cpu:.2f}x CPU; run launch / "
              f"batchrun: {ours[0] / peer[0]:.2f}x wall (target: matches the core)", flush=True)
        verdicts.append(("overhead", min(wall, cpu) <= 1.15))
    if "resume" in args.only:
        print("resume: 10,000 finished jobs, nothing left to run", flush=True)
        t = case_resume(batchrun, args.repeat)
        for tool, seconds in t.items():
            print(f"  {tool:<14} {seconds:6.2f} s")
        print(f"  ratio run launch / batchrun: {t['run launch'] / t['batchrun']:.2f}x "
              f"(target: run launch under 1 s)", flush=True)
        verdicts.append(("resume", t["run launch"] < 1.0))
    print("targets: " + ", ".join(f"{name} {'met' if ok else 'MISSED'}" for name, ok in verdicts))
    return 0 if all(ok for _, ok in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
