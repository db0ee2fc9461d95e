"""`run -y params.yaml -o output` end to end, in-process, with real child processes."""

from __future__ import annotations

import json
import os

import pytest

from support import read_json, statuses
from runner.spec.expand import DATETIME_FORMAT

SEED_EXAMPLE = """
template:
  base: echo {curl} --bracket {bracket} {_datetime} {_name} {_output}
  pack: echo {curl} --bracket {bracket}
  remap: echo [alias_remap]
  replace: echo [alias_replace]

resource: [0, 1]

default:
  alias_remap: remap1
  alias_replace: 1

alias:
  alias_replace: [alias_replaced1, alias_replaced2]
  alias_remap:
    remap1: {alias_remap_new_bracket1: 1, alias_remap_new_bracket2: 2}
---
curl: [1]
bracket: [1]
"""


@pytest.fixture
def clock(monkeypatch):
    """Controls `_datetime`: clock.set('2021-07-13.02_40_07') before an invocation."""

    class Clock:
        value = "2021-07-13.02_40_07"

        def set(self, value: str) -> None:
            self.value = value

    c = Clock()
    monkeypatch.setattr("runner.spec.expand.make_datetime", lambda: c.value)
    return c


def test_seed_readme_example(make_config, cli, workdir, clock):
    make_config(SEED_EXAMPLE)
    result = cli()
    assert result.code == 0, result
    task = workdir / "output" / "Curl_1-Bracket_1"
    params = read_json(task / "param.json")
    dt = "2021-07-13.02_40_07"
    assert params["_name"] == "Curl_1-Bracket_1"
    assert params["_output"] == "output/Curl_1-Bracket_1"
    assert params["_datetime"] == dt
    assert {k: params[k] for k in ("alias_remap", "alias_replace", "bracket", "curl")} == {
        "alias_remap": "remap1", "alias_replace": 1, "bracket": 1, "curl": 1}
    assert params["_commands"]["remap"] == (
        "CUDA_VISIBLE_DEVICES=0 CUDA_DEVICE_ORDER=PCI_BUS_ID echo --alias_remap_new_bracket1 1 "
        f"--alias_remap_new_bracket2 2 > output/Curl_1-Bracket_1/log.remap.{dt} 2>&1")
    assert (task / f"log.base.{dt}").read_text() == (
        f"1 --bracket 1 {dt} Curl_1-Bracket_1 output/Curl_1-Bracket_1\n")
    assert (task / f"log.replace.{dt}").read_text() == "--alias_replaced1 1 --alias_replaced2 1\n"
    stat = read_json(task / "stat.json")
    assert list(stat) == ["base", "pack", "remap", "replace"]
    for entry in stat.values():
        assert entry["code"] == 0 and entry["status"] == "done" and entry["exit_status"] == 0
        assert entry["gpus"] == "0" and entry["slot"] == 0 and entry["host"]
        assert entry["start"] <= entry["end"] and entry["duration"] >= 0 and entry["pid"] > 0
    # the files are what the seed documents: indent 4, sorted keys
    text = (task / "param.json").read_text()
    assert text == json.dumps(params, indent=4, sort_keys=True) + "\n"
    assert (workdir / "output" / "params.yaml").read_text() == (workdir / "params.yaml").read_text()
    assert "1 task from params.yaml" in result.out and "summary: 1 done" in result.out


def test_gpu_binding_is_in_the_childs_environment(make_config, cli, workdir):
    make_config("""
        template:
          probe: echo "$CUDA_VISIBLE_DEVICES $CUDA_DEVICE_ORDER" > {_output}/gpu && sleep 0.2
        resource: ["0,1", 2, ""]
        ---
        i: [1, 2, 3, 4, 5, 6]
    """)
    assert cli().code == 0
    seen = {}
    for i in range(1, 7):
        gpus, order = (workdir / f"output/I_{i}/gpu").read_text().split(" ") if (
            workdir / f"output/I_{i}/gpu").read_text().count(" ") == 1 else ("", "")
        stat = read_json(workdir / f"output/I_{i}/stat.json")["probe"]
        assert gpus == stat["gpus"]
        assert order.strip() == "PCI_BUS_ID"
        seen[stat["slot"]] = gpus
    assert seen == {0: "0,1", 1: "2", 2: ""}


