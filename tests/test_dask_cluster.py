"""`--backend dask` against a real cluster: `dask scheduler` and two `run worker` on 127.0.0.1,
one on each GPU of a fake machine (RUNNER_FAKE_GPUS), driven as a user drives them, through real
processes.

What is checked: every task runs once, on the slot it was given; done tasks are skipped; a
worker killed with kill -9 mid-task loses nothing and its command does not outlive it; Ctrl-C of
the submitting run leaves no process on the workers; --detach, then run status and run cancel;
what no worker offers is refused before anything is submitted; a worker that cannot see the
output directory fails that task in one line; run worker's names, shared GPUs and Ctrl-C.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from dask_support import Cluster, gone, is_running, parent_of, require_distributed
from support import processes_in_group, read_json, run_process, wait_for

HOST = socket.gethostname()


FAKE_GPUS = {"gpus": [{"name": "Fake A100", "memory": "40GiB"},
                      {"name": "Fake A100", "memory": "40GiB"}]}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Two `run worker` on the two GPUs of a fake machine (whatever GPUs this one has)."""
    require_distributed()
    directory = tmp_path_factory.mktemp("dask")
    (directory / "gpus.json").write_text(json.dumps(FAKE_GPUS))
    started = Cluster(directory, [["0"], ["1"]],
                      env={"RUNNER_FAKE_GPUS": str(directory / "gpus.json")})
    yield started
    started.stop()


def run(cluster, *argv, timeout=120):
    return subprocess.run([sys.executable, "-m", "runner", *argv, "--backend", "dask",
                           "--scheduler", cluster.address], capture_output=True, text=True,
                          timeout=timeout)


def start(cluster, workdir, *argv):
    return run_process([*argv, "--backend", "dask", "--scheduler", cluster.address], workdir)


def states(workdir: Path, output: str = "out") -> dict:
    done = subprocess.run([sys.executable, "-m", "runner", "status", "-o", output, "--json"],
                          capture_output=True, text=True, timeout=60, cwd=workdir)
    assert done.returncode in (0, 1), done
    return {t["name"]: t for t in json.loads(done.stdout)["tasks"]}


def test_every_task_runs_once_on_the_slot_it_was_given(cluster, workdir, make_config):
    make_config("""
        template:
          work: echo "$CUDA_VISIBLE_DEVICES" >> gpus_{i}; sleep 0.3
        ---
        i: [1, 2, 3, 4, 5, 6]
    """)
    first = run(cluster, "-y", "params.yaml", "-o", "out")
    assert first.returncode == 0, first
    assert "summary: 6 done, 0 failed" in first.stdout, first.stdout
    names = {name for worker in cluster.workers for name in worker.names()}
    assert names == {f"{HOST}/gpu-0", f"{HOST}/gpu-1"}
    used = set()
    for i in range(1, 7):
        entry = read_json(workdir / f"out/I_{i}/stat.json")["work"]
        assert (workdir / f"gpus_{i}").read_text().split() == [entry["gpus"]]  # once, there
        assert entry["dask_worker"] == f"{HOST}/gpu-{entry['gpus']}"
        assert entry["status"] == "done" and entry["dask_host"] == HOST
        assert read_json(workdir / f"out/I_{i}/param.json")["i"] == i
        used.add(entry["dask_worker"])
    assert used == names  # both workers took tasks
    again = run(cluster, "-y", "params.yaml", "-o", "out")
    assert again.returncode == 0 and "nothing to run" in again.stdout, again
    assert all(len((workdir / f"gpus_{i}").read_text().split()) == 1 for i in range(1, 7))


HELD = """
template:
  work: echo $$ > pid_{i}; sleep 60
---
i: [1, 2, 3]
"""


def test_ctrl_c_of_the_submitting_run_leaves_no_process_on_the_workers(cluster, workdir,
                                                                        make_config):
    make_config(HELD)
    proc = start(cluster, workdir, "-y", "params.yaml", "-o", "out", "--grace", "2")
    try:
        wait_for(lambda: (workdir / "pid_1").exists() and (workdir / "pid_2").exists(), 60,
                 "two tasks running, one on each worker")
        commands = [int((workdir / f"pid_{i}").read_text()) for i in (1, 2)]
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, (out, err)
    assert "summary: 0 done, 0 failed, 0 skipped (done earlier), 2 interrupted, 1 not started" \
        in out, out
    assert gone(commands, 10)  # stopped before the run returned, all of them
    assert all(processes_in_group(pid) == [] for pid in commands)
    statuses = {i: (read_json(workdir / f"out/I_{i}/stat.json") or {}).get("work", {}).get(
        "status") for i in (1, 2, 3)}
    assert statuses == {1: "interrupted", 2: "interrupted", 3: None}
    assert not (workdir / "pid_3").exists()


