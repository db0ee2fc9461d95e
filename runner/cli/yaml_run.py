"""`run [-y params.yaml] [-o output] ...`: expand a YAML sweep and run it on GPU slots."""

from __future__ import annotations

import os
import sys
from argparse import RawDescriptionHelpFormatter
from typing import Dict, List, Optional, Tuple

from runner.cli.common import (EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, ArgumentParser, command,
                               stop_on_signals)

DESCRIPTION = """\
Run every combination of the params in a multi-document YAML file as tasks on GPU slots.
Document 0 holds `template` (command name -> shell command with {param} and [param]
placeholders) and `resource` (one worker slot per entry: 0, "0,1", ...); every further
document maps params to lists of values. Finished commands are recorded in
<output>/<task>/stat.json and skipped on the next run."""


def make_parser() -> ArgumentParser:
    from runner.cli import SUBCOMMANDS

    width = max(len(name) for name in SUBCOMMANDS)
    epilog = "subcommands:\n" + "\n".join(
        f"  run {name:<{width}} {text}" for name, (_, text) in SUBCOMMANDS.items())
    epilog += ("\n\nexit status: 0 all selected commands done, 1 a command failed, "
               "2 bad input, 130 interrupted")
    parser = ArgumentParser(prog="run", description=DESCRIPTION, epilog=epilog,
                            formatter_class=RawDescriptionHelpFormatter)
    from runner import __version__

    parser.add_argument("--version", action="version", version=f"run {__version__}")
    parser.add_argument("-y", "--yaml", default="params.yaml", metavar="FILE",
                        help="the YAML file (default: params.yaml)")
    parser.add_argument("-o", "--output", default="output", metavar="DIR",
                        help="output directory (default: output)")
    parser.add_argument("-t", "--title", nargs="+", metavar="T",
                        help="run only the documents with these _title values")
    parser.add_argument("-c", "--command", nargs="+", metavar="NAME",
                        help="run only these templates (in template order)")
    parser.add_argument("-r", "--resource", nargs="+", metavar="R",
                        help="replace `resource`: one slot per value, e.g. -r 0 1 or -r 0,1 2,3; "
                             "-r auto: every GPU that NVML reports")
    parser.add_argument("-f", "--force", action="store_true",
                        help="re-run commands that already succeeded")
    parser.add_argument("-d", "--debug", action="store_true",
                        help="run only the first task (even if done), streaming its output")
    parser.add_argument("--dry-run", action="store_true",
                        help="print each task's commands and whether it would run; run nothing")
    parser.add_argument("--no-param-dir", action="store_true",
                        help="no directory per task: _output is the output directory itself")
    parser.add_argument("--sample", type=int, metavar="N",
                        help="run N random combinations per document instead of all")
    parser.add_argument("--seed", type=int, default=None, metavar="S",
                        help="random seed of --sample (default: 0, recorded in the header)")
    parser.add_argument("--grace", type=float, default=10.0, metavar="SECONDS",
                        help="on Ctrl-C, seconds between SIGTERM and SIGKILL (default: 10)")
    from runner.cli.backend_run import add_backend_arguments

    add_backend_arguments(parser)
    return parser


@command
def main(argv: List[str]) -> int:
    args = make_parser().parse_args(argv)
    from runner.cli.backend_run import check_backend_arguments

    check_backend_arguments(args)
    return run_yaml(args)


