"""Messy and hostile state (trust.md): links and hard links in the output, processes that are
not ours, damaged state files, full and read-only disks, closed pipes. Real files, real
processes, real signals."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support import processes_in_group, read_json, statuses

THREE = """
template:
  t: echo {i} >> ran
---
i: [1, 2, 3]
"""


def tree(root: Path) -> dict:
    """Every file under `root` -> its bytes (links as their target), to compare before/after."""
    found = {}
    for path in sorted(root.rglob("*")):
        if path.is_symlink():
            found[str(path.relative_to(root))] = ("link", os.readlink(path))
        elif path.is_file():
            found[str(path.relative_to(root))] = path.read_bytes()
    return found


# -- 1. nothing is written through a link --------------------------------------------------------

@pytest.mark.parametrize("planted", [".stat.json.next", ".param.json.next", "stat.json",
                                     "param.json"])
def test_a_link_where_a_state_file_goes_is_never_followed(make_config, cli, workdir, planted):
    make_config(THREE)
    assert cli().code == 0
    victim = workdir / "victim.txt"
    victim.write_text("precious\n")
    target = workdir / "output" / "I_2" / planted
    if target.exists():
        target.unlink()
    target.symlink_to(victim)
    result = cli("-f")
    assert result.code == 1, result
    assert f"output/I_2/{planted}: is a symbolic link; refusing to write through it" in result.out
    assert victim.read_text() == "precious\n"
    assert target.is_symlink()
    # the other tasks ran again (-f); the refused one did not
    assert sorted((workdir / "ran").read_text().split()) == ["1", "1", "2", "3", "3"]
    assert "I_2:" in result.out.split("failed:")[1]


def test_a_linked_task_directory_is_refused_and_the_others_go_on(make_config, cli, workdir):
    make_config(THREE)
    elsewhere = workdir / "elsewhere"
    elsewhere.mkdir()
    (workdir / "output").mkdir()
    (workdir / "output" / "I_1").symlink_to(elsewhere)
    (workdir / "output" / "I_3").write_text("a file where a task directory goes\n")
    result = cli()
    assert result.code == 1, result
    assert "output/I_1: is a symbolic link" in result.out
    assert "output/I_3: is not a directory" in result.out
    assert list(elsewhere.iterdir()) == []
    assert (workdir / "ran").read_text() == "2\n"
    assert (workdir / "output/I_3").read_text() == "a file where a task directory goes\n"


def test_output_directory_itself_may_be_a_link(make_config, cli, workdir):
    make_config(THREE)
    (workdir / "scratch").mkdir()
    (workdir / "output").symlink_to(workdir / "scratch")
    assert cli().code == 0
    assert statuses(workdir / "scratch") == {f"I_{i}": {"t": "done"} for i in (1, 2, 3)}


def test_a_link_planted_at_a_launch_job_spare_is_never_followed(cli, workdir):
    (workdir / "runfile").write_text("echo a\necho b\n")
    assert cli("launch", "runfile").code == 0
    victim = workdir / "victim.txt"
    victim.write_text("precious\n")
    job = next(p for p in (workdir / "runs/runfile/logs").iterdir()
               if "echo a" in (p / "job.json").read_text())
    (job / ".job.json.next").unlink(missing_ok=True)
    (job / ".job.json.next").symlink_to(victim)
    result = cli("launch", "runfile", "--mode", "overwrite")
    assert result.code == 1, result
    assert "job.json.next: is a symbolic link; refusing to write through it" in result.out
    assert victim.read_text() == "precious\n"


def test_a_hard_linked_backup_stays_as_it_was_after_a_forced_rerun(make_config, cli, workdir):
    make_config(THREE.replace("echo {i} >> ran", "echo {i}"))
    assert cli().code == 0
    assert cli("-f").code == 0  # every spare file exists now
    subprocess.run(["cp", "-al", "output", "backup"], cwd=workdir, check=True)
    before = tree(workdir / "backup")
    assert any(os.stat(workdir / "backup" / name).st_nlink > 1 for name in before)
    time.sleep(1.1)  # a new datetime, so new logs too
    assert cli("-f").code == 0
    assert cli("-f").code == 0
    assert tree(workdir / "backup") == before
    assert statuses(workdir / "output") == {f"I_{i}": {"t": "done"} for i in (1, 2, 3)}


# -- 2. only our own processes are signalled -----------------------------------------------------

@pytest.mark.parametrize("start", [None, "wrong"])
def test_a_running_entry_naming_a_strangers_group_never_stops_it(make_config, cli, workdir,
                                                                   start):
    stranger = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        make_config("template:\n  t: echo ran\n---\ni: [1]\n")
        task = workdir / "output" / "I_1"
        task.mkdir(parents=True)
        from runner.identity import HOST, start_time

        entry = {"code": 1, "status": "running", "host": HOST, "pid": stranger.pid,
                 "runner_pid": 1, "runner_start": 1}
        if start == "wrong":
            entry["pid_start"] = start_time(stranger.pid) + 1
        (task / "stat.json").write_text(json.dumps({"t": entry}))
        result = cli()
        assert result.code == 0, result
        assert stranger.poll() is None and processes_in_group(stranger.pid)
        assert read_json(task / "stat.json")["t"]["status"] == "done"
        if start is None:
            assert f"not stopping process {stranger.pid}" in result.out
    finally:
        stranger.kill()
        stranger.wait()


def test_a_pid_of_ours_with_the_recorded_start_but_no_marker_is_left_alone(make_config, cli,
                                                                          workdir):
    """The same pid and start time, but the process is not one the runner started (its
    environment lacks the invocation's marker): it is not signalled."""
    stranger = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        from runner.identity import HOST, is_ours, start_time

        entry = {"code": 1, "status": "running", "host": HOST, "pid": stranger.pid,
                 "pid_start": start_time(stranger.pid), "runner_pid": 1, "runner_start": 1}
        assert not is_ours(entry)
        make_config("template:\n  t: echo ran\n---\ni: [1]\n")
        (workdir / "output" / "I_1").mkdir(parents=True)
        (workdir / "output" / "I_1" / "stat.json").write_text(json.dumps({"t": entry}))
        assert cli().code == 0
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()


# -- 6. damaged state is handled ---------------------------------------------------------------

DAMAGE = {
    "truncated": '{"t": {"code": 0, "status": "do',
    "not json": "garbage",
    "a list": "[1, 2]",
    "a string": '"done"',
    "unknown status": '{"t": {"code": 0, "status": "finished"}}',
    "entry not an object": '{"t": 5}',
    "deep": "[" * 100000 + "]" * 100000,
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_stat_file_reruns_its_task_with_one_warning(make_config, cli, workdir,
                                                              damage):
    make_config(THREE)
    assert cli().code == 0
    (workdir / "output/I_2/stat.json").write_text(DAMAGE[damage])
    status = cli("status", "--json")
    assert status.code == 0, status
    states = {t["name"]: t for t in json.loads(status.out)["tasks"]}
    assert states["I_2"]["state"] == "unreadable" and "stat.json" in states["I_2"]["note"]
    results = cli("results", "--json", "-")
    assert results.code == 0 and len(json.loads(results.out)) == 3
    result = cli()
    assert result.code == 0, result
    assert "warning: output/I_2/stat.json:" in result.out and "I_2 runs again" in result.out
    assert "Traceback" not in result.out + result.err
    assert sorted((workdir / "ran").read_text().split()) == ["1", "2", "2", "3"]
    assert read_json(workdir / "output/I_2/stat.json")["t"]["status"] == "done"


@pytest.mark.parametrize("content", ['["x"]', '{"_name": 5}', '{"a": ', '{"_commands": 3}'])
def test_a_damaged_param_file_is_shown_and_replaced(make_config, cli, workdir, content):
    make_config(THREE)
    assert cli().code == 0
    (workdir / "output/I_1/param.json").write_text(content)
    status = json.loads(cli("status", "--json").out)
    assert {t["name"]: t["state"] for t in status["tasks"]}["I_1"] == "unreadable"
    assert cli("-f").code == 0
    assert read_json(workdir / "output/I_1/param.json")["_name"] == "I_1"


@pytest.mark.parametrize("content", ['{"status": "done"', '[]', '{"status": "weird"}'])
def test_a_damaged_job_file_reruns_its_job(cli, workdir, content):
    (workdir / "runfile").write_text("echo a >> ran\necho b >> ran\n")
    assert cli("launch", "runfile").code == 0
    job = next(p for p in (workdir / "runs/runfile/logs").iterdir()
               if "echo a" in (p / "job.json").read_text())
    (job / "job.json").write_text(content)
    (workdir / "runs/runfile/metadata.json").unlink()  # only job.json is left to say
    status = cli("status", "-o", "runs/runfile", "--json")
    assert {t["name"]: t["state"] for t in json.loads(status.out)["tasks"]}[job.name] == \
        "unreadable"
    result = cli("launch", "runfile")
    assert result.code == 0, result
    assert "job.json" in result.out and "runs again" in result.out
    assert sorted((workdir / "ran").read_text().split()) == ["a", "a", "b"]


def test_a_damaged_task_table_does_not_stop_status(make_config, cli, workdir):
    make_config(THREE)
    assert cli().code == 0
    runs = workdir / "output/.runner/runs"
    (runs / "broken.json").write_text('{"tasks": [{"name": "X"}]}')
    (runs / "garbage.json").write_text("{")
    result = cli("status")
    assert result.code == 0 and "3 tasks: 3 done" in result.out


def test_results_keep_every_row_when_metrics_are_bad(make_config, cli, workdir):
    (workdir / "metrics.py").write_text(
        "import json, sys\n"
        "json.dump({'loss': float(sys.argv[1])}, open(sys.argv[2] + '/metrics.json', 'w'))\n")
    make_config("""
        template:
          t: python3 metrics.py {loss} {_output}
        ---
        loss: ['0.5', nan, inf]
    """)
    assert cli().code == 0
    out = workdir / "output"
    names = sorted(p.name for p in out.iterdir() if p.is_dir() and not p.name.startswith("."))
    (out / names[0] / "metrics.json").write_text('{"loss": 0.')  # being written
    (out / names[1] / "metrics.json").write_text('"just a string"')
    result = cli("results", "--json", "-")
    assert result.code == 0, result
    rows = json.loads(result.out)  # strict JSON: NaN and Infinity are null
    assert len(rows) == 3
    assert result.err.count("run: warning:") == 2 and "has no metrics" in result.err
    assert "NaN" not in result.out and "Infinity" not in result.out
    deep = {"a": {}}
    node = deep["a"]
    for _ in range(500):
        node["a"] = {}
        node = node["a"]
    (out / names[2] / "metrics.json").write_text(json.dumps(deep))
    result = cli("results")
    assert result.code == 0 and "nested deeper" in result.err


@pytest.mark.parametrize("option", ["--csv", "--json"])
def test_results_into_a_missing_folder_or_a_directory_is_one_line(make_config, cli, workdir,
                                                                  option):
    make_config(THREE)
    assert cli().code == 0
    for destination, what in (("nowhere/r.out", "no folder nowhere"),
                              ("output", "is a directory")):
        result = cli("results", option, destination)
        assert result.code == 2 and what in result.err and len(result.err.splitlines()) == 1


# -- 7. faults during a run --------------------------------------------------------------------

@pytest.fixture
def small_disk(tmp_path):
    """A 4 MiB tmpfs mounted for the test (root only; CI runs as root)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs the tests as root)")
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_stops_the_run_in_one_line_and_keeps_finished_work(make_config, workdir,
                                                                       small_disk):
    make_config(f"""
        template:
          t: if [ {{i}} -eq 3 ]; then head -c 8M /dev/zero > {small_disk}/fill; fi; sleep 0.2
        resource: [0]
        ---
        i: [1, 2, 3, 4, 5, 6]
    """)
    proc = subprocess.run([sys.executable, "-m", "runner", "-o", str(small_disk / "out")],
                          cwd=workdir, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("run: error:")]
    assert len(errors) == 1 and "No space left on device" in errors[0], proc.stderr
    assert "summary:" in proc.stdout
    states = statuses(small_disk / "out")
    assert states["I_1"] == {"t": "done"} and states["I_2"] == {"t": "done"}
    for stat in (small_disk / "out").glob("*/stat.json"):
        json.loads(stat.read_text())  # whole, never half-written
    (small_disk / "fill").unlink()
    again = subprocess.run([sys.executable, "-m", "runner", "-o", str(small_disk / "out")],
                           cwd=workdir, capture_output=True, text=True, timeout=60)
    assert again.returncode == 1  # task 3 fills the disk again, but 1 and 2 are not redone
    assert "commands: 4 to run, 2 skipped" in again.stdout


def test_a_directory_that_refuses_writes_mid_run_is_one_line(make_config, workdir):
    """`chattr +i` makes the output directory refuse new entries, even to root."""
    if os.geteuid() != 0 or shutil.which("chattr") is None:
        pytest.skip("chattr +i needs root and e2fsprogs (CI runs the tests as root)")
    out = workdir / "out"
    out.mkdir()
    if subprocess.run(["chattr", "+i", str(out)], capture_output=True).returncode:
        pytest.skip("this file system does not support immutable directories")
    subprocess.run(["chattr", "-i", str(out)], check=True)
    make_config("""
        template:
          t: if [ {i} -eq 2 ]; then chattr +i out; fi
        resource: [0]
        ---
        i: [1, 2, 3]
    """)
    try:
        proc = subprocess.run([sys.executable, "-m", "runner", "-o", "out"], cwd=workdir,
                              capture_output=True, text=True, timeout=60)
    finally:
        subprocess.run(["chattr", "-i", str(out)], check=True)
    assert proc.returncode == 1, proc
    assert proc.stderr.splitlines() == [
        "run: error: out/I_3: cannot write it (Operation not permitted)"], proc.stderr
    assert "summary: 2 done, 0 failed" in proc.stdout and "1 not started" in proc.stdout
    assert statuses(out) == {"I_1": {"t": "done"}, "I_2": {"t": "done"}}


def test_a_closed_pipe_does_not_stop_the_sweep(make_config, workdir):
    make_config("template:\n  t: echo {i} >> ran\n---\ni: " + str(list(range(40))) + "\n")
    proc = subprocess.Popen([sys.executable, "-m", "runner", "-v"], cwd=workdir,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.readline()
    proc.stdout.close()  # `run | head -1`
    assert proc.wait(timeout=60) == 0
    assert b"Traceback" not in proc.stderr.read()
    proc.stderr.close()
    assert len((workdir / "ran").read_text().split()) == 40


def test_debug_ends_when_the_command_ends_though_a_child_holds_the_terminal(make_config,
                                                                          workdir):
    make_config("template:\n  t: sleep 30 & printf no-newline\n---\ni: [1]\n")
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "runner", "-d"], cwd=workdir,
                          capture_output=True, text=True, timeout=20)
    assert time.monotonic() - started < 10
    assert proc.returncode == 0, proc
    assert "no-newline\n" in proc.stdout  # the runner's next line starts on a line of its own


def test_grace_must_be_a_finite_number_of_seconds(make_config, cli):
    make_config(THREE)
    for value in ("-1", "nan", "inf", "soon"):
        result = cli("--grace", value)
        assert result.code == 2 and "--grace" in result.err


def test_timeout_lines_say_the_timeout_and_the_grace_that_followed(make_config, cli):
    make_config("""
        template:
          t: trap '' TERM; sleep 30
        timeout: 1
        ---
        i: [1]
    """)
    result = cli("--grace", "1")
    assert result.code == 1
    assert "(timed out after 1 s; killed 1.0 s later)" in result.out


def test_status_json_is_strict_json_for_nan_and_infinite_params(make_config, cli):
    make_config("template:\n  t: echo {x}\n---\nx: [.nan, .inf, 1]\n")
    assert cli().code == 0
    result = cli("status", "--json")
    assert result.code == 0 and "NaN" not in result.out and "Infinity" not in result.out
    values = sorted(str(t["params"]["x"]) for t in json.loads(result.out)["tasks"])
    assert values == ["1", "None", "None"]
