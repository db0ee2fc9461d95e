"""`run launch RUNFILE [--n_jobs N | -r R ...] [--mode MODE]`: run a runfile's commands as jobs."""

from __future__ import annotations

import os
import time
from argparse import RawDescriptionHelpFormatter
from dataclasses import dataclass
from typing import List

from runner.cli.common import (EXIT_OK, ArgumentParser, add_verbosity_arguments, command,
                               grace_seconds, plural, verbosity)
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
    parser.add_argument("--grace", type=grace_seconds, default=10.0, metavar="SECONDS",
                        help="on Ctrl-C, seconds between SIGTERM and SIGKILL (default: 10)")
    add_verbosity_arguments(parser)
    from runner.cli.engine import add_engine_arguments

    add_engine_arguments(parser)
    return parser


@command
def main(argv: List[str]) -> int:
    args = make_parser().parse_args(argv)
    from runner.cli.engine import choose_engine
    from runner.errors import UsageError
    from runner.spec.runfile import load_runfile
    from runner.store.runfile import RunfileStore

    if os.sep in args.state_db_filename or args.state_db_filename in ("", ".", ".."):
        raise UsageError(f"--state_db_filename {args.state_db_filename!r}: expected a file name "
                         f"(no directory); use --accounting_dir to choose the directory")
    engine, profile = choose_engine(args)
    slots = make_slots(args.n_jobs, args.resource) if engine == "local" else []
    runfile = load_runfile(args.runfile)
    directory = args.accounting_dir or os.path.join(args.runs_dir, runfile.stem)
    _check_directory(directory)
    store = RunfileStore(directory, args.state_db_filename)
    overwrite = args.mode == "overwrite"
    with store.session():  # whatever planning queued for metadata.json is written, however
        split = store.split(runfile.jobs, force=overwrite)
        _make_directory(store.dir)
        if engine == "local" and len(slots) > len(split.todo):
            slots = slots[:max(len(split.todo), 1)]  # never more workers than jobs to run
    return _run(args, runfile, store, split, slots, engine, profile, overwrite)


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


def _header(runfile, store, split, slots, overwrite: bool, engine: str, profile) -> List[str]:
    from runner.cli.engine import profile_name

    where = "" if engine == "local" else f" ({engine}{profile_name(profile)})"
    out = [f"launch: {plural(len(runfile.jobs), 'job')} from {runfile.path} -> {store.dir}{where}"]
    for line, first in runfile.duplicates[:SHOWN_DUPLICATES]:
        out.append(f"note: line {line} repeats line {first}: one job, run once")
    if len(runfile.duplicates) > SHOWN_DUPLICATES:
        out.append(f"note: {len(runfile.duplicates) - SHOWN_DUPLICATES} more duplicate lines")
    for ident, note in list(split.notes.items())[:SHOWN_DUPLICATES]:
        out.append(f"warning: {note}" + (f"; job {ident} runs again" if ident else ""))
    out.append(f"jobs: {len(split.todo)} to run, {len(split.done)} skipped (done earlier"
               + ("" if overwrite else "; --mode overwrite runs them again") + ")")
    if engine != "local":
        return out
    if isinstance(slots[0], Worker):
        out.append(f"workers: {len(slots)}")
    else:
        from runner.gpu.resources import describe_slots

        out.append(describe_slots(slots))
    return out


def _run(args, runfile, store, split, slots, engine: str, profile, overwrite: bool) -> int:
    from runner.backends.base import RunRequest
    from runner.backends.registry import load_engine
    from runner.cli.console import Console
    from runner.cli.engine import engine_settings, run_request
    from runner.execution.executor import ExecOptions

    console = Console(total=len(split.todo), verbosity=verbosity(args), commands=len(split.todo),
                      noun="job")
    console.lines(_header(runfile, store, split, slots, overwrite, engine, profile))
    if not split.todo:
        console.line("nothing to run: every job is done (--mode overwrite runs them again)")
        return EXIT_OK
    bind = bool(slots) and not isinstance(slots[0], Worker)
    request = RunRequest(store=store, tasks=split.tasks, datetime=time.strftime(
        "%Y-%m-%d.%H_%M_%S"), skipped=len(split.done), grace=args.grace, force=overwrite,
        profile=profile, slots=slots, exec_options=ExecOptions(force=overwrite, bind_gpus=bind),
        settings=engine_settings(args), info={"runfile": runfile.path})
    status = run_request(load_engine(engine), request, console, noun="jobs")
    console.line(f"metadata: {store.metadata.path}")
    return status