def run_yaml(args) -> int:
    from runner.spec.config import AUTO_RESOURCE, is_auto_resource, load_config, parse_resource_entry
    from runner.errors import UsageError
    from runner.spec.expand import DEFAULT_SEED, Selection, expand, make_datetime

    config = load_config(args.yaml)
    if args.resource and is_auto_resource(args.resource):
        resource = AUTO_RESOURCE
    elif args.resource:
        try:
            resource = [parse_resource_entry(r) for r in args.resource]
        except ValueError as e:
            raise UsageError(f"-r: {e}; a slot is a GPU index (0), a group (0,1) or '' "
                             f"for no GPU") from None
    else:
        resource = config.resource
    datetime = make_datetime()
    selection = Selection(titles=args.title, commands=args.command, sample=args.sample,
                          seed=DEFAULT_SEED if args.seed is None else args.seed)
    plan = expand(config, selection, args.output, datetime, no_param_dir=args.no_param_dir)
    from runner.gpu.resources import plan_resources
    from runner.store.sweep import Store

    store = Store(args.output, no_param_dir=args.no_param_dir)
    if args.backend != "local":  # another engine runs the tasks: submit them there
        from runner.cli.backend_run import run_backend

        todo, skipped = _split_done(plan.tasks, store, args.force)
        return run_backend(args, config, plan, todo, skipped, store, datetime,
                           lambda: _prepare_output(args, config, store))
    resources = plan_resources(resource, plan.tasks[:1] if args.debug else plan.tasks)
    try:
        if args.debug:
            return _debug(plan, config, store, resources, datetime, args)
        todo, skipped = _split_done(plan.tasks, store, args.force)
        if args.dry_run:
            _print_dry_run(plan, todo, skipped, store, args.force)
            return EXIT_OK
        _prepare_output(args, config, store)
        _print_header(plan, todo, skipped, resources, args)
        if not todo:
            print("nothing to run: every selected command is done (-f re-runs them)")
            return EXIT_OK
        store.write_run_table(f"{datetime}.{os.getpid()}", [t for t, _ in todo],
                              {"datetime": datetime, "config": args.yaml, "seed": plan.seed,
                               "commands": plan.commands})
        return _run(plan, [t for t, _ in todo], len(skipped), store, resources, datetime, args)
    finally:
        resources.close()


def _split_done(tasks, store, force: bool) -> Tuple[list, list]:
    """(task, commands to run) for tasks with work left, and the tasks that are all done."""
    todo, skipped = [], []
    if force or not os.path.isdir(store.output):
        return [(t, list(t.commands)) for t in tasks], []
    for task in tasks:
        pending = store.pending_commands(task)
        if pending:
            todo.append((task, pending))
        else:
            skipped.append(task)
    return todo, skipped


def _prepare_output(args, config, store) -> None:
    """Create the output directory and copy the config there; clear errors if that fails."""
    from runner.errors import StoreError

    output = store.output
    if os.path.exists(output) and not os.path.isdir(output):
        raise StoreError(f"-o {output}: exists and is not a directory; choose another output "
                         f"directory")
    created = not os.path.exists(output)
    try:
        os.makedirs(output, exist_ok=True)
        if not os.access(output, os.W_OK | os.X_OK):
            raise PermissionError(13, "permission denied")
        name = os.path.basename(args.yaml) + ("." + ".".join(args.title) if args.title else "")
        _write_text(os.path.join(output, name), config.text)
    except OSError as e:
        if created:
            try:
                os.rmdir(output)
            except OSError:
                pass
        raise StoreError(f"-o {output}: cannot write to the output directory "
                         f"({e.strerror or e}); choose a writable directory") from None


def _write_text(path: str, text: str) -> None:
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def _print_header(plan, todo, skipped, resources, args) -> None:
    commands = sum(len(c) for _, c in todo)
    done_commands = sum(len(t.commands) for t in skipped) + sum(
        len(t.commands) - len(c) for t, c in todo)
    out = [f"run: {len(plan.tasks)} tasks from {args.yaml} -> {args.output}"
           + (f" ({plan.duplicates} duplicates dropped)" if plan.duplicates else "")]
    out.append(f"commands: {commands} to run, {done_commands} skipped (done earlier"
               + ("" if args.force else "; -f re-runs them") + ")")
    if plan.seed is not None:
        out.append(f"sample: {args.sample} per document, seed {plan.seed}")
    for notice in plan.notices:
        out.append(f"note: {notice}")
    if plan.orphans:
        out.append(f"orphans (in no selected template): {', '.join(plan.orphans)}")
    for notice in resources.notices:
        out.append(f"note: {notice}")
    out.append(resources.describe())
    print("\n".join(out), flush=True)


