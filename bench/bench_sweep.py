#!/usr/bin/env python3
"""runner.sweep against psweep 0.16, side by side in one process: same Python, pandas, joblib.

    python bench/bench_sweep.py [--repeat N]

psweep 0.16 is installed once with `pip install --target bench/.peers/psweep-0.16.0` (its console
scripts would clash with ours in the environment). Each case runs N times per library, alternating,
in a fresh folder under bench/.work/; the table shows the median seconds and ours/psweep.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path
from types import ModuleType
from typing import Callable

HERE = Path(__file__).resolve().parent
PEERS = HERE / ".peers"
WORK = HERE / ".work"
PSWEEP_VERSION = "0.16.0"
N_PSETS = 2000


def load_psweep() -> ModuleType:
    """psweep 0.16 from bench/.peers, installed there on first use."""
    target = PEERS / f"psweep-{PSWEEP_VERSION}"
    if not (target / "psweep" / "__init__.py").exists():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--no-deps",
                "--target",
                str(target),
                f"psweep=={PSWEEP_VERSION}",
            ],
            check=True,
        )
    sys.path.insert(0, str(target))
    try:
        with warnings.catch_warnings():
            return importlib.import_module("psweep")
    finally:
        sys.path.remove(str(target))


def trivial(pset: dict) -> dict:
    return {"result_": 1}


def fresh_dir(name: str) -> Path:
    path = WORK / name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def case_run(lib: ModuleType, tag: str) -> Callable[[], None]:
    """run() of 2000 trivial psets, default settings (save=True), into an empty calc dir."""
    params = lib.plist("a", range(N_PSETS))

    def go() -> None:
        calc = fresh_dir(f"run-{tag}") / "calc"
        df = lib.run(trivial, params, calc_dir=str(calc))
        assert len(df) == N_PSETS

    return go


def case_pool(lib: ModuleType, tag: str) -> Callable[[], None]:
    """run() of 2000 trivial psets in a pool of 2 worker processes (poolsize=2)."""
    params = lib.plist("a", range(N_PSETS))

    def go() -> None:
        calc = fresh_dir(f"pool-{tag}") / "calc"
        df = lib.run(trivial, params, calc_dir=str(calc), poolsize=2)
        assert len(df) == N_PSETS

    return go


def case_pgrid(lib: ModuleType, tag: str) -> Callable[[], None]:
    """pgrid of 5 params x 10 values (100000 psets)."""
    plists = [lib.plist(name, range(10)) for name in "abcde"]

    def go() -> None:
        assert len(lib.pgrid(*plists)) == 10**5

    return go


def case_skip_dups(lib: ModuleType, tag: str) -> Callable[[], None]:
    """skip_dups=True re-run of the same 2000 psets on a 2000-row database (nothing new to run)."""
    params = lib.plist("a", range(N_PSETS))
    calc = fresh_dir(f"skip-{tag}") / "calc"
    lib.run(trivial, params, calc_dir=str(calc))

    def go() -> None:
        df = lib.run(trivial, params, calc_dir=str(calc), skip_dups=True)
        assert len(df) == N_PSETS

    return go


CASES = [
    ("run, 2000 psets, save=True", case_run),
    ("run, 2000 psets, poolsize=2", case_pool),
    ("pgrid, 5 params x 10 values", case_pgrid),
    ("skip_dups re-run, 2000-row db", case_skip_dups),
]


def timed(func: Callable[[], None]) -> float:
    t0 = time.perf_counter()
    func()
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--repeat", type=int, default=7, help="timed runs per case and library (default: 7)"
    )
    args = parser.parse_args(argv)

    import pandas as pd

    import runner.sweep as ours

    theirs = load_psweep()
    print(
        f"python {sys.version.split()[0]}, pandas {pd.__version__}, psweep {theirs.__version__}, "
        f"runner {ours.__version__}, {os.cpu_count()} CPUs; median of {args.repeat} runs\n"
    )
    rows = []
    for title, make in CASES:
        funcs = {"psweep": make(theirs, "psweep"), "ours": make(ours, "ours")}
        for func in funcs.values():
            func()  # warm up: imports, caches
        times: dict[str, list[float]] = {"psweep": [], "ours": []}
        for _ in range(args.repeat):
            for name, func in funcs.items():
                times[name].append(timed(func))
        med = {name: statistics.median(vals) for name, vals in times.items()}
        rows.append((title, med["psweep"], med["ours"], med["ours"] / med["psweep"]))
    width = max(len(r[0]) for r in rows)
    print(
        f"{'case':<{width}}  {'psweep 0.16 [s]':>15}  {'runner.sweep [s]':>16}  {'ours/psweep':>11}"
    )
    for title, t_theirs, t_ours, ratio in rows:
        print(f"{title:<{width}}  {t_theirs:>15.4f}  {t_ours:>16.4f}  {ratio:>11.2f}")
    shutil.rmtree(WORK, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
