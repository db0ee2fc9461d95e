"""`run [-y params.yaml] [-o output] ...`: expand a YAML sweep and run it on GPU slots."""

from __future__ import annotations

import os
import sys
from argparse import RawDescriptionHelpFormatter
from typing import Dict, List, Optional

from runner.cli.common import (EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, ArgumentParser,
                               add_verbosity_arguments, command, grace_seconds, plural, verbosity)

DESCRIPTION = """\
Run every combination of the params in a multi-document YAML file as tasks on GPU slots.
Document 0 holds `template` (command name -> shell command with {param} and [param]
placeholders) and `resource` (one worker slot per entry: 0, "0,1", ...); every further
document maps params to lists of values. Finished commands are recorded in
<output>/<task>/stat.json and skipped on the next run."""


def make_parser() -> ArgumentParser:
    from runner.cli.subcommands import SUBCOMMANDS

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
    parser.add_argument("--rerun-changed", action="store_true",
                        help="re-run done commands whose params or command changed since they ran")
    parser.add_argument("-d", "--debug", action="store_true",
                        help="run only the first task (even if done), streaming its output")
    parser.add_argument("--dry-run", action="store_true",
                        help="print each task's commands and whether it would run; run nothing")
    parser.add_argument("--no-param-dir", "--no-subdir", action="store_true", dest="no_param_dir",
                        help="no directory per task: _output is the output directory itself "
                             "(--no-subdir: mlrunner's spelling)")
    parser.add_argument("--sample", type=int, metavar="N",
                        help="run N random combinations per document instead of all")
    parser.add_argument("--seed", type=int, default=None, metavar="S",
                        help="random seed of --sample (default: 0, recorded in the header)")
    parser.add_argument("--max-tasks", type=int, default=None, metavar="N",
                        help="refuse a sweep of more than N tasks (default: 1,000,000)")
    parser.add_argument("--grace", type=grace_seconds, default=10.0, metavar="SECONDS",
                        help="on Ctrl-C, seconds between SIGTERM and SIGKILL (default: 10)")
    add_verbosity_arguments(parser)
    from runner.cli.engine import add_engine_arguments

    add_engine_arguments(parser)
    return parser


@command
def main(argv: List[str]) -> int:
    return run_yaml(make_parser().parse_args(argv))


def run_yaml(args) -> int:
    from runner.cli.engine import choose_engine
    from runner.spec.config import load_config
    from runner.spec.expand import (DEFAULT_MAX_TASKS, DEFAULT_SEED, Selection, expand,
                                    make_datetime)
    from runner.store.sweep import SweepStore

    config = load_config(args.yaml)
    engine, profile = choose_engine(args, config.extra.get("profiles"),
                                    f"{config.path}, document 0, key 'profiles'")
    resource = _resource(args, config) if engine == "local" else None
    datetime = make_datetime()
    selection = Selection(titles=args.title, commands=args.command, sample=args.sample,
                          seed=DEFAULT_SEED if args.seed is None else args.seed,
                          max_tasks=DEFAULT_MAX_TASKS if args.max_tasks is None else
                          args.max_tasks)
    plan = expand(config, selection, args.output, datetime, no_param_dir=args.no_param_dir)
    store = SweepStore(args.output, no_param_dir=args.no_param_dir)
    if engine != "local":
        return _run_elsewhere(args, config, plan, store, engine, profile, datetime)
    from runner.gpu.resources import plan_resources

    resources = plan_resources(resource, plan.tasks[:1] if args.debug else plan.tasks)
    try:
        if args.debug:
            return _debug(plan, config, store, resources, datetime, args)
        split = _split(plan, config, store, args)
        if args.dry_run:
            _print_dry_run(plan, split, store, args.force)
            return EXIT_OK
        _prepare_output(args, config, store)
        store.write_changed(split)
        console = _console(args, split)
        console.lines(_header(plan, split, args) + [f"note: {n}" for n in resources.notices]
                      + [resources.describe()])
        if not split.todo:
            console.line("nothing to run: every selected command is done (-f re-runs them)")
            return EXIT_OK
        return _run_here(plan, split, store, resources, datetime, args, console)
    finally:
        resources.close()


def _split(plan, config, store, args):
    groups = [name for name, alias in config.aliases.items() if isinstance(alias, dict)]
    return store.split(plan.tasks, args.force, rerun_changed=args.rerun_changed,
                       as_of=plan.commands_as_of, ignore=groups)


def _resource(args, config):
    from runner.errors import UsageError
    from runner.spec.config import AUTO_RESOURCE, is_auto_resource, parse_resource_entry

    if args.resource and is_auto_resource(args.resource):
        return AUTO_RESOURCE
    if args.resource:
        try:
            return [parse_resource_entry(r) for r in args.resource]
        except ValueError as e:
            raise UsageError(f"-r: {e}; a slot is a GPU index (0), a group (0,1) or '' "
                             f"for no GPU") from None
    return config.resource


def _console(args, split):
    from runner.cli.console import Console

    return Console(total=len(split.todo), verbosity=verbosity(args),
                   commands=sum(len(c) for _, c in split.todo))


