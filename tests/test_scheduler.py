"""The work queue: one worker per slot, jobs in order, the next job the moment a slot is free."""

from __future__ import annotations

import threading

import pytest

from support import read_json
from runner.execution.process import ProcessGroups
from runner.execution.scheduler import Scheduler
from runner.task import Slot


def test_jobs_are_taken_in_order_by_free_slots():
    release = threading.Event()
    taken = []

    def execute(job, slot, final):
        taken.append((job, slot.index))
        if job == 0:
            release.wait(10)  # slot of job 0 stays busy until every other job is done
        elif job == 5:
            release.set()
        return job

    results = Scheduler([Slot(0, ("0",)), Slot(1, ("1",))], execute).run(range(6))
    assert sorted(results) == list(range(6))
    assert [job for job, _ in taken] == list(range(6))
    assert {job: slot for job, slot in taken if job} == {1: 1, 2: 1, 3: 1, 4: 1, 5: 1}


def test_deferred_jobs_come_back_once_the_queue_is_empty():
    calls = []

    def execute(job, slot, final):
        calls.append((job, final))
        return None if job == "held" and not final else job

    results = Scheduler([Slot(0, ())], execute).run(["held", "a", "b"])
    assert results == ["a", "b", "held"]
    assert calls == [("held", False), ("a", False), ("b", False), ("held", True)]


def test_stopping_takes_no_new_job():
    groups = ProcessGroups()

    def execute(job, slot, final):
        groups.stopping.set()
        return job

    assert Scheduler([Slot(0, ())], execute, groups).run(range(5)) == [0]


def test_an_unexpected_error_stops_the_run_and_is_raised():
    def execute(job, slot, final):
        if job == 1:
            raise OSError(28, "No space left on device")
        return job

    scheduler = Scheduler([Slot(0, ())], execute)
    with pytest.raises(OSError, match="No space left"):
        scheduler.run(range(5))
    assert scheduler.stopping.is_set()


def test_a_long_task_does_not_hold_back_the_other_slot(make_config, cli, workdir):
    make_config("""
        template:
          t: if [ {i} -eq 1 ]; then while [ ! -e {_output}/../I_5/stat.json ]; do sleep 0.05; done; sleep 0.3; fi
        resource: [0, 1]
        ---
        i: [1, 2, 3, 4, 5]
    """)
    assert cli().code == 0
    slots = {i: read_json(workdir / f"output/I_{i}/stat.json")["t"]["slot"] for i in range(1, 6)}
    assert slots == {1: 0, 2: 1, 3: 1, 4: 1, 5: 1}