def test_compound_command_is_fully_logged_with_the_gpu_set_for_every_part(make_config, cli,
                                                                        workdir):
    make_config("""
        template:
          both: echo first=$CUDA_VISIBLE_DEVICES && echo second=$CUDA_VISIBLE_DEVICES 1>&2; echo third=$CUDA_VISIBLE_DEVICES | cat
        resource: [3]
        ---
        x: [1]
    """)
    assert cli().code == 0
    log = next((workdir / "output/X_1").glob("log.both.*")).read_text()
    assert sorted(log.split()) == ["first=3", "second=3", "third=3"]
    line = read_json(workdir / "output/X_1/param.json")["_commands"]["both"]
    assert line.startswith("CUDA_VISIBLE_DEVICES=3 CUDA_DEVICE_ORDER=PCI_BUS_ID sh -c '")


def test_awkward_values_arrive_intact_and_stay_inside_the_output(make_config, cli, workdir):
    (workdir / "escape").mkdir()
    make_config("""
        template:
          write: printf '%s' {v} > {_output}/value
        resource: [0]
        ---
        v: ["a  b", "it's \\"q\\"", "{y}", "[y] x", "../../escape", "../x", "$(touch pwned)", "*"]
        y: [Z]
    """)
    result = cli()
    assert result.code == 0, result
    values = set()
    for task in (workdir / "output").iterdir():
        if task.is_dir() and not task.name.startswith("."):
            assert task.resolve().parent == (workdir / "output").resolve()
            values.add((task / "value").read_text())
    assert values == {"a  b", "it's \"q\"", "{y}", "[y] x", "../../escape", "../x",
                      "$(touch pwned)", "*"}
    assert not (workdir / "pwned").exists()
    assert list((workdir / "escape").iterdir()) == []


def test_commands_run_in_the_invocation_directory(make_config, cli, workdir):
    (workdir / "train.sh").write_text("echo trained $1 > \"$2/result\"\n")
    make_config("""
        template:
          train: sh train.sh {lr} {_output}
        ---
        lr: [0.1]
    """)
    assert cli().code == 0
    assert (workdir / "output/Lr_0.1/result").read_text() == "trained 0.1\n"


def test_failure_is_persisted_and_only_failed_commands_rerun(make_config, cli, workdir, clock):
    make_config("""
        template:
          prepare: echo prepared >> {_output}/count_prepare
          train: test -e {_output}/ok && echo trained >> {_output}/count_train
          test: echo tested >> {_output}/count_test
        resource: [0, 1]
        ---
        task: [a, b]
    """)
    (workdir / "output/Task_b").mkdir(parents=True)
    (workdir / "output/Task_b/ok").write_text("")
    first = cli()
    assert first.code == 1
    assert statuses(workdir / "output") == {
        "Task_a": {"prepare": "done", "train": "failed"},
        "Task_b": {"prepare": "done", "train": "done", "test": "done"}}
    stat = read_json(workdir / "output/Task_a/stat.json")["train"]
    assert stat["code"] == 1 and stat["exit_status"] == 1
    assert "failed:" in first.out and "Task_a train: (exit status 1)" in first.out
    # fix the cause and run again: only Task_a's train and test run
    (workdir / "output/Task_a/ok").write_text("")
    clock.set("2021-07-13.02_40_08")
    second = cli()
    assert second.code == 0, second
    assert "commands: 2 to run, 4 skipped" in second.out
    for name, expected in (("a", (1, 1, 1)), ("b", (1, 1, 1))):
        counts = tuple(len((workdir / f"output/Task_{name}/count_{c}").read_text().split("\n")) - 1
                       for c in ("prepare", "train", "test"))
        assert counts == expected, (name, counts)
    # the first attempt's log is still there
    assert len(list((workdir / "output/Task_a").glob("log.train.*"))) == 2


def test_summary_shows_the_end_of_a_failed_log(make_config, cli):
    make_config("""
        template:
          train: for i in 1 2 3 4 5 6 7; do echo line$i; done; exit 3
        ---
        x: [1]
    """)
    result = cli()
    assert result.code == 1
    summary = result.out[result.out.index("summary:"):]
    assert "X_1 train: (exit status 3)" in summary
    assert [l.strip() for l in summary.splitlines() if "| line" in l] == [
        "| line3", "| line4", "| line5", "| line6", "| line7"]


def test_force_reruns_done_commands(make_config, cli, workdir, clock):
    make_config("""
        template:
          t: echo x >> {_output}/count
        ---
        a: [1]
    """)
    assert cli().code == 0
    assert cli().code == 0
    assert (workdir / "output/A_1/count").read_text() == "x\n"
    clock.set("2021-07-13.02_40_09")
    assert cli("-f").code == 0
    assert (workdir / "output/A_1/count").read_text() == "x\nx\n"


