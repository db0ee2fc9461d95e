"""Admission onto shared GPUs: packing by memory, reservations, foreign processes, utilisation,
tasks that never fit, and the scheduler's seam that waits with a reason."""

from __future__ import annotations

import io
import json
import random
import signal
import threading
import time

import pytest

from support import read_json, run_process, statuses
from runner.gpu.admission import Admission, Demand, PoolGpu
from runner.cli.console import Console
from runner.errors import ResourceError
from runner.gpu.fake import FakeGpu, FakeGpus
from runner.gpu.query import FAKE_GPUS_ENV
from runner.execution.scheduler import Scheduler
from runner.task import Slot, Task

GIB = 2 ** 30


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def task(name="t", **settings) -> Task:
    return Task(name, {}, {}, settings=settings)


def machine(*sizes, clock=None, **kwargs):
    """(admission, fake GPUs, clock) over fake GPUs of these sizes (GiB), the pool as with auto."""
    clock = clock or Clock()
    gpus = FakeGpus([FakeGpu(f"Fake {i}", size * GIB) for i, size in enumerate(sizes)], clock)
    pool = [PoolGpu(str(i), i) for i in range(len(sizes))]
    return Admission(pool, gpus, clock=clock, **kwargs), gpus, clock


def test_several_tasks_share_a_gpu_by_memory():
    admission, _, _ = machine(24)
    first, _ = admission.admit(task(gpu_memory=10 * GIB))
    second, _ = admission.admit(task(gpu_memory=10 * GIB))
    assert first.ids == second.ids == ("0",)
    third, why = admission.admit(task(gpu_memory=10 * GIB))
    assert third is None and why == "GPU 0 has 4.0 GiB free, needs 10.0 GiB"
    small, _ = admission.admit(task(gpu_memory=4 * GIB))
    assert small.ids == ("0",)
    admission.release(first)
    assert admission.admit(task(gpu_memory=10 * GIB))[0].ids == ("0",)


def test_a_reservation_holds_until_the_task_allocates_and_is_never_counted_twice():
    groups = {501: 500, 601: 600}  # pid -> process group
    admission, gpus, _ = machine(24, group_of=groups.get)
    a, _ = admission.admit(task(gpu_memory=10 * GIB))
    b, _ = admission.admit(task(gpu_memory=10 * GIB))
    a.slot, b.slot = Slot(0, ("0",)), Slot(1, ("0",))
    admission.attach(lambda: {500: a.slot, 600: b.slot})
    need = task(gpu_memory=4 * GIB + 1)
    assert admission.admit(need)[1].startswith("GPU 0 has 4.0 GiB free")  # nothing allocated yet
    gpus.add_process(0, pid=501, memory=10 * GIB)  # a allocates what it declared
    assert admission.admit(need)[1].startswith("GPU 0 has 4.0 GiB free")
    gpus.add_process(0, pid=601, memory=12 * GIB)  # b takes 2 GiB more than it declared
    assert admission.admit(need)[1] == "GPU 0 has 2.0 GiB free, needs 4.0 GiB"
    admission.release(a)  # a's process still holds its memory: no longer ours, not free either
    assert admission.admit(need)[1] == ("GPU 0 has 2.0 GiB free (other processes hold 10.0 GiB), "
                                        "needs 4.0 GiB")
    gpus.gpus[0].processes = [p for p in gpus.gpus[0].processes if p.pid != 501]
    assert admission.admit(need)[0].ids == ("0",)


def test_a_foreign_process_holds_memory_until_it_leaves():
    admission, gpus, clock = machine(24)
    gpus.add_process(0, pid=31337, memory=20 * GIB, until=5)
    placement, why = admission.admit(task(gpu_memory=10 * GIB))
    assert placement is None
    assert why == "GPU 0 has 4.0 GiB free (other processes hold 20.0 GiB), needs 10.0 GiB"
    clock.now += 5
    assert admission.admit(task(gpu_memory=10 * GIB))[0].ids == ("0",)


def test_tasks_spread_over_the_gpus_with_the_most_room():
    admission, gpus, _ = machine(16, 16, 16)
    gpus.add_process(1, pid=9, memory=4 * GIB)
    chosen = [admission.admit(task(gpu_memory=2 * GIB))[0].ids[0] for _ in range(5)]
    assert chosen == ["0", "2", "0", "2", "1"]  # most room first; then fewest of our tasks


