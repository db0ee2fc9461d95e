"""Per-task timeouts and retries, with real processes and real signals."""

from __future__ import annotations

import signal
import time

import pytest

from support import processes_in_group, read_json, run_process, statuses, wait_for


def entry_of(workdir, task, command="t"):
    return read_json(workdir / f"output/{task}/stat.json")[command]


def test_a_command_past_its_timeout_is_stopped_with_its_whole_group(make_config, cli, workdir):
    make_config("""
        template:
          t: sleep 30 & echo $! > {_output}/child; sleep 30
        timeout: 0.5
        ---
        i: [1]
    """)
    started = time.monotonic()
    result = cli()
    assert time.monotonic() - started < 10
    assert result.code == 1
    entry = entry_of(workdir, "I_1")
    assert (entry["status"], entry["code"], entry["signal"], entry["timeout"]) == (
        "timeout", 1, signal.SIGTERM, 0.5)
    assert 0.5 <= entry["duration"] < 5
    wait_for(lambda: processes_in_group(entry["pid"]) == [], 10, "the group to be gone")
    assert "TIMEOUT I_1 t (timed out after 0." in result.out
    assert "summary: 0 done, 0 failed, 1 timed out, 0 skipped" in result.out
    assert "I_1 t: (timed out after" in result.out  # listed with the failed tasks


def test_a_command_that_ignores_term_is_killed_after_the_grace_period(make_config, cli, workdir):
    make_config("""
        template:
          t: trap '' TERM; sleep 30 & sleep 30
        timeout: 1.5
        ---
        i: [1]
    """)
    result = cli("--grace", "0.3")
    assert result.code == 1
    entry = entry_of(workdir, "I_1")
    assert entry["status"] == "timeout" and entry["signal"] == signal.SIGKILL
    assert entry["duration"] < 5
    wait_for(lambda: processes_in_group(entry["pid"]) == [], 10, "the group to be gone")


def test_a_timeout_param_overrides_the_config_per_task(make_config, cli, workdir):
    make_config("""
        template:
          t: sleep 1
        timeout: 1h
        ---
        timeout: [0.2, 30s]
    """)
    result = cli()
    assert result.code == 1
    assert statuses(workdir / "output") == {"Timeout_0.2": {"t": "timeout"},
                                            "Timeout_30s": {"t": "done"}}
    assert entry_of(workdir, "Timeout_30s")["timeout"] == 30.0
    again = cli()  # a timed-out command runs again on the next run
    assert "commands: 1 to run, 1 skipped" in again.out


def test_debug_mode_honours_the_timeout(make_config, cli, workdir):
    make_config("template:\n  t: echo hi; sleep 30\ntimeout: 1\n---\ni: [1]\n")
    result = cli("-d")
    assert result.code == 1 and "hi" in result.out
    assert entry_of(workdir, "I_1")["status"] == "timeout"


FLAKY = "n=$(cat {_output}/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > {_output}/n; "


def test_retries_run_a_failed_command_again_and_record_each_attempt(make_config, cli, workdir):
    make_config(f"""
        template:
          t: {FLAKY} echo "attempt $n"; [ $n -ge 3 ]
        retries: 2
        ---
        i: [1]
    """)
    result = cli()
    assert result.code == 0, result.out
    entry = entry_of(workdir, "I_1")
    assert (entry["status"], entry["attempt"]) == ("done", 3)
    assert [(a["attempt"], a["status"], a["exit_status"], a["retried_because"])
            for a in entry["attempts"]] == [(1, "failed", 1, "failed"), (2, "failed", 1, "failed")]
    assert result.out.count(" retry  I_1 t (exit status 1) on slot 0 (no GPU): failed; "
                            "attempt ") == 2
    assert "attempt 3 of 3" in result.out
    log = (workdir / entry["log"]).read_text()
    assert log.splitlines() == ["attempt 1", "--- runner: attempt 2 of 3 (failed) ---",
                                "attempt 2", "--- runner: attempt 3 of 3 (failed) ---",
                                "attempt 3"]


def test_retries_only_for_the_failures_named(make_config, cli, workdir):
    make_config(f"""
        template:
          t: {FLAKY} [ $n -ge 2 ] || exit {{code}}
        retries: {{count: 3, on: [exit 3, SIGKILL]}}
        ---
        code: [1, 3]
    """)
    result = cli()
    assert result.code == 1
    one, three = entry_of(workdir, "Code_1"), entry_of(workdir, "Code_3")
    assert (one["status"], one["exit_status"], one["attempt"], one["attempts"]) == (
        "failed", 1, 1, [])
    assert (three["status"], three["attempt"]) == ("done", 2)
    assert three["attempts"][0]["retried_because"] == "exit status 3"


