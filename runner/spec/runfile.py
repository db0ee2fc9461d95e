"""Runfiles: one shell command per line, each a job identified by a hash of its text.

A runfile is what `run launch` reads and `run sweep` writes. Its lines end at `\n` (or `\r\n`)
and nowhere else: a form feed, vertical tab or Unicode line separator inside a line is part of
the command, as it is for the shell. Blank lines, whitespace-only lines
and lines whose first non-blank character is `#` are not commands; a line ending in an odd number
of backslashes continues on the next line (joined as the shell joins it: the backslash and the
line break are removed). A job's identity is its command text, stripped: its id is the first 16
hex characters of the SHA-256 of that text, so the same line twice is one job, and a changed line
is a new job.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Dict, List, Optional, Tuple

from runner.errors import ConfigError
from runner.task import Task

ID_LENGTH = 16
YAML_SUFFIXES = (".yml", ".yaml")
_SHELL_OPERATOR = frozenset("();<>|&")
_NUMBER = re.compile(r"^-\.?\d")
_GRIDSPEC_LINE = re.compile(r"^(program|parameters|method|metric)\s*:(\s|$)")


def job_id(command: str) -> str:
    """The id of a command: the first 16 hex characters of the SHA-256 of its stripped text."""
    return hashlib.sha256(command.strip().encode("utf-8")).hexdigest()[:ID_LENGTH]


@dataclass
class Job:
    """One command of a runfile: its id, its text and the line it starts on."""

    id: str
    command: str
    line: int

    @cached_property
    def parameters(self) -> Dict[str, Any]:
        """The `--k=v` / `--k v` pairs of the command (parsed when first asked for)."""
        return parse_parameters(self.command)

    def to_task(self, parameters: bool = True) -> Task:
        """The job as a task of one command: named by its id, its command named by its text
        (its params are its parameters; `parameters=False` skips parsing them, for a job that
        will not run)."""
        return Task(name=self.id, params=self.parameters if parameters else {},
                    commands={self.command: self.command})


@dataclass
class Runfile:
    """The jobs of a runfile in order, and the lines that repeated an earlier job."""

    path: str
    jobs: List[Job]
    duplicates: List[Tuple[int, int]] = field(default_factory=list)  # (line, first line)

    @property
    def stem(self) -> str:
        """The runfile's name without its extension: `gridspec.runfile` -> `gridspec`."""
        return os.path.splitext(os.path.basename(self.path))[0] or os.path.basename(self.path)


def load_runfile(path: str) -> Runfile:
    """Read and parse a runfile; a ConfigError says what is wrong with the file and the fix."""
    if os.path.isdir(path):
        raise ConfigError(f"{path}: is a directory; pass a runfile (a text file with one shell "
                          f"command per line)")
    if path.lower().endswith(YAML_SUFFIXES):
        raise ConfigError(f"{path}: is a YAML file, not a runfile; if it is a gridspec, write the "
                          f"runfile first with: run sweep {shlex.quote(path)}")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file; pass a runfile (a text file with one shell "
                          f"command per line)") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read it: {e}") from None
    return parse_runfile(text, path)


def parse_runfile(text: str, path: str = "runfile") -> Runfile:
    """The jobs of a runfile's text (see the module's docstring for the format)."""
    jobs: List[Job] = []
    duplicates: List[Tuple[int, int]] = []
    first_line: Dict[str, int] = {}
    for line, command in _commands(text):
        if not first_line:
            match = _GRIDSPEC_LINE.match(command)
            if match:
                raise ConfigError(
                    f"{path}, line {line}: '{match.group(1)}:' looks like a gridspec, not a shell "
                    f"command; write the runfile first with: run sweep GRIDSPEC.yml")
        ident = job_id(command)
        if ident in first_line:
            duplicates.append((line, first_line[ident]))
            continue
        first_line[ident] = line
        jobs.append(Job(ident, command, line))
    if not jobs:
        raise ConfigError(f"{path}: no commands (only blank lines and # comments); write one "
                          f"shell command per line")
    return Runfile(path, jobs, duplicates)


def _commands(text: str):
    """(line number, stripped command) for every command of a runfile's text."""
    parts: List[str] = []
    start = 0
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw[:-1] if raw.endswith("\r") else raw
        if not parts:
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                continue
            start = number
        trailing = len(line) - len(line.rstrip("\\"))
        if trailing % 2:
            parts.append(line[:-1])
            continue
        parts.append(line)
        command = "".join(parts).strip()
        parts = []
        if command:
            yield start, command
    if parts:  # a continuation at the end of the file ends the command
        command = "".join(parts).strip()
        if command:
            yield start, command


def parse_parameters(command: str) -> Dict[str, Any]:
    """The `--k=v` and `--k v` pairs of a command (values as strings; a bare `--flag` is True).

    `--k v` takes the next word as the value unless it is another option (`-x`, `--y`; a negative
    number is a value) or a shell operator (`;`, `|`, `>`, ...). A command the shell could not
    split (an unclosed quote) has no parameters.
    """
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        tokens = list(lexer)
    except ValueError:
        return {}
    params: Dict[str, Any] = {}
    for index, token in enumerate(tokens):
        if not token.startswith("--") or _is_operator(token):
            continue
        key, eq, value = token[2:].partition("=")
        if not key:
            continue
        if eq:
            params[key] = value
            continue
        following: Optional[str] = tokens[index + 1] if index + 1 < len(tokens) else None
        if following is None or _is_operator(following) or (
                following.startswith("-") and not _NUMBER.match(following)):
            params[key] = True
        else:
            params[key] = following
    return params


def _is_operator(token: str) -> bool:
    return bool(token) and all(c in _SHELL_OPERATOR for c in token)