def test_two_gpus_per_task():
    admission, gpus, _ = machine(16, 16, 16)
    gpus.add_process(2, pid=9, memory=10 * GIB)
    first, _ = admission.admit(task(gpus_per_task=2, gpu_memory=10 * GIB))
    assert first.ids == ("0", "1")
    second, why = admission.admit(task(gpus_per_task=2, gpu_memory=10 * GIB))
    assert second is None
    assert why.startswith("0 of the 2 GPUs the task needs are free; ")
    admission.release(first)
    assert admission.admit(task(gpus_per_task=2, gpu_memory=10 * GIB))[0].ids == ("0", "1")


def test_a_task_without_gpu_memory_takes_its_gpu_to_itself():
    admission, _, _ = machine(16, 16)
    whole, _ = admission.admit(task())
    assert whole.ids == ("0",) and whole.exclusive
    shared = [admission.admit(task(gpu_memory=GIB))[0] for _ in range(2)]
    assert [p.ids for p in shared] == [("1",), ("1",)]  # not onto GPU 0
    assert admission.admit(task()) == (
        None, "GPU 0 runs a task that has it to itself; 1 other GPU cannot take it either")
    admission.release(shared[0])
    assert admission.admit(task())[1] == (
        "GPU 0 runs a task that has it to itself; 1 other GPU cannot take it either")
    admission.release(whole)
    assert admission.admit(task())[0].ids == ("0",)


def test_a_gpu_listed_k_times_takes_at_most_k_tasks():
    gpus = FakeGpus([FakeGpu("Fake", 80 * GIB)])
    admission = Admission([PoolGpu("0", 0, cap=2)], gpus)
    assert admission.admit(task(gpu_memory=GIB))[0] and admission.admit(task(gpu_memory=GIB))[0]
    assert admission.admit(task(gpu_memory=GIB)) == (
        None, "GPU 0 runs 2 tasks, as many as 'resource' lists it")


def test_max_gpu_util_and_the_grace_period_after_a_start():
    admission, gpus, clock = machine(16, 16, grace=3.0)
    gpus.set_busy(0, 90)
    busy = task(gpu_memory=GIB, max_gpu_util=50)
    first, _ = admission.admit(busy)
    assert first.ids == ("1",)
    placement, why = admission.admit(busy)
    assert placement is None
    assert "GPU 1 started a task 0.0 s ago; its utilisation settles for 3.0 s more" in why
    assert 0 < admission.retry_after() <= admission.poll
    clock.now += 3
    gpus.set_busy(1, 40)
    assert admission.admit(busy)[0].ids == ("1",)
    gpus.set_busy(1, 60)
    clock.now += 3
    assert admission.admit(busy)[1].startswith("GPU 0 is 90% busy, max_gpu_util 50%")
    assert admission.admit(task(gpu_memory=GIB))[0] is not None  # memory only: no util gate


def test_tasks_that_can_never_fit_are_named_before_anything_runs():
    admission, _, _ = machine(40, 24)
    tasks = [task(f"big{i}", gpu_memory=48 * GIB) for i in range(5)] + [task("ok", gpu_memory=GIB)]
    with pytest.raises(ResourceError) as error:
        admission.check(tasks)
    assert str(error.value) == (
        "these tasks can never start: 5 tasks (big0, big1, big2 and 2 more) need 48.0 GiB of GPU "
        "memory on a GPU (gpu_memory), but the largest GPU of the pool (GPU 0) has 40.0 GiB; "
        "lower gpu_memory or use larger GPUs")
    with pytest.raises(ResourceError, match="task wide needs 30.0 GiB of GPU memory on each of "
                                            "2 GPUs .* only 1 GPU"):
        admission.check([task("wide", gpus_per_task=2, gpu_memory=30 * GIB)])
    with pytest.raises(ResourceError, match="task many needs 3 GPUs .* the pool has 2 .0, 1."):
        admission.check([task("many", gpus_per_task=3)])
    admission.check([task("fits", gpus_per_task=2, gpu_memory=20 * GIB)])


def test_demand_of_settings():
    assert Demand.of({}) == Demand(1, None, None)
    assert Demand.of({"gpus_per_task": 2, "gpu_memory": 5, "max_gpu_util": 80.0}) == Demand(
        2, 5, 80.0)
    assert Demand(2, 10 * GIB).describe() == "2 GPUs, 10.0 GiB each"


