"""The GPU query interface (fake and NVML), `resource: auto`, `gpus_per_task` and `run gpus`."""

from __future__ import annotations

import json
import os
import signal
import sys
import types
from pathlib import Path

import pytest

from support import processes_in_group, read_json, run_process, wait_for
from runner.errors import ResourceError
from runner.gpu.fake import FakeGpu, FakeGpus
from runner.gpu import open_gpus
from runner.gpu.query import FAKE_GPUS_ENV, GpuUnavailable, NvmlGpus, format_bytes

GIB = 2 ** 30


@pytest.fixture
def fake_gpus(workdir, monkeypatch):
    """fake_gpus(spec) -> path: a fake GPU machine the runner (and its children) will see."""

    def make(spec) -> Path:
        path = workdir / "gpus.json"
        path.write_text(json.dumps(spec))
        monkeypatch.setenv(FAKE_GPUS_ENV, str(path))
        return path

    return make


def nvml_works() -> bool:
    try:
        NvmlGpus().close()
        return True
    except GpuUnavailable:
        return False


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


# -- the fake ---------------------------------------------------------------------------------


def test_fake_scripts_memory_utilisation_and_processes_over_time(tmp_path):
    clock = Clock()
    gone = tmp_path / "gone"
    spec = {"gpus": [{"name": "Fake A", "memory": "24GiB", "used": "1GiB", "utilization": 10,
                      "busy": [{"percent": 90, "from": 5, "until": 10}],
                      "processes": [{"pid": 77, "memory": "8GiB", "until": 20},
                                    {"pid": 78, "memory": "2GiB", "until_file": "gone"},
                                    {"pid": 79, "memory": "4GiB", "after_file": "gone"}]}]}
    path = tmp_path / "gpus.json"
    path.write_text(json.dumps(spec))
    gpus = FakeGpus.load(str(path), clock=clock)
    [device] = gpus.devices()
    assert (device.index, device.name, device.memory_total) == (0, "Fake A", 24 * GIB)
    assert device.uuid.startswith("GPU-")

    now = gpus.read(0)
    assert [p.pid for p in now.processes] == [77, 78]
    assert now.memory_used == 11 * GIB and now.memory_free == 13 * GIB
    assert now.utilization == 10
    clock.now += 6
    assert gpus.read(0).utilization == 90
    gone.write_text("")
    clock.now += 15
    later = gpus.read(0)
    assert [p.pid for p in later.processes] == [79]
    assert later.memory_free == 19 * GIB and later.utilization == 10


def test_a_test_can_change_the_fake_while_it_runs():
    gpus = FakeGpus([FakeGpu("Fake", 16 * GIB)])
    proc = gpus.add_process(0, pid=5, memory=6 * GIB)
    assert gpus.read(0).memory_free == 10 * GIB
    gpus.remove_process(0, proc)
    gpus.set_busy(0, 55)
    assert gpus.read(0).memory_free == 16 * GIB and gpus.read(0).utilization == 55


def test_a_fake_process_can_take_its_pid_from_a_file(tmp_path):
    (tmp_path / "pid").write_text(f"{os.getpid()}\n")
    path = tmp_path / "gpus.json"
    path.write_text(json.dumps({"gpus": [{"memory": "8GiB", "processes": [
        {"pid_file": "pid", "memory": "1GiB"}, {"pid_file": "missing", "memory": "1GiB"}]}]}))
    assert [p.pid for p in FakeGpus.load(str(path)).read(0).processes] == [os.getpid()]


@pytest.mark.parametrize("text, message", [
    ("{", "cannot read the fake GPUs"),
    ('{"gpus": 3}', "expected an object with 'gpus'"),
    ('{"gpus": [{"name": "x"}]}', "gpus\\[0\\]: expected an object with at least 'memory'"),
    ('{"gpus": [{"memory": "lots"}]}', "'lots' is not a memory size"),
    ('{"gpus": [{"memory": "8GiB", "colour": 1}]}', "unknown keys \\['colour'\\]"),
])
def test_a_bad_fake_file_is_one_clear_error(tmp_path, text, message):
    path = tmp_path / "gpus.json"
    path.write_text(text)
    with pytest.raises(ResourceError, match=message):
        open_gpus({FAKE_GPUS_ENV: str(path)})


def test_format_bytes():
    assert format_bytes(10 * GIB) == "10.0 GiB"
    assert format_bytes(3.25 * GIB) == "3.2 GiB"
    assert format_bytes(512 * 2 ** 20) == "512 MiB"
    assert format_bytes(None) == "?"


# -- NVML -------------------------------------------------------------------------------------


