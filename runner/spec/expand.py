"""Config -> tasks: titles, product or sample, names, packs, alias groups, defaults, dedup,
reserved params.

Everything that can be wrong with a sweep (a space larger than the task cap, a missing
placeholder, a name shared by two different tasks, a pack fighting an explicit param, a file name
too long for the file system) is found here, before anything runs or anything is written.
"""

from __future__ import annotations

import gc
import itertools
import math
import os
import random
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from runner.spec.config import Config, Document
from runner.errors import ConfigError, UsageError, choices_text, did_you_mean
from runner.spec.naming import MAX_NAME_BYTES, Namer, freeze, join_name
from runner.spec.settings import SETTINGS, parse_setting
from runner.task import Task
from runner.spec.template import RenderError, Template

DEFAULT_SEED = 0
DEFAULT_MAX_TASKS = 1_000_000  # the task cap: --max-tasks N raises it
DATETIME_FORMAT = "%Y-%m-%d.%H_%M_%S"
TIME_FORMAT = "%Y%m%d.%H%M%S"  # `{_time}`, as mlrunner writes it
TIME_PARAMS = frozenset(("_datetime", "_time"))  # reserved params that change per invocation
LOG_NAME = "log.{command}.{datetime}"  # a command's log; `.<name>` follows with --no-param-dir
DEFAULT_NAME_MAX = 255  # bytes in one file name, where the file system does not say
MAX_LISTED = 3  # tasks named per problem in an error message
SHORT_NAME = MAX_NAME_BYTES // 4  # characters that fit in MAX_NAME_BYTES whatever they are


@dataclass
class Selection:
    """What of the file to run: `-t` titles, `-c` commands, `--sample N` with `--seed`, and the
    task cap (`--max-tasks`)."""

    titles: Optional[Sequence[str]] = None
    commands: Optional[Sequence[str]] = None
    sample: Optional[int] = None
    seed: int = DEFAULT_SEED
    max_tasks: int = DEFAULT_MAX_TASKS


@dataclass
class Plan:
    """The tasks of one invocation and what the header should tell about them."""

    tasks: List[Task]
    commands: List[str]
    duplicates: int = 0
    orphans: List[str] = field(default_factory=list)
    notices: List[str] = field(default_factory=list)
    seed: Optional[int] = None
    templates: Dict[str, Template] = field(default_factory=dict)

    def commands_as_of(self, task: Task, datetime: str) -> Dict[str, str]:
        """The task's commands as they read when its invocation's `_datetime` was `datetime`
        (only templates that use `{_datetime}` or `{_time}` read differently)."""
        commands = dict(task.commands)
        params = None
        for name in commands:
            template = self.templates.get(name)
            if template is None or not TIME_PARAMS.intersection(template.placeholders):
                continue
            if params is None:
                params = {**task.params, "_datetime": datetime, "_time": make_time(datetime)}
            try:
                commands[name] = template.render(params)
            except (KeyError, RenderError):
                pass
        return commands


def make_datetime() -> str:
    """The `_datetime` of an invocation: local time, no colons (it is part of file names)."""
    return time.strftime(DATETIME_FORMAT)


def make_time(datetime: str) -> str:
    """The `_time` of an invocation (mlrunner's `%Y%m%d.%H%M%S`) from its `_datetime`."""
    try:
        return time.strftime(TIME_FORMAT, time.strptime(datetime, DATETIME_FORMAT))
    except ValueError:  # a caller's own datetime text: keep it
        return datetime


def select_documents(config: Config, titles: Optional[Sequence[str]]) -> List[Document]:
    """The documents `-t` keeps (all without `-t`)."""
    if not titles:
        return list(config.documents)
    existing = config.titles
    if not existing:
        raise UsageError(f"-t {' '.join(titles)}: {config.path} has no document with a _title; "
                         f"add '_title: NAME' to a parameter document or drop -t")
    wanted = [str(t) for t in titles]
    for title in wanted:
        if title not in existing:
            raise UsageError(f"-t {title}: no document of {config.path} has this _title"
                             f"{did_you_mean(title, existing)}; titles are "
                             f"{choices_text(dict.fromkeys(existing))}")
    return [d for d in config.documents if d.title in wanted]


