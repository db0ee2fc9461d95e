"""`run launch RUNFILE [--n_jobs N | -r R ...] [--mode MODE]`: run a runfile's commands as jobs."""

from __future__ import annotations

import os
import time
from argparse import RawDescriptionHelpFormatter
from dataclasses import dataclass
from typing import List

from runner.cli.common import EXIT_OK, ArgumentParser, command
from runner.task import Slot

DESCRIPTION = """\
Run every command of a runfile (one shell command per line; # comments, blank lines and
trailing-backslash continuations allowed) on N workers, tracking each job in
RUNS_DIR/<runfile name without extension>/: logs/<id>/out.log and err.log, and metadata.json.
A job's id is a hash of its command, so a later launch skips the jobs that succeeded, runs
failed and unfinished ones again, and runs new or changed lines."""

MODES = ("resume", "retry_failed", "overwrite")
SHOWN_DUPLICATES = 5


@dataclass(frozen=True)
class Worker(Slot):
    """A slot of `--n_jobs`: it binds no GPU and leaves `CUDA_VISIBLE_DEVICES` alone."""

    def __str__(self) -> str:
        return f"worker {self.index}"


def make_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="run launch", description=DESCRIPTION, formatter_class=RawDescriptionHelpFormatter,
        epilog="exit status: 0 every job done (now or earlier), 1 a job failed, 2 bad input, "
               "130 interrupted")
    parser.add_argument("runfile", metavar="RUNFILE", help="text file, one shell command per line")
    parser.add_argument("-j", "--n_jobs", "--n-jobs", type=int, metavar="N",
                        help="N parallel workers (default 1; -1 one per CPU core, -2 all but one)")
    parser.add_argument("-r", "--resource", nargs="+", metavar="R",
                        help="GPU slots instead of --n_jobs, as in the YAML runner: -r 0 1, "
                             "-r 0,1 2,3, -r 0 0 (two workers on GPU 0)")
    parser.add_argument("--mode", choices=MODES, default="resume",
                        help="resume (default): skip jobs that succeeded, run failed and "
                             "unfinished ones again; retry_failed: the same; overwrite: run all")
    parser.add_argument("--runs-dir", default="runs", metavar="DIR",
                        help="where to keep DIR/<runfile stem>/ (default: runs)")
    parser.add_argument("--accounting_dir", metavar="DIR",
                        help="the tracking directory itself, instead of RUNS_DIR/<stem> "
                             "(batchrun's option)")
    parser.add_argument("--state_db_filename", default="metadata.json", metavar="NAME",
                        help="name of the metadata file (default: metadata.json)")
    parser.add_argument("--grace", type=float, default=10.0, metavar="SECONDS",
                        help="on Ctrl-C, seconds between SIGTERM and SIGKILL (default: 10)")
    return parser


@command
def main(argv: List[str]) -> int:
    args = make_parser().parse_args(argv)
    from runner.errors import UsageError
    from runner.spec.runfile import load_runfile
    from runner.store.runfile import RunfileStore

    if os.sep in args.state_db_filename or args.state_db_filename in ("", ".", ".."):
        raise UsageError(f"--state_db_filename {args.state_db_filename!r}: expected a file name "
                         f"(no directory); use --accounting_dir to choose the directory")
    slots = make_slots(args.n_jobs, args.resource)
    runfile = load_runfile(args.runfile)
    directory = args.accounting_dir or os.path.join(args.runs_dir, runfile.stem)
    _check_directory(directory)
    store = RunfileStore(directory, args.state_db_filename)
    overwrite = args.mode == "overwrite"
    todo, done = store.split_done(runfile.jobs, overwrite=overwrite)
    _make_directory(store.dir)
    _print_header(runfile, store, todo, done, slots, overwrite)
    if not todo:
        store.metadata.flush()
        print("nothing to run: every job is done (--mode overwrite runs them again)")
        return EXIT_OK
    return _run([job.to_task() for job in todo], len(done), store, slots, overwrite, args.grace)


def make_slots(n_jobs, resource) -> List[Slot]:
    """`-r` GPU slots, or `--n_jobs` workers that leave the GPUs alone."""
    from runner.spec.config import parse_resource_entry
    from runner.errors import UsageError

    if resource:
        if n_jobs is not None:
            raise UsageError("--n_jobs and -r: give one of them; -r makes one worker per GPU "
                             "slot (-r 0 0 1 runs two workers on GPU 0)")
        try:
            return [Slot(i, parse_resource_entry(r)) for i, r in enumerate(resource)]
        except ValueError as e:
            raise UsageError(f"-r: {e}; a slot is a GPU index (0), a group (0,1) or '' for no "
                             f"GPU") from None
    count = 1 if n_jobs is None else n_jobs
    if count < 0:
        count = max(1, (os.cpu_count() or 1) + 1 + count)
    if count == 0:
        raise UsageError("--n_jobs 0: expected a number of workers of at least 1 (or -1 for one "
                         "per CPU core)")
    return [Worker(i, ()) for i in range(count)]


def _check_directory(directory: str) -> None:
    from runner.errors import StoreError

    if os.path.exists(directory) and not os.path.isdir(directory):
        raise StoreError(f"{directory}: exists and is not a directory; move it away or choose "
                         f"another directory with --runs-dir")


def _make_directory(directory: str) -> None:
    from runner.errors import StoreError

    try:
        os.makedirs(directory, exist_ok=True)
        if not os.access(directory, os.W_OK | os.X_OK):
            raise PermissionError(13, "permission denied")
    except OSError as e:
        raise StoreError(f"{directory}: cannot write there ({e.strerror or e}); choose a "
                         f"writable directory with --runs-dir") from None


def _print_header(runfile, store, todo, done, slots, overwrite: bool) -> None:
    jobs = len(runfile.jobs)
    out = [f"launch: {jobs} job{'s' * (jobs != 1)} from {runfile.path} -> {store.dir}"]
    for line, first in runfile.duplicates[:SHOWN_DUPLICATES]:
        out.append(f"note: line {line} repeats line {first}: one job, run once")
    if len(runfile.duplicates) > SHOWN_DUPLICATES:
        out.append(f"note: {len(runfile.duplicates) - SHOWN_DUPLICATES} more duplicate lines")
    out.append(f"jobs: {len(todo)} to run, {len(done)} skipped (done earlier"
               + ("" if overwrite else "; --mode overwrite runs them again") + ")")
    if isinstance(slots[0], Worker):
        out.append(f"workers: {len(slots)}")
    else:
        from runner.gpu.resources import describe_slots

        out.append(describe_slots(slots))
    print("\n".join(out), flush=True)


def _run(tasks, skipped: int, store, slots, overwrite: bool, grace: float) -> int:
    from runner.cli.session import run_session
    from runner.execution.executor import ExecOptions

    options = ExecOptions(force=overwrite, bind_gpus=not isinstance(slots[0], Worker))
    status = run_session(tasks, slots, store, time.strftime("%Y-%m-%d.%H_%M_%S"), options, grace,
                         skipped, noun="jobs", around=store.metadata.writing)
    print(f"metadata: {store.metadata.path}")
    return status
