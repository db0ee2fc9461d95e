"""Gridspecs: a program and a grid of parameter values, expanded into a runfile.

The format of the seeds (a grid-only subset of W&B sweep files)::

    program: python3 my_script.py
    parameters:
      alpha: {values: [1, 2, 5]}           # candidate values
      gamma: {value: 100}                  # one value
      seed:  {min: 0, max: 3}              # integers min, min+step, ... < max (step default 1)

The runfile holds the cartesian product in parameter order, first parameter slowest, one
command per line: `python3 my_script.py --alpha=1 --gamma=100 --seed=0`. Values are shell-quoted
where needed (`--beta='a b'`). Every key we do not support is an error.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shlex
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional

from runner.spec.config import _key_nodes, _kind, read_config_text
from runner.spec.yamlfile import parse_yaml_documents
from runner.errors import ConfigError, UsageError, choices_text, did_you_mean
from runner.spec.expand import DEFAULT_MAX_TASKS

RUNFILE_SUFFIX = ".runfile"
TOP_KEYS = {
    "program": "the command every line starts with, e.g. 'python3 my_script.py'",
    "parameters": "mapping of parameter -> {values: [...]}, {value: x} or {min, max, step}",
    "method": "'grid' (the only method: every combination)",
    "name": "a label for the sweep (not used)",
    "description": "a description of the sweep (not used)",
}
PARAM_KEYS = ("values", "value", "min", "max", "step")
# What a reader of a runfile may take for the end of a line: a value holding one of these would
# split its command (str.splitlines splits at all of them).
LINE_BREAKS = {"\n": "\\n", "\r": "\\r", "\v": "\\v", "\f": "\\f", "\x1c": "\\x1c",
               "\x1d": "\\x1d", "\x1e": "\\x1e", "\x85": "\\x85", "\u2028": "\\u2028",
               "\u2029": "\\u2029"}
_PARAM_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


@dataclass
class GridSpec:
    """A validated gridspec: the program, and each parameter's values in the order written."""

    path: str
    program: str
    parameters: Dict[str, List[Any]]

    @property
    def size(self) -> int:
        size = 1
        for values in self.parameters.values():
            size *= len(values)
        return size

    def commands(self) -> Iterator[str]:
        """Every combination as a command line, first parameter slowest."""
        names = list(self.parameters)
        for combination in itertools.product(*self.parameters.values()):
            yield " ".join([self.program] + [
                f"--{name}={format_value(value)}" for name, value in zip(names, combination)])


def format_value(value: Any) -> str:
    """A value as the shell should receive it: `1`, `0.25`, `True`, `'a b'`, `'[1, 2]'`."""
    if isinstance(value, (list, dict)):
        text = json.dumps(value, default=str)
    else:
        text = str(value)
    return shlex.quote(text)


def default_runfile_path(gridspec_path: str) -> str:
    """`dir/gridspec.yml` -> `dir/gridspec.runfile`."""
    return os.path.splitext(gridspec_path)[0] + RUNFILE_SUFFIX


def load_gridspec(path: str) -> GridSpec:
    if os.path.isdir(path):
        raise ConfigError(f"{path}: is a directory; pass the gridspec YAML file")
    if not os.path.exists(path):
        raise ConfigError(f"{path}: no such file; pass a gridspec (YAML with 'program:' and "
                          f"'parameters:')")
    return parse_gridspec(read_config_text(path), path)


def parse_gridspec(text: str, path: str = "gridspec.yml") -> GridSpec:
    """Validate a gridspec's text; every error names the file, the line and the key."""
    docs = [d for d in parse_yaml_documents(text, path) if d[0] is not None]
    if not docs:
        raise ConfigError(f"{path}: empty; a gridspec needs 'program:' and 'parameters:'")
    if len(docs) > 1:
        raise ConfigError(f"{path}, line {_line(docs[1][1])}: a gridspec is one YAML document; "
                          f"remove the '---' and what follows, or split the file")
    data, node = docs[0]
    if not isinstance(data, dict):
        raise ConfigError(f"{path}, line {_line(node)}: expected a mapping with 'program:' and "
                          f"'parameters:', found {_kind(data)}")
    keys = _key_nodes(node)
    for key in data:
        if key not in TOP_KEYS:
            raise ConfigError(f"{path}, line {_line(keys.get(key), node)}: unknown key '{key}'"
                              f"{did_you_mean(key, TOP_KEYS)}; valid keys are "
                              f"{choices_text(TOP_KEYS)}")
    method = data.get("method", "grid")
    if method != "grid":
        raise ConfigError(f"{path}, line {_line(keys.get('method'), node)}: method {method!r} is "
                          f"not supported; only 'grid' (every combination) is")
    program = _parse_program(data.get("program"), path, _line(keys.get("program"), node))
    raw = data.get("parameters")
    if raw is None:
        raise ConfigError(f"{path}, line {_line(keys.get('parameters'), node)}: missing "
                          f"'parameters:' ({TOP_KEYS['parameters']})")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}, line {_line(keys.get('parameters'), node)}: 'parameters' "
                          f"expected {TOP_KEYS['parameters']}, found {_kind(raw)}")
    value_nodes = _value_nodes(node).get("parameters")
    param_keys = _key_nodes(value_nodes)
    param_values = _value_nodes(value_nodes)
    parameters: Dict[str, List[Any]] = {}
    for name, spec in raw.items():
        key_node = param_keys.get(name)
        where = f"{path}, line {_line(key_node, node)}, parameter '{name}'"
        if isinstance(name, bool) or name is None:
            raise ConfigError(f"{where}: YAML reads this name as {name}; quote it (e.g. 'off':)")
        if not isinstance(name, str) or not _PARAM_NAME.match(name):
            raise ConfigError(f"{where}: a parameter name must be letters, digits and _.- "
                              f"(it becomes --{name}=...)")
        keys = _key_nodes(param_values.get(name))
        for key in spec if isinstance(spec, dict) else ():
            if key not in PARAM_KEYS:
                raise ConfigError(
                    f"{path}, line {_line(keys.get(key), key_node)}, parameter '{name}': '{key}' "
                    f"is not supported{did_you_mean(key, PARAM_KEYS)}; a grid parameter has "
                    f"'values', 'value' or 'min'/'max'/'step'")
        parameters[name] = _parse_values(spec, where)
    return GridSpec(path, program, parameters)