def _info(args, plan) -> Dict:
    return {"config": args.yaml, "seed": plan.seed, "commands": plan.commands}


def _run_here(plan, split, store, resources, datetime: str, args, console) -> int:
    from runner.backends.base import RunRequest
    from runner.backends.registry import load_engine
    from runner.cli.engine import run_request
    from runner.execution.executor import ExecOptions

    request = RunRequest(store=store, tasks=split.tasks, datetime=datetime,
                         skipped=len(split.done), grace=args.grace, force=args.force,
                         slots=resources.slots, admission=resources.admission,
                         exec_options=ExecOptions(force=args.force, rerun=split.rerun(),
                                                  devices=resources.device_records()),
                         info=_info(args, plan))
    return run_request(load_engine("local"), request, console)


def _run_elsewhere(args, config, plan, store, engine: str, profile, datetime: str) -> int:
    """Hand the tasks with work left to another engine (SLURM): submit, and report."""
    from runner.backends.base import RunRequest
    from runner.backends.registry import load_engine
    from runner.cli.engine import engine_settings, profile_name, run_request
    from runner.execution.executor import ExecOptions

    split = _split(plan, config, store, args)
    console = _console(args, split)
    header = _header(plan, split, args)
    header[0] += f" ({engine}{profile_name(profile)})"
    console.lines(header)
    request = RunRequest(store=store, tasks=split.tasks, datetime=datetime,
                         skipped=len(split.done), grace=args.grace, force=args.force,
                         profile=profile, settings=engine_settings(args), info=_info(args, plan),
                         exec_options=ExecOptions(rerun=split.rerun()),
                         prepare=lambda: (_prepare_output(args, config, store),
                                          store.write_changed(split)),
                         dry_run=args.dry_run)
    return run_request(load_engine(engine), request, console)


def _prepare_output(args, config, store) -> None:
    """Create the output directory and copy the config there; clear errors if that fails."""
    from runner.errors import StoreError, UnsafePathError
    from runner.store.files import write_atomic

    output = store.output
    if os.path.exists(output) and not os.path.isdir(output):
        raise StoreError(f"-o {output}: exists and is not a directory; choose another output "
                         f"directory")
    created = not os.path.exists(output)
    name = os.path.basename(args.yaml) + ("." + ".".join(args.title) if args.title else "")
    try:
        os.makedirs(output, exist_ok=True)
        if not os.access(output, os.W_OK | os.X_OK):
            raise PermissionError(13, "permission denied")
        write_atomic(os.path.join(output, name), config.text.encode())
    except UnsafePathError:
        raise
    except (OSError, StoreError) as e:
        if created:
            try:
                os.rmdir(output)
            except OSError:
                pass
        reason = e.strerror if isinstance(e, OSError) else str(e).rsplit("(", 1)[-1].rstrip(")")
        raise StoreError(f"-o {output}: cannot write to the output directory "
                         f"({reason}); choose a writable directory") from None


def _header(plan, split, args) -> List[str]:
    commands = sum(len(c) for _, c in split.todo)
    done_commands = sum(len(t.commands) for t in split.done) + sum(
        len(t.commands) - len(c) for t, c in split.todo)
    out = [f"run: {plural(len(plan.tasks), 'task')} from {args.yaml} -> {args.output}"
           + (f" ({plan.duplicates} duplicates dropped)" if plan.duplicates else "")]
    out.append(f"commands: {commands} to run, {done_commands} skipped (done earlier"
               + ("" if args.force else "; -f re-runs them") + ")")
    if plan.seed is not None:
        out.append(f"sample: {args.sample} per document, seed {plan.seed}")
    for notice in plan.notices:
        out.append(f"note: {notice}")
    if plan.orphans:
        out.append(f"orphans (in no selected template): {', '.join(plan.orphans)}")
    changed = sum(len(c) for c in split.changed.values())
    if changed:
        out.append(f"note: {plural(changed, 'done command')} changed since "
                   f"{'it' if changed == 1 else 'they'} ran (params or command differ): "
                   + ("running again (--rerun-changed)" if args.rerun_changed else
                      "skipped; --rerun-changed runs them again, --dry-run shows what changed"))
    imported = sum(len(c) for _, c in split.imported.values())
    if imported:
        out.append(f"note: {plural(imported, 'command')} of {plural(len(split.imported), 'task')} "
                   f"done earlier by mlrunner (matched by params): skipped")
    for name, note in list(split.notes.items())[:SHOWN_NOTES]:
        out.append(f"warning: {note}; {name} runs again")
    if len(split.notes) > SHOWN_NOTES:
        out.append(f"warning: {len(split.notes) - SHOWN_NOTES} more tasks with damaged state "
                   f"files run again")
    return out


SHOWN_NOTES = 5


