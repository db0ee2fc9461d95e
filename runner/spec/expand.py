"""Config -> tasks: titles, product or sample, names, packs, defaults, dedup, reserved params.

Everything that can be wrong with a sweep (a missing placeholder, a name shared by two
different tasks, a pack fighting an explicit param) is found here, before anything runs or
anything is written.
"""

from __future__ import annotations

import gc
import itertools
import math
import os
import random
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from runner.spec.config import Config, Document
from runner.errors import ConfigError, UsageError, choices_text, did_you_mean
from runner.spec.naming import join_name, make_fragment
from runner.spec.settings import SETTINGS, parse_setting
from runner.task import Task
from runner.spec.template import RenderError, Template

DEFAULT_SEED = 0
DATETIME_FORMAT = "%Y-%m-%d.%H_%M_%S"
MAX_LISTED = 3  # tasks named per problem in an error message


@dataclass
class Selection:
    """What of the file to run: `-t` titles, `-c` commands, `--sample N` with `--seed`."""

    titles: Optional[Sequence[str]] = None
    commands: Optional[Sequence[str]] = None
    sample: Optional[int] = None
    seed: int = DEFAULT_SEED


@dataclass
class Plan:
    """The tasks of one invocation and what the header should tell about them."""

    tasks: List[Task]
    commands: List[str]
    duplicates: int = 0
    orphans: List[str] = field(default_factory=list)
    notices: List[str] = field(default_factory=list)
    seed: Optional[int] = None


def make_datetime() -> str:
    """The `_datetime` of an invocation: local time, no colons (it is part of file names)."""
    return time.strftime(DATETIME_FORMAT)


def freeze(value: Any) -> Any:
    """A hashable stand-in that keeps `1`, `1.0` and `True` apart, for dedup."""
    if isinstance(value, (list, tuple)):
        return (list, tuple(freeze(v) for v in value))
    if isinstance(value, dict):
        return (dict, frozenset((k, freeze(v)) for k, v in value.items()))
    return (type(value), value)


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


def combinations(document: Document, sample: Optional[int], rng: random.Random
                 ) -> List[Tuple[int, ...]]:
    """Index tuples into the document's value lists: the full product, or a reproducible sample."""
    sizes = [len(values) for values in document.params.values()]
    if sample is None:
        return list(itertools.product(*(range(n) for n in sizes)))
    total = math.prod(sizes)
    chosen = sorted(rng.sample(range(total), min(sample, total)))
    out = []
    for flat in chosen:
        indices = []
        for n in reversed(sizes):
            flat, i = divmod(flat, n)
            indices.append(i)
        out.append(tuple(reversed(indices)))
    return out


