"""launch-script on a cluster: one command as an sbatch job, chosen by a profile.

`python train.py --lr=0.01` with a cluster profile becomes::

    #!/bin/bash
    #SBATCH --gres=gpu:v100:1
    #SBATCH --time=2-00:00:00

    conda activate deep
    python3 train.py --lr=0.01

(`#SBATCH` lines sorted by option, then the profile's `env` lines, then the command) and is
submitted with `sbatch`; `--runs N` makes it an array of N elements. The script is kept under
`.runner/launch/` in the current directory, to read or to sbatch again by hand.
"""

from __future__ import annotations

import os
from typing import Dict, Tuple

from runner.backends.slurm.commands import SlurmCommands
from runner.backends.slurm.script import make_array_range, make_sbatch_script
from runner.errors import ConfigError
from runner.spec.profiles import Profile
from runner.store.files import make_directory, write_atomic

LAUNCH_DIR = os.path.join(".runner", "launch")  # where submitted scripts are kept (in the cwd)
RESERVED = ("array", "parsable", "wait")  # set by --runs / by the launcher


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


def write_launch_script(text: str, profile: Profile, stamp: str) -> str:
    """Keep a submitted script under `.runner/launch/` (to read, or to sbatch again by hand)."""
    make_directory(LAUNCH_DIR)
    path = os.path.join(LAUNCH_DIR, f"{stamp}.{_safe(profile.name)}.sbatch")
    n = 1
    while os.path.exists(path):
        n += 1
        path = os.path.join(LAUNCH_DIR, f"{stamp}.{_safe(profile.name)}.{n}.sbatch")
    write_atomic(path, text.encode())
    return path


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)


def submit_launch_script(text: str, profile: Profile, stamp: str, commands=None
                         ) -> Tuple[str, str]:
    """Write and submit the script; (job id, script path)."""
    commands = commands or SlurmCommands()
    commands.test_submit(text)
    path = write_launch_script(text, profile, stamp)
    return commands.submit(path), path
