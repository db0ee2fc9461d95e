"""The one YAML reader of every file users write (params YAML, gridspecs, profile files).

PyYAML builds whatever a file describes: a recursive anchor (`x: &a [1, *a]`) becomes a
structure that never ends when walked, a few nested aliases (an "alias bomb") stand for
billions of values, and deep nesting overflows the C stack of libyaml's composer. So a file is
read in two steps:

1. compose the node graph from the parser's events, refusing nesting deeper than `MAX_DEPTH`
   while composing (before any recursion could go deep);
2. check the graph before constructing anything: no cycle, no path deeper than `MAX_DEPTH`
   once aliases are followed, at most `MAX_NODES` nodes once aliases are expanded (computed per
   distinct node, so a bomb costs no more than its text), no key twice in one mapping;

and only then construct the Python values. Every problem is one ConfigError naming the file,
the line and what to change; a tab where YAML wants spaces is named as a tab.
"""

from __future__ import annotations

import functools
from typing import Any, Dict, List, Tuple

from runner.errors import ConfigError

MAX_DEPTH = 100  # levels of nested lists and mappings, aliases followed
MAX_NODES = 1_000_000  # values, keys and collections, aliases expanded
MAX_FILE_BYTES = 16 * 1024 * 1024  # what a hand-written file never needs; keeps /dev/zero out


def read_yaml_text(path: str) -> str:
    """The text of a YAML file; OSError and UnicodeDecodeError as reading raises them, and a
    ConfigError for a file larger than MAX_FILE_BYTES (reading stops there)."""
    with open(path, "rb") as f:
        data = f.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB; a YAML "
                          f"file of params is much smaller, so this is probably not the right "
                          f"file")
    return data.decode("utf-8")


@functools.lru_cache(maxsize=None)
def _loader_class(pure: bool = False):
    """A safe loader whose composer is ours: libyaml's parser where available (and `pure` is
    false), else PyYAML's own."""
    import yaml
    from yaml.composer import Composer
    from yaml.constructor import SafeConstructor
    from yaml.resolver import Resolver

    class LimitedComposer(Composer):
        """PyYAML's composer with a depth limit, remembering the anchor of each anchored node."""

        def init_limits(self, path: str) -> None:
            self.path = path
            self.depth = 0
            self.anchor_names: Dict[int, str] = {}  # id(node) -> its anchor

        def compose_node(self, parent: Any, index: Any) -> Any:
            event = self.peek_event()
            if self.depth >= MAX_DEPTH and not isinstance(event, (yaml.ScalarEvent,
                                                                   yaml.AliasEvent)):
                raise ConfigError(f"{self.path}, line {event.start_mark.line + 1}: nested deeper "
                                  f"than {MAX_DEPTH} levels; flatten the structure")
            anchor = getattr(event, "anchor", None) if not isinstance(
                event, yaml.AliasEvent) else None
            self.depth += 1
            try:
                node = super().compose_node(parent, index)
            finally:
                self.depth -= 1
            if anchor is not None:
                self.anchor_names[id(node)] = anchor
            return node

    try:
        if pure:
            raise ImportError("the pure-Python parser was asked for")
        from yaml.cyaml import CParser
    except ImportError:  # PyYAML without libyaml
        from yaml.parser import Parser
        from yaml.reader import Reader
        from yaml.scanner import Scanner

        class Loader(LimitedComposer, Reader, Scanner, Parser, SafeConstructor, Resolver):
            def __init__(self, text: str, path: str):
                Reader.__init__(self, text)
                Scanner.__init__(self)
                Parser.__init__(self)
                Composer.__init__(self)
                SafeConstructor.__init__(self)
                Resolver.__init__(self)
                self.init_limits(path)
    else:
        class Loader(LimitedComposer, CParser, SafeConstructor, Resolver):  # type: ignore[no-redef]
            def __init__(self, text: str, path: str):
                CParser.__init__(self, text)
                Composer.__init__(self)
                SafeConstructor.__init__(self)
                Resolver.__init__(self)
                self.init_limits(path)

    return yaml, Loader


