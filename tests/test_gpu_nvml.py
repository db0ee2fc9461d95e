"""The same features against a real GPU and the real NVML (marked `gpu`; skipped without one).

The helper that allocates GPU memory uses PyTorch when it is installed and the CUDA driver API
(libcuda, through ctypes) otherwise, so these tests need no more than a driver and nvidia-ml-py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from support import read_json, run_process, wait_for
from runner.gpu.query import FAKE_GPUS_ENV, GpuUnavailable, NvmlGpus, format_bytes
from runner.gpu.resources import auto_pool

pytestmark = pytest.mark.gpu

ALLOCATE = textwrap.dedent('''
    """allocate.py BYTES READY HOLD: take BYTES of GPU memory, write our pid to READY, keep the
    memory until the file HOLD exists."""
    import ctypes, os, sys, time

    size, ready, hold = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    try:
        import torch
        block = torch.empty(size, dtype=torch.uint8, device="cuda")
        torch.cuda.synchronize()
    except ImportError:
        cuda = ctypes.CDLL("libcuda.so.1")
        def check(code, what):
            if code != 0:
                sys.exit(f"{what} failed with CUDA error {code}")
        check(cuda.cuInit(0), "cuInit")
        device, context, pointer = ctypes.c_int(), ctypes.c_void_p(), ctypes.c_uint64()
        check(cuda.cuDeviceGet(ctypes.byref(device), 0), "cuDeviceGet")
        check(cuda.cuCtxCreate_v2(ctypes.byref(context), 0, device), "cuCtxCreate")
        check(cuda.cuMemAlloc_v2(ctypes.byref(pointer), ctypes.c_size_t(size)), "cuMemAlloc")
    with open(ready, "w") as f:
        f.write(str(os.getpid()))
    while not os.path.exists(hold):
        time.sleep(0.05)
''')


@pytest.fixture
def nvml(monkeypatch):
    pytest.importorskip("pynvml", reason="nvidia-ml-py is not installed: pip install '.[gpu]' "
                                         "in a clone of the runner repository")
    monkeypatch.delenv(FAKE_GPUS_ENV, raising=False)
    try:
        gpus = NvmlGpus()
    except GpuUnavailable as e:
        pytest.skip(f"no usable NVIDIA GPU here: {e}")
    if not gpus.devices():
        gpus.close()
        pytest.skip("NVML reports no GPU")
    yield gpus
    gpus.close()


@pytest.fixture
def allocate(workdir):
    (workdir / "allocate.py").write_text(ALLOCATE)
    return f"{sys.executable} {workdir / 'allocate.py'}"


def pids_on(nvml, index):
    return {p.pid for p in nvml.read(index).processes}


def test_real_auto_is_one_slot_per_gpu(nvml, make_config, cli, workdir):
    pool, _ = auto_pool(nvml, os.environ)
    make_config("""
        template:
          probe: echo "$CUDA_VISIBLE_DEVICES" > {_output}/gpu
        resource: auto
        ---
        i: [1, 2, 3, 4]
    """)
    result = cli()
    print(result.out)
    assert result.code == 0, result.err
    assert f"slots: {len(pool)} (" in result.out
    indices = {str(d.index) for d in pool}
    uuids = {str(d.index): d.uuid for d in pool}
    for i in range(1, 5):
        entry = read_json(workdir / f"output/I_{i}/stat.json")["probe"]
        assert (workdir / f"output/I_{i}/gpu").read_text().strip() == entry["gpus"]
        assert entry["gpus"] in indices
        assert entry["gpu_devices"][0]["uuid"] == uuids[entry["gpus"]]


def test_real_task_waits_for_room_while_another_holds_it(nvml, allocate, make_config, workdir):
    free = nvml.read(0).memory_free
    need = int(free * 0.6) // 2 ** 20  # MiB: one fits, two do not
    make_config(f"""
        template:
          hold: {allocate} {need * 2 ** 20} {{_output}}/ready release_{{i}}
        resource: [0]
        gpu_memory: {need}MiB
        ---
        i: [1, 2]
    """)
    run = run_process([], workdir)
    try:
        pid = int(wait_for(lambda: (workdir / "output/I_1/ready").exists()
                           and (workdir / "output/I_1/ready").read_text(), 120, "task 1"))
        wait_for(lambda: pid in pids_on(nvml, 0), 30, "NVML to list task 1")
        for line in run.stdout:
            print(line, end="")
            if " wait " in line:
                break
        assert "GPU 0 has" in line and f"needs {format_bytes(need * 2 ** 20)}" in line
        assert not (workdir / "output/I_2/stat.json").exists()
        (workdir / "release_1").write_text("")
        wait_for(lambda: (workdir / "output/I_2/ready").exists(), 120, "task 2 to start")
        (workdir / "release_2").write_text("")
        out, err = run.communicate(timeout=120)
        print(out, err)
    finally:
        for i in (1, 2):
            (workdir / f"release_{i}").write_text("")
        if run.poll() is None:
            run.kill()
    assert run.returncode == 0
    first = read_json(workdir / "output/I_1/stat.json")["hold"]
    second = read_json(workdir / "output/I_2/stat.json")["hold"]
    assert second["start"] >= first["end"]
    assert second["gpu_memory"] == need * 2 ** 20


def test_real_foreign_process_holds_memory_until_it_ends(nvml, allocate, make_config, workdir):
    free = nvml.read(0).memory_free
    foreign_bytes = int(free * 0.7)
    need = int(free * 0.5) // 2 ** 20
    foreign = subprocess.Popen(allocate.split() + [str(foreign_bytes), str(workdir / "ready"),
                                                   str(workdir / "leave")],
                               env=dict(os.environ, CUDA_VISIBLE_DEVICES="0"))
    try:
        pid = int(wait_for(lambda: (workdir / "ready").exists()
                           and (workdir / "ready").read_text(), 120, "the foreign process"))
        wait_for(lambda: pid in pids_on(nvml, 0), 30, "NVML to list the foreign process")
        make_config(f"""
            template:
              t: echo ran
            resource: [0]
            gpu_memory: {need}MiB
            ---
            i: [1]
        """)
        run = run_process([], workdir)
        for line in run.stdout:
            print(line, end="")
            if " wait " in line:
                break
        assert "GPU 0 has" in line and "other processes hold" in line
        (workdir / "leave").write_text("")
        foreign.wait(60)
        out, err = run.communicate(timeout=120)
        print(out, err)
        assert run.returncode == 0
    finally:
        (workdir / "leave").write_text("")
        foreign.wait(60)


def test_real_ctrl_c_leaves_no_process_of_ours_on_the_gpu(nvml, allocate, make_config, workdir):
    make_config(f"""
        template:
          hold: {allocate} {256 * 2 ** 20} {{_output}}/ready never
        resource: auto
        gpu_memory: 512MiB
        ---
        i: [1]
    """)
    run = run_process([], workdir)
    pid = int(wait_for(lambda: (workdir / "output/I_1/ready").exists()
                       and (workdir / "output/I_1/ready").read_text(), 120, "the task"))
    gpu = int(read_json(workdir / "output/I_1/stat.json")["hold"]["gpus"])
    wait_for(lambda: pid in pids_on(nvml, gpu), 30, "NVML to list the task")
    run.send_signal(signal.SIGINT)
    out, err = run.communicate(timeout=60)
    print(out, err)
    assert run.returncode == 130
    wait_for(lambda: pid not in pids_on(nvml, gpu), 30, "NVML to list the task no more")
    assert read_json(workdir / "output/I_1/stat.json")["hold"]["status"] == "interrupted"


def test_real_run_gpus_lists_every_gpu(nvml, cli, workdir):
    result = cli("gpus", "--json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["source"] == "NVML"
    assert [g["uuid"] for g in data["gpus"]] == [d.uuid for d in nvml.devices()]
    print(cli("gpus").out)