def select_commands(config: Config, names: Optional[Sequence[str]]) -> List[str]:
    """The templates `-c` keeps, in template order."""
    if not names:
        return list(config.templates)
    for name in names:
        if name not in config.templates:
            raise UsageError(f"-c {name}: no such command in 'template' of {config.path}"
                             f"{did_you_mean(name, config.templates)}; commands are "
                             f"{choices_text(config.templates)}")
    return [n for n in config.templates if n in names]


def document_size(document: Document) -> int:
    """How many combinations a document's values give."""
    return math.prod(len(values) for values in document.params.values())


def check_task_cap(config: Config, documents: Sequence[Document], sample: Optional[int],
                   max_tasks: int) -> None:
    """Refuse a selection that would give more than `max_tasks` tasks, before expanding it."""
    if max_tasks < 1:
        raise UsageError(f"--max-tasks {max_tasks}: expected a positive number of tasks")
    hint = ("run a random subset with --sample N" if sample is None else "lower --sample")
    total = 0
    for document in documents:
        size = document_size(document)
        count = size if sample is None else min(sample, size)
        if count > max_tasks:
            sizes = [len(v) for v in document.params.values()]
            shown = " x ".join(map(str, sizes[:8])) + (" x ..." if len(sizes) > 8 else "")
            raise UsageError(
                f"{config.path}, {document.describe()}: {len(sizes)} params of {shown} values "
                f"give {size:,} tasks"
                + (f" (--sample {sample:,})" if sample is not None else "")
                + f", more than the cap of {max_tasks:,}; {hint}, or raise the cap with "
                  f"--max-tasks N")
        total += count
    if total > max_tasks:
        raise UsageError(f"{config.path}: the selected documents give {total:,} tasks together, "
                         f"more than the cap of {max_tasks:,}; {hint} or select fewer documents "
                         f"with -t, or raise the cap with --max-tasks N")


def combinations(document: Document, sample: Optional[int], rng: random.Random
                 ) -> List[Tuple[int, ...]]:
    """Index tuples into the document's value lists: the full product, or a reproducible sample."""
    sizes = [len(values) for values in document.params.values()]
    if sample is None:
        return list(itertools.product(*(range(n) for n in sizes)))
    chosen = sample_indices(math.prod(sizes), sample, rng)
    out = []
    for flat in chosen:
        indices = []
        for n in reversed(sizes):
            flat, i = divmod(flat, n)
            indices.append(i)
        out.append(tuple(reversed(indices)))
    return out


def sample_indices(total: int, count: int, rng: random.Random) -> List[int]:
    """`count` distinct numbers below `total`, sorted, the same for the same seed; instant even
    for totals far beyond what `range` can hold (10**30), as `count` is at most the task cap."""
    count = min(count, total)
    if total <= sys.maxsize:
        return sorted(rng.sample(range(total), count))
    chosen: set = set()
    while len(chosen) < count:  # count << total: a repeat is all but impossible
        chosen.add(rng.randrange(total))
    return sorted(chosen)


def name_max(output: str) -> int:
    """The longest file name (bytes) the file system of `output` (or its nearest existing
    parent) allows."""
    path = os.path.abspath(output)
    while True:
        try:
            return int(os.pathconf(path, "PC_NAME_MAX"))
        except (OSError, ValueError):
            parent = os.path.dirname(path)
            if parent == path:
                return DEFAULT_NAME_MAX
            path = parent