def test_without_a_driver_nvml_says_so():
    pytest.importorskip("pynvml", reason="nvidia-ml-py is part of the test extra")
    if nvml_works():
        pytest.skip("this machine has a working NVIDIA driver")
    with pytest.raises(GpuUnavailable, match="NVML is not available: .*driver"):
        NvmlGpus()


def test_without_the_module_nvml_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml raises ImportError
    with pytest.raises(GpuUnavailable, match=r"pip install '\.\[gpu\]' in a clone"):
        NvmlGpus()


def make_pynvml(gpus, fail_init=None, no_util=()):
    """A stand-in for the `pynvml` module with the calls and errors NvmlGpus uses."""
    nvml = types.ModuleType("pynvml")

    class NVMLError(Exception):
        def __init__(self, value):
            self.value = value

        def __str__(self):
            return {3: "Not Supported", 12: "NVML Shared Library Not Found"}.get(self.value, "?")

    nvml.NVMLError = NVMLError
    nvml.NVML_ERROR_NOT_SUPPORTED = 3
    nvml.NVML_ERROR_DRIVER_NOT_LOADED = 9
    nvml.NVML_ERROR_LIBRARY_NOT_FOUND = 12
    nvml.NVML_ERROR_NO_PERMISSION = 4
    nvml.calls = []

    def init():
        nvml.calls.append("init")
        if fail_init:
            raise NVMLError(fail_init)

    nvml.nvmlInit = init
    nvml.nvmlShutdown = lambda: nvml.calls.append("shutdown")
    nvml.nvmlDeviceGetCount = lambda: len(gpus)
    nvml.nvmlDeviceGetHandleByIndex = lambda i: ("handle", i)
    nvml.nvmlDeviceGetUUID = lambda h: gpus[h[1]]["uuid"]
    nvml.nvmlDeviceGetName = lambda h: gpus[h[1]]["name"]
    nvml.nvmlDeviceGetPciInfo = lambda h: types.SimpleNamespace(busId=b"00000000:3B:00.0")

    def memory(h):
        g = gpus[h[1]]
        return types.SimpleNamespace(total=g["total"], used=g["used"],
                                     free=g["total"] - g["used"])

    def utilization(h):
        if h[1] in no_util:
            raise NVMLError(3)
        return types.SimpleNamespace(gpu=gpus[h[1]]["util"], memory=0)

    def processes(kind):
        def get(h):
            nvml.calls.append(kind)
            return [types.SimpleNamespace(pid=pid, usedGpuMemory=mem)
                    for pid, mem in gpus[h[1]].get(kind, [])]
        return get

    nvml.nvmlDeviceGetMemoryInfo = memory
    nvml.nvmlDeviceGetUtilizationRates = utilization
    nvml.nvmlDeviceGetComputeRunningProcesses = processes("compute")
    nvml.nvmlDeviceGetGraphicsRunningProcesses = processes("graphics")
    return nvml


def test_nvml_answers_are_read_into_devices_and_readings(monkeypatch):
    nvml = make_pynvml([
        {"uuid": b"GPU-aaaa", "name": b"NVIDIA A100-SXM4-80GB", "total": 80 * GIB,
         "used": 20 * GIB, "util": 37, "compute": [(11, 12 * GIB), (12, None)],
         "graphics": [(11, 12 * GIB), (13, 2 * GIB)]},
        {"uuid": "GPU-bbbb", "name": "NVIDIA A100-SXM4-80GB", "total": 80 * GIB, "used": 0,
         "util": 0}], no_util=(1,))
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    gpus = NvmlGpus()
    assert [(d.index, d.uuid, d.name, d.memory_total) for d in gpus.devices()] == [
        (0, "GPU-aaaa", "NVIDIA A100-SXM4-80GB", 80 * GIB),
        (1, "GPU-bbbb", "NVIDIA A100-SXM4-80GB", 80 * GIB)]
    nvml.calls.clear()
    first = gpus.read(0)
    assert nvml.calls[0] == "compute"  # processes are read before memory
    assert (first.memory_free, first.memory_used, first.utilization) == (60 * GIB, 20 * GIB, 37)
    assert [(p.pid, p.memory) for p in first.processes] == [(11, 12 * GIB), (12, None),
                                                            (13, 2 * GIB)]
    assert gpus.read(1).utilization is None  # not supported: unknown, not 0
    gpus.close()
    gpus.close()
    assert nvml.calls.count("shutdown") == 1


