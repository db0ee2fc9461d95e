"""Time `--backend slurm` against its peers on a real SLURM, side by side, in one run.

    python bench/bench_slurm.py [--tasks 200] [--repeat 3]

Needs a SLURM (`../shared/tools/slurm-local.sh up`, as root; 2 nodes x 4 CPUs); skips otherwise.
Every task is a trivial command (`true`) without GPU, so what is timed is the machinery:

1. Submitting N tasks and waiting until all have ended (the queue is polled the same way for
   everyone): `run -y sweep.yaml --backend slurm` (one job array; each element runs the runner's
   single-task executor and writes param.json/stat.json/logs); submitit's `map_array` (one array
   of pickled Python calls); the launcher's way, one `sbatch --wrap` per task (the floor of
   "one job per task", which `run launch-script` and the seed launcher do).
2. `run status -o out` on the N-task submission (stat.json + squeue + sacct) against the bare
   `squeue` + `sacct` calls it makes (the floor).
3. Running the same `run -y ... --backend slurm` again when everything is done (target < 1 s).

submitit comes from PyPI, installed by this script into bench/.peers when missing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, List, Tuple

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work" / "slurm"
PEERS = HERE / ".peers"
PYTHON = sys.executable
RUN = [PYTHON, "-m", "runner"]
POLL = 0.2

SUBMITIT = """
import sys, submitit
def task(i):
    return i
ex = submitit.AutoExecutor(folder=sys.argv[1], cluster="slurm")
ex.update_parameters(slurm_cpus_per_task=1, slurm_mem="100M", slurm_array_parallelism=10000,
                     timeout_min=10)
jobs = ex.map_array(task, range(int(sys.argv[2])))
print(jobs[0].job_id.split("_")[0])
"""


def sh(argv: List[str], cwd: Path = WORK) -> str:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=True).stdout


def wait_queue_empty(jobs: List[str]) -> None:
    while sh(["squeue", "-h", "-r", "-j", ",".join(jobs), "-o", "%i"]).strip():
        time.sleep(POLL)


def submit_and_wait(submit: Callable[[], List[str]]) -> Tuple[float, float]:
    """(seconds to submit, seconds until every job has left the queue)."""
    started = time.perf_counter()
    jobs = submit()
    submitted = time.perf_counter() - started
    wait_queue_empty(jobs)
    return submitted, time.perf_counter() - started


def median_pair(pairs: List[Tuple[float, float]]) -> Tuple[float, float]:
    return statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs)


def submitit_python() -> str:
    exe = PEERS / "bin" / "python"
    if not (exe.exists() and subprocess.run([str(exe), "-c", "import submitit"],
                                            capture_output=True).returncode == 0):
        print("installing submitit into bench/.peers ...", flush=True)
        subprocess.run([PYTHON, "-m", "venv", str(PEERS)], check=True)
        subprocess.run([str(PEERS / "bin" / "pip"), "install", "-q", "submitit"], check=True)
    return str(exe)


def bench_submit(n: int, repeat: int) -> None:
    print(f"\n1. {n} trivial tasks: submit, then wait until all have left the queue; median of "
          f"{repeat}")
    (WORK / "sweep.yaml").write_text(
        "template:\n  t: 'true'\nprofiles:\n  cpu: {host: ci, device: cpu, resources: "
        "{cpus-per-task: 1, mem: 100}}\n---\n"
        f"i: [{', '.join(str(i) for i in range(n))}]\n")

    def ours() -> List[str]:
        shutil.rmtree(WORK / "out", ignore_errors=True)
        sh(RUN + ["-y", "sweep.yaml", "-o", "out", "--backend", "slurm", "--profile", "cpu"])
        return submitted_jobs()

    py = submitit_python()

    def submitit() -> List[str]:
        shutil.rmtree(WORK / "submitit", ignore_errors=True)
        return [sh([py, "-c", SUBMITIT, str(WORK / "submitit"), str(n)]).strip()]

    def per_task() -> List[str]:
        return [sh(["sbatch", "--parsable", "-c1", "--mem=100", "-o", "/dev/null", "--wrap",
                    "true"]).strip() for _ in range(n)]

    rows = [("run -y --backend slurm (1 array)", median_pair(
                [submit_and_wait(ours) for _ in range(repeat)])),
            ("submitit map_array (1 array)", median_pair(
                [submit_and_wait(submitit) for _ in range(repeat)])),
            ("sbatch --wrap per task (N jobs)", median_pair(
                [submit_and_wait(per_task) for _ in range(repeat)]))]
    mine = rows[0][1]
    print(f"  {'':36} {'submit s':>9} {'all done s':>11} {'submit vs run':>14} "
          f"{'done vs run':>12}")
    for name, (submit, done) in rows:
        print(f"  {name:36} {submit:9.2f} {done:11.2f} {submit / mine[0]:13.2f}x "
              f"{done / mine[1]:11.2f}x")


def submitted_jobs() -> List[str]:
    jobs = []
    for record in (WORK / "out" / ".slurm").glob("*/submission.json"):
        jobs += [a["job_id"] for a in json.loads(record.read_text())["arrays"]]
    return jobs


def bench_status(n: int, repeat: int) -> None:
    print(f"\n2. run status on the {n}-task submission, median of {repeat * 3}")
    jobs = submitted_jobs()

    def timed(argv: List[str]) -> float:
        times = []
        for _ in range(repeat * 3):
            started = time.perf_counter()
            subprocess.run(argv, cwd=WORK, capture_output=True)
            times.append(time.perf_counter() - started)
        return statistics.median(times)

    mine = timed(RUN + ["status", "-o", "out"])
    floor = timed(["sh", "-c", f"squeue -h -r -j {','.join(jobs)} >/dev/null; "
                               f"sacct -X -n -P -j {','.join(jobs)} >/dev/null"])
    bare = timed([PYTHON, "-c", "pass"])
    print(f"  run status: {mine:.3f} s; squeue + sacct alone: {floor:.3f} s; python -c pass: "
          f"{bare:.3f} s; run status - floor - python: {mine - floor - bare:.3f} s")


def bench_resubmit(repeat: int) -> None:
    print(f"\n3. the same submission again, all done; median of {repeat}")
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        out = sh(RUN + ["-y", "sweep.yaml", "-o", "out", "--backend", "slurm", "--profile", "cpu"])
        times.append(time.perf_counter() - started)
        assert "nothing to submit" in out, out
    print(f"  run -y ... --backend slurm (nothing to submit): {statistics.median(times):.3f} s "
          f"(target < 1 s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if shutil.which("sbatch") is None:
        print("no SLURM here (sbatch not on PATH): start one with "
              "../shared/tools/slurm-local.sh up")
        return
    WORK.mkdir(parents=True, exist_ok=True)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, "
          f"{sh(['sinfo', '-h', '-o', '%D nodes x %c CPUs']).strip()}")
    bench_submit(args.tasks, args.repeat)
    bench_status(args.tasks, args.repeat)
    bench_resubmit(args.repeat)


if __name__ == "__main__":
    main()