class _Expander:
    """Expands documents into tasks, collecting every problem before raising one error."""

    def __init__(self, config: Config, commands: List[str], output: str, datetime: str,
                 no_param_dir: bool):
        self.config = config
        self.output = os.path.normpath(output)
        self.datetime = datetime
        self.no_param_dir = no_param_dir
        self.templates = {n: Template(config.templates[n], config.aliases) for n in commands}
        self.missing: Dict[Tuple[str, str], List[str]] = {}  # (command, placeholder) -> names
        self.bad_values: Dict[str, List[str]] = {}  # message -> names
        self.seen: Dict[Any, str] = {}  # dedup key -> name
        self.names: Dict[str, Tuple[Dict[str, Any], Document]] = {}
        self.duplicates = 0
        self.used_params = set()
        for template in self.templates.values():
            self.used_params.update(template.placeholders)
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

    def expand(self, document: Document, combos: List[Tuple[int, ...]]) -> List[Task]:
        keys = list(document.params)
        values = [document.params[k] for k in keys]
        fragments = [[make_fragment(k, v) for v in vs] for k, vs in zip(keys, values)]
        frozen = [[(k, freeze(v)) for v in vs] for k, vs in zip(keys, values)]
        has_packs = any(k in self.config.packs for k in keys)
        defaults = [(k, v) for k, v in self.config.defaults.items() if k not in document.params]
        has_settings = any(k in SETTINGS for k in keys + [k for k, _ in defaults])
        frozen_defaults = [(k, freeze(v)) for k, v in defaults]
        if not has_packs:
            self.all_params.update(dict.fromkeys(keys + [k for k, _ in defaults]))
        prefix = self.output + os.sep
        bound = None
        if not has_packs:  # every task's values come from the document: pre-render them
            columns = dict(zip(keys, values))
            constants = {**dict(defaults), "_datetime": self.datetime}
            bound = {command: template.bind(columns, constants, ("_name", "_output"))
                     for command, template in self.templates.items()}
            if None in bound.values():
                bound = None  # a missing or unusable value: render task by task to report it
        tasks = []
        for combo in combos:
            params = {k: vs[i] for k, vs, i in zip(keys, values, combo)}
            if has_packs:
                params = self._apply_packs(document, params)
                for key, value in self.config.defaults.items():
                    params.setdefault(key, value)
                dedup_key = frozenset([(k, freeze(v)) for k, v in params.items()])
                self.all_params.update(dict.fromkeys(params))
            else:
                params.update(defaults)
                dedup_key = frozenset([*[f[i] for f, i in zip(frozen, combo)], *frozen_defaults])
            if dedup_key in self.seen:
                self.duplicates += 1
                continue
            name = join_name([f[i] for f, i in zip(fragments, combo)])
            if name in self.names:
                other, other_doc = self.names[name]
                raise ConfigError(
                    f"{self.config.path}: two different tasks would both be named '{name}': "
                    f"{_show(other)} ({other_doc.describe()}) and {_show(params)} "
                    f"({document.describe()}); make their values differ in more than "
                    f"punctuation, or give one of them an extra param")
            self.seen[dedup_key] = name
            self.names[name] = (params, document)
            settings = self._settings(name, params) if has_settings or has_packs else (
                self.config.settings)
            params["_name"] = name
            params["_output"] = self.output if self.no_param_dir else prefix + name
            params["_datetime"] = self.datetime
            commands = ({command: b.render(combo, params) for command, b in bound.items()}
                        if bound is not None else self._render(name, params))
            tasks.append(Task(name, params, commands, document.index, document.title, settings))
        return tasks

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

    def _render(self, name: str, params: Dict[str, Any]) -> Dict[str, str]:
        commands = {}
        for command, template in self.templates.items():
            try:
                commands[command] = template.render(params)
            except KeyError as e:
                self.missing.setdefault((command, e.args[0]), []).append(name)
            except RenderError as e:
                self.bad_values.setdefault(f"template '{command}': {e}", []).append(name)
        return commands

    def check(self) -> None:
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


def expand(config: Config, selection: Selection, output: str, datetime: str,
           no_param_dir: bool = False) -> Plan:
    """Turn a config and a selection into the tasks of one invocation."""
    documents = select_documents(config, selection.titles)
    commands = select_commands(config, selection.commands)
    if selection.sample is not None and selection.sample < 1:
        raise UsageError(f"--sample {selection.sample}: expected a positive number of tasks "
                         f"per document")
    expander = _Expander(config, commands, output, datetime, no_param_dir)
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
    expander.check()
    orphans = [p for p in expander.all_params if p not in expander.used_params
               and p not in SETTINGS]
    return Plan(tasks=tasks, commands=commands, duplicates=expander.duplicates, orphans=orphans,
                notices=notices, seed=selection.seed if selection.sample is not None else None)


def _count(names: List[str]) -> str:
    return f"{len(names)} task" + ("" if len(names) == 1 else "s")


def _some(names: List[str]) -> str:
    shown = ", ".join(names[:MAX_LISTED])
    return shown + (f" and {len(names) - MAX_LISTED} more" if len(names) > MAX_LISTED else "")


def _show(params: Dict[str, Any]) -> str:
    return "{" + ", ".join(f"{k}: {v!r}" for k, v in params.items() if not k.startswith("_")) + "}"
