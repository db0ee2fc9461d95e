"""`--backend slurm`, `run status`, `run cancel` and `run launch-script` against fake SLURM
programs on PATH (they replay recorded outputs and log their arguments), so these run on any
machine. tests/test_slurm_cluster.py runs the same paths against a real SLURM."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from support import read_json, statuses

RECORDED = Path(__file__).parent / "slurm"

FAKES = {
    # sbatch: --test-only reads the script from stdin and may refuse it; otherwise hands out ids.
    "sbatch": """
        echo "$*" >> "$FAKE_SLURM/sbatch.log"
        if [ "$1" = --test-only ]; then
          cat > "$FAKE_SLURM/tested.sbatch"
          if [ -e "$FAKE_SLURM/refuse" ]; then
            echo "sbatch: error: $(cat "$FAKE_SLURM/refuse")" >&2; exit 1
          fi
          echo "sbatch: Job 1 to start at 2026-01-01T00:00:00 using 1 processors on nodes n1" >&2
          exit 0
        fi
        n=$(cat "$FAKE_SLURM/next" 2>/dev/null || echo 100)
        echo $((n + 1)) > "$FAKE_SLURM/next"
        echo "$n"
    """,
    "scontrol": """
        case "$*" in
          "show config") cat "$FAKE_SLURM/config" ;;
          "-o show nodes") cat "$FAKE_SLURM/nodes" ;;
          *) echo "scontrol: unexpected $*" >&2; exit 1 ;;
        esac
    """,
    "squeue": """
        echo "$*" >> "$FAKE_SLURM/squeue.log"
        cat "$FAKE_SLURM/squeue" 2>/dev/null || true
    """,
    "sacct": """
        echo "$*" >> "$FAKE_SLURM/sacct.log"
        if [ -e "$FAKE_SLURM/sacct" ]; then cat "$FAKE_SLURM/sacct"; exit 0; fi
        echo "Slurm accounting storage is disabled" >&2; exit 1
    """,
    "scancel": """
        echo "$*" >> "$FAKE_SLURM/scancel.log"
        rm -f "$FAKE_SLURM/squeue"
    """,
}

SWEEP = """
template:
  train: echo "lr={lr} cvd=$CUDA_VISIBLE_DEVICES" > {_output}/cvd.txt
profiles:
  ci-gpu:
    device: gpu
    host: ci
    env: export OMP_NUM_THREADS=1
    resources: {mem: 100, gres: "gpu:t4:1"}
  ci-cpu: {host: ci, device: cpu}
  here: {host: local}
