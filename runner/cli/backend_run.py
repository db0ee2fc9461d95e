"""`run -y params.yaml -o output --backend slurm --profile NAME`: submit instead of running here.

The YAML is expanded exactly as for a local run; the tasks with work left that are not already
queued are submitted as job arrays, one per kind of resource need. `--wait` stays until the jobs
have left the queue and then reports like a local run.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Callable, Dict, List

from runner.cli.common import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, stop_on_signals

BACKEND_CHOICES = ("local", "slurm")
# Options of a local run that mean nothing to a remote engine.
_LOCAL_ONLY = (("debug", "-d"), ("resource", "-r"))


def add_backend_arguments(parser) -> None:
    """The options of the main command that choose and tune the engine."""
    group = parser.add_argument_group("running on a cluster (see README: Running on SLURM)")
    group.add_argument("--backend", choices=BACKEND_CHOICES, default="local",
                       help="where tasks run: here (local, default) or as SLURM job arrays")
    group.add_argument("--profile", metavar="NAME",
                       help="the cluster profile (sbatch resources, env lines) for --backend slurm")
    group.add_argument("--profiles", metavar="FILE",
                       help="profile file (config.json or YAML) searched before the YAML's own "
                            "'profiles:', ./config.json, ./profiles.yaml and ~/.config/runner/")
    group.add_argument("--max-parallel", type=int, metavar="N",
                       help="at most N tasks of each job array run at once (sbatch --array=...%%N)")
    group.add_argument("--wait", action="store_true",
                       help="with --backend slurm: wait until the jobs have ended, then report")


def check_backend_arguments(args) -> None:
    """Refuse option combinations that cannot work, before anything is read or written."""
    from runner.errors import UsageError

    if args.backend == "local":
        for name, flag in (("profile", "--profile"), ("max_parallel", "--max-parallel"),
                           ("wait", "--wait")):
            if getattr(args, name):
                raise UsageError(f"{flag} is for a cluster: add --backend slurm (or drop {flag})")
        return
    for name, flag in _LOCAL_ONLY:
        if getattr(args, name):
            raise UsageError(f"{flag} runs tasks here; it cannot go with --backend {args.backend}")
    if args.max_parallel is not None and args.max_parallel < 1:
        raise UsageError(f"--max-parallel {args.max_parallel}: expected a positive number")


def run_backend(args, config, plan, todo, skipped, store, datetime: str,
                prepare_output: Callable[[], None]) -> int:
    """Submit the plan's unfinished tasks to the engine `args.backend` and report."""
    from runner.backends.base import SubmitRequest, load_backend
    from runner.spec.profiles import Profile, find_profiles

    if args.profile:
        embedded = config.extra.get("profiles")
        profile = find_profiles(args.profiles, embedded,
                                f"{config.path}, document 0, key 'profiles'").get(args.profile)
    else:
        profile = Profile(name="(none)", host="cluster", device="cpu", source="--profile not given")
    backend = load_backend(args.backend)
    request = SubmitRequest(tasks=[t for t, _ in todo], store=store, datetime=datetime,
                            profile=profile, config_path=args.yaml, force=args.force,
                            max_parallel=args.max_parallel, grace=args.grace,
                            prepare=prepare_output)
    report = backend.submit(request, dry_run=args.dry_run)
    lines = [f"run: {len(plan.tasks)} tasks from {args.yaml} -> {args.output} "
             f"(SLURM, profile {profile.name})",
             f"tasks: {len(todo)} with work left, {len(skipped)} done earlier"
             + ("" if args.force else " (-f re-runs them)")]
    if report.queued:
        jobs = sorted(set(report.queued.values()))
        lines.append(f"already queued or running, not submitted again: {len(report.queued)} "
                     f"({', '.join(jobs[:5])}{' ...' if len(jobs) > 5 else ''})")
    lines.extend(f"note: {n}" for n in report.notes)
    for job in report.jobs:
        lines.append(f"{'would submit' if args.dry_run else 'submitted'} "
                     f"{'array' if job['job_id'] is None else 'job ' + job['job_id']}: "
                     f"{len(job['tasks'])} tasks, {job['needs']}, script {job['script']}")
    if args.dry_run:
        for job, script in zip(report.jobs, report.scripts):
            lines.append(f"--- {job['script']}")
            lines.append(script.rstrip("\n"))
        sys.stdout.write("\n".join(lines) + "\n")
        return EXIT_OK
    if not report.jobs:
        lines.append("nothing to submit: " + ("every selected command is done"
                                              if not report.queued else
                                              "the rest is already in the queue"))
    else:
        lines.append(f"submission {report.submission}: run status -o {args.output} shows the "
                     f"tasks, run cancel -o {args.output} stops them")
    print("\n".join(lines), flush=True)
    if not args.wait or not (report.jobs or report.queued):
        return EXIT_OK
    jobs = [j["job_id"] for j in report.jobs] + sorted(
        {k.split("_")[0] for k in report.queued.values()})
    names = [n for j in report.jobs for n in j["tasks"]] + list(report.queued)
    return _wait(backend, store, jobs, names)


def _wait(backend, store, jobs: List[str], names: List[str]) -> int:
    """--wait: follow the jobs until they leave the queue, then summarise their tasks."""
    from runner.backends.slurm.engine import wait_for_jobs
    from runner.store.status import collect_states

    started = time.monotonic()
    stopped: List[int] = []

    def show(counts: Dict[str, int]) -> None:
        text = ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items())) or "none left"
        print(f"[{time.monotonic() - started:6.1f}s] in the queue: {text}", flush=True)

    with stop_on_signals(lambda signum: stopped.append(signum)):
        finished = wait_for_jobs(backend, jobs, show, stop=lambda: bool(stopped))
    if not finished:
        print("stopped waiting; the jobs go on (run cancel -o DIR stops them)", flush=True)
        return EXIT_INTERRUPTED
    wanted = set(names)
    states = [s for s in collect_states(store) if s.name in wanted]
    counts: Dict[str, int] = {}
    for state in states:
        counts[state.state.value] = counts.get(state.state.value, 0) + 1
    for state in states:
        if state.state.value != "done":
            print(f"{state.state.value}: {state.name}" + (f" ({state.note})" if state.note else "")
                  + f"  logs: {os.path.join(state.dir)}")
    print(f"{len(states)} tasks: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())),
          flush=True)
    return EXIT_OK if counts.get("done", 0) == len(states) else EXIT_FAILED
