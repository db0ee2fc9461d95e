"""`run launch-script [--runs N] [--dry-run] PROFILE SCRIPT [FLAGS...]`: run one script with a
profile, here (`host: local`) or as a cluster job (any other host).

Options of launch-script go before PROFILE; everything after SCRIPT is passed to the script
as it is. `.py` scripts run with Python, `.sh` scripts with bash.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from typing import List, Sequence

from runner.cli.common import (EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, ArgumentParser, command,
                               stop_on_signals)

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
                        help="print what would run (the batch script); run and submit nothing")
    parser.add_argument("--profiles", metavar="FILE", help="profile file searched first")
    parser.add_argument("profile", help="profile name")
    parser.add_argument("script", help="the script or program to run")
    parser.add_argument("flags", nargs=argparse.REMAINDER, help="passed to the script unchanged")
    return parser


@command
def main(argv: List[str]) -> int:
    from runner.backends.registry import load_engine
    from runner.cli.console import Console
    from runner.cli.engine import check_engine
    from runner.errors import UsageError
    from runner.spec.profiles import load_profile

    args = make_parser().parse_args(argv)
    if args.runs < 1:
        raise UsageError(f"--runs {args.runs}: expected a positive number of runs")
    profile = load_profile(args.profile, args.profiles)
    check_engine(profile)
    command_line = shlex.join(make_launch_argv(profile, args.script, args.flags))
    engine = load_engine(profile.engine)
    console = Console(total=args.runs)
    stopped: List[int] = []

    def stop(signum: int) -> None:
        stopped.append(signum)
        engine.stop(kill=len(stopped) > 1)

    with stop_on_signals(stop):
        report = engine.launch_script(profile, command_line, args.runs, args.dry_run, console)
    console.lines(report.lines)
    if not report.finished:
        return EXIT_OK
    failed = [r for r in report.results if r.is_failure]
    if stopped:
        console.line(f"interrupted after {len(report.results)} of {args.runs} runs")
        return EXIT_INTERRUPTED
    if args.runs > 1:
        console.line(f"{args.runs} runs: {args.runs - len(failed)} succeeded, {len(failed)} "
                     f"failed")
    return EXIT_FAILED if failed else EXIT_OK


def interpreter(profile) -> str:
    """Who runs a `.py` script: the profile's `python`; else `python3` as the profile's `env`
    lines set it up (`conda activate deep`); else, with no `env` lines, the interpreter running
    `run` (on a cluster: found through the shared filesystem)."""
    if profile.python:
        return profile.python
    return "python3" if profile.env else sys.executable


def make_launch_argv(profile, script: str, flags: Sequence[str]) -> List[str]:
    """The command as argv: `.py` scripts through Python, `.sh` through bash, else as given."""
    if script.endswith(".py"):
        return [interpreter(profile), script, *flags]
    if script.endswith(".sh"):
        return ["bash", script, *flags]
    if "/" not in script and os.path.isfile(script):
        return ["./" + script, *flags]
    return [script, *flags]
