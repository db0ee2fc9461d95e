"""`run launch` as a real process: Ctrl-C, kill -9 mid-run, and two launches on one runfile."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from support import processes_in_group, read_json, run_process, wait_for
from runner.spec.runfile import job_id

QUICK = "echo quick >> finished"
# waits for the file `release` (or 60 s)
SLOW = "echo {i} >> started; [ -e release ] || sleep 60; echo {i} >> finished"


def metadata(workdir: Path) -> dict:
    return read_json(workdir / "runs/runfile/metadata.json") or {}


def meta_status(workdir: Path, command: str):
    return (metadata(workdir).get(job_id(command)) or {}).get("status")


def job_state(workdir: Path, command: str) -> dict:
    return read_json(workdir / "runs/runfile/logs" / job_id(command) / "job.json") or {}


def words(path: Path) -> list:
    return sorted(path.read_text().split()) if path.exists() else []


def launch(workdir: Path, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "runner", "launch", "runfile", *argv],
                          cwd=workdir, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_stops_the_jobs_records_them_interrupted_and_resume_reruns_them(workdir, sig):
    slow = [SLOW.format(i=i) for i in (1, 2, 3)]
    (workdir / "runfile").write_text("\n".join([QUICK] + slow) + "\n")
    proc = run_process(["launch", "runfile", "-j", "2"], workdir)
    wait_for(lambda: meta_status(workdir, slow[0]) == "running"
             and meta_status(workdir, slow[1]) == "running", what="two slow jobs to run")
    pids = [job_state(workdir, c)["pid"] for c in slow[:2]]
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, (out, err)
    assert "summary: 1 done" in out and "2 interrupted" in out and "1 not started" in out
    for pid in pids:
        assert processes_in_group(pid) == []
    assert [meta_status(workdir, c) for c in [QUICK] + slow] == [
        "done", "interrupted", "interrupted", "pending"]
    assert [job_state(workdir, c).get("status") for c in slow[:2]] == ["interrupted"] * 2
    assert words(workdir / "finished") == ["quick"]

    (workdir / "release").write_text("")
    again = launch(workdir, "-j", "3")
    assert again.returncode == 0, again
    assert "jobs: 3 to run, 1 skipped" in again.stdout
    assert words(workdir / "finished") == ["1", "2", "3", "quick"]
    # the interrupted attempt's logs are kept next to the new ones
    logs = workdir / "runs/runfile/logs" / job_id(slow[0])
    assert (logs / "out.log.1").exists() and (logs / "err.log.1").exists()
    assert all(e["status"] == "done" for e in metadata(workdir).values())


def test_kill_9_loses_no_finished_job(workdir):
    slow = SLOW.format(i=1)
    (workdir / "runfile").write_text(f"{QUICK}\n{slow}\n")
    proc = run_process(["launch", "runfile", "-j", "2"], workdir)
    # metadata.json shows the first job done while the second still runs: it is written after
    # every job, not at the end
    wait_for(lambda: meta_status(workdir, QUICK) == "done"
             and meta_status(workdir, slow) == "running", what="metadata of the first job")
    pid = job_state(workdir, slow)["pid"]
    proc.kill()
    proc.communicate(timeout=10)
    assert processes_in_group(pid)  # the runner is gone; its job is not
    assert words(workdir / "finished") == ["quick"]
    json.loads((workdir / "runs/runfile/metadata.json").read_text())  # whole

    (workdir / "release").write_text("")
    again = launch(workdir, "-j", "2", "--grace", "2")
    assert again.returncode == 0, again
    assert "jobs: 1 to run, 1 skipped" in again.stdout
    assert "stopping process group" in again.stdout  # the orphaned job of the killed launch
    assert processes_in_group(pid) == []
    assert words(workdir / "finished") == ["1", "quick"]
    assert words(workdir / "started") == ["1", "1"]
    assert {e["status"] for e in metadata(workdir).values()} == {"done"}


def test_two_launches_share_one_runfile(workdir):
    commands = [f"echo {i} >> started; sleep 0.2; echo {i} >> finished" for i in range(10)]
    (workdir / "runfile").write_text("\n".join(commands) + "\n")
    first = run_process(["launch", "runfile", "-j", "2"], workdir)
    second = run_process(["launch", "runfile", "-j", "2"], workdir)
    out1, err1 = first.communicate(timeout=60)
    out2, err2 = second.communicate(timeout=60)
    assert (first.returncode, second.returncode) == (0, 0), (out1, err1, out2, err2)
    expected = sorted(str(i) for i in range(10))
    assert words(workdir / "started") == expected
    assert words(workdir / "finished") == expected
    meta = metadata(workdir)
    assert sorted(meta) == sorted(job_id(c) for c in commands)
    assert {e["status"] for e in meta.values()} == {"done"}
