"""Time the YAML runner against its peers, side by side, in one run; print figures and ratios.

    python bench/bench_core.py [--tasks 2000] [--repeat 3]

1. 2000 trivial tasks (`true`) on 2 slots: `run` with all its bookkeeping; the floor (a bare
   2-thread Python loop that only spawns the same shell commands); GNU parallel -j2 --joblog;
   simple-gpu-scheduler --gpus 0 1. Targets: `run` within 1.0 ms per task of the floor, and at
   least 2x faster than GNU parallel.
2. A re-run where 10,000 tasks are already done (target: under 1 s).
3. `run --help` against `python -c "import yaml"` (target: under 1.5x).
4. Planning a 100,000-task sweep with `--dry-run` to a file (target: under 3 s).

Every run of `run` writes into a new directory, removed only at the end: on ext4 without a
journal, file creation is slow for a few minutes after many files were deleted (the inode
allocator checks each recently freed inode), so leave a few minutes between runs of this script.

Peers: GNU parallel from Debian (`apt-get install parallel`); simple-gpu-scheduler from PyPI,
installed by this script into bench/.peers (a virtual environment) when missing.
"""

from __future__ import annotations

import argparse
import compileall
import os
import queue
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, List, Optional

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work"
PEERS = HERE / ".peers"
PYTHON = sys.executable
RUN = [PYTHON, "-m", "runner"]


def timed(func: Callable[[], None], repeat: int,
          setup: Optional[Callable[[], None]] = None) -> float:
    """Median wall time of `repeat` calls (`setup` runs before each, untimed)."""
    times = []
    for _ in range(repeat):
        if setup is not None:
            setup()
        started = time.perf_counter()
        func()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def sh(argv: List[str], stdin: Optional[Path] = None, cwd: Path = WORK) -> None:
    with open(stdin or os.devnull, "rb") as inp:
        subprocess.run(argv, cwd=cwd, stdin=inp, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=True)


