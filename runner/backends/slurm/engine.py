"""`--backend slurm`: submit a plan's unfinished tasks as job arrays, tell where they are, and
cancel them.

Each array element runs `python -m runner exec-task TABLE` (the core's single-task executor),
so a task leaves the same `param.json`, `stat.json` and logs as on a workstation, plus its SLURM
job and node. One submission is a directory the user can read and resubmit by hand::

    <output>/.slurm/<id>/submission.json   profile, arrays with their job ids and task names
    <output>/.slurm/<id>/array-<i>.sbatch  the batch script of array i (sbatch it again by hand)
    <output>/.slurm/<id>/tasks-<i>.json    its task table: element k runs task k
    <output>/.slurm/<id>/logs/<job>_<k>.out  what SLURM captured of element k (the runner's lines)
"""

from __future__ import annotations

import os
import re
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

from runner.backends.base import (CancelReport, Engine, RunReport, RunRequest,
                                  new_submission_id)
from runner.backends.registry import ENGINES
from runner.backends.slurm.commands import SlurmCommands, is_available
from runner.backends.slurm.script import (GPU_OPTIONS, RUNNER_OPTIONS, AccountEntry, Needs,
                                          QueueEntry, check_fits, group_by, make_array_range,
                                          make_command_line, make_gres, make_sbatch_script,
                                          make_time_limit, parse_gres_gpus, quote_slurm_filename,
                                          split_array)
from runner.errors import BackendError, ConfigError, ResourceError, UsageError, choices_text
from runner.execution.executor import Events
from runner.spec.profiles import Profile
from runner.store.base import TaskStore, make_task_table
from runner.store.files import make_directory, read_json, write_atomic, write_json
from runner.store.state import TaskState
from runner.task import CommandResult, Status, Task, TaskResult

SLURM_DIR = ENGINES["slurm"].records
SUBMISSION_FILE = "submission.json"
DEFAULT_MAX_ARRAY_SIZE = 1001  # SLURM's default MaxArraySize
POLL_SECONDS = 1.0
UNSET_GPUS = "unset CUDA_VISIBLE_DEVICES  # no GPU asked for: none from the submitting shell"


class SubmissionPaths:
    """Every path of one submission directory."""

    def __init__(self, root: str, submission: str):
        self.id = submission
        self.dir = os.path.abspath(os.path.join(root, SLURM_DIR, submission))
        self.record = os.path.join(self.dir, SUBMISSION_FILE)
        self.logs = os.path.join(self.dir, "logs")

    def script(self, index: int) -> str:
        return os.path.join(self.dir, f"array-{index}.sbatch")

    def table(self, index: int) -> str:
        return os.path.join(self.dir, f"tasks-{index}.json")

    def log_pattern(self) -> str:
        return os.path.join(quote_slurm_filename(self.logs), "%A_%a.out")

    def log(self, job: str) -> str:
        return os.path.join(self.logs, f"{job}.out")


@dataclass
class ArrayPlan:
    """One job array to submit: its tasks (element k runs tasks[k]) and what they need."""

    index: int
    needs: Needs
    tasks: List[Task]
    options: Dict[str, Any]
    script: str = ""


def read_submissions(store: TaskStore) -> List[Dict[str, Any]]:
    """Every submission record of a task directory, oldest first."""
    base = os.path.join(store.root, SLURM_DIR)
    try:
        names = os.listdir(base)
    except (FileNotFoundError, NotADirectoryError):
        return []
    records = []
    for name in names:
        record = read_json(os.path.join(base, name, SUBMISSION_FILE))
        if isinstance(record, dict) and isinstance(record.get("arrays"), list):
            record.setdefault("id", name)
            records.append(record)
    return sorted(records, key=lambda r: (r.get("submitted_at") or 0, r["id"]))