def test_a_worker_killed_mid_task_loses_nothing_and_the_task_completes(cluster, workdir,
                                                                       make_config):
    make_config("""
        template:
          work: |
            trap 'echo end $$ $(date +%s.%N) >> runs; exit 143' TERM
            echo start $$ $(date +%s.%N) >> runs
            if [ ! -e once ]; then touch once; sleep 60 & wait; fi
            echo end $$ $(date +%s.%N) >> runs
        ---
        i: [1]
    """)
    proc = start(cluster, workdir, "-y", "params.yaml", "-o", "out", "--grace", "5")
    try:
        wait_for(lambda: (workdir / "runs").exists(), 60, "the task to start")
        command = int((workdir / "runs").read_text().split()[1])
        worker = parent_of(command)  # the worker runs the task's executor itself
        assert any(worker in w.pids() for w in cluster.workers), (worker, command)
        os.kill(worker, signal.SIGKILL)
        assert gone([command], 15)  # the command did not outlive its worker (its guardian)
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, (out, err)
    assert "summary: 1 done, 0 failed" in out, out
    assert re.search(rf"worker {re.escape(HOST)}/gpu-[01] was lost while it held I_1", out), out
    runs = [line.split() for line in (workdir / "runs").read_text().splitlines()]
    assert [r[0] for r in runs] == ["start", "end", "start", "end"]  # stopped, then again
    assert runs[0][1] == runs[1][1] and runs[2][1] == runs[3][1] != runs[0][1]
    assert float(runs[2][2]) >= float(runs[1][2])  # never two at once
    assert read_json(workdir / "out/I_1/stat.json")["work"]["status"] == "done"


def test_detach_then_status_until_done(cluster, workdir, make_config):
    make_config("""
        template:
          work: sleep 1; echo {i} > {_output}/x
        ---
        i: [1, 2, 3]
    """)
    submitted = run(cluster, "-y", "params.yaml", "-o", "out", "--detach")
    assert submitted.returncode == 0, submitted
    assert "submitted 3 tasks to tcp://127.0.0.1:" in submitted.stdout
    assert "summary:" not in submitted.stdout
    seen = set()

    def all_done():
        found = states(workdir)
        seen.update(t["state"] for t in found.values())
        return set(t["state"] for t in found.values()) == {"done"} and len(found) == 3

    wait_for(all_done, 60, "the detached tasks to finish")
    assert "pending" in seen or "running" in seen  # followed while they ran
    assert [(workdir / f"out/I_{i}/x").read_text() for i in (1, 2, 3)] == ["1\n", "2\n", "3\n"]
    results = subprocess.run([sys.executable, "-m", "runner", "results", "-o", "out"],
                             capture_output=True, text=True, timeout=60)
    assert results.returncode == 0 and results.stdout.count(" done ") == 3, results


