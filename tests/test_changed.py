"""A changed command or changed params are never silently skipped (trust.md section 5)."""

from __future__ import annotations

import json

from support import read_json

SWEEP = """
template:
  train: echo {lr} {epochs} >> ran
  test: echo tested {lr} >> tested
default:
  epochs: 10
---
lr: [1, 2]
"""


def state_of(cli) -> dict:
    result = cli("status", "--json")
    return {t["name"]: (t["state"], t.get("changed")) for t in json.loads(result.out)["tasks"]}


def test_a_changed_default_is_named_and_rerun_only_on_request(make_config, cli, workdir):
    make_config(SWEEP)
    assert cli().code == 0
    make_config(SWEEP.replace("epochs: 10", "epochs: 100"))
    result = cli()
    assert result.code == 0
    assert "commands: 0 to run, 4 skipped" in result.out
    assert "note: 4 done commands changed since they ran" in result.out
    assert "--rerun-changed runs them again" in result.out
    dry = cli("--dry-run")
    assert "train: skip (done, but changed: params epochs and command): echo 1 100" in dry.out
    assert "test: skip (done, but changed: params epochs): echo tested 1" in dry.out
    assert state_of(cli) == {"Lr_1": ("done", {"train": ["params", "command"],
                                               "test": ["params"]}),
                             "Lr_2": ("done", {"train": ["params", "command"],
                                               "test": ["params"]})}
    assert "done (changed)" in cli("status").out
    assert (workdir / "ran").read_text() == "1 10\n2 10\n"
    again = cli("--rerun-changed")
    assert again.code == 0 and "commands: 4 to run, 0 skipped" in again.out
    assert (workdir / "ran").read_text() == "1 10\n2 10\n1 100\n2 100\n"
    assert state_of(cli) == {"Lr_1": ("done", None), "Lr_2": ("done", None)}
    quiet = cli()
    assert "changed" not in quiet.out and "nothing to run" in quiet.out


def test_a_changed_template_is_named_but_the_datetime_is_no_change(make_config, cli, workdir,
                                                                   monkeypatch):
    clock = iter(["2026-01-01.00_00_01", "2026-01-01.00_00_02", "2026-01-01.00_00_03",
                  "2026-01-01.00_00_04"])
    monkeypatch.setattr("runner.spec.expand.make_datetime", lambda: next(clock))
    body = "template:\n  t: echo {i} {_datetime} {_time} >> ran\n---\ni: [1, 2]\n"
    make_config(body)
    assert cli().code == 0
    result = cli()  # another datetime, the same command otherwise
    assert "changed" not in result.out and "nothing to run" in result.out
    make_config(body.replace("echo {i}", "echo i={i}"))
    result = cli("--dry-run")
    assert "t: skip (done, but changed: command)" in result.out
    result = cli("--rerun-changed", "-c", "t")
    assert result.code == 0 and "commands: 2 to run" in result.out
    assert read_json(workdir / "output/I_1/stat.json")["t"]["command"].startswith("echo i=1 ")


def test_entries_written_before_commands_were_recorded_are_trusted(make_config, cli, workdir):
    make_config(SWEEP)
    assert cli().code == 0
    for name in ("Lr_1", "Lr_2"):
        path = workdir / "output" / name / "stat.json"
        stat = read_json(path)
        for entry in stat.values():
            del entry["command"], entry["params"]
        path.write_text(json.dumps(stat))
    make_config(SWEEP.replace("epochs: 10", "epochs: 100"))
    result = cli()
    assert "changed" not in result.out and "nothing to run" in result.out