def iter_elements(records: Iterable[Dict[str, Any]]) -> Iterable[Tuple[str, str, Dict[str, Any]]]:
    """(task name, element key '<job>_<k>', record) of every submitted element, oldest first."""
    for record in records:
        for array in record["arrays"]:
            job = array.get("job_id")
            if job:
                for k, name in enumerate(array.get("tasks", [])):
                    yield name, f"{job}_{k}", record


def job_ids(records: Iterable[Dict[str, Any]]) -> List[str]:
    return [a["job_id"] for r in records for a in r["arrays"] if a.get("job_id")]


class SlurmEngine(Engine):
    """Job arrays on a SLURM cluster, driven through its client programs."""

    name = "slurm"

    def __init__(self, commands: Optional[SlurmCommands] = None):
        self.commands = commands or SlurmCommands()
        self._stopped = False

    # -- run: submit, and with `wait` follow the jobs to the end --------------------------------

    def run(self, request: RunRequest, events: Events) -> RunReport:
        submitted = self.submit(request)
        for line in submitted.lines:
            events.message(line)
        report = RunReport(finished=False)
        if request.dry_run or not request.settings.get("wait"):
            return report
        jobs = [j["job_id"] for j in submitted.jobs] + sorted(
            {k.split("_")[0] for k in submitted.queued.values()})
        names = [n for j in submitted.jobs for n in j["tasks"]] + list(submitted.queued)
        if not names:
            return report
        started = time.monotonic()

        def show(counts: Dict[str, int]) -> None:
            text = ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items())) or "none left"
            events.notice(f"[{time.monotonic() - started:6.1f}s] in the queue: {text}")

        if not wait_for_jobs(self, jobs, show, stop=lambda: self._stopped):
            report.lines = ["stopped waiting; the jobs go on (run cancel -o DIR stops them)"]
            return report
        wanted = set(names)
        states = [s for s in self.refine(request.store, request.store.states())
                  if s.name in wanted]
        report.results = [result_of(state) for state in states]
        report.finished = True
        return report

    def stop(self, kill: bool = False) -> None:
        self._stopped = True

    def launch_script(self, profile: Profile, command_line: str, runs: int, dry_run: bool,
                      events: Events) -> RunReport:
        from runner.backends.slurm.launch_script import make_launch_script, submit_launch_script

        script = make_launch_script(profile, command_line, runs)
        if dry_run:
            return RunReport(finished=False, lines=[script.rstrip("\n")])
        if not is_available():
            raise BackendError(f"profile '{profile.name}' runs on cluster '{profile.host}', but "
                               f"sbatch is not on PATH here; run this on the cluster's login "
                               f"node, or add --dry-run to see the script")
        job, path = submit_launch_script(script, profile, time.strftime("%Y-%m-%d.%H_%M_%S"),
                                         self.commands)
        array = f" ({runs} runs: array {job}_[0-{runs - 1}])" if runs > 1 else ""
        return RunReport(finished=False,
                         lines=[f"submitted job {job} to {profile.host}{array}; script {path}"])

    def submit(self, request: RunRequest) -> "Submitted":
        """Submit the tasks that are not done and not already queued; nothing on error."""
        profile = request.profile or Profile(name="(none)", host="cluster", device="cpu",
                                             source="--profile not given")
        dry_run = request.dry_run
        check_profile(profile)
        if not dry_run and not is_available():
            raise BackendError("sbatch: not found on PATH; --backend slurm submits with SLURM's "
                               "client commands: run on the cluster's login node (--dry-run "
                               "shows the scripts anywhere)")
        store = request.store
        records = read_submissions(store)
        report = Submitted(profile)
        queued = self._queued_tasks(records, report, dry_run)
        tasks = [t for t in request.tasks if t.name not in queued]
        report.queued = {t.name: queued[t.name] for t in request.tasks if t.name in queued}
        if not tasks:
            report.describe(dry_run, store.root)
            return report
        needs = {t.name: task_needs(t, profile) for t in tasks}
        max_size, nodes = self._cluster_facts(report, dry_run)
        partition = profile.resource_map.get("partition")
        groups = group_by(tasks, lambda t: needs[t.name])
        for need, members in groups:
            problem = check_fits(need, nodes, partition if isinstance(partition, str) else None)
            if problem:
                raise ResourceError(
                    f"{_count(members)} ({_some(members)}) {problem}; lower gpus_per_task or "
                    f"choose a profile whose nodes are larger (nothing was submitted)")
        paths = SubmissionPaths(store.root, new_submission_id(store, SLURM_DIR, request.datetime))
        python = profile.python or sys.executable
        arrays = []
        for need, members in groups:
            for chunk in split_array(members, max_size):
                index = len(arrays)
                options = array_options(profile, need, len(chunk),
                                        request.settings.get("max_parallel"), paths, store.root,
                                        os.getcwd())
                script = make_array_script(options, profile, python, paths.table(index),
                                           request.grace, need.gpus)
                arrays.append(ArrayPlan(index, need, chunk, options, script))
        report.scripts = [a.script for a in arrays]
        report.submission, report.directory = paths.id, paths.dir
        report.jobs = [{"array": a.index, "job_id": None, "tasks": [t.name for t in a.tasks],
                        "needs": a.needs.describe(), "script": paths.script(a.index)}
                       for a in arrays]
        if dry_run:
            report.describe(dry_run, store.root)
            return report
        for array in arrays:  # let sbatch judge every array before any is submitted
            try:
                self.commands.test_submit(array.script)
            except BackendError as e:
                raise ResourceError(f"{_count(array.tasks)} ({_some(array.tasks)}, "
                                    f"{array.needs.describe()}): {e} (nothing was submitted)"
                                    ) from None
        if request.prepare is not None:
            request.prepare()
        record = self._write_submission(request, paths, arrays)
        self._submit_arrays(record, paths, arrays, report, store)
        report.describe(dry_run, store.root)
        return report

    def _queued_tasks(self, records, report: "Submitted", dry_run: bool) -> Dict[str, str]:
        """task -> its element still pending or running from an earlier submission."""
        ids = job_ids(records)
        if not ids:
            return {}
        try:
            queue = self.commands.queue(ids)
        except BackendError as e:
            if not dry_run:
                raise
            report.notes.append(f"cannot see the queue ({e}); tasks already queued are listed too")
            return {}
        return {name: key for name, key, _ in iter_elements(records) if key in queue}

    def _cluster_facts(self, report: "Submitted", dry_run: bool):
        try:
            return self.commands.max_array_size(), self.commands.nodes()
        except BackendError as e:
            if not dry_run:
                raise
            report.notes.append(f"cannot ask the cluster ({e}); assuming MaxArraySize "
                                f"{DEFAULT_MAX_ARRAY_SIZE}")
            return DEFAULT_MAX_ARRAY_SIZE, []

    def _write_submission(self, request: RunRequest, paths: SubmissionPaths,
                          arrays: List[ArrayPlan]) -> Dict[str, Any]:
        store = request.store
        make_directory(paths.logs)
        info = {**request.info, "datetime": request.datetime, "force": request.force,
                "submission": paths.id}
        for array in arrays:
            write_json(paths.table(array.index), make_task_table(store, array.tasks, info),
                       indent=None, sort_keys=False)
            write_atomic(paths.script(array.index), array.script.encode())
        profile = request.profile
        record = {"version": 1, "id": paths.id, "submitted_at": time.time(),
                  "datetime": request.datetime, "output": store.root, "cwd": os.getcwd(),
                  "profile": profile.to_json() if profile else None,
                  "max_parallel": request.settings.get("max_parallel"), **request.info,
                  "arrays": [{"index": a.index, "job_id": None, "script": os.path.basename(
                      paths.script(a.index)), "table": os.path.basename(paths.table(a.index)),
                              "gpus_per_task": a.needs.gpus, "time": a.needs.time,
                              "tasks": [t.name for t in a.tasks]} for a in arrays]}
        write_json(paths.record, record, sort_keys=False)
        store.write_run_table(f"slurm.{paths.id}", [t for a in arrays for t in a.tasks], info)
        return record

    def _submit_arrays(self, record, paths: SubmissionPaths, arrays: List[ArrayPlan],
                       report: "Submitted", store: TaskStore) -> None:
        for array, entry, job in zip(arrays, record["arrays"], report.jobs):
            try:
                entry["job_id"] = job["job_id"] = self.commands.submit(paths.script(array.index))
            except BackendError as e:
                done = [a["job_id"] for a in record["arrays"] if a["job_id"]]
                raise BackendError(
                    f"{e}; " + (f"arrays already submitted: {', '.join(done)} (run cancel -o "
                                f"{store.root} stops them)" if done else "nothing was submitted")
                ) from None
            finally:
                write_json(paths.record, record, sort_keys=False)

    # -- where the tasks are --------------------------------------------------------------------

    def queue(self, jobs: Iterable[str]) -> Dict[str, QueueEntry]:
        return self.commands.queue(jobs)

    def refine(self, store: TaskStore, states: List[TaskState]) -> List[TaskState]:
        records = read_submissions(store)
        latest: Dict[str, Tuple[str, Dict[str, Any]]] = {}
        for name, key, record in iter_elements(records):
            latest[name] = (key, record)
        if not latest:
            return states
        try:
            queue = self.commands.queue(job_ids(records))
        except BackendError as e:
            for state in states:
                if state.name in latest and state.state is not Status.DONE:
                    state.note = f"SLURM not reachable ({e}); state from the files only"
            return states
        by_name = {s.name: s for s in states}
        unsure = [s for s in states if s.name in latest and _needs_accounting(s, latest, queue)]
        accounting: Optional[Dict[str, AccountEntry]] = {}
        if unsure:
            for state in unsure:  # a task may have ended between reading its files and squeue
                _refresh(store, state)
            wanted = {_element_of(e) or latest[s.name][0] for s in unsure
                      for e in s.commands.values()}
            try:
                accounting = self.commands.accounting(k.split("_")[0] for k in wanted if k)
            except BackendError:
                accounting = None
        for name, (key, record) in latest.items():
            state = by_name.get(name)
            if state is not None:
                log = SubmissionPaths(store.root, record["id"]).log(key)
                merge_task_state(state, key, queue, accounting, log)
        return states

    # -- cancel ---------------------------------------------------------------------------------

    def cancel(self, store: TaskStore, submission: Optional[str] = None,
               wait: float = 0.0) -> CancelReport:
        records = read_submissions(store)
        if submission is not None:
            known = [r["id"] for r in records]
            records = [r for r in records if r["id"] == submission]
            if not records:
                raise UsageError(f"--submission {submission}: no such submission in "
                                 f"{os.path.join(store.root, SLURM_DIR)}; submissions are "
                                 f"{choices_text(known)}")
        queue = self.commands.queue(job_ids(records))
        report = CancelReport()
        if not queue:
            return report
        jobs = sorted({key.split("_")[0] for key in queue}, key=lambda j: int(j))
        report.tasks = [name for name, key, _ in iter_elements(records) if key in queue]
        self.commands.cancel(jobs)
        report.lines.append(f"cancelled {len(jobs)} SLURM job{'s' if len(jobs) != 1 else ''} "
                            f"({', '.join(jobs)}) holding {len(report.tasks)} "
                            f"task{'s' if len(report.tasks) != 1 else ''}")
        deadline = time.monotonic() + wait
        while wait and time.monotonic() < deadline:
            left = self.commands.queue(jobs)
            if not left:
                break
            time.sleep(POLL_SECONDS)
        else:
            if wait:
                report.left = [f"SLURM job {j}" for j in sorted(
                    {k.split("_")[0] for k in self.commands.queue(jobs)})]
        return report


