"""Parsing what SLURM prints (outputs recorded from a real SLURM 22.05 in tests/slurm/), and
merging it with the files into each task's state."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.backends.slurm.script import (AccountEntry, Needs, Node, check_fits, expand_job_ids,
                                   is_accounting_disabled, parse_max_array_size, parse_nodes,
                                   parse_sacct, parse_sbatch_job_id, parse_squeue)
from runner.backends.slurm.engine import merge_task_state
from runner.backends.slurm.commands import one_line
from runner.store.state import TaskState, summarize
from runner.task import Status

RECORDED = Path(__file__).parent / "slurm"


def recorded(name: str) -> str:
    return (RECORDED / name).read_text()


def test_squeue_pending_and_running_elements():
    queue = parse_squeue(recorded("squeue_mixed.txt"))
    assert len(queue) == 10
    assert queue["14_2"].state == "PENDING" and queue["14_2"].reason == "JobArrayTaskLimit"
    assert queue["15_1"].reason == "Resources" and not queue["15_1"].active
    assert queue["14_0"].state == "RUNNING" and queue["14_0"].nodes == "n1"
    assert queue["14_0"].active and queue["14_0"].reason == ""


def test_sacct_ended_records():
    acct = parse_sacct(recorded("sacct_ended.txt"))
    assert acct["1_0"].state == "COMPLETED" and acct["1_0"].exit_status == 0
    assert (acct["2_0"].state, acct["2_0"].exit_status) == ("FAILED", 3)
    assert acct["2_1"].exit_status == 4
    assert acct["3_1"].state == "CANCELLED"  # "CANCELLED by 0"
    assert acct["3_1"].nodes == "n2"
    # never-started elements of the cancelled array come from its compact record
    assert [acct[f"3_{i}"].state for i in range(2, 6)] == ["CANCELLED"] * 4
    assert acct["3_4"].nodes == ""
    assert all(e.finished for e in acct.values())


def test_sacct_lagging_record():
    """Recorded while the jobs ran: accounting still had array 3 as one pending record although
    its elements 0 and 1 were running, and had no record of 1_0 at all."""
    acct = parse_sacct(recorded("sacct_running.txt"))
    assert "1_0" not in acct
    assert acct["1_1"].state == "RUNNING" and not acct["1_1"].finished
    assert acct["3_0"].state == "PENDING" and acct["3_5"].state == "PENDING"
    assert acct["4_0"].state == "RUNNING"


def test_an_elements_own_record_wins_over_the_compact_one():
    acct = parse_sacct("7_0|COMPLETED|0:0|n1\n7_[0-2]|PENDING|0:0|None assigned\n")
    assert acct["7_0"].state == "COMPLETED"
    assert acct["7_1"].state == "PENDING"


def test_sacct_timeout_record():
    acct = parse_sacct(recorded("sacct_timeout.txt"))
    assert acct["4_0"].state == "TIMEOUT" and acct["4_0"].finished


def test_accounting_disabled_is_recognised():
    message = recorded("sacct_jobcomp_stderr.txt")
    assert is_accounting_disabled(message)
    assert not is_accounting_disabled("sacct: error: Problem talking to the database")


def test_job_id_ranges():
    assert expand_job_ids("12_[3-5,8%2]") == ["12_3", "12_4", "12_5", "12_8"]
    assert expand_job_ids("12_3") == ["12_3"]
    assert expand_job_ids("12") == ["12"]


def test_scontrol_config_and_nodes():
    assert parse_max_array_size(recorded("scontrol_config.txt")) == 1001
    assert parse_max_array_size("MaxArraySize            = 40001\n") == 40001
    assert parse_max_array_size("nothing here") == 1001
    nodes = parse_nodes(recorded("scontrol_nodes.txt"))
    assert [(n.name, n.cpus, n.memory, n.gpus, n.partitions) for n in nodes] == [
        ("n1", 4, 4096, 2, ("debug",)), ("n2", 4, 4096, 2, ("debug",))]
    typed = parse_nodes("NodeName=g1 CPUTot=64 RealMemory=512000 "
                        "Gres=gpu:a100:4(S:0-1),gpu:t4:2 Partitions=gpu,long State=IDLE\n")
    assert typed[0].gpus == 6 and typed[0].partitions == ("gpu", "long")


def test_a_request_larger_than_any_node():
    nodes = parse_nodes(recorded("scontrol_nodes.txt"))
    assert check_fits(Needs(2, None), nodes) is None
    problem = check_fits(Needs(3, None), nodes)
    assert "asks for 3 GPUs per task, but the largest node has 2" in problem
    assert "no node is in partition 'gpu'" in check_fits(Needs(1, None), nodes, "gpu")
    assert check_fits(Needs(1, None), [Node("a", 1, 1, 0, ("cpu",), "IDLE"),
                                       Node("b", 1, 1, 4, ("gpu",), "IDLE")], "cpu,gpu") is None


def test_sbatch_output():
    assert parse_sbatch_job_id("123\n") == "123"
    assert parse_sbatch_job_id("123;cluster2\n") == "123"
    with pytest.raises(ValueError):
        parse_sbatch_job_id("sbatch: error: x\n")
    assert one_line("sbatch: error: Batch job submission failed: Requested node configuration "
                    "is not available\n") == ("Batch job submission failed: Requested node "
                                              "configuration is not available")


# -- merging ---------------------------------------------------------------------------------------

def state(entries=None, commands=("train",)):
    """A TaskState as collect_states builds it from a task's files."""
    cmds = {c: dict((entries or {}).get(c) or {"status": "pending"}) for c in commands}
    return TaskState("t", summarize(cmds), cmds)