class _Expander:
    """Expands documents into tasks, collecting every problem before raising one error."""

    def __init__(self, config: Config, commands: List[str], commands_given: bool, output: str,
                 datetime: str, no_param_dir: bool):
        self.config = config
        self.output = os.path.normpath(output)
        self.datetime = datetime
        self.time = make_time(datetime)
        self.no_param_dir = no_param_dir
        self.commands = commands
        self.commands_given = commands_given  # -c: it overrides every document's `_cmd`
        self.templates = {n: Template(config.templates[n], config.aliases) for n in commands}
        self.namer = Namer(d.params for d in config.documents)  # all documents, whatever -t says
        self.groups = {k: v for k, v in config.aliases.items() if isinstance(v, dict)}
        self.missing: Dict[Tuple[str, str], List[str]] = {}  # (command, placeholder) -> names
        self.bad_values: Dict[str, List[str]] = {}  # message -> names
        self.seen: Dict[Any, Task] = {}  # dedup key -> the task kept
        self.names: Dict[str, Tuple[Dict[str, Any], Document]] = {}
        self.duplicates = 0
        self.used_params = set()
        for template in self.templates.values():
            self.used_params.update(template.placeholders)
            for placeholder in template.placeholders:  # [group] consumes the group's params
                body = self.groups.get(placeholder)
                if body is not None:
                    self.used_params.update(k for entries in body.values() for k in entries)
        self.all_params: Dict[str, None] = {}
        self.setting_cache: Dict[Tuple[str, Any], Any] = {}
        for template_name, template in ((n, Template(t)) for n, t in config.templates.items()):
            for placeholder in template.placeholders:
                if placeholder in config.packs:
                    raise ConfigError(
                        f"{config.path}: template '{template_name}' uses the pack '{placeholder}'; "
                        f"a pack stands for the params {self._pack_targets(placeholder)}, use "
                        f"those in the template instead")

    def _pack_targets(self, pack: str) -> str:
        body = self.config.packs[pack]
        targets = body if isinstance(body, list) else dict.fromkeys(
            k for sub in body.values() for k in sub)
        return choices_text(targets)

    def document_commands(self, document: Document) -> List[str]:
        """The templates a document's tasks run: `-c`, else its `_cmd`, else all selected."""
        if document.commands is None or self.commands_given:
            return self.commands
        return [c for c in self.commands if c in document.commands]

    def _apply_packs(self, document: Document, params: Dict[str, Any]) -> Dict[str, Any]:
        packs = self.config.packs
        out: Dict[str, Any] = {}
        explicit = document.params
        for key, value in params.items():
            if key not in packs:
                out.setdefault(key, value)
                continue
            body = packs[key]
            if isinstance(body, list):
                expansion = {str(target): value for target in body}
            else:
                try:
                    expansion = body[value]
                except (KeyError, TypeError):
                    raise ConfigError(
                        f"{self.config.path}, {document.describe()}, key '{key}': the pack has no "
                        f"entry {value!r}; its entries are "
                        f"{', '.join(repr(k) for k in body)}") from None
            for target, target_value in expansion.items():
                if target in explicit:
                    raise ConfigError(
                        f"{self.config.path}, {document.describe()}: the pack '{key}' sets "
                        f"'{target}', which the document also sets explicitly; remove one of them")
                out[target] = target_value
        return out

    def _apply_groups(self, document: Document, params: Dict[str, Any]) -> None:
        """Set the params of each mapping alias's group (`alias: {a: {case: {p: 1}}}`, `a: case`)
        where the task has no value of its own; an alias given only in `default:` counts too."""
        for alias, body in self.groups.items():
            if alias in params:
                value = params[alias]
            elif alias in self.config.defaults:
                value = self.config.defaults[alias]
            else:
                continue
            try:
                entries = body[value]
            except (KeyError, TypeError):
                raise ConfigError(
                    f"{self.config.path}, {document.describe()}, key '{alias}': the alias has no "
                    f"entry {value!r}; its entries are "
                    f"{', '.join(repr(k) for k in body)}") from None
            for target, target_value in entries.items():
                params.setdefault(str(target), target_value)

    def expand(self, document: Document, combos: List[Tuple[int, ...]]) -> List[Task]:
        keys = list(document.params)
        values = [document.params[k] for k in keys]
        fragments = [[self.namer.entry(k, v) for v in vs] for k, vs in zip(keys, values)]
        frozen = [[(k, freeze(v)) for v in vs] for k, vs in zip(keys, values)]
        defaults = [(k, v) for k, v in self.config.defaults.items() if k not in document.params]
        has_groups = any(k in self.groups for k in keys) or any(
            k in self.groups for k, _ in defaults)
        resolve = has_groups or any(k in self.config.packs for k in keys)
        has_settings = any(k in SETTINGS for k in keys + [k for k, _ in defaults])
        frozen_defaults = [(k, freeze(v)) for k, v in defaults]
        if not resolve:
            self.all_params.update(dict.fromkeys(keys + [k for k, _ in defaults]))
        templates = {c: self.templates[c] for c in self.document_commands(document)}
        prefix = self.output + os.sep
        bound = None
        if not resolve:  # every task's values come from the document: pre-render them
            columns = dict(zip(keys, values))
            constants = {**dict(defaults), "_datetime": self.datetime, "_time": self.time}
            bound = {command: template.bind(columns, constants, ("_name", "_output"))
                     for command, template in templates.items()}
            if None in bound.values():
                bound = None  # a missing or unusable value: render task by task to report it
        tasks = []
        for combo in combos:
            params = {k: vs[i] for k, vs, i in zip(keys, values, combo)}
            if resolve:
                params = self._apply_packs(document, params)
                if has_groups:
                    self._apply_groups(document, params)
                for key, value in self.config.defaults.items():
                    params.setdefault(key, value)
                dedup_key = frozenset([(k, freeze(v)) for k, v in params.items()])
                self.all_params.update(dict.fromkeys(params))
            else:
                params.update(defaults)
                dedup_key = frozenset([*[f[i] for f, i in zip(frozen, combo)], *frozen_defaults])
            kept = self.seen.get(dedup_key)
            if kept is not None:
                self.duplicates += 1
                self._merge_commands(kept, templates)
                continue
            name = "-".join([f[i] for f, i in zip(fragments, combo)])
            if not name or name[0] in ".-" or len(name) > SHORT_NAME and (
                    len(name) > MAX_NAME_BYTES or not name.isascii()):
                name = join_name([name])
            if name in self.names:
                other, other_doc = self.names[name]
                raise ConfigError(
                    f"{self.config.path}: two different tasks would both be named '{name}': "
                    f"{_show(other)} ({other_doc.describe()}) and {_show(params)} "
                    f"({document.describe()}), as their `Key_Value` entries join into the same "
                    f"text; rename a param or change a value")
            self.names[name] = (params, document)
            settings = self._settings(name, params) if has_settings or resolve else (
                self.config.settings)
            params["_name"] = name
            params["_output"] = self.output if self.no_param_dir else prefix + name
            params["_datetime"] = self.datetime
            params["_time"] = self.time
            commands = ({command: b.render(combo, params) for command, b in bound.items()}
                        if bound is not None else self._render(name, params, templates))
            task = Task(name, params, commands, document.index, document.title, settings)
            self.seen[dedup_key] = task
            tasks.append(task)
        return tasks

    def _merge_commands(self, kept: Task, templates: Dict[str, Template]) -> None:
        """A task that another document already gave, with `_cmd` naming more commands: the
        task runs those too (in template order), as under mlrunner."""
        extra = [c for c in templates if c not in kept.commands]
        if not extra:
            return
        rendered = self._render(kept.name, kept.params, {c: templates[c] for c in extra})
        rendered.update(kept.commands)
        kept.commands = {c: rendered[c] for c in self.commands if c in rendered}

    def _settings(self, name: str, params: Dict[str, Any]) -> Dict[str, Any]:
        """Document 0's settings, overridden by the task's params of the same names."""
        settings = dict(self.config.settings)
        for key in SETTINGS:
            if key not in params:
                continue
            value = params[key]
            cache_key = (key, freeze(value))
            if cache_key not in self.setting_cache:
                try:
                    self.setting_cache[cache_key] = parse_setting(key, value)
                except ValueError as e:
                    self.bad_values.setdefault(f"setting '{key}': {e}", []).append(name)
                    continue
            settings[key] = self.setting_cache[cache_key]
        return settings

    def _render(self, name: str, params: Dict[str, Any],
                templates: Dict[str, Template]) -> Dict[str, str]:
        commands = {}
        for command, template in templates.items():
            absent = [p for p in template.placeholders if p not in params]
            if absent:  # every one of them, not only the first
                for placeholder in absent:
                    self.missing.setdefault((command, placeholder), []).append(name)
                continue
            try:
                commands[command] = template.render(params)
            except RenderError as e:
                self.bad_values.setdefault(f"template '{command}': {e}", []).append(name)
        return commands

    def check(self, tasks: List[Task]) -> None:
        problems = []
        for (command, placeholder), names in self.missing.items():
            problems.append(f"template '{command}' uses '{placeholder}', which {_count(names)} "
                            f"{'has' if len(names) == 1 else 'have'} no value for "
                            f"({_some(names)}){did_you_mean(placeholder, self.all_params)}")
        for message, names in self.bad_values.items():
            problems.append(f"{message} (in {_count(names)}: {_some(names)})")
        if problems:
            hint = "; add the params to the documents or to 'default:'" if self.missing else ""
            raise ConfigError(f"{self.config.path}: " + "; ".join(problems) + hint)
        self._check_file_names(tasks)

    def _check_file_names(self, tasks: List[Task]) -> None:
        """Every file name a task's files get fits the file system (bytes, in UTF-8)."""
        if not tasks:
            return
        limit = name_max(self.output)
        if self.namer.is_ascii:  # bytes are characters: find the longest without encoding
            longest = tasks[max(range(len(tasks)), key=[len(t.name) for t in tasks].__getitem__)]
        else:
            longest = max(tasks, key=lambda t: len(t.name.encode("utf-8")))
        size = len(longest.name.encode("utf-8"))
        if size > limit:
            raise ConfigError(f"{self.config.path}: task '{longest.name}': its name is {size} "
                              f"bytes, more than the {limit} that the file system of "
                              f"{self.output} allows in a file name; shorten its params' values")
        for command in dict.fromkeys(c for t in tasks for c in t.commands):
            log = LOG_NAME.format(command=command, datetime=self.datetime)
            if self.no_param_dir:
                log += "." + longest.name
            if len(log.encode("utf-8")) > limit:
                raise ConfigError(
                    f"{self.config.path}: template '{command}': the log file name '{log}' would be "
                    f"{len(log.encode('utf-8'))} bytes, more than the {limit} that the file system "
                    f"of {self.output} allows; shorten the command's name"
                    + (" (or the task's params)" if self.no_param_dir else ""))