# -- pure parts of submit and status --------------------------------------------------------------

def check_profile(profile: Profile) -> None:
    if profile.is_local:
        raise UsageError(f"profile '{profile.name}' runs on host 'local' ({profile.source}); "
                         f"--backend slurm needs a cluster profile, or drop --backend slurm")
    options = profile.resource_map
    for option in RUNNER_OPTIONS:
        if option in options:
            raise ConfigError(f"{profile.source}, profile '{profile.name}': resources.{option} is "
                              f"set by the runner for --backend slurm; remove it")
    for option in GPU_OPTIONS:
        if option in options:
            raise ConfigError(f"{profile.source}, profile '{profile.name}': resources.{option}: "
                              f"the runner asks for GPUs with gres; write gres: gpu:K (or "
                              f"gpu:TYPE:K) and set gpus_per_task in the YAML to change K")


def task_needs(task: Task, profile: Profile) -> Needs:
    """GPUs and time limit of one task: its settings, else the profile's."""
    gpus = task.settings.get("gpus_per_task")
    if gpus is None:
        gres = profile.resource_map.get("gres")
        from_gres = parse_gres_gpus(gres) if isinstance(gres, str) else None
        gpus = from_gres if from_gres is not None else (1 if profile.device == "gpu" else 0)
    elif profile.device != "gpu":
        raise ConfigError(f"task {task.name} asks for gpus_per_task: {gpus}, but profile "
                          f"'{profile.name}' is a cpu profile (device: cpu in {profile.source}); "
                          f"use a gpu profile or drop gpus_per_task")
    timeout = task.settings.get("timeout")
    return Needs(gpus=int(gpus), time=make_time_limit(timeout) if timeout else None)


