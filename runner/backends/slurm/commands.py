"""The thin layer that runs SLURM's client programs (`sbatch`, `squeue`, `sacct`, `scontrol`,
`scancel`) and turns what they print into the records of `runner.backends.slurm`.

Every failure becomes one `BackendError` line that names the program and repeats SLURM's own
message. Accounting that is switched off (no slurmdbd) is not an error: `accounting()` returns
None and the callers fall back to `stat.json` and `squeue`.
"""

from __future__ import annotations

import shutil
import subprocess
from typing import Dict, Iterable, List, Optional, Sequence

from runner.backends.slurm.script import (
    SACCT_FIELDS,
    SQUEUE_FORMAT,
    AccountEntry,
    Node,
    QueueEntry,
    is_accounting_disabled,
    parse_max_array_size,
    parse_nodes,
    parse_sacct,
    parse_sbatch_job_id,
    parse_squeue,
)
from runner.errors import BackendError

COMMAND_TIMEOUT = 120.0  # seconds; a controller that does not answer in this long is down
INVALID_JOB_ID = "invalid job id"


def is_available() -> bool:
    """Whether SLURM's client programs are on PATH."""
    return shutil.which("sbatch") is not None


def one_line(text: str) -> str:
    """SLURM's messages on one line, without the repeated `sbatch: error:` prefixes."""
    lines = []
    for line in text.strip().splitlines():
        line = line.strip()
        for prefix in ("sbatch: error: ", "squeue: error: ", "sacct: error: ", "scancel: error: ",
                       "scontrol: error: ", "error: "):
            if line.startswith(prefix):
                line = line[len(prefix):]
        if line and line not in lines:
            lines.append(line)
    return "; ".join(lines)


class SlurmCommands:
    """Runs the SLURM client programs of this machine."""

    def __init__(self, timeout: float = COMMAND_TIMEOUT):
        self.timeout = timeout

    def run(self, argv: Sequence[str], input: Optional[str] = None,
            check: bool = True) -> subprocess.CompletedProcess:
        try:
            done = subprocess.run(list(argv), input=input, capture_output=True, text=True,
                                  timeout=self.timeout)
        except FileNotFoundError:
            raise BackendError(f"{argv[0]}: not found on PATH; the SLURM backend needs SLURM's "
                               f"client commands (run on the cluster's login node, or use "
                               f"--backend local)") from None
        except subprocess.TimeoutExpired:
            raise BackendError(f"{argv[0]}: no answer from SLURM within {self.timeout:.0f} s; is "
                               f"the controller up? (scontrol ping)") from None
        if check and done.returncode != 0:
            raise BackendError(f"{argv[0]} failed (exit status {done.returncode}): "
                               f"{one_line(done.stderr or done.stdout) or 'no message'}")
        return done

    # -- the cluster ----------------------------------------------------------------------------

    def max_array_size(self) -> int:
        return parse_max_array_size(self.run(["scontrol", "show", "config"]).stdout)

    def nodes(self) -> List[Node]:
        return parse_nodes(self.run(["scontrol", "-o", "show", "nodes"]).stdout)

    # -- jobs -----------------------------------------------------------------------------------

    def test_submit(self, script: str) -> None:
        """Let sbatch validate a script without submitting it (`--test-only`)."""
        done = self.run(["sbatch", "--test-only"], input=script, check=False)
        if done.returncode != 0:
            raise BackendError(f"sbatch refused the job: {one_line(done.stderr) or 'no message'}")

    def submit(self, script_path: str) -> str:
        """Submit a script; its job id."""
        done = self.run(["sbatch", "--parsable", script_path], check=False)
        if done.returncode != 0:
            raise BackendError(f"sbatch refused {script_path}: "
                               f"{one_line(done.stderr) or 'no message'}")
        try:
            return parse_sbatch_job_id(done.stdout)
        except ValueError as e:
            raise BackendError(f"sbatch {script_path}: {e}") from None

    def queue(self, job_ids: Iterable[str]) -> Dict[str, QueueEntry]:
        """The elements of these jobs that are pending, running or completing."""
        ids = sorted(set(job_ids), key=_job_sort_key)
        if not ids:
            return {}
        done = self.run(["squeue", "--noheader", "--array", "--jobs", ",".join(ids),
                         "--format", SQUEUE_FORMAT], check=False)
        if done.returncode != 0:
            if INVALID_JOB_ID in done.stderr.lower():  # every job has left the controller
                return {}
            raise BackendError(f"squeue failed (exit status {done.returncode}): "
                               f"{one_line(done.stderr) or 'no message'}")
        return parse_squeue(done.stdout)

    def accounting(self, job_ids: Iterable[str]) -> Optional[Dict[str, AccountEntry]]:
        """What accounting recorded for these jobs; None when accounting storage is off."""
        ids = sorted(set(job_ids), key=_job_sort_key)
        if not ids:
            return {}
        done = self.run(["sacct", "--noheader", "--parsable2", "--allocations", "--jobs",
                         ",".join(ids), "--format", SACCT_FIELDS], check=False)
        if done.returncode != 0:
            if is_accounting_disabled(done.stderr + done.stdout):
                return None
            raise BackendError(f"sacct failed (exit status {done.returncode}): "
                               f"{one_line(done.stderr) or 'no message'}")
        return parse_sacct(done.stdout)

    def cancel(self, job_ids: Iterable[str]) -> None:
        ids = sorted(set(job_ids), key=_job_sort_key)
        if ids:
            self.run(["scancel", *ids])


def _job_sort_key(job: str):
    head = job.split("_")[0]
    return (int(head) if head.isdigit() else 0, job)
