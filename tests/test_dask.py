"""The dask engine without a cluster: what workers offer and tasks ask for, worker names, the
options and profile keys that choose it, and the one-line errors for what cannot work."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from runner.backends.dask.needs import (GPU, GPU_MEMORY, SLOT, SLOT_SHARES, check_fits,
                                        make_worker_specs, task_resources)
from runner.errors import ResourceError
from runner.spec.profiles import parse_profile
from runner.task import Slot, Task

GIB = 2 ** 30


def task(name="t", **settings):
    return Task(name, {}, {"work": "true"}, settings=settings)


def test_one_worker_per_slot_named_after_the_host_and_its_gpus():
    slots = [Slot(0, ("0",)), Slot(1, ("2", "3")), Slot(2, ()), Slot(3, ())]
    specs = make_worker_specs(slots, "box", taken=[])
    assert [s.name for s in specs] == ["box/gpu-0", "box/gpu-2,3", "box/cpu-0", "box/cpu-1"]
    assert [s.env["CUDA_VISIBLE_DEVICES"] for s in specs] == ["0", "2,3", "", ""]
    assert all(s.env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID" for s in specs)
    assert [s.env["RUNNER_WORKER_SLOT"] for s in specs] == ["0", "1", "2", "3"]
    assert [s.resources for s in specs] == [{SLOT: SLOT_SHARES, GPU: 1},
                                            {SLOT: SLOT_SHARES, GPU: 2},
                                            {SLOT: SLOT_SHARES}, {SLOT: SLOT_SHARES}]
    assert [s.nthreads for s in specs] == [1, 1, 1, 1]


def test_names_stay_unique_beside_other_run_workers_of_the_host():
    taken = ["box/gpu-0", "box/gpu-0#2", "box/cpu-0", "other/cpu-1"]
    specs = make_worker_specs([Slot(0, ("0",)), Slot(1, ("0",)), Slot(2, ()), Slot(3, ())],
                              "box", taken)
    assert [s.name for s in specs] == ["box/gpu-0#3", "box/gpu-0#4", "box/cpu-1", "box/cpu-2"]


def test_gpu_memory_lets_tasks_share_a_gpu_slot():
    specs = make_worker_specs([Slot(0, ("0",)), Slot(1, ())], "box", [], gpu_memory=40 * GIB)
    assert specs[0].resources == {SLOT: SLOT_SHARES, GPU: 1, GPU_MEMORY: 40 * GIB}
    assert specs[0].nthreads == SLOT_SHARES
    assert specs[1].resources == {SLOT: SLOT_SHARES} and specs[1].nthreads == 1  # no GPU
    assert task_resources(task(gpu_memory=10 * GIB)) == {SLOT: 1, GPU_MEMORY: 10 * GIB}
    assert task_resources(task()) == {SLOT: SLOT_SHARES}  # the whole slot, as locally
    assert task_resources(task(gpus_per_task=2)) == {SLOT: SLOT_SHARES, GPU: 2}
    with pytest.raises(ResourceError, match="gpus_per_task 2 with gpu_memory on the dask"):
        task_resources(task(gpus_per_task=2, gpu_memory=GIB))


def test_check_fits_names_the_task_and_what_the_workers_offer():
    workers = {"box/gpu-0": {SLOT: SLOT_SHARES, GPU: 1},
               "box/cpu-0": {SLOT: SLOT_SHARES}, "tcp://1.2.3.4:5": {}}
    assert check_fits([task("a"), task("b", gpus_per_task=1)], workers, "tcp://s:1") == {
        "a": {SLOT: SLOT_SHARES}, "b": {SLOT: SLOT_SHARES, GPU: 1}}
    with pytest.raises(ResourceError) as info:
        check_fits([task("a"), task("big", gpu_memory=30 * GIB)], workers, "tcp://s:1")
    assert str(info.value) == (
        "task big needs 30.0 GiB of GPU memory, which no worker of tcp://s:1 offers; the "
        "workers are box/cpu-0 (no GPU), box/gpu-0 (1 GPU), tcp://1.2.3.4:5 (not a worker of "
        "run worker: no SLOT resource); start a worker that offers it (run worker --gpu-memory "
        "SIZE) or change the task's settings (nothing was submitted)")


def test_a_profile_names_its_dask_scheduler():
    profile = parse_profile("lab", {"scheduler": "tcp://head:8786"}, "profiles.yaml")
    assert (profile.engine, profile.scheduler, profile.host) == ("dask", "tcp://head:8786",
                                                                 "local")
    explicit = parse_profile("lab", {"engine": "dask", "host": "local"}, "p.yaml")
    assert explicit.engine == "dask" and explicit.scheduler is None
    assert parse_profile("c", {"host": "cluster"}, "p.yaml").engine == "slurm"
    for bad in ("", "tcp://a b:1", 8786):
        with pytest.raises(Exception, match="key 'scheduler': expected the address of a dask"):
            parse_profile("lab", {"scheduler": bad}, "p.yaml")


SWEEP = "template:\n  work: 'true'\n---\ni: [1]\n"


@pytest.mark.parametrize("argv, message", [
    (["--scheduler", "tcp://h:1"], "--scheduler is for the dask engine: add --backend dask"),
    (["--detach"], "--detach is for the dask engine: add --backend dask"),
    (["--backend", "slurm", "--detach"], "--detach is for the dask engine"),
    (["--backend", "dask", "--scheduler", "tcp://h:1", "-r", "0"],
     "-r runs tasks here; it cannot go with the dask engine"),
    (["--backend", "dask", "--scheduler", "tcp://h:1", "--wait"],
     "--wait is for the slurm engine: the dask engine follows its tasks to the end unless "
     "--detach"),
    (["--backend", "dask", "--scheduler", "tcp://h:1", "--detach", "--max-parallel", "2"],
     "--max-parallel needs the submitting run to stay"),
    (["--backend", "dask", "--scheduler", "head"],
     "scheduler 'head': expected an address such as tcp://head:8786"),
    (["--backend", "dask"], "the dask engine needs its scheduler's address: --scheduler"),
])
def test_options_that_cannot_work_are_one_line_and_write_nothing(cli, make_config, workdir,
                                                                  monkeypatch, argv, message):
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    make_config(SWEEP)
    result = cli("-y", "params.yaml", "-o", "out", *argv)
    assert result.code == 2, result
    assert result.err.startswith("run: error: " + message) and result.err.count("\n") == 1
    assert not (workdir / "out").exists()


def test_the_scheduler_from_the_environment_and_dry_run(cli, make_config, monkeypatch):
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", "tcp://head:8786")
    make_config(SWEEP + "---\ni: 2\ngpus_per_task: 2\n")
    result = cli("-y", "params.yaml", "-o", "out", "--backend", "dask", "--dry-run")
    assert result.code == 0, result
    assert "would submit 2 tasks to the dask scheduler at tcp://head:8786" in result.out
    assert "  I_2-GpPeTask_2: 2 GPUs" in result.out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("argv", [["-y", "params.yaml", "-o", "out", "--backend", "dask"],
                                  ["worker", "-r", "0"]])
def test_a_scheduler_that_does_not_answer_is_one_line(make_config, workdir, argv):
    pytest.importorskip("distributed")
    make_config(SWEEP)
    address = f"tcp://127.0.0.1:{free_port()}"
    env = {"DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "1s"}
    done = subprocess.run([sys.executable, "-m", "runner", *argv, "--scheduler", address],
                          capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, **env))
    assert done.returncode == 2, done
    assert done.stderr.startswith(f"run: error: cannot reach the dask scheduler at {address} (")
    assert done.stderr.count("\n") == 1
    assert not (workdir / "out").exists()


@pytest.mark.parametrize("argv, message", [
    (["worker", "-r", "0"], "no scheduler: pass --scheduler tcp://HOST:8786"),
    (["worker", "--scheduler", "tcp://h:1", "--gpu-memory", "lots"],
     "--gpu-memory: 'lots' is not a memory size"),
    (["worker", "--scheduler", "tcp://h:1", "-r", "x"], "-r: 'x' is not a GPU index"),
    (["worker", "--scheduler", "h", "-r", "0"], "scheduler 'h': expected an address"),
])
def test_run_worker_bad_input(cli, monkeypatch, argv, message):
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    monkeypatch.delenv("RUNNER_FAKE_GPUS", raising=False)
    result = cli(*argv)
    assert result.code == 2, result
    assert result.err.startswith("run: error: " + message) and result.err.count("\n") == 1


def test_a_profile_chooses_the_dask_engine_and_its_scheduler(cli, make_config, monkeypatch):
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    make_config("template:\n  work: 'true'\nprofiles:\n  lab: {scheduler: 'tcp://lab:8786'}\n"
                "---\ni: [1, 2]\n")
    result = cli("-y", "params.yaml", "-o", "out", "--profile", "lab", "--dry-run")
    assert result.code == 0, result
    assert result.out.splitlines()[0].endswith("(dask, profile lab)")
    assert "would submit 2 tasks to the dask scheduler at tcp://lab:8786" in result.out
    override = cli("-y", "params.yaml", "-o", "out", "--profile", "lab", "--dry-run",
                   "--scheduler", "tcp://other:1")
    assert "would submit 2 tasks to the dask scheduler at tcp://other:1" in override.out


def test_run_worker_refuses_gpus_the_machine_does_not_have(cli, workdir, monkeypatch):
    fake = workdir / "gpus.json"
    fake.write_text('{"gpus": [{"name": "Fake A100", "memory": "40GiB"}, '
                    '{"name": "Fake H100", "memory": "80GiB"}]}')
    monkeypatch.setenv("RUNNER_FAKE_GPUS", str(fake))
    result = cli("worker", "--scheduler", "tcp://h:1", "-r", "0", "1,5", "7")
    assert result.code == 2, result
    assert result.err == (f"run: error: -r: GPU 5, 7 is not on this machine; fake GPUs from "
                          f"{fake} reports 0 (Fake A100), 1 (Fake H100)\n")