def array_options(profile: Profile, needs: Needs, count: int, max_parallel: Optional[int],
                  paths: SubmissionPaths, output: str, cwd: str) -> Dict[str, Any]:
    """The sbatch options of one array: the profile's, with GPUs, time, array and files set."""
    options: Dict[str, Any] = dict(profile.resource_map)
    gres = make_gres(options.get("gres") if isinstance(options.get("gres"), str) else None,
                     needs.gpus)
    options.pop("gres", None)
    if gres:
        options["gres"] = gres
    if needs.time:
        options["time"] = needs.time
    options["array"] = make_array_range(count, max_parallel)
    options["output"] = paths.log_pattern()
    options["chdir"] = cwd
    options.setdefault("job-name", "runner-" + re.sub(r"[^A-Za-z0-9._+-]", "_",
                                                      os.path.basename(os.path.abspath(output))))
    return options


# What `stat.json` records of the SLURM job that ran a command (`run exec-task --record`).
RECORDED_VARIABLES = (("slurm_job_id", "SLURM_JOB_ID"),
                      ("slurm_array_job_id", "SLURM_ARRAY_JOB_ID"),
                      ("slurm_array_task_id", "SLURM_ARRAY_TASK_ID"),
                      ("slurm_node", "SLURMD_NODENAME"))