def _parse_program(program: Any, path: str, line: int) -> str:
    if program is None:
        raise ConfigError(f"{path}, line {line}: missing 'program:' ({TOP_KEYS['program']})")
    if not isinstance(program, str) or not program.strip():
        raise ConfigError(f"{path}, line {line}: 'program' expected {TOP_KEYS['program']}, "
                          f"found {_kind(program)}")
    parts = []
    for part in program.replace("\r\n", "\n").split("\n"):  # a YAML block: one line
        part = part.strip()
        if part.endswith("\\"):
            part = part[:-1].rstrip()
        if part:
            parts.append(part)
    text = " ".join(parts)
    found = _line_break(text)
    if found:
        raise ConfigError(f"{path}, line {line}: 'program' contains a line break ({found}) "
                          f"inside a line; a runfile holds one command per line, so remove it")
    if "\x00" in text:
        raise ConfigError(f"{path}, line {line}: 'program' contains a NUL byte, which cannot be "
                          f"part of a command; remove it")
    return text


def _parse_values(spec: Any, where: str) -> List[Any]:
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: expected a mapping with 'values: [...]', 'value: x' or "
                          f"'min:'/'max:'/'step:', found {_kind(spec)}; e.g. "
                          f"{{values: [1, 2]}}")
    forms = [form for form, given in (("values", "values" in spec), ("value", "value" in spec),
                                      ("min/max/step", any(k in spec for k in ("min", "max",
                                                                              "step"))))
             if given]
    if len(forms) != 1:
        raise ConfigError(f"{where}: give exactly one of 'values', 'value' or 'min'/'max'/'step'"
                          + (f", not {' and '.join(forms)}" if forms else ""))
    if "values" in spec:
        values = spec["values"]
        if not isinstance(values, list):
            raise ConfigError(f"{where}: 'values' expected a list, found {_kind(values)}; "
                              f"write values: [{values!r}] or value: {values!r}")
        if not values:
            raise ConfigError(f"{where}: 'values' is empty, so the grid has no combination; "
                              f"list at least one value or remove the parameter")
        for value in values:
            _check_value(value, where)
        return list(values)
    if "value" in spec:
        _check_value(spec["value"], where)
        return [spec["value"]]
    return _parse_range(spec, where)


def _parse_range(spec: Dict[str, Any], where: str) -> List[int]:
    bounds = {}
    for key, default in (("min", 0), ("max", None), ("step", 1)):
        value = spec.get(key, default)
        if value is None:
            raise ConfigError(f"{where}: a range needs 'max' (exclusive); e.g. "
                              f"{{min: 0, max: 10, step: 2}}")
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: '{key}' expected an integer, found {_kind(value)}; "
                              f"list other values with 'values: [...]'")
        bounds[key] = value
    if bounds["step"] == 0:
        raise ConfigError(f"{where}: 'step' is 0; use a positive (or negative) integer")
    values = list(range(bounds["min"], bounds["max"], bounds["step"]))
    if not values:
        raise ConfigError(f"{where}: the range min {bounds['min']}, max {bounds['max']} "
                          f"(exclusive), step {bounds['step']} has no value")
    return values


def _check_value(value: Any, where: str) -> None:
    if value is None:
        raise ConfigError(f"{where}: a value is empty (null); write a value, or quote it "
                          f"('null') for the text null")
    found = _line_break(value) if isinstance(value, str) else None
    if found:
        raise ConfigError(f"{where}: the value {value!r} contains a line break ({found}); a "
                          f"runfile holds one command per line, so remove it")
    if "\x00" in format_value(value):
        raise ConfigError(f"{where}: the value {value!r} contains a NUL byte, which cannot be "
                          f"part of a command; remove it")


def _line_break(text: str) -> Optional[str]:
    """The escape of the first line break in `text`, or None."""
    if text.isascii() and text.isprintable():
        return None
    for char in text:
        if char in LINE_BREAKS:
            return LINE_BREAKS[char]
    return None


def check_size(spec: GridSpec, max_tasks: int = DEFAULT_MAX_TASKS) -> None:
    """Refuse a grid of more than `max_tasks` combinations before any line is written."""
    if max_tasks < 1:
        raise UsageError(f"--max-tasks {max_tasks}: expected a positive number of commands")
    if spec.size > max_tasks:
        sizes = [len(v) for v in spec.parameters.values()]
        shown = " x ".join(map(str, sizes[:8])) + (" x ..." if len(sizes) > 8 else "")
        raise UsageError(f"{spec.path}: {len(sizes)} parameters of {shown} values give "
                         f"{spec.size:,} commands, more than the cap of {max_tasks:,}; use fewer "
                         f"values, or raise the cap with --max-tasks N")


def make_runfile_text(spec: GridSpec) -> str:
    return "".join(command + "\n" for command in spec.commands())


def _line(node: Any, fallback: Any = None) -> int:
    node = node if node is not None else fallback
    return node.start_mark.line + 1 if node is not None else 1


def _value_nodes(node: Any) -> Dict[Any, Any]:
    if node is None or getattr(node, "id", None) != "mapping":
        return {}
    return {getattr(k, "value", None): v for k, v in node.value}
