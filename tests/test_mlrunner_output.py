"""An mlrunner output directory is understood: tasks/fixtures/mlrunner/examine_output is the
output mlrunner itself wrote for examples/examine of its repository (YAML `param` and `stat`
files per task). `run status` and `run results` show its tasks, and `run -y` finishes a
half-done mlrunner sweep without redoing its work (tasks matched by params, not by name)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures" / "mlrunner"
NAMES = [f"Data_CIFAR10-Loss_CE-Lr_{lr}-Seed_{seed}" for lr in ("0.01", "0.1")
         for seed in range(3)]
SWEEP = """
template:
  train: echo {data} {loss} [lr] [seed] >> ran
default:
  data: MNIST
  loss: CE
  lr: 0.01
  seed: 0
resource: [0]
---
_title: cifar10
data: [CIFAR10]
loss: [CE]
lr: [0.1, 0.01, 0.5]
seed: [0, 1, 2]
"""


@pytest.fixture
def output(workdir) -> Path:
    shutil.copytree(FIXTURES / "examine_output", workdir / "output")
    return workdir / "output"


def test_status_and_results_show_mlrunners_tasks(output, cli):
    status = cli("status", "--json")
    assert status.code == 0, status
    tasks = {t["name"]: t for t in json.loads(status.out)["tasks"]}
    assert sorted(tasks) == NAMES
    assert {t["state"] for t in tasks.values()} == {"done"}
    assert tasks[NAMES[0]]["params"]["lr"] == 0.01 and tasks[NAMES[0]]["params"]["seed"] == 0
    assert "written by mlrunner" in cli("status").out
    results = cli("results", "--json", "-")
    rows = {r["_name"]: r for r in json.loads(results.out)}
    assert sorted(rows) == NAMES
    assert {(r["data"], r["loss"], r["lr"], r["seed"]) for r in rows.values()} == {
        ("CIFAR10", "CE", lr, seed) for lr in (0.01, 0.1) for seed in range(3)}


def test_a_dry_run_skips_what_mlrunner_finished(output, cli, make_config):
    make_config(SWEEP.replace("[0.1, 0.01, 0.5]", "[0.1, 0.01]"))
    result = cli("--dry-run")
    assert result.code == 0, result
    assert "6 tasks, 0 would run, 6 would be skipped" in result.out
    assert result.out.count("(done by mlrunner in output/Data_CIFAR10-") == 6


def test_a_half_finished_mlrunner_sweep_is_finished_without_redoing_its_work(output, cli,
                                                                            make_config,
                                                                            workdir):
    (output / NAMES[0] / "stat").write_text("train: failed\n")
    (output / NAMES[1] / "stat").write_text("train: running\n")
    shutil.rmtree(output / NAMES[2])
    make_config(SWEEP)
    result = cli()
    assert result.code == 0, result
    assert "note: 3 commands of 3 tasks done earlier by mlrunner (matched by params)" in \
        result.out
    ran = sorted((workdir / "ran").read_text().splitlines())
    assert ran == sorted([f"CIFAR10 CE --lr {lr} --seed {seed}" for lr, seed in
                          [(0.01, 0), (0.01, 1), (0.01, 2), (0.5, 0), (0.5, 1), (0.5, 2)]])
    again = cli()
    assert again.code == 0 and "nothing to run" in again.out
    states = {t["name"]: t["state"] for t in json.loads(cli("status", "--json").out)["tasks"]}
    assert len(states) == 9 and set(states.values()) == {"done"}
    # mlrunner's files were read, never written
    assert (output / NAMES[0] / "stat").read_text() == "train: failed\n"
    assert (output / NAMES[3] / "stat").read_text() == (
        FIXTURES / "examine_output" / NAMES[3] / "stat").read_text()


def test_a_damaged_mlrunner_file_is_one_unreadable_row(output, cli):
    (output / NAMES[4] / "stat").write_text("train: [unclosed\n")
    status = cli("status", "--json")
    assert status.code == 0
    states = {t["name"]: t["state"] for t in json.loads(status.out)["tasks"]}
    assert states[NAMES[4]] == "unreadable" and list(states.values()).count("done") == 5