def make_array_script(options: Dict[str, Any], profile: Profile, python: str, table: str,
                      grace: float, gpus: int = 1) -> str:
    """The batch script of one array: each element runs its task of `table` with the core's
    single-task executor (`$SLURM_ARRAY_TASK_ID` picks the task; the job's ids and node are
    recorded in `stat.json`). SLURM sets `CUDA_VISIBLE_DEVICES` for the GPUs it binds; without
    GPUs none may leak in from the shell that ran sbatch (its environment is exported)."""
    command = make_command_line([python, "-m", "runner", "exec-task", table, "--grace",
                                 f"{grace:g}"])
    records = " ".join(f'--record {key}="${{{variable}}}"' for key, variable in RECORDED_VARIABLES)
    env = list(profile.env) + ([] if gpus else [UNSET_GPUS])
    return make_sbatch_script(options, env,
                              f'exec {command} "$SLURM_ARRAY_TASK_ID" {records}')


def _element_of(entry: Dict[str, Any]) -> Optional[str]:
    """The array element that wrote a stat.json entry, as '<job>_<k>'."""
    job, index = entry.get("slurm_array_job_id"), entry.get("slurm_array_task_id")
    return f"{job}_{index}" if job and index is not None else None


def _needs_accounting(state: TaskState, latest, queue: Dict[str, QueueEntry]) -> bool:
    if latest[state.name][0] in queue or state.state is Status.DONE:
        return False
    return state.state is Status.PENDING or any(
        e.get("status") in (Status.RUNNING.value, Status.INTERRUPTED.value) and _element_of(e)
        for e in state.commands.values())


