"""SLURM as text: sbatch scripts from profiles, arrays from tasks, and the parsers of what
`squeue`, `sacct` and `scontrol` print. Pure functions only; `commands` runs the programs
and `engine` puts the two together.
"""

from __future__ import annotations

import math
import re
import shlex
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, TypeVar, Union

from runner.errors import ConfigError

SHEBANG = "#!/bin/bash"
# Options the -y backend sets itself; a profile may not set them.
RUNNER_OPTIONS = ("array", "output", "error", "chdir", "parsable", "wait")
# GPUs are requested as --gres=gpu[:type]:K only, so that gpus_per_task has one meaning.
GPU_OPTIONS = ("gpus", "gpus-per-task", "gpus-per-node", "gpus-per-socket")
# squeue -o: array job id | array index | job id | state | reason | nodes
SQUEUE_FORMAT = "%F|%K|%i|%T|%r|%N"
SACCT_FIELDS = "JobID,State,ExitCode,NodeList"
ACCOUNTING_DISABLED = "accounting storage is disabled"
QUEUED_STATES = ("PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED",
                 "RESIZING", "SUSPENDED", "STOPPED")
ACTIVE_STATES = ("RUNNING", "COMPLETING", "SIGNALING", "STAGE_OUT")

Value = Union[str, bool]
T = TypeVar("T")


# -- sbatch scripts -------------------------------------------------------------------------------

def quote_sbatch_value(value: str) -> str:
    """A value as sbatch reads it on a `#SBATCH` line: double quotes around anything with
    blanks or quotes, with `"` and `\\` escaped."""
    if "\n" in value or "\r" in value:
        raise ConfigError(f"sbatch option value {value!r} spans lines; give it on one line")
    if value and not re.search(r"[\s\"'\\#]", value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def quote_slurm_filename(path: str) -> str:
    """A literal path inside a SLURM filename pattern (`%` is special there)."""
    return path.replace("%", "%%")


def make_sbatch_line(option: str, value: Value) -> str:
    return f"#SBATCH --{option}" if value is True else (
        f"#SBATCH --{option}={quote_sbatch_value(str(value))}")


def make_sbatch_script(options: Mapping[str, Value], env: Sequence[str], command: str) -> str:
    """The batch script: `#SBATCH --key=value` lines sorted by key, the env lines, the command."""
    lines = [SHEBANG]
    lines.extend(make_sbatch_line(key, options[key]) for key in sorted(options)
                 if options[key] is not False)
    lines.append("")
    lines.extend(env)
    lines.append(command)
    return "\n".join(lines) + "\n"


def make_command_line(argv: Sequence[str]) -> str:
    """A shell line that passes `argv` to the program exactly (quotes, `$`, spaces kept)."""
    return " ".join(shlex.quote(str(a)) for a in argv)


def make_time_limit(seconds: float) -> str:
    """A `--time` value from seconds, rounded up to whole minutes as SLURM counts them."""
    minutes = max(1, math.ceil(seconds / 60 - 1e-9))
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    clock = f"{hours:02d}:{minutes:02d}:00"
    return f"{days}-{clock}" if days else clock


def make_array_range(count: int, max_parallel: Optional[int] = None) -> str:
    """`0-(count-1)`, throttled with `%max_parallel`."""
    text = f"0-{count - 1}" if count > 1 else "0"
    return text + (f"%{max_parallel}" if max_parallel else "")


# -- GPUs, grouping and arrays --------------------------------------------------------------------

def parse_gres_gpus(gres: str) -> Optional[int]:
    """The GPU count of a gres list ('gpu:v100:2,nvme:1' -> 2; 'gpu' -> 1; no gpu -> None)."""
    for item in gres.split(","):
        parts = item.strip().split("(")[0].split(":")
        if parts[0] == "gpu":
            if len(parts) > 1 and parts[-1].isdigit():
                return int(parts[-1])
            return 1
    return None


def make_gres(gres: Optional[str], gpus: int) -> Optional[str]:
    """The gres list with its GPU entry set to `gpus` (type kept; dropped when 0)."""
    items = [i.strip() for i in (gres or "").split(",") if i.strip()]
    out, placed = [], False
    for item in items:
        parts = item.split(":")
        if parts[0] != "gpu":
            out.append(item)
            continue
        placed = True
        if gpus:
            kind = parts[1:-1] if len(parts) > 1 and parts[-1].isdigit() else parts[1:]
            out.append(":".join(["gpu", *kind, str(gpus)]))
    if gpus and not placed:
        out.insert(0, f"gpu:{gpus}")
    return ",".join(out) or None


@dataclass(frozen=True)
class Needs:
    """What one task asks SLURM for beyond the profile: GPUs and a time limit."""

    gpus: int
    time: Optional[str]  # --time value, None: the profile's or the cluster's default

    def describe(self) -> str:
        gpus = f"{self.gpus} GPU" + ("" if self.gpus == 1 else "s")
        return gpus + (f", time {self.time}" if self.time else "")


def group_by(items: Iterable[T], key) -> List[Tuple[Any, List[T]]]:
    """Items grouped by `key(item)`, groups in order of first appearance, items in order."""
    groups: Dict[Any, List[T]] = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    return list(groups.items())


def split_array(items: Sequence[T], max_array_size: int) -> List[List[T]]:
    """Chunks that fit one job array: indices 0..n-1 with n <= MaxArraySize."""
    if max_array_size < 1:
        raise ValueError(f"MaxArraySize {max_array_size} leaves no room for an array")
    return [list(items[i:i + max_array_size]) for i in range(0, len(items), max_array_size)]


# -- what the cluster says ------------------------------------------------------------------------

def parse_scontrol_config(text: str) -> Dict[str, str]:
    """`scontrol show config` as key -> value."""
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() and " " not in key.strip():
            out[key.strip()] = value.strip()
    return out


def parse_max_array_size(text: str, default: int = 1001) -> int:
    value = parse_scontrol_config(text).get("MaxArraySize", "")
    return int(value) if value.isdigit() else default


@dataclass(frozen=True)
class Node:
    """One node as `scontrol -o show nodes` describes it."""

    name: str
    cpus: int
    memory: int  # MB
    gpus: int
    partitions: Tuple[str, ...]
    state: str


def parse_nodes(text: str) -> List[Node]:
    """`scontrol -o show nodes` (one node per line, key=value fields)."""
    nodes = []
    for line in text.splitlines():
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        if "NodeName" not in fields:
            continue
        gres = fields.get("Gres", "")
        gpus = 0 if gres in ("", "(null)") else sum(
            parse_gres_gpus(item) or 0 for item in re.split(r",(?![^(]*\))", gres))
        nodes.append(Node(name=fields["NodeName"], cpus=_int(fields.get("CPUTot")),
                          memory=_int(fields.get("RealMemory")), gpus=gpus,
                          partitions=tuple(p for p in fields.get("Partitions", "").split(",") if p),
                          state=fields.get("State", "")))
    return nodes


def check_fits(needs: Needs, nodes: Sequence[Node], partition: Optional[str] = None
               ) -> Optional[str]:
    """Why no node can ever run a task with these needs, or None when one can."""
    if not nodes:
        return None
    pool = [n for n in nodes if not partition or set(partition.split(",")) & set(n.partitions)]
    if not pool:
        return f"no node is in partition '{partition}'"
    most = max(n.gpus for n in pool)
    if needs.gpus > most:
        where = f" of partition '{partition}'" if partition else ""
        return (f"asks for {needs.gpus} GPUs per task, but the largest node{where} has {most} "
                f"(scontrol show nodes)")
    return None


@dataclass(frozen=True)
class QueueEntry:
    """A job array element that `squeue` lists: pending, running or completing."""

    job: str  # "<array job id>_<index>"
    state: str
    reason: str
    nodes: str

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES


def parse_squeue(text: str) -> Dict[str, QueueEntry]:
    """`squeue -h -r -o SQUEUE_FORMAT` -> element key -> entry."""
    out = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) != 6:
            continue
        array_job, index, job, state, reason, nodes = parts
        key = f"{array_job}_{index}" if index.isdigit() else job
        out[key] = QueueEntry(key, state, "" if reason == "None" else reason, nodes)
    return out


