"""Command templates: `{p}` inserts a param's value shell-quoted, `[p]` inserts it as a flag.

A template is parsed once into literal text and placeholders, and rendered in one pass, so a
value that itself contains `{y}` or `[y]` is inserted literally. `${VAR}` is shell, not a
placeholder; `{{p}}` and `[[p]]` produce a literal `{p}` and `[p]`.

An unclosed placeholder is a `{` or `[` directly followed by a name (as a placeholder's: a
letter or `_`, then letters, digits, `_`, `.`, `-`) that is not closed right after the name and
that no later bracket of its kind closes: counting the brackets of the template's text (not
those of placeholders, `{{p}}`, `[[p]]` or `${...}`), it stays open to the end. So
`--lr {lr --out {_output}` is refused, while shell text such as `awk '{print $1}'`,
`[ -f x ]`, `{a,b}`, `${VAR}` or `{ cd x; make; }` is left to the shell.
"""

from __future__ import annotations

import re
import shlex
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

_NAME = r"[A-Za-z_][A-Za-z0-9_.-]*"
_TOKEN = re.compile(
    rf"\{{\{{(?P<esc_value>{_NAME})\}}\}}"
    rf"|\[\[(?P<esc_flag>{_NAME})\]\]"
    r"|\$\{[^{}]*\}"
    rf"|\{{(?P<value>{_NAME})\}}"
    rf"|\[(?P<flag>{_NAME})\]"
)

_OPENING = re.compile(rf"[{{\[](?={_NAME})")
_PAIRS = {"{": "}", "[": "]"}

LITERAL, VALUE, FLAG = 0, 1, 2


class RenderError(ValueError):
    """A param value that cannot be put into a command (the message says which and why)."""


class Template:
    """A parsed command template."""

    __slots__ = ("text", "segments", "placeholders", "aliases", "unclosed", "_cache")

    def __init__(self, text: str, aliases: Optional[Mapping[str, Any]] = None):
        self.text = text
        self.aliases = aliases or {}
        self._cache: Dict[tuple, str] = {}  # (kind, name, type, value) -> rendered text
        segments: List[Tuple[int, str]] = []
        position = 0
        masked = []  # the text with every token blanked out, for finding unclosed placeholders
        for match in _TOKEN.finditer(text):
            masked.append(text[position:match.start()] + " " * (match.end() - match.start()))
            literal = text[position:match.start()]
            if match.group("esc_value"):
                literal += "{" + match.group("esc_value") + "}"
            elif match.group("esc_flag"):
                literal += "[" + match.group("esc_flag") + "]"
            elif match.group("value"):
                segments.append((LITERAL, literal))
                segments.append((VALUE, match.group("value")))
                literal = ""
            elif match.group("flag"):
                segments.append((LITERAL, literal))
                segments.append((FLAG, match.group("flag")))
                literal = ""
            else:
                literal += match.group(0)
            if literal:
                segments.append((LITERAL, literal))
            position = match.end()
        segments.append((LITERAL, text[position:]))
        masked.append(text[position:])
        self.unclosed = _find_unclosed("".join(masked))
        self.segments = tuple((kind, s) for kind, s in segments if kind != LITERAL or s)
        self.placeholders = tuple(dict.fromkeys(s for kind, s in self.segments if kind != LITERAL))

    def render(self, params: Mapping[str, Any]) -> str:
        """The command text; KeyError for a missing param, RenderError for an unusable value."""
        out = []
        cache = self._cache
        for kind, payload in self.segments:
            if kind == LITERAL:
                out.append(payload)
                continue
            value = params[payload]
            key = (kind, payload, type(value), value)
            try:
                text = cache.get(key)
            except TypeError:  # a list: not hashable, render it each time
                key, text = None, None
            if text is None:
                if kind == VALUE:
                    text = render_value(payload, value)
                else:
                    text = render_flag(payload, value, self.aliases)
                if key is not None:
                    cache[key] = text
            out.append(text)
        return "".join(out)


    def bind(self, columns: Mapping[str, Sequence[Any]], constants: Mapping[str, Any],
             per_task: Sequence[str]) -> Optional["BoundTemplate"]:
        """Pre-render every value a document can give each placeholder.

        `columns` maps a param to the document's candidate values (a task picks one by index),
        `constants` maps params every task shares to their value, and `per_task` names params
        known only per task. None when some placeholder has no source or a value cannot be
        rendered: then `render` finds and reports the problem task by task.
        """
        order = {key: i for i, key in enumerate(columns)}
        fields: List[Tuple[int, Any]] = []  # (column, rendered texts) | (-1, text) | (-2, name)
        parts = []
        try:
            for kind, payload in self.segments:
                if kind == LITERAL:
                    parts.append(payload.replace("{", "{{").replace("}", "}}"))
                    continue
                parts.append("{}")
                if payload in order:
                    fields.append((order[payload], [self._render_one(kind, payload, v)
                                                    for v in columns[payload]]))
                elif payload in constants:
                    fields.append((-1, self._render_one(kind, payload, constants[payload])))
                elif payload in per_task:
                    fields.append((-2, (kind, payload)))
                else:
                    return None
        except RenderError:
            return None
        return BoundTemplate(self, "".join(parts), fields)

    def _render_one(self, kind: int, name: str, value: Any) -> str:
        if kind == VALUE:
            return render_value(name, value)
        return render_flag(name, value, self.aliases)