def test_retry_on_a_signal_seen_directly_or_through_the_shell(make_config, cli, workdir):
    make_config(f"""
        template:
          t: |
            {FLAKY} [ $n -ge 2 ] && exit 0
            if [ {{mode}} = direct ]; then kill -9 $$; else sh -c 'kill -9 $$'; fi
        retries: {{count: 1, on: [SIGKILL]}}
        ---
        mode: [direct, shell]
    """)
    result = cli()
    assert result.code == 0, result.out
    first = {p.parent.name: read_json(p)["t"] for p in (workdir / "output").glob("*/stat.json")}
    assert first["Mode_direct"]["attempts"][0]["signal"] == 9
    assert first["Mode_shell"]["attempts"][0]["exit_status"] == 137
    for entry in first.values():
        assert entry["status"] == "done" and entry["attempt"] == 2
        assert entry["attempts"][0]["retried_because"] == "killed by signal 9"


def test_retry_on_cuda_out_of_memory_in_the_log(make_config, cli, workdir):
    make_config(f"""
        template:
          t: |
            {FLAKY} [ $n -ge 2 ] || {{ echo {{message}} >&2; exit 1; }}
        retries: {{count: 1, on: [oom]}}
        ---
        message: ["torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB",
                  "ValueError: bad input"]
    """)
    result = cli()
    assert result.code == 1
    states = {name: entry["t"] for name, entry in
              ((p.parent.name, read_json(p)) for p in (workdir / "output").glob("*/stat.json"))}
    oom = next(e for n, e in states.items() if "CUDA" in n)
    other = next(e for n, e in states.items() if "ValueError" in n)
    assert oom["status"] == "done" and oom["attempts"][0]["retried_because"] == "out of GPU memory"
    assert other["status"] == "failed" and other["attempts"] == []


def test_retry_on_a_log_pattern_only_looks_at_the_last_attempt(make_config, cli, workdir):
    make_config(f"""
        template:
          t: |
            {FLAKY} [ $n -eq 1 ] && {{ echo "NCCL error: unhandled"; exit 1; }}; exit 1
        retries: {{count: 5, on: [{{log: "NCCL (error|timeout)"}}]}}
        ---
        i: [1]
    """)
    assert cli().code == 1
    entry = entry_of(workdir, "I_1")
    assert entry["attempt"] == 2 and entry["status"] == "failed"
    assert entry["attempts"][0]["retried_because"] == "log matches 'NCCL (error|timeout)'"


def test_retry_after_a_timeout(make_config, cli, workdir):
    make_config(f"""
        template:
          t: {FLAKY} [ $n -ge 2 ] || sleep 30
        timeout: 1
        retries: {{count: 1, on: [timeout]}}
        ---
        i: [1]
    """)
    result = cli()
    assert result.code == 0
    entry = entry_of(workdir, "I_1")
    assert entry["status"] == "done" and entry["attempts"][0]["status"] == "timeout"
    assert entry["attempts"][0]["retried_because"] == "timed out"


def test_when_retries_run_out_the_summary_says_how_many_attempts(make_config, cli, workdir):
    make_config("template:\n  t: exit 4\nretries: 1\n---\ni: [1]\n")
    result = cli()
    assert result.code == 1
    assert "I_1 t: (exit status 4 after 2 attempts) on slot 0 (no GPU)" in result.out
    assert entry_of(workdir, "I_1")["attempt"] == 2


def test_ctrl_c_during_a_retry_delay_retries_no_more(make_config, workdir):
    make_config("""
        template:
          t: exit 1
        retries: {count: 3, delay: 60s}
        ---
        i: [1]
    """)
    run = run_process([], workdir)
    for line in run.stdout:
        if " retry " in line:
            break
    assert "attempt 2 of 4 in 60 s" in line
    started = time.monotonic()
    run.send_signal(signal.SIGINT)
    run.communicate(timeout=30)
    assert time.monotonic() - started < 10
    assert run.returncode == 130
    entry = entry_of(workdir, "I_1")
    assert entry["status"] == "failed" and entry["attempt"] == 1


@pytest.mark.parametrize("text, message", [
    ("retries: -1", "key 'retries': count -1 is not a whole number of retries"),
    ("retries: {count: 2, on: [timout]}", "on: 'timout' is not a failure to retry (did you mean "
                                          "'timeout'?)"),
    ("retries: {cnt: 2}", "unknown key 'cnt' (did you mean 'count'?)"),
    ("retries: {count: 1, on: [exit 0]}", "'exit N' (1-255)"),
    ("retries: {count: 1, delay: soon}", "delay: 'soon' is not a duration"),
    ("retries: yes", "True is not a retry policy; write e.g. 'retries: 2'"),
])
def test_a_bad_retry_policy_is_one_clear_line(make_config, cli, workdir, text, message):
    make_config(f"template:\n  t: echo 1\n{text}\n---\ni: [1]\n")
    result = cli()
    assert result.code == 2 and result.out == "" and len(result.err.splitlines()) == 1
    assert message in result.err and result.err.startswith("run: error: params.yaml, line 3")
    assert not (workdir / "output").exists()


def test_a_bad_retry_policy_as_a_param_names_the_tasks(make_config, cli):
    make_config("template:\n  t: echo 1\n---\nretries: [1, {count: 1, on: [never]}]\n")
    result = cli()
    assert result.code == 2
    assert "setting 'retries': on: 'never' is not a failure to retry" in result.err
