"""A run's outcome as one table: `run results` and `runner.results.read_results`."""

from __future__ import annotations

import csv
import io
import json

import pytest

from runner.results import read_results

SWEEP = """
template:
  train: |-
    printf '{"loss": %s, "val": {"acc": %s}, "lr": "metric"}' {loss} {acc} > {_output}/metrics.json; exit {code}
resource: [0]
---
lr: [0.1, 0.01]
loss: [0.5]
acc: [0.9]
code: [0]
---
lr: [1.0]
loss: [9.5]
acc: [0.1]
code: [3]
"""


@pytest.fixture
def finished(make_config, cli):
    make_config(SWEEP)
    assert cli().code == 1  # the third task fails on purpose
    return cli


def test_table_has_params_state_runtime_and_metrics(finished):
    result = finished("results", "--sort", "lr")
    assert result.code == 0, result
    header, *rows, last = result.out.splitlines()
    assert header.split() == ["acc", "code", "loss", "lr", "_name", "_state", "_runtime", "loss_",
                              "val.acc", "lr_"]
    assert last == "3 tasks"
    assert [r.split()[3] for r in rows] == ["0.01", "0.1", "1.0"]
    assert "failed" in rows[2] and rows[0].split()[5] == "done"


def test_csv_and_json_carry_every_column(finished, workdir):
    csv_text = finished("results", "--csv", "-").out
    records = list(csv.DictReader(io.StringIO(csv_text)))
    assert len(records) == 3
    by_name = {r["_name"]: r for r in records}
    failed = by_name["Lr_1.0-Loss_9.5-Acc_0.1-Code_3"]
    assert failed["_state"] == "failed" and failed["_train_exit_status"] == "3"
    assert failed["loss_"] == "9.5" and failed["val.acc"] == "0.1" and failed["lr_"] == "metric"
    assert finished("results", "--json", "out.json").code == 0
    data = json.loads((workdir / "out.json").read_text())
    assert {d["_name"] for d in data} == set(by_name)
    assert all(d["_gpus"] == "0" and d["_runtime"] >= 0 for d in data)


def test_dataframe_for_the_python_api(finished, workdir):
    frame = read_results("output")
    assert list(frame.columns[:4]) == ["acc", "code", "loss", "lr"]
    assert frame["lr"].dtype.kind == "f" and frame["loss_"].dtype.kind == "f"
    assert sorted(frame["_state"]) == ["done", "done", "failed"]
    assert frame.loc[frame["lr"] == 1.0, "_train_exit_status"].item() == 3


def test_bad_column_and_missing_directory(finished):
    result = finished("results", "--sort", "los")
    assert result.code == 2 and "no such column" in result.err and "loss_" in result.err
    assert finished("results", "-o", "nowhere").code == 2