def expand(config: Config, selection: Selection, output: str, datetime: str,
           no_param_dir: bool = False) -> Plan:
    """Turn a config and a selection into the tasks of one invocation."""
    documents = select_documents(config, selection.titles)
    commands = select_commands(config, selection.commands)
    if selection.sample is not None and selection.sample < 1:
        raise UsageError(f"--sample {selection.sample}: expected a positive number of tasks "
                         f"per document")
    check_task_cap(config, documents, selection.sample, selection.max_tasks)
    expander = _Expander(config, commands, bool(selection.commands), output, datetime,
                         no_param_dir)
    rng = random.Random(selection.seed)
    tasks: List[Task] = []
    notices = []
    collecting = gc.isenabled()
    gc.disable()  # a sweep allocates many small objects and frees none: skip pointless collections
    try:
        for document in documents:
            empty = [k for k, v in document.params.items() if not v]
            if empty:
                notices.append(f"{document.describe()} has no values for {choices_text(empty)}: "
                               f"it yields no tasks")
                continue
            combos = combinations(document, selection.sample, rng)
            tasks.extend(expander.expand(document, combos))
    finally:
        if collecting:
            gc.enable()
    expander.check(tasks)
    orphans = [p for p in expander.all_params if p not in expander.used_params
               and p not in SETTINGS and p not in expander.groups]  # a group's name picks it
    used = [c for c in commands if any(c in t.commands for t in tasks)] if any(
        d.commands is not None for d in documents) else commands
    return Plan(tasks=tasks, commands=used, duplicates=expander.duplicates, orphans=orphans,
                notices=notices, seed=selection.seed if selection.sample is not None else None,
                templates=expander.templates)


def _count(names: List[str]) -> str:
    return f"{len(names)} task" + ("" if len(names) == 1 else "s")


def _some(names: List[str]) -> str:
    shown = ", ".join(names[:MAX_LISTED])
    return shown + (f" and {len(names) - MAX_LISTED} more" if len(names) > MAX_LISTED else "")


def _show(params: Dict[str, Any]) -> str:
    return "{" + ", ".join(f"{k}: {v!r}" for k, v in params.items() if not k.startswith("_")) + "}"
