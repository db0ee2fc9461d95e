"""The contract every engine passes: the same small sweep and the same runfile, run, skipped
when done, a failure recorded, cancelled mid-run and resumed, shown by `run status`.

Each engine is driven as a user would drive it, through the CLI: here (no option), on the real
SLURM of ../shared/tools/slurm-local.sh (`--profile ci`, a profile whose host is a cluster), on
a real dask scheduler with two `run worker` on 127.0.0.1 (`--backend dask --scheduler ADDR`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from support import read_json, wait_for

HOLD = "for i in $(seq 600); do test -e release && break; sleep 0.1; done; test -e release"
SWEEP = """
template:
  work: echo {i} >> ran_{i}; test {i} -ne 3 || test -e fixed
---
i: [1, 2, 3]
"""
RUNFILE = "echo 1 >> ran_1\necho 2 >> ran_2\necho 3 >> ran_3; test -e fixed\n"
HELD_SWEEP = f"""
template:
  work: echo {{i}} >> ran_{{i}}; test {{i}} -eq 1 || {{ {HOLD}; }}
---
i: [1, 2]
"""
HELD_RUNFILE = f"echo 1 >> ran_1\necho 2 >> ran_2; {HOLD}\n"
PROFILES = """
profiles:
  ci: {host: ci, device: cpu, resources: {cpus-per-task: 1, mem: 100}}