def _print_dry_run(plan, split, store, force: bool) -> None:
    from runner.errors import DamagedFileError, UnsafePathError

    pending = {t.name: set(c) for t, c in split.todo}
    lines = [f"dry run: {plural(len(plan.tasks), 'task')}, {len(split.todo)} would run, "
             f"{len(split.done)} would be skipped"
             + (f", {plan.duplicates} duplicates dropped" if plan.duplicates else "")
             + (f", sample seed {plan.seed}" if plan.seed is not None else "")]
    for notice in plan.notices:
        lines.append(f"note: {notice}")
    if plan.orphans:
        lines.append(f"orphans (in no selected template): {', '.join(plan.orphans)}")
    exists = os.path.isdir(store.output)
    for task in plan.tasks:
        todo_commands = pending.get(task.name, ())
        lines.append(f"{task.name}: {'run' if todo_commands else 'skip'}")
        note = split.notes.get(task.name)
        if note:
            lines.append(f"  ({note})")
        stat = {}
        if exists and not force and not note:
            try:
                stat = store.read_stat(task.name)
            except (DamagedFileError, UnsafePathError):
                stat = {}
        changed = split.changed.get(task.name, {})
        earlier, imported = split.imported.get(task.name, ("", ()))
        for name, text in task.commands.items():
            reason = _reason(stat.get(name), force)
            if name in imported:
                reason = f"done by mlrunner in {earlier}"
            if name in changed:
                reason = "done, but changed: " + _what_changed(store, task, changed[name])
                if name in todo_commands:
                    reason += "; --rerun-changed"
            lines.append(f"  {name}: {'run' if name in todo_commands else 'skip'} "
                         f"({reason}): {text}")
    sys.stdout.write("\n".join(lines) + "\n")


def _what_changed(store, task, changes) -> str:
    """'params lr, epochs' / 'command': what differs from what ran, for --dry-run."""
    import json

    from runner.errors import DamagedFileError, UnsafePathError
    from runner.store.files import read_json

    out = []
    if "params" in changes:
        try:
            old = read_json(store.paths(task.name).param) or {}
        except (DamagedFileError, UnsafePathError):
            old = {}
        new = task.params

        def same(key):
            return json.dumps(old.get(key), sort_keys=True, default=str) == json.dumps(
                new.get(key), sort_keys=True, default=str)

        keys = sorted(k for k in {*old, *new} if not k.startswith("_") and not same(k))
        out.append("params " + (", ".join(keys) if keys else "(their values)"))
    if "command" in changes:
        out.append("command")
    return " and ".join(out)


def _reason(entry: Optional[Dict], force: bool) -> str:
    if force:
        return "-f"
    if not entry:
        return "not run yet"
    from runner.store.state import entry_status

    status = entry_status(entry).value
    if status == "done":
        return "done earlier"
    if status == "failed":
        return f"failed earlier, exit status {entry.get('exit_status', '?')}"
    return f"{status} earlier"


def _debug(plan, config, store, resources, datetime: str, args) -> int:
    """-d: the first task only, even if done, its output streamed to the console and its log."""
    from runner.backends.base import RunRequest
    from runner.backends.registry import load_engine
    from runner.cli.common import stop_on_signals
    from runner.cli.console import Console
    from runner.execution.executor import ExecOptions
    from runner.store.base import Split

    if not plan.tasks:
        print("debug: no task selected; nothing to run")
        return EXIT_OK
    task = plan.tasks[0]
    if args.dry_run:
        _print_dry_run(plan, Split(todo=[(task, list(task.commands))]), store, True)
        return EXIT_OK
    _prepare_output(args, config, store)
    console = Console(total=1, verbosity=verbosity(args), commands=len(task.commands))
    console.lines([f"note: {n}" for n in resources.notices])
    where = resources.slots[0] if resources.slots else resources.describe()
    console.line(f"debug: {task.name} on {where}")
    stream = Echo()
    console.before_write = stream.end_line
    request = RunRequest(store=store, tasks=[task], datetime=datetime, grace=args.grace,
                         force=True, slots=resources.slots[:1], admission=resources.admission,
                         exec_options=ExecOptions(force=True, echo=stream,
                                                  devices=resources.device_records()),
                         settings={"record": False})
    engine = load_engine("local")
    interrupted = []
    with stop_on_signals(lambda signum: (interrupted.append(signum), engine.stop(
            kill=len(interrupted) > 1))):
        report = engine.run(request, console)
    stream.end_line()
    if report.error is not None:
        from runner.cli.common import print_error

        print_error(str(report.error))
        return EXIT_FAILED
    result = report.results[0] if report.results else None
    if interrupted or result is None:
        return EXIT_INTERRUPTED
    if result.error:
        return EXIT_FAILED
    failed = result.failed
    if failed is None:
        return EXIT_OK
    return failed.exit_status or EXIT_FAILED


class Echo:
    """-d: a command's output, copied to the terminal as it comes; a last line without a
    newline is ended before the runner prints its own line."""

    def __init__(self) -> None:
        self.open_line = False

    def __call__(self, chunk: bytes) -> None:
        try:
            sys.stdout.flush()
            sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()
        except (BrokenPipeError, OSError, ValueError):
            return
        self.open_line = not chunk.endswith(b"\n")

    def end_line(self) -> None:
        if self.open_line:
            self.__call__(b"\n")