def test_select_commands(make_config, cli, workdir, clock):
    make_config("""
        template:
          train: echo train >> {_output}/order
          test: echo test >> {_output}/order
          export: echo export >> {_output}/order
        ---
        a: [1]
    """)
    assert cli("-c", "export", "train").code == 0
    assert (workdir / "output/A_1/order").read_text() == "train\nexport\n"
    clock.set("2021-07-13.02_40_10")
    assert cli("-c", "test").code == 0
    params = read_json(workdir / "output/A_1/param.json")
    assert set(params["_commands"]) == {"train", "test", "export"}  # earlier entries are kept
    assert statuses(workdir / "output")["A_1"] == {"train": "done", "export": "done",
                                                    "test": "done"}


def test_titles_select_documents_and_name_the_config_copy(make_config, cli, workdir):
    make_config("""
        template:
          t: echo {f}
        ---
        _title: machine1
        f: [a, b]
        ---
        _title: machine2
        f: [c]
    """, name="configs/sweep.yaml")
    result = cli("-y", "configs/sweep.yaml", "-t", "machine2")
    assert result.code == 0
    assert sorted(p.name for p in (workdir / "output").iterdir()) == [
        ".runner", "F_c", "sweep.yaml.machine2"]


def test_resource_option_replaces_the_config(make_config, cli, workdir):
    make_config("""
        template:
          t: echo $CUDA_VISIBLE_DEVICES > {_output}/gpu
        resource: [0]
        ---
        a: [1]
    """)
    assert cli("-r", "4,5").code == 0
    assert (workdir / "output/A_1/gpu").read_text() == "4,5\n"


def test_no_resource_means_one_slot_without_gpu(make_config, cli, workdir):
    make_config("""
        template:
          t: echo "[$CUDA_VISIBLE_DEVICES]" > {_output}/gpu
        ---
        a: [1]
    """)
    result = cli()
    assert result.code == 0 and "slots: 1 (0: no GPU)" in result.out
    assert (workdir / "output/A_1/gpu").read_text() == "[]\n"


def test_dry_run_writes_nothing_and_says_why(make_config, cli, workdir):
    make_config("""
        template:
          train: echo {lr}
          test: exit 1
        ---
        lr: [1, 2]
    """)
    assert cli("-c", "train").code == 0
    assert cli().code == 1
    before = sorted(str(p) for p in workdir.rglob("*"))
    result = cli("--dry-run")
    assert result.code == 0
    assert sorted(str(p) for p in workdir.rglob("*")) == before
    assert "Lr_1: run" in result.out
    assert "  train: skip (done earlier): echo 1" in result.out
    assert "  test: run (failed earlier, exit status 1): exit 1" in result.out
    forced = cli("--dry-run", "-f")
    assert "  train: run (-f): echo 1" in forced.out


def test_dry_run_of_a_fresh_output_creates_nothing(make_config, cli, workdir):
    make_config("template:\n  t: echo {a}\n---\na: [1]\n")
    result = cli("--dry-run", "-o", "fresh")
    assert result.code == 0 and "A_1: run" in result.out and "(not run yet)" in result.out
    assert not (workdir / "fresh").exists()


def test_debug_runs_the_first_task_streaming_its_output(make_config, cli, workdir, clock):
    make_config("""
        template:
          t: echo hello {a}; exit {code}
        ---
        a: [1, 2]
        code: [0]
    """)
    assert cli().code == 0
    clock.set("2021-07-13.02_40_11")
    result = cli("-d")
    assert result.code == 0
    assert "hello 1" in result.out and "hello 2" not in result.out
    logs = sorted((workdir / "output/A_1-Code_0").glob("log.t.*"))
    assert len(logs) == 2 and logs[-1].read_text() == "hello 1\n"


def test_debug_exits_with_the_commands_status(make_config, cli):
    make_config("template:\n  t: exit 7\n---\na: [1]\n")
    assert cli("-d").code == 7


def test_debug_without_tasks(make_config, cli, workdir):
    make_config("template:\n  t: echo {a}\n---\na: []\n")
    result = cli("-d")
    assert result.code == 0 and "no task" in result.out
    assert not (workdir / "output").exists()