def parse_yaml_documents(text: str, path: str, pure: bool = False) -> List[Tuple[Any, Any]]:
    """(data, node) for every document of a YAML text, read within the limits above (`pure`:
    with PyYAML's Python parser even where libyaml is installed)."""
    yaml, loader_class = _loader_class(pure)
    docs = []
    loader = loader_class(text, path)
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is not None:
                _check_graph(node, path, loader.anchor_names)
            docs.append((loader.construct_document(node), node))
    except yaml.YAMLError as e:
        raise ConfigError(_describe_error(e, text, path)) from None
    finally:
        loader.dispose()
    return docs


def _describe_error(error: Any, text: str, path: str) -> str:
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    if mark is None:
        return f"{path}: invalid YAML: {problem}"
    where = f"{path}, line {mark.line + 1}, column {mark.column + 1}"
    lines = text.splitlines()
    line = lines[mark.line] if mark.line < len(lines) else ""
    indent = line[:len(line) - len(line.lstrip(" \t"))]
    if "\t" in indent and mark.column <= len(indent):
        return (f"{where}: a tab is used for indentation; YAML indents with spaces only, "
                f"replace the tab with spaces")
    if line[mark.column:mark.column + 1] == "\t":
        return f"{where}: a tab where YAML expects spaces; replace the tab with spaces"
    return f"{where}: invalid YAML: {problem}"


def _check_graph(root: Any, path: str, anchor_names: Dict[int, str]) -> None:
    """Refuse cycles, paths deeper than MAX_DEPTH, more than MAX_NODES nodes once aliases are
    expanded, and a key twice in one mapping. Each distinct node is visited once."""
    size: Dict[int, int] = {}  # id(node) -> nodes below and including it, aliases expanded
    height: Dict[int, int] = {}  # id(node) -> levels of collections below and including it
    on_path = set()
    stack: List[Tuple[Any, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if node.id == "scalar":
            size[key], height[key] = 1, 0
            continue
        children = ([n for pair in node.value for n in pair] if node.id == "mapping"
                    else list(node.value))
        if children_done:
            on_path.discard(key)
            total = 1 + sum(size[id(c)] for c in children)
            levels = 1 + max((height[id(c)] for c in children), default=0)
            if total > MAX_NODES:
                raise ConfigError(
                    f"{_where(path, node)}through its aliases, the value here expands to "
                    f"{total:,} values, above the limit of {MAX_NODES:,}; nested aliases "
                    f"multiply, so write the values out or nest fewer aliases")
            if levels > MAX_DEPTH:
                raise ConfigError(f"{_where(path, node)}nested deeper than {MAX_DEPTH} levels "
                                  f"once aliases are followed; flatten the structure")
            size[key], height[key] = total, levels
            continue
        if key in size:
            continue
        on_path.add(key)
        if node.id == "mapping":
            _check_duplicate_keys(node, path)
        stack.append((node, True))
        for child in children:
            if id(child) in on_path:
                anchor = anchor_names.get(id(child))
                what = f"the anchor '&{anchor}'" if anchor else "an anchor"
                raise ConfigError(
                    f"{_where(path, child)}{what} contains an alias of itself, so its value "
                    f"never ends; an alias may only refer to a value that is complete")
            if id(child) not in size:
                stack.append((child, False))


def _check_duplicate_keys(node: Any, path: str) -> None:
    """PyYAML keeps the last of two equal keys silently; we refuse them."""
    seen: Dict[str, int] = {}
    for key_node, _ in node.value:
        key = getattr(key_node, "value", None)
        if isinstance(key, str) and key_node.id == "scalar":
            if key in seen and key != "<<":
                raise ConfigError(
                    f"{_where(path, key_node)}key '{key}' appears twice in one mapping (first on "
                    f"line {seen[key] + 1}); keep one")
            seen[key] = key_node.start_mark.line


def _where(path: str, node: Any) -> str:
    return f"{path}, line {node.start_mark.line + 1}: "
