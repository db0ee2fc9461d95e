"""Choosing the engine from the command line, and running a request on it at a terminal.

`run -y` and `run launch` share this: the same options (`--backend`, `--profile`,
`--max-parallel`, `--wait`, `--scheduler`, `--detach`), the same choice (an explicit `--backend`,
else the profile's engine, else here), and the same session: Ctrl-C and SIGTERM stop the engine
(a second time at once), the console prints each command and the progress line, and the summary
and the exit status follow.
"""

from __future__ import annotations

import time
from typing import Any, List, Optional, Tuple

from runner.cli.common import (EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, print_error,
                               stop_on_signals)

# Options of a local run that mean nothing to a remote engine, and the other way round.
_LOCAL_ONLY = (("debug", "-d"), ("resource", "-r"))
_REMOTE_ONLY = (("max_parallel", "--max-parallel"), ("wait", "--wait"))
_DASK_ONLY = (("scheduler", "--scheduler"), ("detach", "--detach"))


def add_engine_arguments(parser) -> None:
    """The options that choose and tune the engine."""
    from runner.backends.registry import ENGINES

    group = parser.add_argument_group("engines (see README: Running on SLURM, Running on "
                                      "several machines)")
    group.add_argument("--backend", choices=list(ENGINES),
                       help="where tasks run: here (local, the default), as SLURM job arrays, or "
                            "on the workers of a dask scheduler; a profile may name its engine "
                            "instead")
    group.add_argument("--profile", metavar="NAME",
                       help="the profile that says where and how tasks run (cluster resources, "
                            "env lines, engine)")
    group.add_argument("--profiles", metavar="FILE",
                       help="profile file (config.json or YAML) searched before the YAML's own "
                            "'profiles:', ./config.json, ./profiles.yaml and ~/.config/runner/")
    group.add_argument("--max-parallel", type=int, metavar="N",
                       help="at most N tasks of each job array run at once")
    group.add_argument("--wait", action="store_true",
                       help="with a cluster engine: wait until the jobs have ended, then report")
    group.add_argument("--scheduler", metavar="ADDRESS",
                       help="with --backend dask: the scheduler, e.g. tcp://head:8786 (default: "
                            "the profile's 'scheduler', else $DASK_SCHEDULER_ADDRESS)")
    group.add_argument("--detach", action="store_true",
                       help="with --backend dask: submit the tasks and return; they go on without "
                            "this run (run status follows them)")


def choose_engine(args, embedded: Any = None, where: str = "") -> Tuple[str, Any]:
    """(engine name, profile or None) from the options; UsageError for combinations that
    cannot work, before anything is read or written."""
    from runner.errors import UsageError
    from runner.spec.profiles import find_profiles

    profile = None
    if args.profile:
        profile = find_profiles(args.profiles, embedded, where).get(args.profile)
        check_engine(profile)
    name = args.backend or (profile.engine if profile is not None else "local")
    if name != "dask":
        for option, flag in _DASK_ONLY:
            if getattr(args, option, None):
                raise UsageError(f"{flag} is for the dask engine: add --backend dask (or drop "
                                 f"{flag})")
    if name == "local":
        for option, flag in _REMOTE_ONLY:
            if getattr(args, option, None):
                hint = (f"profile '{profile.name}' runs here" if profile is not None
                        else "add --backend slurm")
                raise UsageError(f"{flag} is for a cluster engine: {hint} (or drop {flag})")
        return name, profile
    for option, flag in _LOCAL_ONLY:
        if getattr(args, option, None):
            raise UsageError(f"{flag} runs tasks here; it cannot go with the {name} engine")
    if getattr(args, "max_parallel", None) is not None and args.max_parallel < 1:
        raise UsageError(f"--max-parallel {args.max_parallel}: expected a positive number")
    return name, profile


def check_engine(profile) -> None:
    """A profile's engine must be one the registry knows."""
    from runner.backends.registry import ENGINES
    from runner.errors import ConfigError, choices_text

    if profile.engine not in ENGINES:
        raise ConfigError(f"{profile.source}, profile '{profile.name}': engine "
                          f"'{profile.engine}' is not one of {choices_text(ENGINES)}")


def engine_settings(args) -> dict:
    return {"max_parallel": getattr(args, "max_parallel", None),
            "wait": getattr(args, "wait", False), "scheduler": getattr(args, "scheduler", None),
            "detach": getattr(args, "detach", False)}


def run_request(engine, request, console, noun: str = "commands") -> int:
    """Run `request` on `engine` at the terminal; print the summary; return the exit status."""
    from runner.cli.console import write_summary

    signals: List[int] = []

    def stop(signum: int) -> None:
        signals.append(signum)
        console.notice(f"stopping: terminating running {noun} (again to kill them at once)"
                       if len(signals) == 1 else f"killing running {noun}")
        engine.stop(kill=len(signals) > 1)

    started = time.monotonic()
    with stop_on_signals(stop), request.store.session():
        try:
            report = engine.run(request, console)
        finally:
            console.clear()
    console.lines(report.lines)
    if not report.finished:
        return EXIT_INTERRUPTED if signals else EXIT_OK
    write_summary(console, report.results, request.skipped, report.not_started,
                  time.monotonic() - started, output=request.store.root)
    if report.error is not None:
        print_error(str(report.error))
        return EXIT_FAILED
    if signals:
        return EXIT_INTERRUPTED
    return exit_status(report.results)


def exit_status(results) -> int:
    from runner.task import Status

    ok = (Status.DONE, Status.SKIPPED)
    if any(r.is_failure or r.status not in ok for r in results):
        return EXIT_FAILED
    return EXIT_OK


def profile_name(profile: Optional[Any]) -> str:
    return f", profile {profile.name}" if profile is not None else ""
