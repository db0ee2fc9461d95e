"""`--backend slurm` against a real SLURM: the throw-away cluster of
../shared/tools/slurm-local.sh (2 nodes, 2 fake GPUs each) that .ci/run starts.

.ci/run runs this module twice: with accounting (`SLURM_ACCOUNTING=dbd`, slurmdbd and a real
`sacct`) and without (`jobcomp`, where sacct says accounting storage is disabled). Tests that only
make sense in one mode skip in the other with a reason; everything else runs in both. Where
`sbatch` is missing (a laptop) the whole module skips.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from support import read_json, run_process, wait_for

pytestmark = [pytest.mark.slurm,
              pytest.mark.skipif(shutil.which("sbatch") is None,
                                 reason="sbatch not on PATH: no SLURM here (.ci/run starts one "
                                        "with ../shared/tools/slurm-local.sh up)")]

ROOT = Path(__file__).resolve().parent.parent
PROFILES = """
profiles:
  ci-gpu: {host: ci, device: gpu, env: export RUNNER_TEST_ENV=from-profile,
           resources: {cpus-per-task: 1, mem: 100}}
  ci-cpu: {host: ci, device: cpu, resources: {cpus-per-task: 1, mem: 100}}
  ci-short: {host: ci, device: cpu, resources: {cpus-per-task: 1, mem: 100, time: "00:01:00"}}