---
lr: [1, 2, 3, 4, 5]
---
_title: big
gpus_per_task: 2
timeout: 90
lr: [6, 7]
"""


class FakeSlurm:
    def __init__(self, root: Path):
        self.root = root
        (root / "config").write_text((RECORDED / "scontrol_config.txt").read_text())
        (root / "nodes").write_text((RECORDED / "scontrol_nodes.txt").read_text())

    def log(self, program: str) -> list:
        path = self.root / f"{program}.log"
        return path.read_text().splitlines() if path.exists() else []

    def set(self, name: str, text: str) -> None:
        (self.root / name).write_text(text)

    def submitted(self) -> list:
        return [line for line in self.log("sbatch") if line.startswith("--parsable")]


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch) -> FakeSlurm:
    bin_dir = tmp_path / "fake-bin"
    state = tmp_path / "fake-slurm"
    bin_dir.mkdir()
    state.mkdir()
    for name, body in FAKES.items():
        path = bin_dir / name
        path.write_text("#!/bin/sh\n" + textwrap.dedent(body).lstrip())
        path.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SLURM", str(state))
    return FakeSlurm(state)


@pytest.fixture
def no_slurm(tmp_path, monkeypatch):
    """A PATH without any SLURM program."""
    bin_dir = tmp_path / "bare-bin"
    bin_dir.mkdir()
    for tool in ("sh", "bash", "cat", "echo", "test"):
        found = subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True,
                               text=True).stdout.strip()
        if found:
            os.symlink(found, bin_dir / tool)
    monkeypatch.setenv("PATH", str(bin_dir))


def one_line_error(result, *fragments):
    assert result.code == 2, result
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("run: error: "), result.err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_submit_writes_scripts_tables_and_job_ids(make_config, cli, fake_slurm, workdir):
    make_config(SWEEP)
    result = cli("-y", "params.yaml", "-o", "out", "--backend", "slurm", "--profile", "ci-gpu",
                 "--max-parallel", "2")
    assert result.code == 0, result
    assert "submitted job 100: 5 tasks, 1 GPU" in result.out
    assert "submitted job 101: 2 tasks, 2 GPUs, time 00:02:00" in result.out
    (submission,) = (workdir / "out" / ".slurm").iterdir()
    record = read_json(submission / "submission.json")
    assert [a["job_id"] for a in record["arrays"]] == ["100", "101"]
    assert record["arrays"][0]["tasks"] == ["Lr_1", "Lr_2", "Lr_3", "Lr_4", "Lr_5"]
    assert record["profile"]["name"] == "ci-gpu"
    script = (submission / "array-1.sbatch").read_text()
    assert "#SBATCH --array=0-1%2\n" in script
    assert "#SBATCH --gres=gpu:t4:2\n" in script
    assert "#SBATCH --time=00:02:00\n" in script
    assert "export OMP_NUM_THREADS=1\nexec " in script
    assert f"{sys.executable} -m runner exec-task {submission / 'tasks-1.json'}" in script
    assert fake_slurm.submitted() == [f"--parsable {submission / 'array-0.sbatch'}",
                                      f"--parsable {submission / 'array-1.sbatch'}"]
    table = read_json(submission / "tasks-1.json")
    assert [t["name"] for t in table["tasks"]] == ["GpPeTask_2-Timeout_90-Lr_6",
                                                   "GpPeTask_2-Timeout_90-Lr_7"]
    assert (workdir / "out" / "params.yaml").exists()  # the config copy, as for a local run
    assert statuses(workdir / "out") == {}  # nothing ran here
    assert "unset CUDA_VISIBLE_DEVICES" not in script


def test_a_cpu_profile_unsets_inherited_gpus(make_config, cli, fake_slurm, workdir):
    make_config(SWEEP.replace("lr: [1, 2, 3, 4, 5]", "_title: small\nlr: [1, 2, 3, 4, 5]"))
    assert cli("-y", "params.yaml", "-o", "out", "--backend", "slurm", "--profile", "ci-cpu",
               "-t", "small").code == 0
    (submission,) = (workdir / "out" / ".slurm").iterdir()
    script = (submission / "array-0.sbatch").read_text()
    assert "--gres" not in script
    assert script.splitlines()[-2].startswith("unset CUDA_VISIBLE_DEVICES")


def test_an_array_element_runs_its_task_like_a_local_worker(make_config, cli, fake_slurm,
                                                            workdir):
    """What a node runs: `exec-task TABLE` with SLURM's variables writes the task's files."""
    make_config(SWEEP)
    assert cli("-y", "params.yaml", "-o", "out", "--backend", "slurm", "--profile",
               "ci-gpu").code == 0
    (submission,) = (workdir / "out" / ".slurm").iterdir()
    env = dict(os.environ, SLURM_ARRAY_TASK_ID="2", SLURM_ARRAY_JOB_ID="100",
               SLURM_JOB_ID="103", SLURMD_NODENAME="n2", CUDA_VISIBLE_DEVICES="1")
    command = (submission / "array-0.sbatch").read_text().splitlines()[-1]
    assert command.startswith("exec ") and "exec-task" in command
    subprocess.run(["bash", "-c", command], cwd="/", env=env, check=True, capture_output=True)
    assert (workdir / "out" / "Lr_3" / "cvd.txt").read_text() == "lr=3 cvd=1\n"
    stat = read_json(workdir / "out" / "Lr_3" / "stat.json")["train"]
    assert stat["status"] == "done" and stat["gpus"] == "1"
    assert (stat["slurm_array_job_id"], stat["slurm_array_task_id"], stat["slurm_node"]) == (
        "100", "2", "n2")


def test_arrays_split_at_the_clusters_max_array_size(make_config, cli, fake_slurm, workdir):
    fake_slurm.set("config", "MaxArraySize            = 2\n")
    make_config(SWEEP)
    result = cli("-y", "params.yaml", "-o", "out", "--backend", "slurm", "--profile", "ci-gpu",
                 "-t", "big")
    assert result.code == 0, result
    make_config(SWEEP.replace("lr: [1, 2, 3, 4, 5]", "lr: [1, 2, 3, 4, 5]\n_title: small"))
    result = cli("-y", "params.yaml", "-o", "out2", "--backend", "slurm", "--profile", "ci-gpu",
                 "-t", "small")
    assert result.code == 0, result
    (submission,) = (workdir / "out2" / ".slurm").iterdir()
    record = read_json(submission / "submission.json")
    assert [len(a["tasks"]) for a in record["arrays"]] == [2, 2, 1]
    assert [json.loads((submission / a["table"]).read_text())["tasks"][0]["name"]
            for a in record["arrays"]] == ["Lr_1", "Lr_3", "Lr_5"]
    assert "#SBATCH --array=0\n" in (submission / "array-2.sbatch").read_text()


def test_resubmission_skips_done_and_queued_tasks(make_config, cli, fake_slurm, workdir):
    make_config(SWEEP)
    assert cli("-y", "params.yaml", "-o", "out", "--backend", "slurm", "--profile",
               "ci-gpu").code == 0
    # Lr_1 finished; Lr_2 (100_1) is still pending, 101 (2 GPUs) is running
    done = workdir / "out" / "Lr_1"
    done.mkdir()
    (done / "stat.json").write_text(json.dumps({"train": {"code": 0, "status": "done"}}))
    fake_slurm.set("squeue", "100|1|100_1|PENDING|Priority|\n101|0|101_0|RUNNING|None|n1\n"
                             "101|1|101_1|RUNNING|None|n2\n")
    result = cli("-y", "params.yaml", "-o", "out", "--backend", "slurm", "--profile", "ci-gpu")
    assert result.code == 0, result
    assert "already queued or running, not submitted again: 3 (100_1, 101_0, 101_1)" in result.out
    assert "submitted job 102: 3 tasks, 1 GPU" in result.out
    latest = sorted((workdir / "out" / ".slurm").iterdir())[-1]
    assert read_json(latest / "submission.json")["arrays"][0]["tasks"] == ["Lr_3", "Lr_4", "Lr_5"]


def test_status_merges_the_queue_and_falls_back_without_accounting(make_config, cli, fake_slurm,
                                                                   workdir):
    make_config(SWEEP)
    assert cli("-y", "params.yaml", "-o", "out", "--backend", "slurm", "--profile",
               "ci-gpu").code == 0
    task = workdir / "out" / "Lr_1"
    task.mkdir()
    (task / "stat.json").write_text(json.dumps({"train": {
        "code": 1, "status": "running", "host": "some-node", "slurm_array_job_id": "100",
        "slurm_array_task_id": "0"}}))
    fake_slurm.set("squeue", "100|1|100_1|PENDING|Priority|\n100|2|100_2|RUNNING|None|n1\n")
    result = cli("status", "-o", "out", "--json")
    assert result.code == 0, result
    tasks = {t["name"]: t for t in json.loads(result.out)["tasks"]}
    assert tasks["Lr_1"]["state"] == "interrupted"  # its job is gone; no accounting to say why
    assert tasks["Lr_2"]["state"] == "pending"
    assert tasks["Lr_2"]["note"] == "SLURM job 100_1 PENDING (Priority)"
    assert tasks["Lr_3"]["state"] == "running"
    assert tasks["Lr_4"]["state"] == "interrupted" and "no accounting data" in tasks["Lr_4"]["note"]
    assert "--allocations" in fake_slurm.log("sacct")[0]
    # with accounting: the job that left Lr_1 running hit its time limit; 100_3 was cancelled
    fake_slurm.set("sacct", "100_0|TIMEOUT|0:0|n1\n100_3|CANCELLED by 0|0:0|None assigned\n"
                            "100_4|PENDING|0:0|None assigned\n")
    table = cli("status", "-o", "out")
    assert table.code == 1  # a task timed out
    rows = {line.split()[0]: line for line in table.out.splitlines()[1:-1]}
    assert rows["Lr_1"].split()[1] == "timeout"
    assert rows["Lr_4"].split()[1] == "interrupted" and "CANCELLED before the task ran" in rows[
        "Lr_4"]
    assert "no final record yet" in rows["Lr_5"]  # accounting lags: still says PENDING
    assert table.out.splitlines()[0].split()[-1] == "NOTE"


def test_status_without_slurm_commands_shows_the_files(make_config, cli, fake_slurm, workdir,
                                                       monkeypatch):
    make_config(SWEEP)
    assert cli("-y", "params.yaml", "-o", "out", "--backend", "slurm", "--profile",
               "ci-gpu").code == 0
    monkeypatch.setenv("PATH", "/nonexistent")
    result = cli("status", "-o", "out", "--json")
    assert result.code == 0, result
    tasks = json.loads(result.out)["tasks"]
    assert {t["state"] for t in tasks} == {"pending"}
    assert "SLURM not reachable" in tasks[0]["note"]


def test_cancel_scancels_the_queued_jobs(make_config, cli, fake_slurm):
    make_config(SWEEP)
    assert cli("-y", "params.yaml", "-o", "out", "--backend", "slurm", "--profile",
               "ci-gpu").code == 0
    fake_slurm.set("squeue", "101|0|101_0|RUNNING|None|n1\n101|1|101_1|PENDING|Priority|\n")
    result = cli("cancel", "-o", "out")
    assert result.code == 0, result
    assert fake_slurm.log("scancel") == ["101"]
    assert "cancelled 1 SLURM job (101) holding 2 tasks" in result.out
    again = cli("cancel", "-o", "out")
    assert again.code == 0 and "nothing to cancel" in again.out
    assert fake_slurm.log("scancel") == ["101"]


def test_cancel_errors(make_config, cli, fake_slurm, workdir):
    one_line_error(cli("cancel", "-o", "nowhere"), "no such output directory")
    (workdir / "plain").mkdir()
    result = cli("cancel", "-o", "plain")
    assert result.code == 0 and "nothing to cancel" in result.out
    make_config(SWEEP)
    assert cli("-y", "params.yaml", "-o", "out", "--backend", "slurm", "--profile",
               "ci-gpu").code == 0
    one_line_error(cli("cancel", "-o", "out", "--submission", "nope"), "no such submission")


def test_refused_request_submits_and_writes_nothing(make_config, cli, fake_slurm, workdir):
    make_config(SWEEP.replace("gpus_per_task: 2", "gpus_per_task: 3"))
    before = set(os.listdir(workdir))
    result = cli("-y", "params.yaml", "-o", "out", "--backend", "slurm", "--profile", "ci-gpu")
    one_line_error(result, "2 tasks", "asks for 3 GPUs per task, but the largest node has 2",
                   "nothing was submitted")
    assert set(os.listdir(workdir)) == before and fake_slurm.submitted() == []
    make_config(SWEEP)
    fake_slurm.set("refuse", "Memory specification can not be satisfied")
    result = cli("-y", "params.yaml", "-o", "out", "--backend", "slurm", "--profile", "ci-gpu")
    one_line_error(result, "sbatch refused the job: Memory specification can not be satisfied",
                   "nothing was submitted")
    assert set(os.listdir(workdir)) == before and fake_slurm.submitted() == []


@pytest.mark.parametrize("argv, fragments", [
    (["--wait"], ["--wait is for a cluster", "--backend slurm"]),
    (["--profile", "here", "--wait"], ["--wait is for a cluster", "profile 'here' runs here"]),
    (["--backend", "slurm", "-d"], ["-d runs tasks here"]),
    (["--backend", "slurm", "-r", "0"], ["-r runs tasks here"]),
    (["--backend", "slurm", "--max-parallel", "0"], ["--max-parallel 0"]),
    (["--backend", "slurm", "--profile", "ci-gpux"],
     ["unknown profile (did you mean 'ci-gpu'?)", "'ci-cpu'", "params.yaml, document 0"]),
    (["--backend", "slurm", "--profile", "here"], ["host 'local'", "cluster profile"]),
    (["--backend", "slurm", "--profile", "ci-cpu", "-t", "big"], ["cpu profile"]),
    (["--backend", "slurm", "--profile", "ci-gpu", "--profiles", "nope.json"],
     ["--profiles nope.json: no such file"]),
])
def test_bad_backend_input(make_config, cli, fake_slurm, workdir, argv, fragments):
    make_config(SWEEP)
    before = set(os.listdir(workdir))
    one_line_error(cli("-y", "params.yaml", "-o", "out", *argv), *fragments)
    assert set(os.listdir(workdir)) == before and fake_slurm.submitted() == []


def test_without_sbatch_a_clear_error_but_dry_run_works(make_config, cli, no_slurm, workdir):
    make_config(SWEEP)
    before = set(os.listdir(workdir))
    one_line_error(cli("-y", "params.yaml", "-o", "out", "--backend", "slurm", "--profile",
                       "ci-gpu"), "sbatch: not found on PATH", "--dry-run")
    result = cli("-y", "params.yaml", "-o", "out", "--backend", "slurm", "--profile", "ci-gpu",
                 "--dry-run")
    assert result.code == 0, result
    assert "would submit array: 5 tasks, 1 GPU" in result.out
    assert "#SBATCH --gres=gpu:t4:2" in result.out and "note: cannot ask the cluster" in result.out
    assert set(os.listdir(workdir)) == before


def test_launch_script_submits_an_array(workdir, cli, fake_slurm):
    (workdir / "config.json").write_text(json.dumps({"remote": {
        "host": "ci", "device": "gpu", "env": "export A=1", "resources": {"gres": "gpu:1"}}}))
    result = cli("launch-script", "--runs", "3", "remote", "train.py", "--lr=0.01")
    assert result.code == 0, result
    assert "submitted job 100 to ci (3 runs: array 100_[0-2])" in result.out
    (script,) = (workdir / ".runner" / "launch").iterdir()
    text = script.read_text()
    assert "#SBATCH --array=0-2\n" in text and text.endswith("export A=1\npython3 train.py "
                                                             "--lr=0.01\n")
    kept = os.path.join(".runner", "launch", script.name)
    assert fake_slurm.submitted() == [f"--parsable {kept}"]


def test_launch_script_cluster_profile_without_sbatch(workdir, cli, no_slurm):
    (workdir / "config.json").write_text(json.dumps({"remote": {"host": "ci"}}))
    one_line_error(cli("launch-script", "remote", "train.py"), "sbatch is not on PATH",
                   "--dry-run")
    dry = cli("launch-script", "--dry-run", "remote", "train.py")
    assert dry.code == 0 and dry.out.startswith("#!/bin/bash\n")
