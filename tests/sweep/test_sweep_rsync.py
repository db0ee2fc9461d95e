"""psweep-pull and psweep-push: the commands they run (fake rsync and ssh on PATH), and a real
rsync round trip through an ssh stand-in that runs the remote side locally."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from runner.sweep.scripts import pull, push
from runner.sweep.scripts.rsync import remote_base

RECORDER = """#!{python}
import json, os, sys
with open(os.environ["FAKE_LOG"], "a") as fd:
    fd.write(json.dumps([os.path.basename(sys.argv[0]), *sys.argv[1:]]) + "\\n")
sys.exit(int(os.environ.get("FAKE_STATUS", "0")))
"""

# ssh HOST COMMAND...: run COMMAND in the "remote" home folder, as sshd does (rsync starts its
# server side this way: `ssh HOST rsync --server ...`).
SSH_LOCAL = """#!/bin/sh
while [ $# -gt 0 ]; do
    case "$1" in
        -l|-p|-o|-i|-e) shift 2;;
        -*) shift;;
        *) break;;
    esac
done
shift  # the host
cd "$REMOTE_HOME" || exit 255
exec /bin/sh -c "$*"
"""


@pytest.fixture
def study(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """HOME=<tmp>/home, current folder <home>/path/to/my_study (PWD set as a shell does)."""
    home = tmp_path / "home"
    here = home / "path" / "to" / "my_study"
    here.mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(here)
    monkeypatch.setenv("PWD", str(here))
    return here


@pytest.fixture
def fake_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """rsync and ssh on PATH that record their arguments; the log file."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("rsync", "ssh"):
        path = bin_dir / name
        path.write_text(RECORDER.format(python=sys.executable))
        path.chmod(0o755)
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_LOG", str(log))
    return log


def calls(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_remote_base():
    assert remote_base("/home/u/a/b", "/home/u") == "a/b"
    assert remote_base("/home/u/a/b", "/home/u/") == "a/b"
    assert remote_base("/home/u", "/home/u") == "."
    assert remote_base("/home/user2/a", "/home/u") == "/home/user2/a"  # not inside it
    assert remote_base("/data/home/u/x", "/home/u") == "/data/home/u/x"
    assert remote_base("/scratch/x", None) == "/scratch/x"


def test_pull_runs_rsync_as_psweep_does(study, fake_tools, capsys):
    assert pull.main(["hpc.machine.edu"]) == 0
    assert calls(fake_tools) == [
        ["rsync", "-rptgoD", "-vP", "hpc.machine.edu:path/to/my_study/calc", "./"]
    ]
    assert capsys.readouterr().out == (
        "executing: rsync -rptgoD -vP hpc.machine.edu:path/to/my_study/calc ./\n"
    )


def test_pull_extra_options_and_rules_files(study, fake_tools, capsys):
    for name in ("excl_pull", "excl_push", "rsync.exclude", "rsync.rules", "rsync.filter"):
        (study / name).write_text("- *.tmp\n")
    assert pull.main(["user@hpc", "-n", "--exclude=a b", "-L"]) == 0
    assert calls(fake_tools) == [
        [
            "rsync",
            "-rptgoD",
            "-vP",
            "-n",
            "--exclude=a b",
            "-L",
            "--exclude-from=excl_pull",
            "--exclude-from=rsync.exclude",
            "--filter=merge rsync.rules",
            "--filter=merge rsync.filter",
            "user@hpc:path/to/my_study/calc",
            "./",
        ]
    ]
    assert "'--exclude=a b'" in capsys.readouterr().out  # printed as a shell would need it


def test_push_makes_the_remote_folder_then_rsyncs(study, fake_tools, capsys):
    (study / "excl_push").write_text("- big/\n")
    assert push.main(["hpc", "-n"]) == 0
    assert calls(fake_tools) == [
        ["ssh", "hpc", "mkdir -pv path/to/my_study/calc"],
        [
            "rsync",
            "-rptgoD",
            "-vP",
            "-n",
            "--exclude-from=excl_push",
            "calc/",
            "hpc:path/to/my_study/calc/",
        ],
    ]
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "executing: ssh hpc 'mkdir -pv path/to/my_study/calc'"


def test_push_quotes_the_remote_folder_for_the_remote_shell(tmp_path, fake_tools, monkeypatch):
    odd = tmp_path / "my study; rm -rf x"
    odd.mkdir()
    monkeypatch.chdir(odd)
    monkeypatch.setenv("PWD", str(odd))
    monkeypatch.setenv("HOME", str(tmp_path / "elsewhere"))
    assert push.main(["hpc"]) == 0
    ssh = calls(fake_tools)[0]
    assert ssh == ["ssh", "hpc", f"mkdir -pv '{odd}/calc'"]


def test_failures_pass_the_exit_status_on(study, fake_tools, monkeypatch, capsys):
    monkeypatch.setenv("FAKE_STATUS", "23")  # rsync: partial transfer
    assert pull.main(["hpc"]) == 23
    assert push.main(["hpc"]) == 23
    assert [call[0] for call in calls(fake_tools)] == ["rsync", "ssh"]  # no rsync after ssh failed


def test_bad_host_and_missing_rsync(study, fake_tools, monkeypatch, capsys):
    for argv in ([], ["-x"], [""]):
        with pytest.raises(SystemExit) as info:
            pull.main(argv)
        assert info.value.code == 2
    assert calls(fake_tools) == []
    assert "HOST must be a host name" in capsys.readouterr().err
    monkeypatch.setenv("PATH", str(study))  # neither rsync nor ssh there
    assert push.main(["hpc"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("psweep-push: error: ssh: not found") and len(err.splitlines()) == 1


@pytest.mark.skipif(shutil.which("rsync") is None, reason="rsync is not installed")
def test_real_rsync_round_trip(study, tmp_path, monkeypatch):
    """Pull a remote calc/ and push it back changed, with the real rsync, as subprocesses."""
    remote_home = tmp_path / "remote_home"
    remote_calc = remote_home / "path" / "to" / "my_study" / "calc"
    (remote_calc / "p1").mkdir(parents=True)
    (remote_calc / "p1" / "out.txt").write_text("result 1\n")
    (remote_calc / "p1" / "skip.tmp").write_text("scratch\n")
    (remote_calc / "link").symlink_to("/etc/hostname")  # -rptgoD: links are skipped
    ssh_dir = tmp_path / "ssh_bin"
    ssh_dir.mkdir()
    (ssh_dir / "ssh").write_text(SSH_LOCAL)
    (ssh_dir / "ssh").chmod(0o755)
    monkeypatch.setenv("PATH", f"{ssh_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("REMOTE_HOME", str(remote_home))
    (study / "rsync.exclude").write_text("*.tmp\n")

    def script(name: str, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", f"runner.sweep.scripts.{name}", *args],
            capture_output=True,
            text=True,
            timeout=60,
        )

    res = script("pull", "remotehost", "-q")
    assert res.returncode == 0, res.stderr
    assert (study / "calc" / "p1" / "out.txt").read_text() == "result 1\n"
    assert not (study / "calc" / "p1" / "skip.tmp").exists()
    assert not os.path.lexists(study / "calc" / "link")

    (study / "calc" / "p2").mkdir()
    (study / "calc" / "p2" / "out.txt").write_text("result 2\n")
    shutil.rmtree(remote_home / "path")  # push creates the remote folder again
    res = script("push", "remotehost", "-q")
    assert res.returncode == 0, res.stderr
    assert (remote_calc / "p2" / "out.txt").read_text() == "result 2\n"
    assert (remote_calc / "p1" / "out.txt").read_text() == "result 1\n"
