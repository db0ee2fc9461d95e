"""Task names in the `Curl_1-Bracket_1` style: short, readable, and a safe single path component.

A name is decided by the YAML alone, never by the file system: each `Key_Value` entry comes
from the param's name and its value as written, and a `Namer` built from every parameter
document of the file tells apart values (and keys) whose text would come out the same:

* a value's text is its last path component if it holds a `/` (`data/train.txt` ->
  `train.txt`), numbers exactly as written, `T`/`F` for booleans, list items joined by `,`;
  letters, digits and marks of any script are kept, `._+=,-` too, anything else becomes `_`;
* per param, across all documents of the file, the values whose text coincides (`a/b` and `a_b`,
  `0.1` and `'0.1'`, `x/train.txt` and `y/train.txt`) each get `~` and a short hash of the value
  appended (`X_a_b~3c59dc`); other values keep their plain text, so adding a value renames only
  the values it collides with. Keys whose abbreviations coincide are told apart the same way.
  `~` never comes out of a value's text, so a hashed entry cannot equal a plain one;
* a name longer than `MAX_NAME_BYTES` (in UTF-8) is cut and ends in a hash of the whole name.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from typing import Any, Dict, Iterable, List, Mapping, Sequence, Tuple

MAX_NAME_BYTES = 200  # leaves room for `log.<command>.<datetime>.` around a name in one component
HASH_MARK = "~"  # between an entry's text and its hash; sanitising never produces it
HASH_LENGTH = 6
_SAFE_PUNCTUATION = frozenset("._+=,-")
_KEPT_CATEGORIES = ("L", "M", "N")  # letters, marks and digits of every script


def freeze(value: Any) -> Any:
    """A hashable stand-in that keeps `1`, `1.0` and `True` apart (dedup, naming)."""
    if isinstance(value, (list, tuple)):
        return (list, tuple(freeze(v) for v in value))
    if isinstance(value, dict):
        return (dict, frozenset((k, freeze(v)) for k, v in value.items()))
    return (type(value), value)


def abbreviate_key(key: str) -> str:
    """`learning_rate` -> `LeRate`, `batch-size` -> `BaSize`, `n_layers` -> `nLayers`,
    `lr` -> `Lr`."""
    parts = [p for p in key.split("-" if "-" in key else "_") if p]
    if not parts:
        return key
    head = [p if len(p) <= 2 else p[0].upper() + p[1] for p in parts[:-1]]
    last = parts[-1]
    return "".join(head) + last[:1].upper() + last[1:]


def format_value(value: Any) -> str:
    """The shortest text that keeps the value apart from every other value of its type
    (a string with `/` gives its last path component)."""
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
        if "/" in value:
            last = value.rstrip("/").rpartition("/")[2]
            return last or value
        return value
    if isinstance(value, (list, tuple)):
        return ",".join(format_value(v) for v in value)
    return str(value)


def make_safe(text: str) -> str:
    """Letters, digits and marks of any script and `._+=,-` kept; every other character `_`."""
    if text.isascii():
        if text.replace("_", "").replace(".", "").replace("-", "").isalnum() or not text:
            return text
    return "".join(c if c in _SAFE_PUNCTUATION or c == "_" or (
        c.isascii() and c.isalnum()) or (
        not c.isascii() and unicodedata.category(c)[0] in _KEPT_CATEGORIES) else "_"
        for c in text)


def value_digest(value: Any, length: int = HASH_LENGTH) -> str:
    """A short hash of a value that is stable across runs and Python versions and keeps
    `1`, `1.0`, `True` and `'1'` apart."""
    text = json.dumps(_tagged(value), ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:length]


def _tagged(value: Any) -> Any:
    if isinstance(value, bool):
        return ["bool", value]
    if isinstance(value, int):
        return ["int", str(value)]
    if isinstance(value, float):
        return ["float", repr(value)]
    if isinstance(value, str):
        return ["str", value]
    if value is None:
        return ["null"]
    if isinstance(value, (list, tuple)):
        return ["list", [_tagged(v) for v in value]]
    if isinstance(value, dict):
        items = [[_tagged(k), _tagged(v)] for k, v in value.items()]
        return ["map", sorted(items, key=lambda item: json.dumps(item, ensure_ascii=False))]
    return [type(value).__name__, str(value)]


def _told_apart(groups: Mapping[str, List[Any]], digest) -> Dict[int, str]:
    """For each group of items sharing one text, `text~hash` per item (longer hashes where
    two items' short hashes coincide); index into the flattened order -> suffixed text."""
    out: Dict[int, str] = {}
    for text, items in groups.items():
        if len(items) < 2:
            continue
        length = HASH_LENGTH
        while True:
            digests = [digest(item, length) for _, item in items]
            if len(set(digests)) == len(digests) or length >= 64:
                break
            length *= 2
        for (index, _), suffix in zip(items, digests):
            out[index] = f"{text}{HASH_MARK}{suffix}"
    return out


class Namer:
    """The `Key_Value` entry of every value of every param of a file, collisions resolved.

    Built once from all parameter documents (whatever `-t` or `--sample` select), so a task's
    name never depends on which tasks run alongside it.
    """

    def __init__(self, documents: Iterable[Mapping[str, Sequence[Any]]]):
        values: Dict[str, Dict[Any, Any]] = {}  # key -> frozen value -> value, first seen first
        for params in documents:
            for key, candidates in params.items():
                seen = values.setdefault(key, {})
                for value in candidates:
                    try:
                        seen.setdefault(freeze(value), value)
                    except TypeError:  # an unhashable leaf (cannot come from YAML): by text
                        seen.setdefault((type(value), repr(value)), value)
        self._keys = self._key_texts(list(values))
        self._entries: Dict[str, Dict[Any, str]] = {}
        for key, seen in values.items():
            groups: Dict[str, List[Tuple[int, Any]]] = {}
            frozen = list(seen)
            for index, value in enumerate(seen.values()):
                groups.setdefault(make_safe(format_value(value)), []).append((index, value))
            texts = {index: text for text, items in groups.items() for index, _ in items}
            texts.update(_told_apart(groups, value_digest))
            self._entries[key] = {frozen[i]: f"{self._keys[key]}_{texts[i]}"
                                  for i in range(len(frozen))}
        self.is_ascii = all(entry.isascii() for entries in self._entries.values()
                            for entry in entries.values())

    @staticmethod
    def _key_texts(keys: List[str]) -> Dict[str, str]:
        groups: Dict[str, List[Tuple[int, str]]] = {}
        for index, key in enumerate(keys):
            groups.setdefault(make_safe(abbreviate_key(str(key))), []).append((index, key))
        texts = {index: text for text, items in groups.items() for index, _ in items}
        texts.update(_told_apart(groups, value_digest))
        return {key: texts[i] for i, key in enumerate(keys)}

    def entry(self, key: str, value: Any) -> str:
        """The `Key_Value` entry of a value the file gives `key`."""
        try:
            return self._entries[key][freeze(value)]
        except (KeyError, TypeError):  # not from the file (a caller's own params)
            return f"{make_safe(abbreviate_key(str(key)))}_{make_safe(format_value(value))}"


def join_name(entries: Iterable[str]) -> str:
    """Join `Key_Value` entries into a name that is one safe path component of at most
    MAX_NAME_BYTES bytes in UTF-8."""
    name = "-".join(entries) or "task"
    if name[0] in ".-":
        name = "_" + name
    if len(name) > MAX_NAME_BYTES // 4 and len(name.encode("utf-8")) > MAX_NAME_BYTES:
        digest = hashlib.sha1(name.encode("utf-8")).hexdigest()[:12]
        head = name.encode("utf-8")[:MAX_NAME_BYTES - 13].decode("utf-8", "ignore")
        name = f"{head}-{digest}"
    return name


def make_name(items: Iterable[Tuple[str, Any]]) -> str:
    """The name of a task from its params as written in its document, alone (no collisions
    with other tasks are looked for: `Namer` does that for a whole file)."""
    items = list(items)
    namer = Namer([{k: [v] for k, v in items}])
    return join_name(namer.entry(k, v) for k, v in items)