def _refresh(store: TaskStore, state: TaskState) -> None:
    """Read a task's files again (it may have ended since they were first read)."""
    fresh = store.state_of(state.name)
    for command, entry in fresh.commands.items():
        if command in state.commands:
            state.commands[command] = dict(entry)
    state.resummarize()


# SLURM's end state of a job that ended without the runner recording it -> our status.
_ENDED = {"TIMEOUT": Status.TIMEOUT, "DEADLINE": Status.TIMEOUT, "OUT_OF_MEMORY": Status.FAILED,
          "FAILED": Status.FAILED, "BOOT_FAIL": Status.FAILED, "NODE_FAIL": Status.INTERRUPTED,
          "CANCELLED": Status.INTERRUPTED, "PREEMPTED": Status.INTERRUPTED}


def merge_task_state(state: TaskState, key: str, queue: Dict[str, QueueEntry],
                     accounting: Optional[Dict[str, AccountEntry]], log: str) -> None:
    """One task's state from its files (the truth), the queue and accounting.

    `key` is the task's latest element; `accounting` None means accounting storage is off.
    """
    queued = queue.get(key)
    if queued is not None:
        if state.state is not Status.DONE:
            state.state = Status.RUNNING if queued.active else Status.PENDING
        where = f" on {queued.nodes}" if queued.active and queued.nodes else ""
        why = f" ({queued.reason})" if queued.reason and not queued.active else ""
        state.note = f"SLURM job {key} {queued.state}{where}{why}"
        return
    ended: Dict[str, str] = {}
    for command, entry in state.commands.items():
        element = _element_of(entry)
        if element is None or element in queue:
            continue
        record = accounting.get(element) if accounting else None
        if record is not None and not record.finished:  # accounting lags behind squeue
            record = None
        status = entry.get("status")
        if status == Status.RUNNING.value:  # its job ended without a word
            new = _ENDED.get(record.state, Status.INTERRUPTED) if record else Status.INTERRUPTED
            entry.update(status=new.value, code=1,
                         note=f"SLURM job {element} ended "
                              f"{record.state if record else 'without recording a result'}")
            ended[command] = record.state if record else "ENDED"
        elif status == Status.INTERRUPTED.value and record and record.state in ("TIMEOUT",
                                                                                "DEADLINE"):
            entry.update(status=Status.TIMEOUT.value, note=f"SLURM job {element} hit its time "
                                                           f"limit")
            ended[command] = record.state
    if ended:
        state.resummarize()
        state.note = "SLURM: " + ", ".join(f"{c} {s}" for c, s in ended.items())
        return
    if state.state is not Status.PENDING:
        if state.state is not Status.DONE and any(_element_of(e) for e in state.commands.values()):
            record = accounting.get(key) if accounting else None
            state.note = f"SLURM job {key}" + (f" {record.state}" if record else "")
        return
    # Submitted, not in the queue, nothing (more) recorded: it ended before it could run.
    record = accounting.get(key) if accounting else None
    if record is None or not record.finished:
        state.state = Status.INTERRUPTED
        state.note = (f"SLURM job {key} left the queue without running the task ("
                      + ("no accounting data" if accounting is None else
                         "accounting has no final record yet") + f"); see {log}")
    else:
        state.state = _ENDED.get(record.state, Status.INTERRUPTED)
        state.note = f"SLURM job {key} {record.state} before the task ran; see {log}"


def plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def _count(tasks: List[Task]) -> str:
    return plural(len(tasks), "task")


def _some(tasks: List[Task], limit: int = 3) -> str:
    names = ", ".join(t.name for t in tasks[:limit])
    return names + (f" and {len(tasks) - limit} more" if len(tasks) > limit else "")


def wait_for_jobs(engine: SlurmEngine, jobs: List[str],
                  on_change: Callable[[Dict[str, int]], None],
                  poll: float = POLL_SECONDS, stop: Optional[Callable[[], bool]] = None) -> bool:
    """Poll the queue until these jobs left it (True), or `stop()` says to give up (False)."""
    last: Optional[Dict[str, int]] = None
    while True:
        queue = engine.queue(jobs)
        counts: Dict[str, int] = {}
        for entry in queue.values():
            counts[entry.state] = counts.get(entry.state, 0) + 1
        if counts != last:
            on_change(counts)
            last = counts
        if not queue:
            return True
        if stop is not None and stop():
            return False
        time.sleep(poll)


@dataclass
class Submitted:
    """What a submission did: which jobs hold which tasks, what it left out and why."""

    profile: Profile
    submission: Optional[str] = None  # id, None when nothing was submitted
    directory: Optional[str] = None
    jobs: List[Dict[str, Any]] = field(default_factory=list)  # per array: job id, tasks, needs
    queued: Dict[str, str] = field(default_factory=dict)  # task -> job still queued, left out
    notes: List[str] = field(default_factory=list)
    scripts: List[str] = field(default_factory=list)  # script texts (for --dry-run)
    lines: List[str] = field(default_factory=list)

    def describe(self, dry_run: bool, root: str) -> None:
        """The lines the CLI shows for this submission."""
        lines = self.lines = []
        if self.queued:
            jobs = sorted(set(self.queued.values()))
            lines.append(f"already queued or running, not submitted again: {len(self.queued)} "
                         f"({', '.join(jobs[:5])}{' ...' if len(jobs) > 5 else ''})")
        lines.extend(f"note: {n}" for n in self.notes)
        for job in self.jobs:
            lines.append(f"{'would submit' if dry_run else 'submitted'} "
                         f"{'array' if job['job_id'] is None else 'job ' + job['job_id']}: "
                         f"{plural(len(job['tasks']), 'task')}, {job['needs']}, "
                         f"script {job['script']}")
        if dry_run:
            for job, script in zip(self.jobs, self.scripts):
                lines.append(f"--- {job['script']}")
                lines.append(script.rstrip("\n"))
        elif not self.jobs:
            lines.append("nothing to submit: " + ("every selected command is done"
                                                  if not self.queued else
                                                  "the rest is already in the queue"))
        else:
            lines.append(f"submission {self.submission}: run status -o {root} shows the "
                         f"tasks, run cancel -o {root} stops them")


def result_of(state: TaskState) -> TaskResult:
    """A task's result as its files (refined by the queue) say, for the summary of `--wait`."""
    task = Task(state.name, state.params, {c: c for c in state.commands})
    result = TaskResult(task, None, status=state.state)
    for command, entry in state.commands.items():
        status = Status(entry.get("status") or Status.PENDING.value)
        result.commands.append(CommandResult(
            command=command, status=status, exit_status=entry.get("exit_status"),
            signal=entry.get("signal"), duration=entry.get("duration") or 0.0,
            log=entry.get("log"), err_log=entry.get("err_log")))
    return result
