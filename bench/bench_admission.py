"""Admission overhead: the same sweep of trivial tasks with plain slots and with `gpu_memory`.

Both runs use one fake 4-GPU machine ($RUNNER_FAKE_GPUS, see runner/gpu.py), so the only
difference is how tasks get their GPUs: fixed slots (`resource: [0, 1, 2, 3]`) or admission by
memory (`resource: auto` + `gpu_memory`, sized so that the same number of tasks run at once).
Each round runs both settings back to back (the order alternates between rounds); the verdict is
the median over rounds of the wall-time ratio admission/plain (target: within 1.2x), which
cancels most of the load that other work puts on a shared machine. Best wall times and the CPU
time of the runner and everything it started (user + sys) are printed too.

    python bench/bench_admission.py [--tasks 2000] [--repeat 5] [--per-gpu 1]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

TARGET = 1.2


def write_case(directory: str, name: str, resource: str, extra: str, tasks: int) -> str:
    path = os.path.join(directory, f"{name}.yaml")
    with open(path, "w") as f:
        f.write(f"template:\n  t: 'true'\nresource: {resource}\n{extra}---\n")
        f.write("i: [" + ", ".join(str(i) for i in range(tasks)) + "]\n")
    return path


def run_case(directory: str, config: str, output: str, env: dict) -> tuple:
    """(wall seconds, CPU seconds of the runner and its children) of one run."""
    shutil.rmtree(os.path.join(directory, output), ignore_errors=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "runner", "-y", config, "-o", output],
                          cwd=directory, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0 or f"summary: {done.stdout.count(' done   ')} done" not in done.stdout:
        sys.exit(f"{config} failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5, help="rounds (default 5)")
    parser.add_argument("--per-gpu", type=int, default=1,
                        help="tasks at once per GPU (plain: each GPU listed this often)")
    args = parser.parse_args()
    directory = tempfile.mkdtemp(prefix="bench-admission-")
    try:
        gpus = os.path.join(directory, "gpus.json")
        with open(gpus, "w") as f:
            json.dump({"gpus": [{"name": "Fake 16G", "memory": "16GiB", "used": "300MiB"}] * 4}, f)
        env = dict(os.environ, RUNNER_FAKE_GPUS=gpus, PYTHONPATH=os.pathsep.join(
            p for p in (os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        os.environ.get("PYTHONPATH")) if p))
        per_task = 15 // args.per_gpu  # GiB: exactly per_gpu of them fit on a 16 GiB GPU
        plain_slots = "[" + ", ".join(str(g) for g in range(4) for _ in range(args.per_gpu)) + "]"
        cases = {
            "plain slots": write_case(directory, "plain", plain_slots, "", args.tasks),
            "gpu_memory admission": write_case(directory, "admission", "auto",
                                               f"gpu_memory: {per_task}GiB\n", args.tasks),
        }
        times = {name: [] for name in cases}
        for round_ in range(args.repeat):
            for name in (list(cases) if round_ % 2 == 0 else list(cases)[::-1]):
                times[name].append(run_case(directory, cases[name], name.split()[0], env))
        best = {name: min(wall for wall, _ in values) for name, values in times.items()}
        cpu = {name: statistics.median(c for _, c in values) for name, values in times.items()}
        print(f"{args.tasks} trivial tasks, 4 fake GPUs, {4 * args.per_gpu} at once, "
              f"{args.repeat} rounds (load average {os.getloadavg()[0]:.1f}):")
        for name, values in times.items():
            walls = ", ".join(f"{wall:.2f}" for wall, _ in values)
            print(f"  {name:<22} wall best {best[name]:6.2f} s ({walls})   "
                  f"CPU median {cpu[name]:6.2f} s")
        ratios = [a[0] / p[0] for a, p in zip(times["gpu_memory admission"], times["plain slots"])]
        ratio = statistics.median(ratios)
        verdict = "within" if ratio <= TARGET else "OVER"
        print(f"ratio admission/plain: wall {ratio:.3f} median of rounds "
              f"({', '.join(f'{r:.2f}' for r in ratios)}; {verdict} the {TARGET}x target), "
              f"best walls {best['gpu_memory admission'] / best['plain slots']:.3f}, "
              f"CPU {cpu['gpu_memory admission'] / cpu['plain slots']:.3f}")
        return 0
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
