"""The launcher's job: one command, run here or as an sbatch job, chosen by a profile.

`python train.py --lr=0.01` with a cluster profile becomes::

    #!/bin/bash
    #SBATCH --gres=gpu:v100:1
    #SBATCH --time=2-00:00:00

    conda activate deep
    python3 train.py --lr=0.01

(`#SBATCH` lines sorted by option, then the profile's `env` lines, then the command) and is
submitted with `sbatch`; `--runs N` makes it an array of N elements. With `host: local` the
command runs here, N times in sequence, after the same `env` lines.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from runner.backends.slurm.script import make_array_range, make_command_line, make_sbatch_script
from runner.errors import ConfigError, UsageError
from runner.spec.profiles import Profile

LAUNCH_DIR = os.path.join(".runner", "launch")  # where submitted scripts are kept (in the cwd)
RESERVED = ("array", "parsable", "wait")  # set by --runs / by the launcher


def interpreter(profile: Profile) -> str:
    """Who runs a `.py` script: the profile's `python`; else `python3` as the profile's `env`
    lines set it up (`conda activate deep`); else, with no `env` lines, the interpreter running
    `run` (on a cluster: found through the shared filesystem)."""
    if profile.python:
        return profile.python
    return "python3" if profile.env else sys.executable


def make_launch_argv(profile: Profile, script: str, flags: Sequence[str]) -> List[str]:
    """The command as argv: `.py` scripts through Python, `.sh` through bash, else as given."""
    if script.endswith(".py"):
        return [interpreter(profile), script, *flags]
    if script.endswith(".sh"):
        return ["bash", script, *flags]
    if "/" not in script and os.path.isfile(script):
        return ["./" + script, *flags]
    return [script, *flags]


def make_launch_script(profile: Profile, command: str, runs: int = 1) -> str:
    """The sbatch script of a cluster profile for `command`, as an array of `runs` elements."""
    options: Dict[str, object] = dict(profile.resource_map)
    for option in RESERVED:
        if option in options:
            raise ConfigError(f"{profile.source}, profile '{profile.name}': resources.{option} is "
                              f"set by launch-script (use --runs N for an array); remove it")
    if runs > 1:
        options["array"] = make_array_range(runs)
    return make_sbatch_script(options, profile.env, command)


def make_local_text(profile: Profile, command: str) -> str:
    """What runs here: the `env` lines, then the command."""
    return "\n".join([*profile.env, command]) + "\n"


def local_environment(profile: Profile, base=os.environ) -> Dict[str, str]:
    """A cpu profile hides the GPUs (`CUDA_VISIBLE_DEVICES=""`); a gpu profile keeps them."""
    from runner.execution.process import gpu_environment

    return gpu_environment(base, () if profile.device == "cpu" else None)


@dataclass
class LocalRun:
    """How one local run ended."""

    index: int
    exit_status: Optional[int]  # None: killed by a signal or never started
    duration: float


def run_local(profile: Profile, command: str, runs: int, groups,
              on_start: Callable[[int], None], on_end: Callable[[LocalRun], None]
              ) -> List[LocalRun]:
    """Run the command `runs` times in sequence, each in its own process group; stop early when
    `groups` is stopped (Ctrl-C). Output goes straight to this terminal."""
    text = make_local_text(profile, command)
    shell_line = make_command_line(["bash", "-c", text]) if profile.env else command
    env = local_environment(profile)
    results = []
    for index in range(runs):
        if groups.stopping.is_set():
            break
        on_start(index)
        started = time.monotonic()
        proc = groups.spawn(shell_line, env, None, None)
        if proc is None:
            break
        try:
            code = proc.wait()
        finally:
            groups.finish(proc)
        result = LocalRun(index, code if code >= 0 else None, time.monotonic() - started)
        results.append(result)
        on_end(result)
    return results


def write_launch_script(text: str, profile: Profile, stamp: str) -> str:
    """Keep a submitted script under `.runner/launch/` (to read, or to sbatch again by hand)."""
    os.makedirs(LAUNCH_DIR, exist_ok=True)
    path = os.path.join(LAUNCH_DIR, f"{stamp}.{_safe(profile.name)}.sbatch")
    n = 1
    while os.path.exists(path):
        n += 1
        path = os.path.join(LAUNCH_DIR, f"{stamp}.{_safe(profile.name)}.{n}.sbatch")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def check_runs(runs: int) -> None:
    if runs < 1:
        raise UsageError(f"--runs {runs}: expected a positive number of runs")


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)


def submit_launch_script(text: str, profile: Profile, stamp: str, commands=None
                         ) -> Tuple[str, str]:
    """Write and submit the script; (job id, script path)."""
    from runner.backends.slurm.commands import SlurmCommands

    commands = commands or SlurmCommands()
    commands.test_submit(text)
    path = write_launch_script(text, profile, stamp)
    return commands.submit(path), path