# -- the scheduler's seam -----------------------------------------------------------------------


def test_no_two_tasks_are_admitted_onto_the_same_memory():
    """Many tasks of random sizes, ending at random: what runs on a GPU never exceeds it."""
    admission, _, _ = machine(16, 16)
    rng = random.Random(7)
    jobs = [task(f"t{i}", gpu_memory=rng.randint(1, 12) * GIB) for i in range(60)]
    lock = threading.Lock()
    in_use = {"0": 0, "1": 0}
    peak = {"0": 0, "1": 0}
    most_at_once = [0, 0]

    def execute(job, slot, final):
        with lock:
            for gpu in slot.gpus:
                in_use[gpu] += job.settings["gpu_memory"]
                peak[gpu] = max(peak[gpu], in_use[gpu])
            most_at_once[0] += 1
            most_at_once[1] = max(most_at_once)
        time.sleep(rng.random() * 0.01)
        with lock:
            for gpu in slot.gpus:
                in_use[gpu] -= job.settings["gpu_memory"]
            most_at_once[0] -= 1
        return job.name

    results = Scheduler([], execute, admission=admission).run(jobs)
    assert sorted(results) == sorted(j.name for j in jobs)
    assert max(peak.values()) <= 16 * GIB
    assert most_at_once[1] >= 3  # several tasks did share the GPUs


def test_when_a_large_task_ends_the_smaller_ones_that_now_fit_start_together():
    # no polling (poll 30 s): only the worker whose task ends can start the waiting ones
    admission, _, _ = machine(24, 8, poll=30, grace=0)
    started = {name: threading.Event() for name in ("big", "long", "a", "b")}
    a_waits = threading.Event()

    def execute(job, slot, final):
        started[job.name].set()
        if job.name == "big":
            assert a_waits.wait(10)
        if job.name in ("a", "long"):  # they end only once b runs next to them
            assert started["b"].wait(10), "b did not start while a ran"
        return job.name, slot.gpus

    jobs = [task("big", gpu_memory=20 * GIB), task("long", gpu_memory=8 * GIB),
            task("a", gpu_memory=10 * GIB), task("b", gpu_memory=10 * GIB)]
    results = Scheduler([], execute, admission=admission,
                        on_wait=lambda why: why and a_waits.set()).run(jobs)
    assert sorted(results) == [("a", ("0",)), ("b", ("0",)), ("big", ("0",)), ("long", ("1",))]


def test_the_scheduler_tells_why_it_waits_and_starts_when_room_appears():
    admission, gpus, clock = machine(24, poll=0.02)
    foreign = gpus.add_process(0, pid=31337, memory=20 * GIB)
    told = []

    def on_wait(reason):
        told.append(reason)
        if reason is not None:
            gpus.remove_process(0, foreign)  # the other user's job ends

    results = Scheduler([], lambda job, slot, final: (job.name, slot.gpus), admission=admission,
                        on_wait=on_wait).run([task("a", gpu_memory=10 * GIB)])
    assert results == [("a", ("0",))]
    assert told == ["GPU 0 has 4.0 GiB free (other processes hold 20.0 GiB), needs 10.0 GiB",
                    None]


def test_deferred_jobs_come_back_through_admission():
    admission, _, _ = machine(24)
    calls = []

    def execute(job, slot, final):
        calls.append((job.name, final))
        return None if job.name == "held" and not final else job.name

    jobs = [task("held", gpu_memory=GIB), task("a", gpu_memory=GIB)]
    assert sorted(Scheduler([], execute, admission=admission).run(jobs)) == ["a", "held"]
    assert ("held", False) in calls and ("held", True) in calls and len(calls) == 3
    assert admission._state["0"].count == 0  # every reservation was given back


def test_an_admission_failure_stops_the_run_and_is_raised():
    admission, gpus, _ = machine(24)

    def broken(index):
        raise OSError("GPU fell off the bus")

    gpus.read = broken
    scheduler = Scheduler([], lambda job, slot, final: job, admission=admission)
    with pytest.raises(OSError, match="fell off the bus"):
        scheduler.run([task(gpu_memory=GIB)])
    assert scheduler.stopping.is_set()