"""
# waits for ./release (at most 60 s): a task that runs until the test lets it go
HOLD = "for i in $(seq 600); do test -e release && break; sleep 0.1; done; test -e release"


def accounting_type() -> str:
    out = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True,
                         timeout=60)
    if out.returncode != 0:
        reason = (f"sbatch is on PATH but no SLURM controller answers "
                  f"({out.stderr.strip() or 'scontrol show config failed'}); start one with "
                  f"../shared/tools/slurm-local.sh up")
        if os.environ.get("RUNNER_REQUIRE_SLURM"):  # .ci/run started one: it must answer
            pytest.fail(reason)
        pytest.skip(reason)
    for line in out.stdout.splitlines():
        if line.startswith("AccountingStorageType"):
            return line.split("=", 1)[1].strip()
    return ""


@pytest.fixture(scope="module")
def accounting() -> bool:
    """True with slurmdbd (real sacct), False with accounting storage off."""
    return accounting_type() != "accounting_storage/none"


needs_accounting = pytest.mark.usefixtures("require_accounting")


@pytest.fixture
def require_accounting(accounting):
    if not accounting:
        pytest.skip("needs SLURM accounting (SLURM_ACCOUNTING=dbd): SLURM reports a time limit "
                    "only through sacct; .ci/run runs this in its accounting pass")


@pytest.fixture
def require_no_accounting(accounting):
    if accounting:
        pytest.skip("needs SLURM without accounting storage (SLURM_ACCOUNTING=jobcomp); .ci/run "
                    "runs this in its second pass")


def sweep(body: str) -> str:
    """A runner YAML with the test profiles added to its document 0."""
    return textwrap.dedent(body).lstrip("\n").replace("---", PROFILES.strip() + "\n---", 1)


def jobs_of(output: Path) -> list:
    jobs = []
    for record in sorted((output / ".slurm").glob("*/submission.json")):
        jobs.extend(a["job_id"] for a in read_json(record)["arrays"] if a["job_id"])
    return jobs


def queue_of(jobs) -> str:
    if not jobs:
        return ""
    return subprocess.run(["squeue", "-h", "-r", "-j", ",".join(jobs), "-o", "%i %T"],
                          capture_output=True, text=True).stdout


def status(cli, output="out") -> dict:
    result = cli("status", "-o", output, "--json")
    tasks = json.loads(result.out)["tasks"]
    failed = any(t["state"] in ("failed", "timeout") for t in tasks)
    assert result.code == (1 if failed else 0), result  # exit 1 when a task failed
    return {t["name"]: t for t in json.loads(result.out)["tasks"]}


@pytest.fixture(scope="module")
def timed_out_sweep(tmp_path_factory, accounting):
    """Submitted when the module starts, checked by its last test: SLURM counts time limits in
    whole minutes and checks them every 30 s, so the other tests run while this one waits."""
    if not accounting:
        return None
    directory = tmp_path_factory.mktemp("timeout")
    (directory / "params.yaml").write_text(sweep("""
        template:
          train: echo started; sleep 300
        ---
        lr: [1]
    """))
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "runner", "-y", "params.yaml", "-o", "out",
                             "--backend", "slurm", "--profile", "ci-short"], cwd=directory,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    return directory, started


@pytest.fixture(autouse=True)
def _start_the_slow_one_first(request, timed_out_sweep):
    """Every test of the module asks for the timeout sweep, so it is submitted first."""


def test_eight_tasks_one_gpu_each(make_config, cli, workdir):
    make_config(sweep("""
        template:
          train: >-
            echo "$CUDA_VISIBLE_DEVICES" > {_output}/cvd.txt; echo "$RUNNER_TEST_ENV";
            sleep 1.5; test {lr} != 5
        ---
        lr: [1, 2, 3, 4, 5, 6, 7, 8]
    """))
    result = cli("-y", "params.yaml", "-o", "out", "--backend", "slurm", "--profile", "ci-gpu",
                 "--wait")
    assert result.code == 1, result  # one task fails
    assert "submitted job" in result.out and "8 tasks, 1 GPU" in result.out
    assert "summary: 7 done, 1 failed" in result.out and "  Lr_5 train: (exit status" in result.out
    runs = []
    for n in range(1, 9):
        task = workdir / "out" / f"Lr_{n}"
        entry = read_json(task / "stat.json")["train"]
        assert entry["status"] == ("failed" if n == 5 else "done"), entry
        assert entry["gpus"] in ("0", "1"), entry
        assert (task / "cvd.txt").read_text().strip() == entry["gpus"]
        assert entry["slurm_node"] in ("n1", "n2") and entry["slurm_array_task_id"] == str(n - 1)
        log = (task / f"log.train.{read_json(task / 'param.json')['_datetime']}").read_text()
        assert "from-profile" in log  # the profile's env lines ran before the command
        runs.append((entry["slurm_node"], entry["gpus"], entry["start"], entry["end"]))
    # tasks that ran at the same time on one node never shared a GPU
    for i, (node, gpu, start, end) in enumerate(runs):
        for other in runs[i + 1:]:
            if other[0] == node and other[2] < end and start < other[3]:
                assert other[1] != gpu, runs
    assert len({(node, gpu) for node, gpu, _, _ in runs}) == 4  # every GPU of the cluster was used
    states = status(cli)
    assert states["Lr_5"]["state"] == "failed"
    assert sum(s["state"] == "done" for s in states.values()) == 7


def test_a_group_needing_two_gpus(make_config, cli, workdir):
    make_config(sweep("""
        template:
          train: echo "$CUDA_VISIBLE_DEVICES" > {_output}/cvd.txt
        ---
        lr: [1, 2]
        ---
        gpus_per_task: 2
        lr: [3]
    """))
    result = cli("-y", "params.yaml", "-o", "out", "--backend", "slurm", "--profile", "ci-gpu",
                 "--wait")
    assert result.code == 0, result
    assert "2 tasks, 1 GPU" in result.out and "1 task, 2 GPUs" in result.out
    assert (workdir / "out" / "Lr_1" / "cvd.txt").read_text().strip() in ("0", "1")
    two = workdir / "out" / "GpPeTask_2-Lr_3"
    assert (two / "cvd.txt").read_text().strip() == "0,1"
    assert read_json(two / "stat.json")["train"]["gpus"] == "0,1"


def test_cancel_while_running_then_resume_only_the_unfinished(make_config, cli, workdir,
                                                              accounting, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "7")  # exported by sbatch: must not reach tasks
    make_config(sweep(f"""
        template:
          train: test {{lr}} -le 2 || ({HOLD})
        ---
        lr: [1, 2, 3, 4, 5, 6]
    """))
    first = cli("-y", "params.yaml", "-o", "out", "--backend", "slurm", "--profile", "ci-cpu",
                "--max-parallel", "3")
    assert first.code == 0, first
    out = workdir / "out"

    def progress():  # by the files: the command has started, not just its SLURM job
        commands = [s["commands"]["train"]["status"] for s in status(cli).values()]
        return commands.count("done") == 2 and commands.count("running") == 3

    wait_for(progress, timeout=60, what="2 tasks done and 3 running")
    before = status(cli)
    assert [n for n, s in before.items() if s["state"] == "pending"] == ["Lr_6"]
    assert "JobArrayTaskLimit" in before["Lr_6"]["note"]
    done_at = {n: read_json(out / n / "stat.json")["train"]["start"] for n in ("Lr_1", "Lr_2")}
    assert read_json(out / "Lr_1" / "stat.json")["train"]["gpus"] == ""  # a cpu profile

    cancelled = cli("cancel", "-o", "out")
    assert cancelled.code == 0, cancelled
    assert "holding 4 tasks" in cancelled.out
    assert queue_of(jobs_of(out)) == ""
    after = status(cli)
    assert {n: s["state"] for n, s in after.items()} == {
        "Lr_1": "done", "Lr_2": "done", "Lr_3": "interrupted", "Lr_4": "interrupted",
        "Lr_5": "interrupted", "Lr_6": "interrupted"}
    if accounting:  # until its record arrives, accounting still has the element pending
        wait_for(lambda: "CANCELLED before the task ran" in status(cli)["Lr_6"]["note"],
                 timeout=30, what="accounting to record the cancel")
    else:
        assert "no accounting data" in after["Lr_6"]["note"]
    for name in ("Lr_3", "Lr_4", "Lr_5"):
        assert read_json(out / name / "stat.json")["train"]["status"] == "interrupted"

    (workdir / "release").write_text("")
    again = cli("-y", "params.yaml", "-o", "out", "--backend", "slurm", "--profile", "ci-cpu",
                "--wait")
    assert again.code == 0, again
    assert "commands: 4 to run, 2 skipped (done earlier" in again.out
    latest = sorted((out / ".slurm").iterdir())[-1]
    assert read_json(latest / "submission.json")["arrays"][0]["tasks"] == [
        "Lr_3", "Lr_4", "Lr_5", "Lr_6"]
    assert {s["state"] for s in status(cli).values()} == {"done"}
    assert {n: read_json(out / n / "stat.json")["train"]["start"] for n in done_at} == done_at


def test_ctrl_c_while_waiting_leaves_the_jobs_running(make_config, cli, workdir):
    make_config(sweep(f"""
        template:
          train: {HOLD}
        ---
        lr: [1]
    """))
    proc = run_process(["-y", "params.yaml", "-o", "out", "--backend", "slurm", "--profile",
                        "ci-cpu", "--wait"], workdir)
    wait_for(lambda: (read_json(workdir / "out" / "Lr_1" / "stat.json") or {}).get(
        "train", {}).get("status") == "running", timeout=60, what="the task to start")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, out + err
    assert "stopped waiting; the jobs go on" in out
    assert "RUNNING" in queue_of(jobs_of(workdir / "out"))
    (workdir / "release").write_text("")
    wait_for(lambda: status(cli)["Lr_1"]["state"] == "done", timeout=60, what="the task to end")


def test_states_without_a_database(make_config, cli, workdir, require_no_accounting):
    make_config(sweep(f"""
        template:
          train: test {{lr}} != 2 && (test {{lr}} -le 2 || ({HOLD}))
        ---
        lr: [1, 2, 3, 4]
    """))
    assert cli("-y", "params.yaml", "-o", "out", "--backend", "slurm", "--profile", "ci-cpu",
               "--max-parallel", "3").code == 0

    def settled():
        states = {n: s["commands"]["train"]["status"] for n, s in status(cli).items()}
        return states == {"Lr_1": "done", "Lr_2": "failed", "Lr_3": "running",
                          "Lr_4": "running"} and states
    wait_for(settled, timeout=60, what="done, failed and two running")
    assert cli("cancel", "-o", "out").code == 0
    states = status(cli)
    assert {n: s["state"] for n, s in states.items()} == {
        "Lr_1": "done", "Lr_2": "failed", "Lr_3": "interrupted", "Lr_4": "interrupted"}
    result = subprocess.run(["sacct", "-j", jobs_of(workdir / "out")[0]], capture_output=True,
                            text=True)
    assert "accounting storage is disabled" in result.stderr.lower()


def test_request_larger_than_any_node_is_refused(make_config, cli, workdir):
    make_config(sweep("""
        template:
          train: echo {lr}
        ---
        gpus_per_task: 3
        lr: [1, 2]
    """))
    before = set(os.listdir(workdir))

    def queued() -> set:
        return set(subprocess.run(["squeue", "-h", "-r", "-o", "%i"], capture_output=True,
                                  text=True).stdout.split())
    earlier = queued()
    result = cli("-y", "params.yaml", "-o", "out", "--backend", "slurm", "--profile", "ci-gpu")
    assert result.code == 2, result
    assert result.err.count("\n") == 1 and "Traceback" not in result.err
    assert "asks for 3 GPUs per task, but the largest node has 2" in result.err
    # sbatch itself judges what the runner does not check (memory here)
    make_config(sweep("""
        template:
          train: echo {lr}
        ---
        lr: [1, 2]
    """).replace("mem: 100", "mem: 999999"))
    result = cli("-y", "params.yaml", "-o", "out", "--backend", "slurm", "--profile", "ci-gpu")
    assert result.code == 2, result
    assert "sbatch refused the job" in result.err and "Requested node configuration" in result.err
    assert set(os.listdir(workdir)) == before
    assert queued() <= earlier  # other tests' jobs may have ended meanwhile; none is new


def test_launch_script_example_on_the_cluster(workdir, cli):
    shutil.copytree(ROOT / "configs", workdir / "configs")
    result = cli("launch-script", "--runs=3", "--profiles", "configs/config.json", "cluster-gpu",
                 "configs/dummytrain.py", "--steps=3")
    assert result.code == 0, result
    job = result.out.split("submitted job ")[1].split()[0]
    wait_for(lambda: queue_of([job]) == "", timeout=60, what=f"job {job} to end")
    outputs = sorted(workdir.glob(f"slurm-{job}_*.out"))
    assert len(outputs) == 3
    for path in outputs:
        text = path.read_text()
        assert "step 3/3" in text and "CUDA_VISIBLE_DEVICES=" in text, text


def test_example_sweep_runs_on_the_cluster(workdir, cli):
    shutil.copytree(ROOT / "configs", workdir / "configs")
    result = cli("-y", "configs/slurm-sweep.yaml", "-o", "out", "--backend", "slurm",
                 "--profile", "cluster", "--wait")
    assert result.code == 0, result
    assert "3 tasks, 1 GPU, time 00:10:00" in result.out
    assert "1 task, 2 GPUs, time 00:10:00" in result.out
    assert "summary: 4 done, 0 failed" in result.out
    again = cli("-y", "configs/slurm-sweep.yaml", "-o", "out", "--backend", "slurm",
                "--profile", "cluster")
    assert again.code == 0 and "nothing to submit: every selected command is done" in again.out


@needs_accounting
@pytest.mark.timeout(300)
def test_time_limit_is_reported_as_a_timeout(timed_out_sweep, cli, monkeypatch):
    directory, started = timed_out_sweep
    monkeypatch.chdir(directory)
    out = directory / "out"
    wait_for(lambda: queue_of(jobs_of(out)) == "", timeout=max(5.0, 200 - (
        time.monotonic() - started)), what="SLURM to end the job at its time limit")

    def reported():
        task = status(cli)["Lr_1"]
        return task if task["state"] == "timeout" else None
    task = wait_for(reported, timeout=30, what="sacct's TIMEOUT record")  # accounting lags
    assert task["commands"]["train"]["status"] == "timeout"
    assert "time limit" in task["commands"]["train"]["note"]
    assert "#SBATCH --time=00:01:00" in next((out / ".slurm").glob("*/array-0.sbatch")).read_text()


def test_a_task_timeout_is_enforced_on_the_node(make_config, cli, workdir):
    make_config(sweep("""
        template:
          train: echo started; sleep 300
        timeout: 1s
        ---
        lr: [1]
    """))
    result = cli("--backend", "slurm", "--profile", "ci-cpu", "--wait")
    assert result.code == 1, result
    entry = read_json(workdir / "output/Lr_1/stat.json")["train"]
    assert entry["status"] == "timeout" and entry["timeout"] == 1.0
    assert entry["duration"] < 60  # the executor stopped it, not SLURM's minute-long time limit
    assert "#SBATCH --time=00:01:00" in next(
        (workdir / "output/.slurm").glob("*/array-0.sbatch")).read_text()
