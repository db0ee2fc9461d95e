"""The guardian stops our commands when the process that started them dies (kill -9), and
nothing that it cannot prove is the process that was started."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

from runner.execution.guardian import stop_groups
from runner.identity import start_time
from support import processes_in_group, wait_for

STARTER = textwrap.dedent("""
    import sys, time
    from runner.execution.guardian import Guardian
    from runner.execution.process import ProcessGroups

    groups = ProcessGroups(grace=1.0, watcher=Guardian())
    ended = groups.spawn("true", {"PATH": "/usr/bin:/bin"}, None)
    ended.wait()
    groups.finish(ended)
    proc = groups.spawn("sleep 60 & sleep 60; wait", {"PATH": "/usr/bin:/bin"}, None)
    print(proc.pid, flush=True)
    time.sleep(60)
""")


def test_a_killed_starter_leaves_no_command_behind(tmp_path):
    starter = subprocess.Popen([sys.executable, "-c", STARTER], stdout=subprocess.PIPE,
                               text=True, cwd=tmp_path)
    try:
        pid = int(starter.stdout.readline())
        assert len(processes_in_group(pid)) >= 2  # the shell and its two sleeps
        starter.send_signal(signal.SIGKILL)
        starter.wait(timeout=10)
        wait_for(lambda: processes_in_group(pid) == [], timeout=10,
                 what="the guardian to stop the command's whole group")
    finally:
        if starter.poll() is None:
            starter.kill()
        starter.stdout.close()


def test_a_process_that_is_not_the_one_started_is_never_signalled():
    stranger = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        stop_groups({stranger.pid: (start_time(stranger.pid) + 1, 0.1),  # a reused pid
                     os.getpid() + 10 ** 6: (None, 0.1)})  # no start time: nothing provable
        assert stranger.poll() is None
        stop_groups({stranger.pid: (start_time(stranger.pid), 0.5)})
        assert stranger.wait(timeout=5) == -signal.SIGTERM
    finally:
        if stranger.poll() is None:
            stranger.kill()
            stranger.wait()
