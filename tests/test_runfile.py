"""Runfiles: parsing, job ids, parameters, and `run launch` end to end (in-process, real jobs)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from support import read_json
from runner.errors import ConfigError
from runner.spec.runfile import job_id, parse_parameters, parse_runfile


@pytest.fixture
def runfile(workdir: Path):
    """runfile(text, name='runfile'): write a (dedented) runfile into the workdir."""

    def make(text: str, name: str = "runfile") -> Path:
        path = workdir / name
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return path

    return make


def metadata(workdir: Path, stem: str = "runfile") -> dict:
    return json.loads((workdir / "runs" / stem / "metadata.json").read_text())


def statuses(workdir: Path, stem: str = "runfile") -> dict:
    """{command: status} from metadata.json."""
    return {e["command"]: e["status"] for e in metadata(workdir, stem).values()}


def log_dir(workdir: Path, command: str, stem: str = "runfile") -> Path:
    return workdir / "runs" / stem / "logs" / job_id(command)


def count(path: Path, word: str) -> int:
    return path.read_text().split().count(word) if path.exists() else 0


# -- parsing ---------------------------------------------------------------------------------


def test_comments_blank_and_indented_lines():
    text = ("# a comment\n\n   \n\t\n  # an indented comment\n  echo one  \n"
            "echo two # not a comment line\n\r\n")
    jobs = parse_runfile(text).jobs
    assert [(j.line, j.command) for j in jobs] == [(6, "echo one"),
                                                   (7, "echo two # not a comment line")]


@pytest.mark.parametrize("separator", ["\f", "\v", "\x1c", "\x1d", "\x1e", "\x85", "\u2028",
                                       "\u2029", "\r"])
def test_lines_end_at_newlines_only(separator):
    """str.splitlines also splits at form feeds, vertical tabs and Unicode separators: a runfile
    line holding one of them would have become two jobs."""
    text = f"echo 'a{separator}b' > out\r\necho two\n"
    jobs = parse_runfile(text).jobs
    assert [(j.line, j.command) for j in jobs] == [(1, f"echo 'a{separator}b' > out"),
                                                   (2, "echo two")]


def test_a_line_with_a_form_feed_runs_as_one_command(runfile, cli, workdir):
    (workdir / "runfile").write_text("printf 'a\fb\\n' > ff.txt\necho 'c\u2028d' > ls.txt\n",
                                     encoding="utf-8")
    result = cli("launch", "runfile")
    assert result.code == 0, result
    assert "launch: 2 jobs" in result.out
    assert (workdir / "ff.txt").read_text() == "a\fb\n"
    assert (workdir / "ls.txt").read_text(encoding="utf-8") == "c\u2028d\n"


def test_backslash_continuations_join_as_the_shell_does():
    text = "python a.py \\\n    --x=1 \\\n  --y 2\necho a\\\nb\necho 'c\\\\'\necho d \\"
    jobs = parse_runfile(text).jobs
    assert [(j.line, j.command) for j in jobs] == [
        (1, "python a.py     --x=1   --y 2"), (4, "echo ab"), (6, "echo 'c\\\\'"), (7, "echo d")]
    assert jobs[0].parameters == {"x": "1", "y": "2"}


def test_a_repeated_line_is_one_job():
    parsed = parse_runfile("echo a\necho b\n  echo a\necho b  \n")
    assert [j.command for j in parsed.jobs] == ["echo a", "echo b"]
    assert parsed.duplicates == [(3, 1), (4, 2)]


def test_job_id_is_the_sha256_of_the_stripped_command():
    expected = hashlib.sha256(b'sleep 1; echo "First!"').hexdigest()[:16]
    assert job_id('  sleep 1; echo "First!"\n') == expected
    assert parse_runfile('sleep 1; echo "First!"\n').jobs[0].id == expected
    assert job_id("echo a --x=1 --y=2") != job_id("echo a --y=2 --x=1")


@pytest.mark.parametrize("command, expected", [
    ("python3 script.py --alpha=1 --beta=beta_val --flag", {"alpha": "1", "beta": "beta_val",
                                                            "flag": True}),
    ("train --lr 0.1 --layers 2 --verbose", {"lr": "0.1", "layers": "2", "verbose": True}),
    ("train --name='a b' --eq=x=y --neg -0.5 --v -n 3", {"name": "a b", "eq": "x=y", "neg": "-0.5",
                                                         "v": True}),
    ("a --x 1; b --y=2 && c --z | tee --out log", {"x": "1", "y": "2", "z": True, "out": "log"}),
    ("a --x > out.txt", {"x": True}),
    ('echo "unclosed --x=1', {}),
    ("sleep 1; echo First", {}),
])
def test_parameters(command, expected):
    assert parse_parameters(command) == expected


def test_a_gridspec_given_as_runfile_is_refused():
    with pytest.raises(ConfigError, match="looks like a gridspec.*run sweep"):
        parse_runfile("program: python3 x.py\nparameters:\n  a: {values: [1]}\n", "grid.txt")


# -- launch ----------------------------------------------------------------------------------


def test_launch_writes_logs_and_metadata(runfile, cli, workdir):
    runfile("""
        # jobs
        echo out-a; echo err-a >&2

        python3 -c 'import sys; print("boom", file=sys.stderr); sys.exit(3)' --alpha=1 --beta 2
        echo out-a; echo err-a >&2
    """)
    result = cli("launch", "runfile", "--n_jobs", "2")
    assert result.code == 1, result
    ok = "echo out-a; echo err-a >&2"
    bad = ("""python3 -c 'import sys; print("boom", file=sys.stderr); sys.exit(3)' """
           "--alpha=1 --beta 2")
    assert "launch: 2 jobs from runfile -> runs/runfile" in result.out
    assert "note: line 5 repeats line 2: one job, run once" in result.out
    assert "summary: 1 done, 1 failed" in result.out
    assert f"{job_id(bad)} {bad}: (exit status 3)" in result.out
    # the summary shows the end of the failed job's stderr, which has its own log
    err_log = f"runs/runfile/logs/{job_id(bad)}/err.log"
    assert f"    stderr ({err_log}):\n      | boom\n" in result.out
    assert (log_dir(workdir, ok) / "out.log").read_text() == "out-a\n"
    assert (log_dir(workdir, ok) / "err.log").read_text() == "err-a\n"
    meta = metadata(workdir)
    assert list(meta) == [job_id(ok), job_id(bad)]
    entry = meta[job_id(bad)]
    assert entry["command"] == bad and entry["parameters"] == {"alpha": "1", "beta": "2"}
    assert entry["status"] == "failed" and entry["exit_status"] == 3 and entry["attempt"] == 1
    assert entry["host"] and entry["slot"] in (0, 1) and entry["start"] <= entry["end"]
    assert entry["runtime"] >= 0
    assert meta[job_id(ok)]["status"] == "done" and meta[job_id(ok)]["exit_status"] == 0
    # each job's own state file is the truth that resume reads
    assert read_json(log_dir(workdir, ok) / "job.json")["status"] == "done"


def test_resume_after_adding_changing_and_failing_lines(runfile, cli, workdir):
    runfile("""
        echo a >> ran
        echo b >> ran
        sh -c 'echo c >> ran; exit 1'
    """)
    assert cli("launch", "runfile").code == 1
    runfile("""
        echo a >> ran
        echo B >> ran
        sh -c 'echo c >> ran; exit 1'
        echo d >> ran
    """)
    again = cli("launch", "runfile")
    assert again.code == 1
    assert "jobs: 3 to run, 1 skipped" in again.out
    ran = (workdir / "ran").read_text().split()
    assert sorted(ran) == ["B", "a", "b", "c", "c", "d"]
    assert statuses(workdir) == {"echo a >> ran": "done", "echo b >> ran": "done",
                                 "sh -c 'echo c >> ran; exit 1'": "failed",
                                 "echo B >> ran": "done", "echo d >> ran": "done"}
    retry = cli("launch", "runfile", "--mode", "retry_failed")
    assert retry.code == 1 and "jobs: 1 to run, 3 skipped" in retry.out


def test_nothing_to_run_exits_0(runfile, cli, workdir):
    runfile("echo a\n")
    assert cli("launch", "runfile").code == 0
    again = cli("launch", "runfile")
    assert again.code == 0 and "nothing to run" in again.out


def test_overwrite_reruns_everything_and_keeps_the_previous_logs(runfile, cli, workdir):
    runfile("""
        echo run >> count; cat count | wc -l
        echo other
    """)
    assert cli("launch", "runfile").code == 0
    again = cli("launch", "runfile", "--mode", "overwrite")
    assert again.code == 0 and "jobs: 2 to run, 0 skipped" in again.out
    third = cli("launch", "runfile", "--mode", "overwrite")
    assert third.code == 0
    logs = log_dir(workdir, "echo run >> count; cat count | wc -l")
    assert [(logs / f"out.log{n}").read_text().strip() for n in (".1", ".2", "")] == ["1", "2", "3"]
    assert sorted(p.name for p in logs.iterdir() if "log" in p.name) == [
        "err.log", "err.log.1", "err.log.2", "out.log", "out.log.1", "out.log.2"]
    entry = metadata(workdir)[job_id("echo other")]
    assert entry["status"] == "done" and entry["attempt"] == 3


def test_n_jobs_is_a_work_queue_not_batches(runfile, cli, workdir):
    # In batches of 2, the third job would wait for the first, which waits for the third.
    runfile("""
        i=0; while [ ! -e ran3 ] && [ $i -lt 1500 ]; do sleep 0.01; i=$((i+1)); done; [ -e ran3 ]
        true
        touch ran3
    """)
    result = cli("launch", "runfile", "-j", "2")
    assert result.code == 0, result.out
    assert "summary: 3 done" in result.out


def test_gpu_slots_with_resource(runfile, cli, workdir):
    runfile("\n".join(f"echo $CUDA_VISIBLE_DEVICES,$CUDA_DEVICE_ORDER > gpu.{i}" for i in range(6)))
    result = cli("launch", "runfile", "-r", "0", "1,2")
    assert result.code == 0, result.out
    assert "slots: 2 (0: GPU 0, 1: GPU 1,2)" in result.out
    seen = {(workdir / f"gpu.{i}").read_text().strip() for i in range(6)}
    assert seen == {"0,PCI_BUS_ID", "1,2,PCI_BUS_ID"}
    assert {e["gpus"] for e in metadata(workdir).values()} == {"0", "1,2"}


def test_n_jobs_workers_leave_the_gpus_alone(runfile, cli, workdir, monkeypatch):
    runfile("echo ${CUDA_VISIBLE_DEVICES-unset} > gpus\n")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert cli("launch", "runfile", "-j", "2").code == 0
    assert (workdir / "gpus").read_text() == "unset\n"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    assert cli("launch", "runfile", "--mode", "overwrite").code == 0
    assert (workdir / "gpus").read_text() == "3,5\n"


def test_negative_n_jobs_counts_from_the_cpu_cores(runfile, cli, workdir):
    runfile("".join(f"true {i}\n" for i in range(os.cpu_count() + 2)))
    result = cli("launch", "runfile", "-j", "-1")
    assert result.code == 0 and f"workers: {os.cpu_count()}" in result.out


def test_never_more_workers_than_jobs_to_run(runfile, cli, workdir):
    runfile("true 1\ntrue 2\ntrue 3\n")
    result = cli("launch", "runfile", "-j", "100000")
    assert result.code == 0 and "workers: 3" in result.out
    runfile("true 1\ntrue 2\ntrue 3\ntrue 4\n")
    result = cli("launch", "runfile", "-j", "100000")  # three are done: one job, one worker
    assert result.code == 0 and "workers: 1" in result.out and "jobs: 1 to run" in result.out


def test_runs_dir_and_batchrun_options(runfile, cli, workdir):
    runfile("echo a\n", name="jobs.txt")
    assert cli("launch", "jobs.txt", "--runs-dir", "elsewhere").code == 0
    assert (workdir / "elsewhere/jobs/metadata.json").exists()
    assert cli("launch", "jobs.txt", "--accounting_dir", "acct",
               "--state_db_filename", "db.json").code == 0
    assert list(json.loads((workdir / "acct/db.json").read_text()).values())[0]["status"] == "done"
    assert (workdir / "acct/logs" / job_id("echo a") / "out.log").read_text() == "a\n"
    assert not (workdir / "runs").exists()


def test_the_default_directory_is_runs_slash_the_runfile_stem(runfile, cli, workdir):
    (workdir / "sub").mkdir()
    runfile("echo a\n", name="sub/grid.runfile")
    assert cli("launch", "sub/grid.runfile").code == 0
    assert (workdir / "runs/grid/metadata.json").exists()
    assert (workdir / "runs/grid/logs" / job_id("echo a") / "out.log").exists()


def test_batchrun_metadata_resumes(runfile, cli, workdir):
    """A runs/ directory left by batchrun: `status` was the exit code; failed jobs run again."""
    runfile("echo a >> ran\necho b >> ran\necho c >> ran\n")
    old = {job_id("echo a >> ran"): {"start": 1.7e9, "runtime": 0.1, "status": 0,
                                     "command": "echo a >> ran", "parameters": {}},
           job_id("echo b >> ran"): {"start": 1.7e9, "runtime": 0.1, "status": 2,
                                     "command": "echo b >> ran", "parameters": {}}}
    (workdir / "runs/runfile").mkdir(parents=True)
    (workdir / "runs/runfile/metadata.json").write_text(json.dumps(old, indent=2))
    result = cli("launch", "runfile")
    assert result.code == 0 and "jobs: 2 to run, 1 skipped" in result.out
    assert sorted((workdir / "ran").read_text().split()) == ["b", "c"]
    meta = metadata(workdir)
    assert meta[job_id("echo a >> ran")] == old[job_id("echo a >> ran")]
    assert meta[job_id("echo b >> ran")]["status"] == "done"


def test_metadata_lagging_behind_the_job_files_is_brought_up_to_date(runfile, cli, workdir):
    """What a kill -9 between a job's end and the next metadata write leaves: the job file wins."""
    runfile("echo a >> ran\necho b >> ran\n")
    assert cli("launch", "runfile").code == 0
    path = workdir / "runs/runfile/metadata.json"
    meta = json.loads(path.read_text())
    meta[job_id("echo a >> ran")].update(status="running", end=None, exit_status=None)
    del meta[job_id("echo b >> ran")]
    path.write_text(json.dumps(meta))
    again = cli("launch", "runfile")
    assert again.code == 0 and "nothing to run" in again.out
    assert (workdir / "ran").read_text().split() == ["a", "b"]
    assert statuses(workdir) == {"echo a >> ran": "done", "echo b >> ran": "done"}