@dataclass(frozen=True)
class AccountEntry:
    """A job array element as `sacct` records it."""

    job: str
    state: str  # first word: CANCELLED, not "CANCELLED by 0"
    exit_status: Optional[int]
    signal: Optional[int]
    nodes: str

    @property
    def finished(self) -> bool:
        return self.state not in QUEUED_STATES + ACTIVE_STATES


def parse_sacct(text: str) -> Dict[str, AccountEntry]:
    """`sacct -X -n -P -o SACCT_FIELDS` -> element key -> entry.

    The compact record of an array's never-started elements (`12_[3-5%2]`) stands for each of
    its indices, but an element's own record (`12_3`) wins over it: the compact one may still
    cover elements that have started since (accounting lags behind the controller).
    """
    out: Dict[str, AccountEntry] = {}
    compact: Dict[str, AccountEntry] = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) != 4:
            continue
        job, state, exit_code, nodes = parts
        code, _, sig = exit_code.partition(":")
        state = state.split()[0] if state.strip() else "UNKNOWN"
        keys = expand_job_ids(job)
        for key in keys:
            entry = AccountEntry(key, state, int(code) if code.isdigit() else None,
                                 int(sig) if sig.isdigit() else None,
                                 "" if nodes in ("None assigned", "(null)") else nodes)
            (out if keys == [job] else compact)[key] = entry
    return {**compact, **out}


def expand_job_ids(job: str) -> List[str]:
    """'12_3' -> ['12_3']; '12_[3-5,8%2]' -> ['12_3', '12_4', '12_5', '12_8']; '12' -> ['12']."""
    match = re.fullmatch(r"(\d+)_\[([\d,\-]+)(?:%\d+)?\]", job)
    if not match:
        return [job]
    base, ranges = match.groups()
    keys = []
    for part in ranges.split(","):
        first, _, last = part.partition("-")
        if first.isdigit():
            keys.extend(f"{base}_{i}" for i in range(int(first), int(last or first) + 1))
    return keys


def parse_sbatch_job_id(text: str) -> str:
    """The job id from `sbatch --parsable` ('123' or '123;cluster')."""
    first = text.strip().splitlines()[0] if text.strip() else ""
    job = first.split(";")[0].strip()
    if not job.isdigit():
        raise ValueError(f"sbatch printed {text.strip()!r}, not a job id")
    return job


def is_accounting_disabled(message: str) -> bool:
    return ACCOUNTING_DISABLED in message.lower()


def _int(value: Optional[str]) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0
