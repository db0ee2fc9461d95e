"""`run launch-script [--runs N] [--dry-run] PROFILE SCRIPT [FLAGS...]`: run one script with a
profile, here (`host: local`) or as an sbatch job (any other host).

Options of launch-script go before PROFILE; everything after SCRIPT is passed to the script
as it is. `.py` scripts run with Python, `.sh` scripts with bash.
"""

from __future__ import annotations

import argparse
import sys
from typing import List

from runner.cli.common import (EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, ArgumentParser, command,
                               format_duration, stop_on_signals)

EXAMPLE = """\
examples:
  run launch-script --runs=10 local-gpu dummytrain.py --steps=10
  run launch-script --dry-run remote-gpu train.py --lr=0.01
profiles are read from --profiles FILE, ./config.json, ./profiles.yaml, ~/.config/runner/"""


def make_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="run launch-script", description=__doc__.split("\n\n")[0],
                            epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1, metavar="N",
                        help="run N times: in sequence here, or as an array of N on a cluster")
    parser.add_argument("--dry-run", action="store_true",
                        help="print what would run (the sbatch script); run and submit nothing")
    parser.add_argument("--profiles", metavar="FILE", help="profile file searched first")
    parser.add_argument("profile", help="profile name")
    parser.add_argument("script", help="the script or program to run")
    parser.add_argument("flags", nargs=argparse.REMAINDER, help="passed to the script unchanged")
    return parser


@command
def main(argv: List[str]) -> int:
    from runner.backends.slurm.script import make_command_line
    from runner.spec.expand import make_datetime
    from runner.backends.slurm.launch_script import (check_runs, make_launch_argv, make_launch_script,
                                      make_local_text, submit_launch_script)
    from runner.spec.profiles import load_profile

    args = make_parser().parse_args(argv)
    check_runs(args.runs)
    profile = load_profile(args.profile, args.profiles)
    command_line = make_command_line(make_launch_argv(profile, args.script, args.flags))
    if profile.is_local:
        if args.dry_run:
            times = f"{args.runs} times, in sequence" if args.runs > 1 else "once"
            sys.stdout.write(f"# would run here ({times}), profile {profile.name} "
                             f"(device {profile.device}):\n"
                             + make_local_text(profile, command_line))
            return EXIT_OK
        return _run_here(profile, command_line, args.runs)
    script = make_launch_script(profile, command_line, args.runs)
    if args.dry_run:
        sys.stdout.write(script)
        return EXIT_OK
    _require_sbatch(profile)
    job, path = submit_launch_script(script, profile, make_datetime())
    runs = f" ({args.runs} runs: array {job}_[0-{args.runs - 1}])" if args.runs > 1 else ""
    print(f"submitted job {job} to {profile.host}{runs}; script {path}")
    return EXIT_OK


def _require_sbatch(profile) -> None:
    from runner.backends.slurm.commands import is_available
    from runner.errors import BackendError

    if not is_available():
        raise BackendError(f"profile '{profile.name}' runs on cluster '{profile.host}', but sbatch "
                           f"is not on PATH here; run this on the cluster's login node, or add "
                           f"--dry-run to see the script")


def _run_here(profile, command_line: str, runs: int) -> int:
    from runner.backends.slurm.launch_script import run_local
    from runner.execution.process import ProcessGroups

    groups = ProcessGroups()
    stopped: List[int] = []

    def stop(signum: int) -> None:
        stopped.append(signum)
        groups.stop()

    def started(index: int) -> None:
        print(f"run {index + 1}/{runs} ({profile.name}): {command_line}", flush=True)

    def ended(result) -> None:
        how = (f"exit status {result.exit_status}" if result.exit_status is not None
               else "killed by a signal")
        print(f"run {result.index + 1}/{runs}: {how} after {format_duration(result.duration)}",
              flush=True)

    with stop_on_signals(stop):
        results = run_local(profile, command_line, runs, groups, started, ended)
    groups.close()
    failed = [r for r in results if r.exit_status != 0]
    if stopped:
        print(f"interrupted after {len(results)} of {runs} runs", flush=True)
        return EXIT_INTERRUPTED
    if runs > 1:
        print(f"{runs} runs: {runs - len(failed)} succeeded, {len(failed)} failed", flush=True)
    return EXIT_FAILED if failed else EXIT_OK