"""


class Local:
    name = "local"

    def __init__(self, workdir: Path):
        self.workdir = workdir

    def options(self, wait: bool = True):
        return []


class Slurm:
    name = "slurm"

    def __init__(self, workdir: Path):
        self.workdir = workdir
        (workdir / "profiles.yaml").write_text(textwrap.dedent(PROFILES).lstrip())

    def options(self, wait: bool = True):
        return ["--profile", "ci"] + (["--wait"] if wait else [])


class Dask:
    name = "dask"

    def __init__(self, workdir: Path, cluster):
        self.workdir = workdir
        self.cluster = cluster

    def options(self, wait: bool = True):
        return ["--backend", "dask", "--scheduler", self.cluster.address]


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory):
    """A scheduler and two `run worker` of one slot without GPU each, for this module."""
    from dask_support import Cluster, require_distributed

    require_distributed()
    cluster = Cluster(tmp_path_factory.mktemp("dask"), [[""], [""]])
    yield cluster
    cluster.stop()


def require_slurm() -> None:
    if shutil.which("sbatch") is None:
        pytest.skip("sbatch not on PATH: no SLURM here (.ci/run starts one with "
                    "../shared/tools/slurm-local.sh up)")
    answer = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=60)
    if answer.returncode != 0 or "UP" not in answer.stdout:
        reason = "no SLURM controller answers; start one with ../shared/tools/slurm-local.sh up"
        if os.environ.get("RUNNER_REQUIRE_SLURM"):
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture(params=["local", pytest.param("slurm", marks=pytest.mark.slurm), "dask"])
def engine(request, workdir):
    if request.param == "slurm":
        require_slurm()
        return Slurm(workdir)
    if request.param == "dask":
        return Dask(workdir, request.getfixturevalue("dask_cluster"))
    return Local(workdir)


def run(*argv, timeout=120):
    return subprocess.run([sys.executable, "-m", "runner", *argv], capture_output=True,
                          text=True, timeout=timeout)


def states(output: str, early: bool = False) -> dict:
    """task -> state from `run status --json` (`early`: {} while there is no directory yet)."""
    result = run("status", "-o", output, "--json")
    if early and result.returncode == 2 and "no such output directory" in result.stderr:
        return {}
    assert result.returncode in (0, 1), result
    data = json.loads(result.stdout)
    return {t["name"]: t["state"] for t in data["tasks"]}


def ran(workdir: Path, i: int) -> int:
    path = workdir / f"ran_{i}"
    return len(path.read_text().split()) if path.exists() else 0


@pytest.mark.parametrize("kind", ["sweep", "runfile"])
def test_run_skip_when_done_and_a_failure_recorded(engine, workdir, make_config, kind):
    if kind == "sweep":
        make_config(SWEEP)
        argv, output = ["-y", "params.yaml", "-o", "out"], "out"
    else:
        (workdir / "runfile").write_text(RUNFILE)
        argv, output = ["launch", "runfile"], "runs/runfile"
    first = run(*argv, *engine.options())
    assert first.returncode == 1, first
    assert "summary: 2 done, 1 failed" in first.stdout, first.stdout
    found = states(output)
    assert sorted(found.values()) == ["done", "done", "failed"], found
    # files as a local run writes them
    if kind == "sweep":
        entry = read_json(workdir / "out/I_1/stat.json")["work"]
        assert entry["status"] == "done" and entry["host"] and entry["duration"] is not None
    else:
        metadata = read_json(workdir / "runs/runfile/metadata.json")
        assert sorted(e["status"] for e in metadata.values()) == ["done", "done", "failed"]
        assert all((workdir / "runs/runfile/logs" / ident / "job.json").exists()
                   for ident in metadata)
    # only the failure runs again; once fixed, everything is done and nothing runs
    (workdir / "fixed").write_text("")
    second = run(*argv, *engine.options())
    assert second.returncode == 0, second
    assert (ran(workdir, 1), ran(workdir, 2), ran(workdir, 3)) == (1, 1, 2)
    assert sorted(states(output).values()) == ["done", "done", "done"]
    third = run(*argv, *engine.options())
    assert third.returncode == 0 and (ran(workdir, 1), ran(workdir, 3)) == (1, 2)
    assert "nothing to" in third.stdout


@pytest.mark.parametrize("kind", ["sweep", "runfile"])
def test_cancelled_mid_run_then_resumed(engine, workdir, make_config, kind):
    if kind == "sweep":
        make_config(HELD_SWEEP)
        argv, output, held = ["-y", "params.yaml", "-o", "out"], "out", "I_2"
    else:
        (workdir / "runfile").write_text(HELD_RUNFILE)
        argv, output = ["launch", "runfile"], "runs/runfile"
        held = None
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    background = subprocess.Popen([sys.executable, "-m", "runner", *argv,
                                   *engine.options(wait=False)], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, env=env)
    try:
        wait_for(lambda: sorted(states(output, early=True).values()) == ["done", "running"],
                 timeout=90,
                 what="one task done and the held one running")
        cancel = run("cancel", "-o", output)
        assert cancel.returncode == 0, cancel
        assert "nothing to cancel" not in cancel.stdout, cancel.stdout
        out, err = background.communicate(timeout=60)
    finally:
        if background.poll() is None:
            background.kill()
            background.communicate()
    if engine.name == "local":
        assert background.returncode == 130, (out, err)  # as Ctrl-C: interrupted, summary
        assert "summary:" in out
    found = wait_for(lambda: (lambda s: s if "running" not in s.values() else None)(
        states(output)), timeout=60, what="the cancelled task to be recorded")
    assert sorted(found.values()) == ["done", "interrupted"], found
    if held is not None:
        assert read_json(workdir / output / held / "stat.json")["work"]["status"] == \
            "interrupted"
    (workdir / "release").write_text("")
    again = run(*argv, *engine.options())
    assert again.returncode == 0, again
    assert sorted(states(output).values()) == ["done", "done"]
    assert ran(workdir, 1) == 1 and ran(workdir, 2) == 2  # the finished task did not run again


def test_status_shows_both_kinds_of_directory_alike(engine, workdir, make_config):
    make_config(SWEEP)
    (workdir / "runfile").write_text(RUNFILE)
    run("-y", "params.yaml", "-o", "out", *engine.options())
    run("launch", "runfile", *engine.options())
    sweep = run("status", "-o", "out")
    launch = run("status", "-o", "runs/runfile")
    assert sweep.returncode == launch.returncode == 1  # a task failed in each
    assert sweep.stdout.split()[1:6] == ["STATE", "COMMANDS", "DURATION", "GPUS", "LAST"]
    assert launch.stdout.split()[:6] == ["JOB", "STATE", "COMMAND", "DURATION", "GPUS", "LAST"]
    assert sweep.stdout.splitlines()[-1] == "3 tasks: 2 done, 1 failed"
    assert launch.stdout.splitlines()[-1] == "3 jobs: 2 done, 1 failed"