def test_an_admission_failure_on_a_worker_stops_the_run_and_is_raised():
    admission, gpus, _ = machine(24, poll=30, grace=0)
    reads = []
    real_read = gpus.read

    def read(index):
        reads.append(index)
        if len(reads) > 2:  # a is admitted, b refused; the worker that ran a then asks again
            raise OSError("GPU fell off the bus")
        return real_read(index)

    gpus.read = read
    scheduler = Scheduler([], lambda job, slot, final: job.name, admission=admission)
    with pytest.raises(OSError, match="fell off the bus"):
        scheduler.run([task("a", gpu_memory=20 * GIB), task("b", gpu_memory=20 * GIB)])
    assert scheduler.results == ["a"] and scheduler.stopping.is_set()


# -- through the command line ---------------------------------------------------------------------


@pytest.fixture
def fake_gpus(workdir, monkeypatch):
    def make(spec):
        path = workdir / "gpus.json"
        path.write_text(json.dumps(spec))
        monkeypatch.setenv(FAKE_GPUS_ENV, str(path))
        return path

    return make


def running_counts(events_file):
    """The most tasks running at once, from '+' and '-' lines the tasks appended."""
    running = most = 0
    for line in events_file.read_text().split():
        running += 1 if line == "+" else -1
        most = max(most, running)
    return most


def test_packing_several_tasks_on_one_gpu_by_memory(make_config, cli, workdir, fake_gpus):
    fake_gpus({"gpus": [{"name": "Fake 24G", "memory": "24GiB", "used": "1GiB"}]})
    make_config("""
        template:
          t: |
            echo + >> events; echo "$CUDA_VISIBLE_DEVICES" > {_output}/gpu
            sleep 0.3; echo - >> events
        resource: auto
        gpu_memory: 10GiB
        ---
        i: [1, 2, 3, 4, 5]
    """)
    result = cli()
    assert result.code == 0, result.err
    assert "GPU pool: 0 (Fake 24G, 24.0 GiB); each task starts in order where it fits " \
           "(gpu_memory and max_gpu_util checked with fake GPUs from" in result.out
    assert running_counts(workdir / "events") == 2
    assert {(workdir / f"output/I_{i}/gpu").read_text().strip() for i in range(1, 6)} == {"0"}
    entry = read_json(workdir / "output/I_3/stat.json")["t"]
    assert entry["gpu_memory"] == 10 * GIB and entry["gpu_devices"][0]["name"] == "Fake 24G"


def test_a_task_waits_while_a_foreign_process_holds_memory(make_config, workdir, fake_gpus):
    fake_gpus({"gpus": [{"memory": "24GiB", "processes": [
        {"pid": 31337, "memory": "20GiB", "until_file": "leaves"}]}]})
    make_config("""
        template:
          t: echo ran
        resource: auto
        gpu_memory: 10GiB
        ---
        i: [1]
    """)
    run = run_process([], workdir)
    for line in run.stdout:
        if " wait " in line:
            break
    assert line.split(None, 1)[1].strip() == (
        "wait   GPU 0 has 4.0 GiB free (other processes hold 20.0 GiB), needs 10.0 GiB")
    assert not (workdir / "output/I_1/stat.json").exists()
    (workdir / "leaves").write_text("")
    out, err = run.communicate(timeout=30)
    assert run.returncode == 0, out + err
    assert statuses(workdir / "output") == {"I_1": {"t": "done"}}


def test_a_task_that_can_never_fit_is_an_error_not_a_hang(make_config, cli, workdir, fake_gpus):
    fake_gpus({"gpus": [{"memory": "40GiB"}, {"memory": "24GiB"}]})
    make_config("""
        template:
          t: echo {size}
        resource: auto
        ---
        size: 1
        gpu_memory: 1GiB
        ---
        size: 64
        gpu_memory: 64GiB
    """)
    result = cli()
    assert result.code == 2 and result.out == ""
    assert result.err == (
        "run: error: these tasks can never start: task Size_64-GpMemory_64GiB needs 64.0 GiB "
        "of GPU memory on a GPU (gpu_memory), but the largest GPU of the pool (GPU 0) has "
        "40.0 GiB; lower gpu_memory or use larger GPUs\n")
    assert not (workdir / "output").exists()