class BoundTemplate:
    """A template bound to one document's values: rendering a task is one `str.format`."""

    __slots__ = ("template", "format", "fields")

    def __init__(self, template: Template, format_string: str, fields: List[Tuple[int, Any]]):
        self.template = template
        self.format = format_string.format
        self.fields = fields

    def render(self, combo: Sequence[int], params: Mapping[str, Any]) -> str:
        args = []
        for column, texts in self.fields:
            if column >= 0:
                args.append(texts[combo[column]])
            elif column == -1:
                args.append(texts)
            else:
                args.append(self.template._render_one(texts[0], texts[1], params[texts[1]]))
        return self.format(*args)


def _find_unclosed(masked: str) -> List[Tuple[str, int]]:
    """(`{name` or `[name`, column) of each placeholder left open (see the module docstring)."""
    out = []
    for opening, closing in _PAIRS.items():
        open_positions: List[int] = []
        for position, char in enumerate(masked):
            if char == opening:
                open_positions.append(position)
            elif char == closing and open_positions:
                open_positions.pop()
        for position in open_positions:
            match = _OPENING.match(masked, position)
            if match and not (opening == "{" and masked[position - 1:position] == "$"):
                name = re.match(_NAME, masked[position + 1:]).group(0)
                out.append((opening + name, position + 1))
    return sorted(out, key=lambda item: item[1])


def unusable_text(value: Any) -> Optional[str]:
    """Why a string (or one inside a list or mapping) cannot be part of a file name or a command:
    a NUL byte, or a lone surrogate that no file system encoding can write; None if it can."""
    if isinstance(value, str):
        if "\x00" in value:
            return f"{value!r} contains a NUL byte (\\0)"
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return f"{value!r} contains a character that is not valid Unicode"
        return None
    if isinstance(value, (list, tuple)):
        for item in value:
            problem = unusable_text(item)
            if problem:
                return problem
    elif isinstance(value, dict):
        for key, item in value.items():
            problem = unusable_text(key) or unusable_text(item)
            if problem:
                return problem
    return None


def render_value(name: str, value: Any) -> str:
    """`{name}`: strings shell-quoted, numbers as written, lists space-joined, bools True/False."""
    if isinstance(value, str):
        if "\x00" in value or not value.isascii():
            problem = unusable_text(value)
            if problem:
                raise RenderError(f"the value of '{name}', {problem}, which cannot be part of a "
                                  f"command; remove it")
        return shlex.quote(value)
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return " ".join(render_value(name, item) for item in value)
    if value is None or isinstance(value, dict):
        raise RenderError(f"'{name}' is {'null' if value is None else 'a mapping'}, which cannot "
                          f"be put into a command; give it a value")
    return shlex.quote(str(value))


def _flag(key: str, value: Any) -> str:
    if value is True:
        return f"--{key}"
    if value is False:
        return ""
    return f"--{key} {render_value(key, value)}"


def render_flag(name: str, value: Any, aliases: Mapping[str, Any]) -> str:
    """`[name]`: `--name value`, `--name` for True, nothing for False; aliases expand to many."""
    alias = aliases.get(name)
    if alias is None:
        if value is None:
            raise RenderError(f"'{name}' is null, which cannot be a flag; give it a value")
        return _flag(name, value)
    if isinstance(alias, list):
        return " ".join(f for f in (_flag(str(target), value) for target in alias) if f)
    try:
        entries: Dict[Any, Any] = alias[value]
    except (KeyError, TypeError):
        raise RenderError(f"alias '{name}' has no entry for the value {value!r}; its entries are "
                          f"{', '.join(repr(k) for k in alias)}") from None
    bare = [f"--{k}" for k, v in entries.items() if v is True]
    valued = [_flag(str(k), v) for k, v in entries.items() if not isinstance(v, bool)]
    return " ".join(bare + valued)