@pytest.mark.parametrize("subcommand", ["launch", "sweep"])
def test_help_is_fast(subcommand):
    code = textwrap.dedent(f"""
        import sys
        from runner.cli import main
        main(["--help"])
        code = main(["{subcommand}", "--help"])
        heavy = [m for m in ("yaml", "json", "runner.execution.executor", "runner.spec.runfile",
                             "runner.spec.gridspec") if m in sys.modules]
        print("HEAVY:" + " ".join(heavy), code, file=sys.stderr)
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert f"run {subcommand}" in result.stdout and "usage: run" in result.stdout
    assert result.stderr.strip() == "HEAVY: 0", result.stderr


# -- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize("setup, argv, message", [
    (None, ["launch", "missing"], "missing: no such file; pass a runfile"),
    ("program: x\nparameters: {a: {values: [1]}}\n", ["launch", "grid.yml"],
     "grid.yml: is a YAML file, not a runfile; if it is a gridspec, write the runfile first "
     "with: run sweep grid.yml"),
    ("", ["launch", "grid.yml"], "is a YAML file"),
    ("# only a comment\n\n   \n", ["launch", "runfile"], "runfile: no commands"),
    ("", ["launch", "runfile"], "runfile: no commands"),
    ("echo a\n", ["launch", "runfile", "-j", "0"], "--n_jobs 0: expected a number of workers"),
    ("echo a\n", ["launch", "runfile", "-j", "2", "-r", "0"], "--n_jobs and -r: give one"),
    ("echo a\n", ["launch", "runfile", "-r", "x"], "-r: 'x' is not a GPU index"),
    ("echo a\n", ["launch", "runfile", "--mode", "skip"], "invalid choice: 'skip'"),
    ("echo a\n", ["launch", "runfile", "-j", "two"], "invalid int value: 'two'"),
    ("echo a\n", ["launch", "runfile", "--state_db_filename", "a/b.json"], "expected a file name"),
    ("echo a\n", ["launch"], "the following arguments are required: RUNFILE"),
])
def test_bad_input_is_one_line_and_exit_2(cli, workdir, setup, argv, message):
    if setup is not None:
        name = "grid.yml" if "grid.yml" in argv else "runfile"
        (workdir / name).write_text(setup)
    before = sorted(p.name for p in workdir.iterdir())
    result = cli(*argv)
    assert result.code == 2
    assert result.err.count("\n") == 1 and message in result.err, result.err
    assert result.err.startswith("run") and "Traceback" not in result.err
    assert sorted(p.name for p in workdir.iterdir()) == before  # nothing written


def test_a_runs_dir_that_is_a_file_is_refused(runfile, cli, workdir):
    runfile("echo a\n")
    (workdir / "runs").mkdir()
    (workdir / "runs/runfile").write_text("")
    result = cli("launch", "runfile")
    assert result.code == 2 and "runs/runfile: exists and is not a directory" in result.err


def test_a_damaged_metadata_file_is_rebuilt_from_the_job_files(runfile, cli, workdir):
    runfile("echo a >> ran\necho b >> ran\n")
    assert cli("launch", "runfile").code == 0
    metadata = workdir / "runs/runfile/metadata.json"
    for damage in ('{"abc": ', '["a list"]', '{"x": 1}'):
        metadata.write_text(damage)
        result = cli("launch", "runfile")
        assert result.code == 0, result
        assert "warning: runs/runfile/metadata.json:" in result.out and "rebuilt from" in result.out
        assert "jobs: 0 to run, 2 skipped" in result.out
        entries = json.loads(metadata.read_text())
        assert sorted(e["status"] for e in entries.values()) == ["done", "done"]
    assert (workdir / "ran").read_text() == "a\nb\n"  # nothing ran twice