def floor(n: int, slots: int = 2) -> None:
    """The least any runner must do: spawn each shell command, `slots` at a time."""
    jobs: "queue.SimpleQueue[int]" = queue.SimpleQueue()
    for i in range(n):
        jobs.put(i)

    def worker() -> None:
        while True:
            try:
                jobs.get_nowait()
            except queue.Empty:
                return
            subprocess.run("true", shell=True)

    threads = [threading.Thread(target=worker) for _ in range(slots)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def write_sweep(path: Path, n: int, command: str = "true") -> None:
    path.write_text(f"template:\n  t: '{command}'\nresource: [0, 1]\n---\n"
                    f"i: [{', '.join(str(i) for i in range(n))}]\n")


def simple_gpu_scheduler() -> Optional[str]:
    exe = PEERS / "bin" / "simple_gpu_scheduler"
    if not exe.exists():
        print("installing simple-gpu-scheduler into bench/.peers ...", flush=True)
        subprocess.run([PYTHON, "-m", "venv", str(PEERS)], check=True)
        subprocess.run([str(PEERS / "bin" / "pip"), "install", "-q", "simple-gpu-scheduler"],
                       check=True)
    return str(exe) if exe.exists() else None


def bench_throughput(n: int, repeat: int) -> None:
    print(f"\n1. {n} trivial tasks (`true`) on 2 slots, median of {repeat}")
    commands = WORK / "commands.txt"
    commands.write_text("true\n" * n)
    write_sweep(WORK / "sweep.yaml", n)

    outputs = iter(range(1, 1000))

    def ours() -> None:  # a new output directory each time: deleting one slows file creation
        sh(RUN + ["-y", "sweep.yaml", "-o", f"out.{next(outputs)}"])

    def parallel() -> None:
        sh(["parallel", "-j2", "--joblog", str(WORK / "joblog")], stdin=commands)

    rows = [("floor (2 threads spawning sh -c true)", timed(lambda: floor(n), repeat)),
            ("run -y sweep.yaml (all bookkeeping)", timed(ours, repeat))]
    if shutil.which("parallel"):
        rows.append(("GNU parallel -j2 --joblog", timed(parallel, repeat)))
    else:
        print("  (GNU parallel not found: apt-get install parallel)")
    sgs = simple_gpu_scheduler()
    if sgs:
        rows.append(("simple-gpu-scheduler --gpus 0 1",
                     timed(lambda: sh([sgs, "--gpus", "0", "1"], stdin=commands), repeat)))
    base, mine = rows[0][1], rows[1][1]
    print(f"  {'':42} {'wall s':>8} {'ms/task':>8} {'vs run':>8}")
    for name, seconds in rows:
        print(f"  {name:42} {seconds:8.2f} {seconds / n * 1000:8.3f} {seconds / mine:7.2f}x")
    print(f"  run's overhead over the floor: {(mine - base) / n * 1000:.3f} ms per task "
          f"(target <= 1.0)")
    if len(rows) > 2:
        print(f"  GNU parallel / run: {rows[2][1] / mine:.2f}x (target >= 2)")


def bench_rerun(n: int, repeat: int) -> None:
    print(f"\n2. re-run of {n} tasks that are all done, median of {repeat}")
    write_sweep(WORK / "done.yaml", n)
    if not (WORK / "done" / "I_0" / "stat.json").exists():
        sh(RUN + ["-y", "done.yaml", "-o", "done"])
    seconds = timed(lambda: sh(RUN + ["-y", "done.yaml", "-o", "done"]), repeat)
    print(f"  run (nothing to do): {seconds:.3f} s (target < 1 s)")


def bench_startup(repeat: int) -> None:
    print(f"\n3. start-up, median of {repeat * 5}")
    run_script = shutil.which("run")
    help_argv = [run_script, "--help"] if run_script else RUN + ["--help"]
    mine = timed(lambda: sh(help_argv), repeat * 5)
    yaml = timed(lambda: sh([PYTHON, "-c", "import yaml"]), repeat * 5)
    bare = timed(lambda: sh([PYTHON, "-c", "pass"]), repeat * 5)
    print(f"  {' '.join(Path(a).name for a in help_argv[:2])}: {mine * 1000:.1f} ms; "
          f"python -c 'import yaml': {yaml * 1000:.1f} ms; python -c pass: {bare * 1000:.1f} ms")
    print(f"  ratio: {mine / yaml:.2f}x (target < 1.5)")


def bench_planning(repeat: int) -> None:
    print(f"\n4. planning a 100,000-task sweep (--dry-run to a file), median of {repeat}")
    (WORK / "plan.yaml").write_text(
        "template:\n  train: python train.py --lr {lr} --bs {batch_size} --seed {seed} [debug] "
        "--model {model} --out {_output}\nresource: [0, 1]\n---\n"
        "lr: [0.1, 0.01, 0.001, 0.0001, 1.0e-5, 0.3, 0.03, 0.003, 0.0003, 3.0e-5]\n"
        "batch_size: [16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192]\n"
        "seed: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]\n"
        "model: [resnet, vgg, 'vit small', mlp, cnn, rnn, lstm, gru, bert, gpt]\n"
        "debug: [true, false]\ndropout: [0.0, 0.5, 0.1, 0.2, 0.3]\n")

    def plan() -> None:
        with open(WORK / "plan.txt", "w") as out:
            subprocess.run(RUN + ["-y", "plan.yaml", "-o", "planned", "--dry-run"], cwd=WORK,
                           stdout=out, check=True)

    seconds = timed(plan, repeat)
    lines = sum(1 for _ in open(WORK / "plan.txt"))
    print(f"  run --dry-run: {seconds:.2f} s for {lines} lines (target < 3 s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--done", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    WORK.mkdir(exist_ok=True)
    import runner

    compileall.compile_dir(os.path.dirname(runner.__file__), quiet=1)  # as an install would
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores")
    try:
        bench_throughput(args.tasks, args.repeat)
        bench_rerun(args.done, args.repeat)
        bench_startup(args.repeat)
        bench_planning(args.repeat)
    finally:  # only now: deleting many files slows file creation on some file systems
        for old in WORK.glob("out.*"):
            shutil.rmtree(old)


if __name__ == "__main__":
    main()
