"""Real processes, real signals: Ctrl-C, SIGTERM, kill -9 and two runs on one output directory."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from support import processes_in_group, read_json, run_process, statuses, wait_for

# Task 1 ends at once; the others wait for the file `release` (or 60 s).
SLOW = """
template:
  work: echo {i} >> started; [ {i} -eq 1 ] || [ -e release ] || sleep 60; echo {i} >> finished
resource: [0, 1]
---
i: [1, 2, 3, 4]
"""


def lines(path) -> list:
    return sorted(path.read_text().split()) if path.exists() else []


def running_pids(output, names) -> dict:
    """{task: pid} once every named task's command is recorded as running, else {}."""
    found = {}
    for name in names:
        entry = (read_json(output / name / "stat.json") or {}).get("work", {})
        if entry.get("status") != "running":
            return {}
        found[name] = entry["pid"]
    return found


def start_slow_run(make_config, workdir, *extra):
    make_config(SLOW)
    proc = run_process(["-o", "output", *extra], workdir)
    pids = wait_for(lambda: running_pids(workdir / "output", ["I_2", "I_3"]),
                    what="tasks 2 and 3 to run")
    return proc, pids


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_stop_signal_stops_every_group_and_the_run_resumes(make_config, workdir, sig):
    proc, pids = start_slow_run(make_config, workdir)
    status = json.loads(subprocess.run([sys.executable, "-m", "runner", "status", "--json"],
                                       cwd=workdir, capture_output=True, text=True,
                                       check=True).stdout)
    states = {t["name"]: t["state"] for t in status["tasks"]}
    assert states == {"I_1": "done", "I_2": "running", "I_3": "running", "I_4": "pending"}

    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, (out, err)
    assert "summary: 1 done" in out and "2 interrupted" in out and "1 not started" in out
    for pid in pids.values():
        assert processes_in_group(pid) == []
    assert statuses(workdir / "output") == {"I_1": {"work": "done"}, "I_2": {"work": "interrupted"},
                                            "I_3": {"work": "interrupted"}}
    assert lines(workdir / "finished") == ["1"]

    (workdir / "release").write_text("")
    again = subprocess.run([sys.executable, "-m", "runner"], cwd=workdir, capture_output=True,
                           text=True, timeout=60)
    assert again.returncode == 0, again
    assert "commands: 3 to run, 1 skipped" in again.stdout
    assert lines(workdir / "started") == ["1", "2", "2", "3", "3", "4"]
    assert lines(workdir / "finished") == ["1", "2", "3", "4"]


def test_a_stop_that_reaches_the_command_first_is_still_an_interruption(make_config, workdir):
    """`scancel` or a container stop signals every process, the command often before the
    runner: the command's death by SIGTERM is an interruption, not a failure."""
    proc, pids = start_slow_run(make_config, workdir)
    for pid in pids.values():
        os.killpg(pid, signal.SIGTERM)
    wait_for(lambda: all(processes_in_group(pid) == [] for pid in pids.values()),
             what="the commands to die")
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, (out, err)
    assert statuses(workdir / "output") == {"I_1": {"work": "done"}, "I_2": {"work": "interrupted"},
                                            "I_3": {"work": "interrupted"}}


def test_exec_task_under_scancel_records_an_interruption(workdir):
    """What a SLURM array element sees on `scancel`: SIGTERM to the command, then to itself."""
    from runner.store.sweep import SweepStore
    from runner.task import Task

    task = Task("A_1", {"a": 1, "_name": "A_1", "_output": "output/A_1", "_datetime": "DT"},
                {"t": "sleep 60"})
    table = SweepStore(str(workdir / "output")).write_run_table("sub", [task], {"datetime": "DT"})
    proc = run_process(["exec-task", table, "0"], workdir)
    stat = workdir / "output/A_1/stat.json"
    pid = wait_for(lambda: (read_json(stat) or {}).get("t", {}).get("pid"),
                   what="the command to start")
    os.killpg(pid, signal.SIGTERM)
    wait_for(lambda: processes_in_group(pid) == [], what="the command to die")
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, (out, err)
    assert read_json(stat)["t"]["status"] == "interrupted"


def test_a_command_killed_alone_has_failed(make_config, workdir):
    proc, pids = start_slow_run(make_config, workdir)
    os.killpg(pids["I_2"], signal.SIGTERM)
    entry = wait_for(lambda: (read_json(workdir / "output/I_2/stat.json") or {}).get("work", {})
                     .get("status") == "failed" and read_json(workdir / "output/I_2/stat.json"),
                     what="task 2 to fail")["work"]
    assert entry["signal"] == signal.SIGTERM or entry["exit_status"] == 128 + signal.SIGTERM
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, (out, err)
    assert statuses(workdir / "output")["I_2"] == {"work": "failed"}
    assert statuses(workdir / "output")["I_3"] == {"work": "interrupted"}