def _print_dry_run(plan, todo, skipped, store, force: bool) -> None:
    pending = {t.name: set(c) for t, c in todo}
    lines = [f"dry run: {len(plan.tasks)} tasks, {len(todo)} would run, {len(skipped)} would be "
             f"skipped" + (f", {plan.duplicates} duplicates dropped" if plan.duplicates else "")
             + (f", sample seed {plan.seed}" if plan.seed is not None else "")]
    for notice in plan.notices:
        lines.append(f"note: {notice}")
    if plan.orphans:
        lines.append(f"orphans (in no selected template): {', '.join(plan.orphans)}")
    exists = os.path.isdir(store.output)
    for task in plan.tasks:
        todo_commands = pending.get(task.name, ())
        lines.append(f"{task.name}: {'run' if todo_commands else 'skip'}")
        stat = store.read_stat(task.name) if exists and not force else {}
        for name, text in task.commands.items():
            lines.append(f"  {name}: {'run' if name in todo_commands else 'skip'} "
                         f"({_reason(stat.get(name), force)}): {text}")
    sys.stdout.write("\n".join(lines) + "\n")


def _reason(entry: Optional[Dict], force: bool) -> str:
    if force:
        return "-f"
    if not entry:
        return "not run yet"
    status = entry.get("status", "done" if entry.get("code") == 0 else "failed")
    if status == "done":
        return "done earlier"
    if status == "failed":
        return f"failed earlier, exit status {entry.get('exit_status', '?')}"
    return f"{status} earlier"


def _run(plan, tasks, skipped: int, store, resources, datetime: str, args) -> int:
    from runner.cli.session import run_session
    from runner.execution.executor import ExecOptions

    options = ExecOptions(force=args.force, devices=resources.device_records())
    return run_session(tasks, resources.slots, store, datetime, options, args.grace, skipped,
                       admission=resources.admission)


def _debug(plan, config, store, resources, datetime: str, args) -> int:
    """-d: the first task only, even if done, its output streamed to the console and its log."""
    from runner.cli.console import Console
    from runner.execution.executor import ExecOptions, TaskExecutor
    from runner.execution.process import ProcessGroups
    from runner.execution.scheduler import Scheduler

    if not plan.tasks:
        print("debug: no task selected; nothing to run")
        return EXIT_OK
    if args.dry_run:
        _print_dry_run(plan, [(plan.tasks[0], list(plan.tasks[0].commands))], [], store, True)
        return EXIT_OK
    _prepare_output(args, config, store)
    task = plan.tasks[0]
    for notice in resources.notices:
        print(f"note: {notice}")
    where = resources.slots[0] if resources.slots else resources.describe()
    print(f"debug: {task.name} on {where}", flush=True)
    groups = ProcessGroups(grace=args.grace)

    def echo(chunk: bytes) -> None:
        sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()

    console = Console(total=1)
    executor = TaskExecutor(store, datetime, groups,
                            ExecOptions(force=True, echo=echo, devices=resources.device_records()),
                            console)
    interrupted = []
    with stop_on_signals(lambda signum: (interrupted.append(signum), groups.stop())):
        if resources.admission is None:
            result = executor(task, resources.slots[0])
        else:  # wait, with the reason shown, until the task's GPUs are free
            results = Scheduler([], executor, groups, admission=resources.admission,
                                on_wait=console.waiting_for).run([task], tick=0.2)
            result = results[0] if results else None
    groups.close()
    if interrupted or result is None:
        return EXIT_INTERRUPTED
    failed = result.failed
    if failed is None:
        return EXIT_OK
    return failed.exit_status or EXIT_FAILED
