"""The pure parts of the SLURM backend: sbatch text, quoting, time limits, GPUs, grouping and
array splitting. Scripts are compared to reference files in tests/slurm/."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from runner.backends.slurm.engine import (
    SubmissionPaths,
    array_options,
    check_profile,
    make_array_script,
    task_needs,
)
from runner.backends.slurm.launch_script import make_launch_script
from runner.backends.slurm.script import (
    Needs,
    group_by,
    make_array_range,
    make_command_line,
    make_gres,
    make_sbatch_script,
    make_time_limit,
    parse_gres_gpus,
    quote_sbatch_value,
    split_array,
)
from runner.cli.launch_script import make_launch_argv
from runner.errors import ConfigError, UsageError
from runner.spec.profiles import parse_profile
from runner.task import Task

REFERENCE = Path(__file__).parent / "slurm"
SEED_REMOTE = {"env": "conda activate deep", "device": "gpu", "host": "sersver-name",
               "resources": {"time": "2-00:00:00", "account": "lfrati", "partition": "big-gpu",
                             "cpus-per-task": 1, "gres": "gpu:v100:1", "mem": "8000"}}


def profile(data=None, name="remote-gpu"):
    return parse_profile(name, SEED_REMOTE if data is None else data, "config.json")


def test_seed_example_script_matches_reference():
    script = make_launch_script(profile(), make_command_line(make_launch_argv(
        profile(), "train.py", ["--lr=0.01"])))
    assert script == (REFERENCE / "launch_remote_gpu.sbatch").read_text()


def test_runs_become_an_array_matches_reference():
    script = make_launch_script(profile(), make_command_line(make_launch_argv(
        profile(), "dummytrain.py", ["--steps=10"])), runs=10)
    assert script == (REFERENCE / "launch_runs_10.sbatch").read_text()


def test_sweep_array_script_matches_reference():
    """A group of 1500 tasks with 2 GPUs each and a 90-minute timeout, throttled to 4: the
    profile's gres keeps its GPU type with the count replaced, the task's time wins."""
    paths = SubmissionPaths("/data/my sweep/out", "2026-01-02.03_04_05")
    options = array_options(profile(), Needs(2, "01:30:00"), 1500, 4, paths,
                            "/data/my sweep/out", "/data/my sweep")
    script = make_array_script(options, profile(), "/opt/venv/bin/python", paths.table(0), 10)
    assert script == (REFERENCE / "sweep_array_2_gpus.sbatch").read_text()


def test_sbatch_lines_are_sorted_and_flags_have_no_value():
    script = make_sbatch_script({"time": "1:00", "exclusive": True, "account": "a",
                                 "requeue": False}, ["module load x"], "echo hi")
    assert script.splitlines() == ["#!/bin/bash", "#SBATCH --account=a", "#SBATCH --exclusive",
                                   "#SBATCH --time=1:00", "", "module load x", "echo hi"]


AWKWARD = ["it's", 'say "hi"', "$HOME and $(id)", "two  spaces", "back\\slash", "semi;colon",
           "new\nline", "*", "", "--flag=a b"]


def test_command_quoting_survives_bash(tmp_path):
    """The generated script, run by bash (its #SBATCH lines are comments), hands the script
    every flag exactly: quotes, `$`, spaces, globs and newlines included."""
    echo = tmp_path / "argv.py"
    echo.write_text("import json, sys; print(json.dumps(sys.argv[1:]))\n")
    command = make_command_line([sys.executable, str(echo), *AWKWARD])
    script = make_launch_script(profile({"host": "c", "env": "export X=1"}), command, runs=3)
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, cwd=tmp_path,
                         check=True).stdout
    assert json.loads(out) == AWKWARD


def test_launch_argv_picks_the_interpreter(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "prog").write_text("#!/bin/sh\n")
    with_env = profile({"host": "c", "env": "conda activate deep"})
    bare = profile({"host": "local"})
    pinned = profile({"host": "c", "env": "x", "python": "/opt/py/bin/python3"})
    assert make_launch_argv(with_env, "train.py", ["--lr=1"]) == ["python3", "train.py", "--lr=1"]
    assert make_launch_argv(bare, "train.py", []) == [sys.executable, "train.py"]
    assert make_launch_argv(pinned, "t.py", []) == ["/opt/py/bin/python3", "t.py"]
    assert make_launch_argv(bare, "run.sh", ["a"]) == ["bash", "run.sh", "a"]
    assert make_launch_argv(bare, "prog", []) == ["./prog"]
    assert make_launch_argv(bare, "nvidia-smi", ["-L"]) == ["nvidia-smi", "-L"]


@pytest.mark.parametrize("value, quoted", [
    ("8000", "8000"),
    ("gpu:v100:1", "gpu:v100:1"),
    ("/data/my sweep/x", '"/data/my sweep/x"'),
    ("/d/it's", '"/d/it\'s"'),
    ('/d/say "hi"', '"/d/say \\"hi\\""'),
    ("/d/back\\slash", '"/d/back\\\\slash"'),
    ("", '""'),
])
def test_sbatch_values_are_quoted_as_sbatch_reads_them(value, quoted):
    assert quote_sbatch_value(value) == quoted


def test_a_value_on_two_lines_is_refused():
    with pytest.raises(ConfigError, match="one line"):
        quote_sbatch_value("a\nb")


@pytest.mark.parametrize("seconds, limit", [
    (1, "00:01:00"), (60, "00:01:00"), (61, "00:02:00"), (5400, "01:30:00"),
    (86400, "1-00:00:00"), (2 * 86400 + 3600 + 1, "2-01:01:00"),
])
def test_time_limits_round_up_to_whole_minutes(seconds, limit):
    assert make_time_limit(seconds) == limit


@pytest.mark.parametrize("gres, gpus, expected", [
    (None, 1, "gpu:1"), (None, 0, None), ("gpu:v100:1", 2, "gpu:v100:2"), ("gpu", 3, "gpu:3"),
    ("gpu:v100:1,nvme:1", 0, "nvme:1"), ("nvme:1", 2, "gpu:2,nvme:1"),
    ("gpu:a100", 2, "gpu:a100:2"),
])
def test_gres_gets_the_gpu_count(gres, gpus, expected):
    assert make_gres(gres, gpus) == expected


def test_gres_gpu_counts():
    assert parse_gres_gpus("gpu:v100:2,nvme:1") == 2
    assert parse_gres_gpus("gpu") == 1
    assert parse_gres_gpus("gpu:2(S:0-1)") == 2
    assert parse_gres_gpus("nvme:1") is None


def test_array_ranges():
    assert make_array_range(1) == "0"
    assert make_array_range(8) == "0-7"
    assert make_array_range(8, 2) == "0-7%2"


def task(name, **settings):
    return Task(name, {"_name": name}, {"run": "true"}, settings=settings)


def test_needs_come_from_settings_else_the_profile():
    gpu = profile()
    cpu = profile({"host": "c", "device": "cpu"})
    plain_gpu = profile({"host": "c", "device": "gpu"})
    assert task_needs(task("a"), gpu) == Needs(1, None)  # gres gpu:v100:1
    assert task_needs(task("a", gpus_per_task=2, timeout=90.0), gpu) == Needs(2, "00:02:00")
    assert task_needs(task("a"), cpu) == Needs(0, None)
    assert task_needs(task("a"), plain_gpu) == Needs(1, None)
    with pytest.raises(ConfigError, match="cpu profile"):
        task_needs(task("a", gpus_per_task=1), cpu)


def test_grouping_by_needs_keeps_order():
    tasks = [task("a"), task("b", gpus_per_task=2), task("c"), task("d", timeout=60.0),
             task("e", gpus_per_task=2)]
    groups = group_by(tasks, lambda t: task_needs(t, profile()))
    assert [(n, [t.name for t in ts]) for n, ts in groups] == [
        (Needs(1, None), ["a", "c"]), (Needs(2, None), ["b", "e"]),
        (Needs(1, "00:01:00"), ["d"])]


def test_arrays_split_at_max_array_size():
    """MaxArraySize 1001 allows indices 0..1000: 2500 tasks are arrays of 1001, 1001, 498."""
    chunks = split_array(list(range(2500)), 1001)
    assert [len(c) for c in chunks] == [1001, 1001, 498]
    assert [x for c in chunks for x in c] == list(range(2500))
    assert split_array([1, 2], 1001) == [[1, 2]]
    assert split_array([], 5) == []


def test_profiles_that_cannot_drive_a_sweep():
    with pytest.raises(UsageError, match="host 'local'"):
        check_profile(profile({"host": "local"}))
    with pytest.raises(ConfigError, match="resources.array is set by the runner"):
        check_profile(profile({"host": "c", "resources": {"array": "0-3"}}))
    with pytest.raises(ConfigError, match="resources.gpus-per-task"):
        check_profile(profile({"host": "c", "resources": {"gpus-per-task": 1}}))
    with pytest.raises(ConfigError, match="--runs N"):
        make_launch_script(profile({"host": "c", "resources": {"array": "0-3"}}), "true")
