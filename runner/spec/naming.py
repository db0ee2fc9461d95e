"""Task names in the `Curl_1-Bracket_1` style: short, readable, and a safe single path component."""

from __future__ import annotations

import hashlib
import os
import re
from typing import Any, Iterable, Tuple

MAX_NAME_BYTES = 200  # leaves room for `log.<command>.<datetime>.` around a name in one component
_UNSAFE = re.compile(r"[^A-Za-z0-9._+=,-]")


def abbreviate_key(key: str) -> str:
    """`learning_rate` -> `LeRate`, `batch-size` -> `BaSize`, `n_layers` -> `nLayers`, `lr` -> `Lr`."""
    parts = [p for p in key.split("-" if "-" in key else "_") if p]
    if not parts:
        return key
    head = [p if len(p) <= 2 else p[0].upper() + p[1] for p in parts[:-1]]
    last = parts[-1]
    return "".join(head) + last[:1].upper() + last[1:]


def format_value(value: Any) -> str:
    """The shortest text that keeps the value apart from every other value of its type."""
    if isinstance(value, bool):
        return "T" if value else "F"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = repr(value)
        if "e" in text:
            mantissa, exponent = text.split("e")
            sign = "-" if exponent.startswith("-") else ""
            text = f"{mantissa}e{sign}{exponent.lstrip('+-').lstrip('0') or '0'}"
        return text
    if isinstance(value, str):
        if value and os.path.exists(value):
            return os.path.basename(os.path.normpath(value)) or value
        return value
    if isinstance(value, (list, tuple)):
        return ",".join(format_value(v) for v in value)
    return str(value)


def make_fragment(key: str, value: Any) -> str:
    """One `Key_Value` entry of a name, already made safe."""
    return _UNSAFE.sub("_", f"{abbreviate_key(key)}_{format_value(value)}")


def join_name(fragments: Iterable[str]) -> str:
    """Join `Key_Value` entries into a name that is one safe path component."""
    name = "-".join(fragments) or "task"
    if name[0] in ".-":
        name = "_" + name
    if len(name) > MAX_NAME_BYTES:
        digest = hashlib.sha1(name.encode()).hexdigest()[:12]
        name = f"{name[:MAX_NAME_BYTES - 13]}-{digest}"
    return name


def make_name(items: Iterable[Tuple[str, Any]]) -> str:
    """The name of a task from its params as written in its document."""
    return join_name(make_fragment(k, v) for k, v in items)