def start_stubborn_run(make_config, workdir, grace: str):
    """A run whose one command ignores SIGTERM; (the runner's process, the command's pid)."""
    make_config("""
        template:
          stubborn: trap '' TERM; echo up > {_output}/up; sleep 60
        resource: [0]
        ---
        i: [1]
    """)
    proc = run_process(["--grace", grace], workdir)
    wait_for(lambda: (workdir / "output/I_1/up").exists(), what="the command to start")
    pid = wait_for(lambda: (read_json(workdir / "output/I_1/stat.json") or {}).get(
        "stubborn", {}).get("pid"), what="stat.json to record the command")
    return proc, pid


def test_commands_that_ignore_term_are_killed_after_the_grace_period(make_config, workdir):
    proc, pid = start_stubborn_run(make_config, workdir, grace="0.5")
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert processes_in_group(pid) == []


def test_second_ctrl_c_kills_at_once(make_config, workdir):
    proc, pid = start_stubborn_run(make_config, workdir, grace="600")
    proc.send_signal(signal.SIGINT)
    for line in proc.stdout:  # the runner says it is stopping once it handled the first Ctrl-C
        if "stopping:" in line:
            break
    with pytest.raises(subprocess.TimeoutExpired):
        proc.wait(timeout=1)  # TERM is ignored: the first Ctrl-C alone does not end it
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=20)  # well before the 600 s grace period
    assert proc.returncode == 130
    assert processes_in_group(pid) == []
    assert read_json(workdir / "output/I_1/stat.json")["stubborn"]["status"] == "interrupted"


def test_kill_9_of_the_runner_then_a_clean_resume(make_config, workdir):
    proc, pids = start_slow_run(make_config, workdir)
    proc.kill()
    proc.wait(timeout=10)
    proc.stdout.close()
    proc.stderr.close()
    # the runner is gone; its commands are not, and status says the work was interrupted
    assert all(processes_in_group(pid) for pid in pids.values())
    status = json.loads(subprocess.run([sys.executable, "-m", "runner", "status", "--json"],
                                       cwd=workdir, capture_output=True, text=True,
                                       check=True).stdout)
    assert {t["name"]: t["state"] for t in status["tasks"]} == {
        "I_1": "done", "I_2": "interrupted", "I_3": "interrupted", "I_4": "pending"}
    # every stat.json is whole, and finished work is recorded as done
    for stat in (workdir / "output").glob("*/stat.json"):
        json.loads(stat.read_text())
    (workdir / "release").write_text("")
    again = subprocess.run([sys.executable, "-m", "runner", "--grace", "2"], cwd=workdir,
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 0, again
    assert "stopping process group" in again.stdout
    for pid in pids.values():
        assert processes_in_group(pid) == []
    assert lines(workdir / "finished") == ["1", "2", "3", "4"]
    assert lines(workdir / "started").count("1") == 1
    assert statuses(workdir / "output") == {f"I_{i}": {"work": "done"} for i in range(1, 5)}


def test_two_runs_on_one_output_run_each_task_once(make_config, workdir):
    make_config("""
        template:
          work: echo {i} >> started; sleep 0.3; echo {i} >> finished
        resource: [0, 1]
        ---
        i: [1, 2, 3, 4, 5, 6, 7, 8]
    """)
    first = run_process([], workdir)
    second = run_process([], workdir)
    out1, err1 = first.communicate(timeout=60)
    out2, err2 = second.communicate(timeout=60)
    assert (first.returncode, second.returncode) == (0, 0), (out1, err1, out2, err2)
    expected = [str(i) for i in range(1, 9)]
    assert lines(workdir / "started") == sorted(expected)
    assert lines(workdir / "finished") == sorted(expected)
    assert statuses(workdir / "output") == {f"I_{i}": {"work": "done"} for i in range(1, 9)}


def test_installed_console_script_runs(make_config, workdir):
    make_config("template:\n  t: echo hi {a}\n---\na: [1]\n")
    script = os.path.join(os.path.dirname(sys.executable), "run")
    result = subprocess.run([script], cwd=workdir, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result
    assert (workdir / "output/A_1").is_dir()
    help_text = subprocess.run([script, "--help"], capture_output=True, text=True).stdout
    assert "run status" in help_text and "-y FILE" in help_text


def test_help_does_not_import_heavy_modules():
    code = textwrap.dedent("""
        import sys
        from runner.cli import main
        try:
            main(["--help"])
        except SystemExit:
            pass
        heavy = [m for m in ("yaml", "pandas", "pynvml", "json", "runner.execution.executor")
                 if m in sys.modules]
        print("HEAVY:" + " ".join(heavy), file=sys.stderr)
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "usage: run" in result.stdout
    assert result.stderr.strip() == "HEAVY:", result.stderr