def test_explicit_gpus_with_gpu_memory_form_the_pool(make_config, cli, workdir, fake_gpus):
    fake_gpus({"gpus": [{"memory": "16GiB"}, {"memory": "16GiB"}, {"memory": "16GiB"}]})
    make_config("""
        template:
          t: |
            echo + >> events; echo "$CUDA_VISIBLE_DEVICES" > {_output}/gpu
            sleep 0.3; echo - >> events
        resource: [2, 0]
        gpu_memory: 7GiB
        ---
        i: [1, 2, 3, 4, 5]
    """)
    result = cli()
    assert result.code == 0
    assert running_counts(workdir / "events") == 4
    assert {(workdir / f"output/I_{i}/gpu").read_text().strip() for i in range(1, 6)} == {"0", "2"}


def test_gpu_memory_without_nvml_runs_on_the_listed_gpus_by_count(make_config, cli, workdir,
                                                                 monkeypatch):
    monkeypatch.delenv(FAKE_GPUS_ENV, raising=False)
    monkeypatch.setitem(__import__("sys").modules, "pynvml", None)
    make_config("""
        template:
          t: |
            echo + >> events; echo "$CUDA_VISIBLE_DEVICES" > {_output}/gpu
            sleep 0.2; echo - >> events
        resource: [0, 1]
        gpu_memory: 7GiB
        ---
        i: [1, 2, 3]
    """)
    result = cli()
    assert result.code == 0
    assert ("note: gpu_memory not checked: NVML is not available: the Python module 'pynvml' is "
            "not installed (pip install '.[gpu]' in a clone of the runner repository); tasks "
            "run on the listed GPUs by count"
            in result.out)
    assert "slots: 2 (0: GPU 0, 1: GPU 1)" in result.out
    assert running_counts(workdir / "events") == 2


def test_debug_waits_for_room_too(make_config, cli, workdir, fake_gpus):
    fake_gpus({"gpus": [{"memory": "24GiB"}]})
    make_config("""
        template:
          t: echo "gpu $CUDA_VISIBLE_DEVICES"
        resource: auto
        gpu_memory: 10GiB
        ---
        i: [1, 2]
    """)
    result = cli("-d")
    assert result.code == 0 and "debug: I_1 on GPU pool: 0" in result.out
    assert "gpu 0" in result.out


# -- what the user sees while a task waits --------------------------------------------------------


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_the_progress_line_shows_why_the_next_task_waits(monkeypatch):
    terminal = Terminal()
    console = Console(total=3, stream=terminal)
    console.waiting_for("GPU 1 has 3.2 GiB free, needs 10.0 GiB")
    line = terminal.getvalue().rsplit("\r\x1b[K", 1)[-1]
    assert line.startswith("done 0 | failed 0 | running 0 | left 3 |")
    assert line.endswith(" | \x1b[33mwaiting: GPU 1 has 3.2 GiB free, needs 10.0 GiB\x1b[0m")
    monkeypatch.setenv("NO_COLOR", "1")  # colour only where wanted
    plain = Terminal()
    Console(total=3, stream=plain).waiting_for("GPU 1 has 3.2 GiB free, needs 10.0 GiB")
    assert plain.getvalue().endswith(" | waiting: GPU 1 has 3.2 GiB free, needs 10.0 GiB")
    console.waiting_for(None)
    assert "waiting" not in terminal.getvalue().rsplit("\r\x1b[K", 1)[-1]


def test_without_a_terminal_a_wait_is_printed_when_its_reason_is_new():
    out = io.StringIO()
    console = Console(total=3, stream=out)
    for _ in range(3):
        console.waiting_for("GPU 0 has 1.0 GiB free, needs 2.0 GiB")
        console.waiting_for(None)
    assert out.getvalue().count(" wait   GPU 0 has 1.0 GiB free, needs 2.0 GiB\n") == 1
    assert "\r" not in out.getvalue()


def test_ctrl_c_while_waiting_for_room_ends_the_run_at_once(make_config, workdir, fake_gpus):
    fake_gpus({"gpus": [{"memory": "24GiB", "processes": [{"pid": 31337, "memory": "20GiB"}]}]})
    make_config("""
        template:
          t: echo ran
        resource: auto
        gpu_memory: 10GiB
        ---
        i: [1, 2]
    """)
    run = run_process([], workdir)
    for line in run.stdout:
        if " wait " in line:
            break
    started = time.monotonic()
    run.send_signal(signal.SIGINT)
    out, _ = run.communicate(timeout=30)
    assert time.monotonic() - started < 5
    assert run.returncode == 130
    assert "summary: 0 done, 0 failed, 0 skipped (done earlier), 2 not started" in out
    assert not (workdir / "output/I_1/stat.json").exists()