def entry(status, element=None, code=None):
    out = {"status": status, "code": 0 if status == "done" else 1}
    if element:
        job, index = element.split("_")
        out.update(slurm_array_job_id=job, slurm_array_task_id=index, slurm_job_id="99")
    return out


QUEUE = parse_squeue(recorded("squeue_mixed.txt"))
ENDED = parse_sacct(recorded("sacct_ended.txt"))
LAGGING = parse_sacct(recorded("sacct_running.txt"))
TIMEOUT = parse_sacct(recorded("sacct_timeout.txt"))


def test_queued_pending_task_is_pending_with_the_reason():
    s = state()
    merge_task_state(s, "14_2", QUEUE, None, "log")
    assert s.state is Status.PENDING
    assert s.note == "SLURM job 14_2 PENDING (JobArrayTaskLimit)"


def test_a_failed_task_queued_again_is_pending_and_a_running_one_running():
    s = state({"train": entry("failed", "1_0")})
    merge_task_state(s, "14_3", QUEUE, None, "log")
    assert s.state is Status.PENDING
    s = state()
    merge_task_state(s, "14_0", QUEUE, None, "log")
    assert s.state is Status.RUNNING and s.note == "SLURM job 14_0 RUNNING on n1"


def test_done_stays_done_whatever_the_queue_says():
    s = state({"train": entry("done", "14_2")})
    merge_task_state(s, "14_2", QUEUE, None, "log")
    assert s.state is Status.DONE


def test_running_entry_of_a_job_that_hit_its_time_limit_is_a_timeout():
    s = state({"train": entry("running", "4_0")})
    merge_task_state(s, "4_0", {}, TIMEOUT, "log")
    assert s.state is Status.TIMEOUT
    assert s.commands["train"]["status"] == "timeout"
    assert "TIMEOUT" in s.note


def test_interrupted_entry_of_a_timed_out_job_is_a_timeout():
    """SLURM's SIGTERM at the time limit makes the executor record `interrupted`."""
    s = state({"train": entry("interrupted", "4_0")})
    merge_task_state(s, "4_0", {}, TIMEOUT, "log")
    assert s.state is Status.TIMEOUT
    assert s.commands["train"]["note"] == "SLURM job 4_0 hit its time limit"


def test_running_entry_of_a_gone_job_without_accounting_is_interrupted():
    s = state({"train": entry("running", "4_0")})
    merge_task_state(s, "4_0", {}, None, "log")
    assert s.state is Status.INTERRUPTED
    assert "without recording a result" in s.commands["train"]["note"]


def test_cancelled_before_it_started():
    s = state()
    merge_task_state(s, "3_4", {}, ENDED, "out/.slurm/x/logs/3_4.out")
    assert s.state is Status.INTERRUPTED
    assert s.note == "SLURM job 3_4 CANCELLED before the task ran; see out/.slurm/x/logs/3_4.out"


def test_failed_before_it_started():
    s = state()
    merge_task_state(s, "2_0", {}, ENDED, "L")
    assert s.state is Status.FAILED and "FAILED before the task ran" in s.note


def test_gone_without_accounting_storage():
    s = state()
    merge_task_state(s, "3_4", {}, None, "L")
    assert s.state is Status.INTERRUPTED
    assert "no accounting data" in s.note


def test_lagging_record_never_overrides_the_files():
    """squeue no longer has the job, accounting still says RUNNING: stat.json decides."""
    s = state({"train": entry("done", "1_1")})
    merge_task_state(s, "1_1", {}, LAGGING, "L")
    assert s.state is Status.DONE and s.note == ""
    s = state({"train": entry("failed", "1_1")})
    merge_task_state(s, "1_1", {}, LAGGING, "L")
    assert s.state is Status.FAILED
    s = state()
    merge_task_state(s, "3_5", {}, LAGGING, "L")
    assert s.state is Status.INTERRUPTED and "no final record yet" in s.note


def test_a_task_stopped_between_commands_is_interrupted_not_pending():
    s = state({"train": entry("done", "1_0")}, commands=("train", "test"))
    assert s.state is Status.PENDING
    merge_task_state(s, "1_0", {}, ENDED, "L")
    assert s.state is Status.INTERRUPTED


def test_entries_of_local_runs_are_left_alone():
    s = state({"train": {"status": "running", "code": 1, "host": "elsewhere"}})
    merge_task_state(s, "1_0", {}, {"1_0": AccountEntry("1_0", "TIMEOUT", 0, 0, "")}, "L")
    assert s.state is Status.RUNNING