def test_run_cancel_stops_a_detached_submission(cluster, workdir, make_config):
    make_config(HELD)
    submitted = run(cluster, "-y", "params.yaml", "-o", "out", "--detach", "--grace", "2")
    assert submitted.returncode == 0, submitted
    wait_for(lambda: (workdir / "pid_1").exists() and (workdir / "pid_2").exists(), 60,
             "two tasks running")
    commands = [int((workdir / f"pid_{i}").read_text()) for i in (1, 2)]
    cancel = subprocess.run([sys.executable, "-m", "runner", "cancel", "-o", "out"],
                            capture_output=True, text=True, timeout=60)
    assert cancel.returncode == 0, cancel
    assert "cancelled 3 dask tasks of submission" in cancel.stdout, cancel.stdout
    assert "stopping 2 running: I_1, I_2" in cancel.stdout
    assert not any(is_running(pid) for pid in commands)  # it waited for them
    found = states(workdir)
    assert {n: t["state"] for n, t in found.items()} == {
        "I_1": "interrupted", "I_2": "interrupted", "I_3": "interrupted"}
    assert "ended without running it" in found["I_3"]["note"]
    again = subprocess.run([sys.executable, "-m", "runner", "cancel", "-o", "out"],
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "nothing to cancel" in again.stdout


def test_what_no_worker_offers_is_refused_before_anything_is_submitted(cluster, workdir,
                                                                        make_config):
    make_config("""
        template:
          work: 'true'
        ---
        i: [1]
        gpus_per_task: 2
    """)
    refused = run(cluster, "-y", "params.yaml", "-o", "out")
    assert refused.returncode == 2 and "dask:" not in refused.stdout, refused
    assert refused.stderr == (
        f"run: error: task I_1-GpPeTask_2 needs 2 GPUs, which no worker of {cluster.address} "
        f"offers; the workers are {HOST}/gpu-0 (1 GPU), {HOST}/gpu-1 (1 GPU); start a worker "
        f"that offers it (run worker -r with a slot of 2 GPUs, such as 0,1) or change the "
        f"task's settings (nothing was submitted)\n")
    assert not (workdir / "out").exists()


def _can_unshare() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"],
                           capture_output=True)
    return probe.returncode == 0


def test_a_worker_that_cannot_see_the_output_directory_fails_that_task(cluster, workdir,
                                                                        make_config):
    if not _can_unshare():
        pytest.skip("needs `unshare --mount` (root) to give one worker a view without the "
                    "output directory")
    hide = f"mount -t tmpfs none {workdir} && exec \"$@\""
    blind = cluster.add_worker(["0,1"], prefix=["unshare", "--mount", "--propagation",
                                                "private", "sh", "-c", hide, "sh"])
    try:
        blind.wait_started()
        make_config("""
            template:
              work: echo ran > ran
            ---
            i: [1]
            gpus_per_task: 2
        """)
        failed = run(cluster, "-y", "params.yaml", "-o", "out")
    finally:
        assert blind.stop() == 0, blind.output
    assert failed.returncode == 1, failed
    line = (f"worker {HOST}/gpu-0,1 on {HOST} cannot see the output directory {workdir / 'out'}"
            f" (its task table ")
    assert line in failed.stdout, failed.stdout
    assert "the output directory must be on a filesystem every worker mounts" in failed.stdout
    assert "summary: 0 done, 1 failed" in failed.stdout
    assert not (workdir / "ran").exists()


def test_run_worker_names_shared_gpus_and_ctrl_c(cluster, workdir, make_config):
    fake = workdir / "gpus.json"
    fake.write_text(json.dumps({"gpus": [{"name": "Fake A100", "memory": "40GiB"}]}))
    shared = cluster.add_worker(["auto"], "--gpu-memory", "10GiB",
                                env={"RUNNER_FAKE_GPUS": str(fake)})
    try:
        shared.wait_started()
        # the fixture's workers hold gpu-0 and gpu-1: this one is the second on GPU 0
        assert shared.names() == [f"{HOST}/gpu-0#2"], shared.output
        assert f"{HOST}/gpu-0#2 (1 GPU, 10.0 GiB of GPU memory per GPU)" in shared.output
        make_config("""
            template:
              work: |
                echo start $(date +%s.%N) >> times_{i}
                sleep 1.5
                echo end $(date +%s.%N) >> times_{i}
            ---
            i: [1, 2, 3]
            gpu_memory: 4GiB
        """)
        done = run(cluster, "-y", "params.yaml", "-o", "out")
        assert done.returncode == 0, done
        spans = [[float(line.split()[1]) for line in (workdir / f"times_{i}").read_text()
                  .splitlines()] for i in (1, 2, 3)]
        starts = sorted(s for s, _ in spans)
        ends = sorted(e for _, e in spans)
        assert starts[1] < ends[0]  # two shared GPU 0 at once (8 of its 10 GiB)...
        assert starts[2] >= ends[0]  # ...and the third waited for one of them
        stats = sorted(workdir.glob("out/*/stat.json"))
        assert len(stats) == 3
        assert {read_json(s)["work"]["dask_worker"] for s in stats} == {f"{HOST}/gpu-0#2"}
        pids = shared.pids()
        shared.proc.send_signal(signal.SIGINT)
        assert shared.proc.wait(60) == 0, shared.output
    finally:
        shared.stop()
    assert "workers stopped" in shared.output
    assert gone(pids, 10)