def test_no_param_dir(make_config, cli, workdir, clock):
    make_config("""
        template:
          parse: echo {file} > {_output}/{file}.out
        resource: [0, 1]
        ---
        file: [text.txt.0, text.txt.1, text.txt.2]
    """)
    assert cli("--no-param-dir").code == 0
    out = workdir / "output"
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == sorted([
        "params.yaml", "text.txt.0.out", "text.txt.1.out", "text.txt.2.out",
        *(f"log.parse.2021-07-13.02_40_07.File_text.txt.{i}" for i in range(3))])
    assert (out / "text.txt.1.out").read_text() == "text.txt.1\n"
    # state is still per task: the next run skips all three, and a failure is remembered per task
    clock.set("2021-07-13.02_40_12")
    again = cli("--no-param-dir")
    assert again.code == 0 and "commands: 0 to run, 3 skipped" in again.out
    status = cli("status", "-o", "output", "--json")
    tasks = json.loads(status.out)["tasks"]
    assert [(t["name"], t["state"]) for t in tasks] == [
        (f"File_text.txt.{i}", "done") for i in range(3)]


def test_rerun_of_done_work_is_skipped_without_touching_it(make_config, cli, workdir):
    make_config("template:\n  t: echo {a}\nresource: [0]\n---\na: [1, 2, 3]\n")
    assert cli().code == 0
    stamps = {p: p.stat().st_mtime_ns for p in (workdir / "output").rglob("*.json")}
    result = cli()
    assert result.code == 0 and "nothing to run" in result.out
    assert {p: p.stat().st_mtime_ns for p in (workdir / "output").rglob("*.json")} == stamps


def test_datetime_has_no_colons():
    import time

    assert ":" not in time.strftime(DATETIME_FORMAT)


def test_stale_running_entry_is_run_again(make_config, cli, workdir):
    make_config("template:\n  t: echo ran >> {_output}/count\n---\na: [1]\n")
    task = workdir / "output/A_1"
    task.mkdir(parents=True)
    (task / "stat.json").write_text(json.dumps({"t": {
        "code": 1, "status": "running", "host": os.uname().nodename, "pid": 2 ** 22 - 1,
        "runner_pid": 2 ** 22 - 1}}))
    assert cli().code == 0
    assert (task / "count").read_text() == "ran\n"
    assert read_json(task / "stat.json")["t"]["status"] == "done"


def test_seed_format_stat_files_are_understood(make_config, cli, workdir):
    make_config("template:\n  a: echo a >> {_output}/count\n  b: echo b >> {_output}/count\n"
                "---\nx: [1]\n")
    (workdir / "output/X_1").mkdir(parents=True)
    (workdir / "output/X_1/stat.json").write_text('{"a": {"code": 0}, "b": {"code": 1}}')
    assert cli().code == 0
    assert (workdir / "output/X_1/count").read_text() == "b\n"


def test_duplicates_and_orphans_in_the_header(make_config, cli):
    make_config("template:\n  t: echo {a}\n---\na: [1, 1]\nnote: [x]\n")
    result = cli()
    assert "(1 duplicates dropped)" in result.out
    assert "orphans (in no selected template): note" in result.out


def test_exec_task_runs_one_task_of_a_table(make_config, workdir, monkeypatch, cli):
    from runner.store.sweep import SweepStore
    from runner.task import Task

    store = SweepStore("output")
    task = Task("A_1", {"a": 1, "_name": "A_1", "_output": "output/A_1", "_datetime": "DT"},
                {"t": "echo gpu=$CUDA_VISIBLE_DEVICES"})
    path = store.write_run_table("sub", [task], {"datetime": "DT"})
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    result = cli("exec-task", path, "0", "--record", "job_id=77", "--slot", "2")
    assert result.code == 0, result
    assert (workdir / "output/A_1/log.t.DT").read_text() == "gpu=3\n"
    entry = read_json(workdir / "output/A_1/stat.json")["t"]
    assert entry["gpus"] == "3" and entry["job_id"] == "77" and entry["status"] == "done"
    assert entry["slot"] == 2
    assert cli("exec-task", path, "5").code == 2
    missing = cli("exec-task", "nowhere.json", "0")
    assert missing.code == 2 and "nowhere.json: no such task table" in missing.err
    assert cli("exec-task", path, "0", "--record", "novalue").code == 2


def test_commands_start_with_default_signals_and_only_three_descriptors(make_config, cli,
                                                                        workdir):
    make_config("""
        template:
          t: yes | head -n 1 > /dev/null; ls /proc/self/fd > {_output}/fds
        ---
        a: [1]
    """)
    assert cli().code == 0
    log = next((workdir / "output/A_1").glob("log.t.*")).read_text()
    assert "Broken pipe" not in log  # SIGPIPE is not ignored, as it is in the runner
    assert sorted((workdir / "output/A_1/fds").read_text().split()) == ["0", "1", "2", "3"]