def test_nvml_failing_to_start_is_unavailable(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", make_pynvml([], fail_init=12))
    with pytest.raises(GpuUnavailable, match="libnvidia-ml.so.1 was not found"):
        NvmlGpus()


# -- resource: auto ---------------------------------------------------------------------------

PROBE = """
template:
  probe: echo "[$CUDA_VISIBLE_DEVICES]" > {_output}/gpu
resource: auto
---
i: [1, 2, 3, 4]
"""


def seen_gpus(workdir, count=4):
    return [(workdir / f"output/I_{i}/gpu").read_text().strip() for i in range(1, count + 1)]


def test_auto_makes_one_slot_per_gpu_and_records_them(make_config, cli, workdir, fake_gpus):
    fake_gpus({"gpus": [{"name": "Fake A100", "memory": "40GiB", "uuid": "GPU-1111"},
                        {"name": "Fake A100", "memory": "40GiB", "uuid": "GPU-2222"}]})
    make_config(PROBE)
    result = cli()
    assert result.code == 0, result.err
    assert "slots: 2 (0: GPU 0, 1: GPU 1)" in result.out
    assert set(seen_gpus(workdir)) == {"[0]", "[1]"}
    entry = read_json(workdir / "output/I_1/stat.json")["probe"]
    [device] = entry["gpu_devices"]
    uuid = "GPU-1111" if entry["gpus"] == "0" else "GPU-2222"
    assert device == {"index": int(entry["gpus"]), "uuid": uuid, "name": "Fake A100",
                      "memory_total": 40 * GIB}


def test_minus_r_auto_replaces_the_resource(make_config, cli, workdir, fake_gpus):
    fake_gpus({"gpus": [{"memory": "8GiB"}, {"memory": "8GiB"}, {"memory": "8GiB"}]})
    make_config(PROBE.replace("resource: auto", "resource: [0]"))
    result = cli("-r", "auto")
    assert result.code == 0 and "slots: 3 (0: GPU 0, 1: GPU 1, 2: GPU 2)" in result.out


def test_auto_draws_from_the_runners_own_cuda_visible_devices(make_config, cli, workdir, fake_gpus,
                                                             monkeypatch):
    fake_gpus({"gpus": [{"memory": "8GiB"}] * 4})
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,1")
    make_config(PROBE)
    result = cli()
    assert result.code == 0 and "slots: 2 (0: GPU 3, 1: GPU 1)" in result.out
    assert set(seen_gpus(workdir)) == {"[3]", "[1]"}


def test_auto_without_gpus_falls_back_to_cpu_slots_once(make_config, cli, workdir, fake_gpus):
    fake_gpus({"gpus": []})
    make_config(PROBE)
    result = cli()
    assert result.code == 0
    cpus = len(os.sched_getaffinity(0))
    assert result.out.count("note: resource auto:") == 1
    assert (f"note: resource auto: fake GPUs from {Path('gpus.json').resolve()} reports no GPU; "
            f"running {cpus} tasks at a time without a GPU (CUDA_VISIBLE_DEVICES='')"
            in result.out.replace(str(workdir / "gpus.json"), str(Path("gpus.json").resolve())))
    assert f"slots: {cpus} (0: no GPU" in result.out
    assert set(seen_gpus(workdir)) == {"[]"}


def test_auto_without_nvml_falls_back_with_the_reason(make_config, cli, workdir, monkeypatch):
    monkeypatch.delenv(FAKE_GPUS_ENV, raising=False)
    if nvml_works():
        pytest.skip("this machine has a working NVIDIA driver (see test_gpu_nvml.py)")
    make_config(PROBE.replace("resource: auto", "resource: auto\ngpu_memory: 1GiB"))
    result = cli()
    assert result.code == 0, result.err
    [note] = [line for line in result.out.splitlines() if line.startswith("note: resource auto")]
    assert "NVML is not available" in note and "without a GPU (CUDA_VISIBLE_DEVICES='')" in note
    assert note.endswith("gpu_memory not applied")
    assert set(seen_gpus(workdir)) == {"[]"}


def test_explicit_indices_work_as_before_without_nvml(make_config, cli, workdir, monkeypatch):
    monkeypatch.delenv(FAKE_GPUS_ENV, raising=False)
    monkeypatch.setitem(sys.modules, "pynvml", None)
    make_config(PROBE.replace("resource: auto", "resource: [2, '0,1']"))
    result = cli()
    assert result.code == 0 and "note:" not in result.out
    assert sorted(set(seen_gpus(workdir))) == ["[0,1]", "[2]"]
    assert "gpu_devices" not in read_json(workdir / "output/I_1/stat.json")["probe"]


def test_plain_slots_record_their_gpus_when_nvml_knows_them(make_config, cli, workdir, fake_gpus):
    fake_gpus({"gpus": [{"name": "Fake V100", "memory": "16GiB", "uuid": "GPU-aaaa"},
                        {"name": "Fake V100", "memory": "16GiB", "uuid": "GPU-bbbb"}]})
    make_config(PROBE.replace("resource: auto", "resource: ['1', GPU-aaaa]"))
    result = cli()
    assert result.code == 0 and "slots: 2 (0: GPU 1, 1: GPU GPU-aaaa)" in result.out
    recorded = {read_json(p)["probe"]["gpus"]: read_json(p)["probe"]["gpu_devices"]
                for p in workdir.glob("output/*/stat.json")}
    assert recorded == {"1": [{"index": 1, "uuid": "GPU-bbbb", "name": "Fake V100",
                               "memory_total": 16 * GIB}],
                        "GPU-aaaa": [{"index": 0, "uuid": "GPU-aaaa", "name": "Fake V100",
                                      "memory_total": 16 * GIB}]}


def test_slots_without_gpus_never_ask_nvml(make_config, cli, workdir, monkeypatch):
    def refuse():
        raise AssertionError("NVML was asked")

    monkeypatch.setattr("runner.gpu.resources.open_gpus", refuse)
    make_config(PROBE.replace("resource: auto", "resource: ['', '']"))
    assert cli().code == 0
    make_config(PROBE.replace("resource: auto\n", ""))
    assert cli("-f").code == 0


def test_gpus_per_task_makes_slots_of_k_gpus(make_config, cli, workdir, fake_gpus):
    fake_gpus({"gpus": [{"memory": "8GiB"}] * 5})
    make_config(PROBE.replace("resource: auto", "resource: auto\ngpus_per_task: 2"))
    result = cli()
    assert result.code == 0
    assert "slots: 2 (0: GPU 0,1, 1: GPU 2,3)" in result.out
    assert "note: GPU 4 unused: 5 GPUs do not divide into groups of 2" in result.out
    assert set(seen_gpus(workdir)) == {"[0,1]", "[2,3]"}
    entry = read_json(workdir / "output/I_1/stat.json")["probe"]
    assert [d["index"] for d in entry["gpu_devices"]] in ([0, 1], [2, 3])


def test_gpus_per_task_per_document_is_admitted_from_the_pool(make_config, cli, workdir, fake_gpus):
    fake_gpus({"gpus": [{"memory": "8GiB"}] * 3})
    make_config("""
        template:
          probe: echo "[$CUDA_VISIBLE_DEVICES]" > {_output}/gpu
        resource: auto
        ---
        i: [1, 2]
        ---
        i: [3, 4]
        gpus_per_task: 3
    """)
    result = cli()
    assert result.code == 0, result.out + result.err
    assert "GPU pool: 0 (Fake GPU, 8.0 GiB), 1 (Fake GPU, 8.0 GiB), 2 (Fake GPU, 8.0 GiB); " \
           "each task starts in order where it fits (by count)" in result.out
    gpus = {p.parent.name: p.read_text().strip() for p in workdir.glob("output/*/gpu")}
    assert gpus["I_1"] in ("[0]", "[1]", "[2]") and gpus["I_2"] in ("[0]", "[1]", "[2]")
    assert gpus["I_3-GpPeTask_3"] == gpus["I_4-GpPeTask_3"] == "[0,1,2]"


def test_more_gpus_per_task_than_gpus_is_an_error_before_anything_runs(make_config, cli, workdir,
                                                                      fake_gpus):
    fake_gpus({"gpus": [{"memory": "8GiB"}] * 2})
    make_config(PROBE.replace("resource: auto", "resource: auto\ngpus_per_task: 3"))
    result = cli()
    assert result.code == 2 and result.out == ""
    assert result.err.startswith("run: error: gpus_per_task is 3, but the pool has 2 GPUs (0, 1)")
    assert not (workdir / "output").exists()


@pytest.mark.parametrize("resource, message", [
    ("['0,1', 2]", "found the group '0,1'; set gpus_per_task"),
    ("[0, 7]", "GPU 7 is not one of the GPUs this machine reports (0, 1)"),
])
def test_a_pool_with_groups_or_unknown_gpus_is_refused(make_config, cli, workdir, fake_gpus,
                                                      resource, message):
    fake_gpus({"gpus": [{"memory": "8GiB"}] * 2})
    make_config(PROBE.replace("resource: auto", f"resource: {resource}\ngpu_memory: 1GiB"))
    result = cli()
    assert result.code == 2 and message in result.err and len(result.err.splitlines()) == 1
    assert not (workdir / "output").exists()


def test_resource_auto_misspelt_suggests_auto(make_config, cli):
    make_config(PROBE.replace("resource: auto", "resource: autp"))
    result = cli()
    assert result.code == 2 and "(did you mean 'auto'?)" in result.err


# -- run gpus ---------------------------------------------------------------------------------


def test_run_gpus_shows_memory_processes_and_our_tasks(make_config, workdir, fake_gpus, cli):
    fake_gpus({"gpus": [
        {"name": "Fake A100", "memory": "40GiB", "used": "1GiB", "utilization": 63,
         "processes": [{"pid": 999999, "memory": "10GiB"},
                       {"pid_file": "output/I_1/pid", "memory": "5GiB"}]},
        {"name": "Fake A100", "memory": "40GiB"}]})
    make_config("""
        template:
          hold: echo $$ > {_output}/pid; while [ ! -e release ]; do sleep 0.05; done
        resource: [0]
        ---
        i: [1]
    """)
    run = run_process([], workdir)
    try:
        wait_for(lambda: (workdir / "output/I_1/pid").exists() and (read_json(
            workdir / "output/I_1/stat.json") or {}).get("hold"), what="the task to start")
        result = cli("gpus")
        lines = result.out.splitlines()
        assert result.code == 0, result.err
        assert lines[0].split() == ["GPU", "NAME", "MEMORY", "USED/TOTAL", "UTIL", "PROCESSES",
                                    "(PID", "MEMORY)", "OUR", "TASKS"]
        pid = int((workdir / "output/I_1/pid").read_text())
        assert lines[1].split() == ["0", "Fake", "A100", "16.0/40.0", "GiB", "63%", "999999",
                                    "10.0", "GiB,", str(pid), "5.0", "GiB", "I_1", "hold"]
        assert lines[2].split() == ["1", "Fake", "A100", "0.0/40.0", "GiB", "0%", "-", "-"]
        assert lines[3].startswith("2 GPUs (fake GPUs from") and "our tasks from output" in lines[3]
        data = json.loads(cli("gpus", "--json", "-o", "output").out)
        assert data["gpus"][0]["processes"][1] == {"pid": pid, "memory": 5 * GIB,
                                                   "task": "I_1 hold"}
        assert data["gpus"][0]["tasks"] == ["I_1 hold"] and data["gpus"][1]["tasks"] == []
    finally:
        (workdir / "release").write_text("")
        run.communicate(timeout=30)
    assert run.returncode == 0


def test_run_gpus_without_nvml_is_one_clear_error(cli, workdir, monkeypatch):
    monkeypatch.delenv(FAKE_GPUS_ENV, raising=False)
    monkeypatch.setitem(sys.modules, "pynvml", None)
    result = cli("gpus")
    assert result.code == 2 and result.out == ""
    assert result.err == ("run: error: NVML is not available: the Python module 'pynvml' is not "
                          "installed (pip install '.[gpu]' in a clone of the runner repository)\n")


def test_run_gpus_with_a_missing_output_dir(cli, workdir, fake_gpus):
    fake_gpus({"gpus": [{"memory": "8GiB"}]})
    result = cli("gpus", "-o", "nowhere")
    assert result.code == 2 and "-o nowhere: no such output directory" in result.err


def test_ctrl_c_leaves_no_process_of_ours_on_the_fake_gpu(make_config, workdir, fake_gpus):
    """Our command's process group is gone after Ctrl-C, so NVML could list none of it."""
    fake_gpus({"gpus": [{"memory": "8GiB", "processes": [
        {"pid_file": "output/I_1/pid", "memory": "1GiB"}]}]})
    make_config("""
        template:
          hold: sleep 60 & echo $! > {_output}/pid; wait
        resource: auto
        gpu_memory: 1GiB
        ---
        i: [1]
    """)
    run = run_process([], workdir)
    pid = int(wait_for(lambda: (workdir / "output/I_1/pid").exists()
                       and (workdir / "output/I_1/pid").read_text().strip(), what="the task"))
    gpus = FakeGpus.load(str(workdir / "gpus.json"))
    assert [p.pid for p in gpus.read(0).processes] == [pid]
    group = wait_for(lambda: (read_json(workdir / "output/I_1/stat.json") or {}).get("hold"),
                     what="its stat.json entry")["pid"]
    run.send_signal(signal.SIGINT)
    run.communicate(timeout=30)
    assert run.returncode == 130
    wait_for(lambda: processes_in_group(group) == [], 10, "the group to be gone")
    assert gpus.read(0).processes == ()  # a pid_file process is listed only while it lives
