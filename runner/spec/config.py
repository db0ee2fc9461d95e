"""Read a multi-document YAML file into a validated `Config`, with errors that say where.

Document 0 is the config (`template`, `resource`, `default`, `alias`, `pack`); documents 1..n are
parameter documents mapping a param to its candidate values. Every error names the file, the line,
the document (and its `_title`) and the key, says what was expected and how to fix it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple, Union

from runner.errors import ConfigError, choices_text, did_you_mean
from runner.spec.settings import SETTINGS, parse_setting
from runner.spec.template import Template, unusable_text
from runner.spec.yamlfile import parse_yaml_documents, read_yaml_text

DEFAULT_CONFIG = "params.yaml"
TITLE_KEY = "_title"
COMMANDS_KEY = "_cmd"  # in a parameter document: the templates its tasks run (mlrunner's key)
RESERVED_PARAMS = ("_name", "_output", "_datetime", "_time", "_commands")
AUTO_RESOURCE = "auto"  # `resource: auto`: one slot per GPU that NVML reports

# Keys of document 0 -> what they hold. Features that add keys register them here.
CONFIG_KEYS: Dict[str, str] = {
    "template": "mapping of command name -> shell command",
    "resource": "list of GPU slots, e.g. [0, 1] or ['0,1', '2,3'], or 'auto'",
    "default": "mapping of param -> value used where a task has no such param",
    "alias": "mapping of name -> list or mapping, expanded at [name] placeholders",
    "pack": "mapping of name -> list or mapping: one param that stands for several",
    "profiles": "mapping of profile name -> {device, host, env, resources} (--backend slurm)",
    **{key: text for key, (_, text) in SETTINGS.items()},
}

_COMMAND_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+=,-]*$")
_GPU_ID = re.compile(r"^(\d+|(GPU|MIG)-[A-Za-z0-9/_-]+)$")


@dataclass
class Document:
    """One parameter document: param -> candidate values, in the order written."""

    index: int
    title: Optional[str]
    params: Dict[str, List[Any]]
    line: int
    commands: Optional[List[str]] = None  # `_cmd`: the templates its tasks run (None: all)

    def describe(self) -> str:
        return f"document {self.index}" + (f" (_title: {self.title})" if self.title else "")


@dataclass
class Config:
    """A validated YAML runner file."""

    path: str
    templates: Dict[str, str]
    resource: Union[None, str, List[Tuple[str, ...]]]  # None: not given; AUTO_RESOURCE: auto
    defaults: Dict[str, Any] = field(default_factory=dict)
    aliases: Dict[str, Any] = field(default_factory=dict)
    packs: Dict[str, Any] = field(default_factory=dict)
    documents: List[Document] = field(default_factory=list)
    settings: Dict[str, Any] = field(default_factory=dict)  # validated, for every task
    extra: Dict[str, Any] = field(default_factory=dict)  # other registered keys, as written
    text: str = ""

    @property
    def titles(self) -> List[str]:
        return [d.title for d in self.documents if d.title is not None]


class _Where:
    """Builds 'FILE, line N, document K (_title: T), key K: ' prefixes from YAML nodes."""

    def __init__(self, path: str):
        self.path = path

    def __call__(self, node: Any = None, doc: Optional[str] = None,
                 key: Optional[str] = None) -> str:
        parts = [self.path]
        if node is not None:
            parts.append(f"line {node.start_mark.line + 1}")
        if doc:
            parts.append(doc)
        if key is not None:
            parts.append(f"key '{key}'")
        return ", ".join(parts) + ": "


def read_config_text(path: str) -> str:
    """The file's text, or a ConfigError that says what is wrong with the path."""
    if os.path.isdir(path):
        raise ConfigError(f"{path}: is a directory; pass the YAML file itself with -y FILE")
    try:
        return read_yaml_text(path)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file; pass the YAML config with -y FILE") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read it: {e}") from None


def _key_nodes(node: Any) -> Dict[Any, Any]:
    if node is None or node.id != "mapping":
        return {}
    return {getattr(k, "value", None): k for k, _ in node.value}


def load_config(path: str) -> Config:
    """Read and validate a YAML runner file."""
    text = read_config_text(path)
    return parse_config(text, path)


def parse_config(text: str, path: str = DEFAULT_CONFIG) -> Config:
    """Validate the documents of a YAML runner file's text."""
    where = _Where(path)
    docs = parse_yaml_documents(text, path)
    if not docs or docs[0][0] is None:
        raise ConfigError(f"{path}: no config document; the first YAML document must hold at least "
                          f"'template:' (a mapping of command name -> shell command)")
    data, node = docs[0]
    if not isinstance(data, dict):
        raise ConfigError(f"{where(node, 'document 0 (the config)')}expected a mapping with "
                          f"'template' and 'resource', found {_kind(data)}")
    keys = _key_nodes(node)
    for key in data:
        if key not in CONFIG_KEYS:
            raise ConfigError(
                f"{where(keys.get(key), 'document 0 (the config)', key)}unknown key"
                f"{did_you_mean(key, CONFIG_KEYS)}; valid keys are {choices_text(CONFIG_KEYS)}")

    def section(name: str, kind: type, required: bool = False) -> Any:
        value = data.get(name)
        if value is None:
            if required:
                raise ConfigError(f"{where(node, 'document 0 (the config)')}missing '{name}:' "
                                  f"({CONFIG_KEYS[name]})")
            return kind()
        if not isinstance(value, kind):
            raise ConfigError(f"{where(keys.get(name), 'document 0 (the config)', name)}expected a "
                              f"{CONFIG_KEYS[name]}, found {_kind(value)}")
        return value

    templates = _parse_templates(section("template", dict, required=True), where,
                                 keys.get("template"), _value_node(node, "template"))
    resource = _parse_resource(data["resource"], where, keys.get("resource")) if (
        "resource" in data) else None
    defaults = section("default", dict)
    aliases = section("alias", dict)
    packs = section("pack", dict)
    for kind, table in (("alias", aliases), ("pack", packs)):
        for name, value in table.items():
            if not isinstance(value, (list, dict)) or (isinstance(value, dict) and not all(
                    isinstance(v, dict) for v in value.values())):
                place = where(keys.get(kind), 'document 0 (the config)', f'{kind}.{name}')
                raise ConfigError(
                    f"{place}expected a "
                    f"list of param names or a mapping of value -> mapping of params, "
                    f"found {_kind(value)}")
    settings = {}
    for key in SETTINGS:
        if key in data:
            try:
                settings[key] = parse_setting(key, data[key])
            except ValueError as e:
                raise ConfigError(f"{where(keys.get(key), 'document 0 (the config)', key)}{e} "
                                  f"({CONFIG_KEYS[key]})") from None
    extra = {k: v for k, v in data.items() if k not in ("template", "resource", "default", "alias",
                                                          "pack") and k not in SETTINGS}
    documents = []
    for index, (doc, doc_node) in enumerate(docs[1:], start=1):
        parsed = _parse_document(index, doc, doc_node, where, templates)
        if parsed is not None:
            documents.append(parsed)
    if not documents:
        raise ConfigError(f"{path}: no parameter document, so there is no task to run; after the "
                          f"config add a line '---' and a document of params, e.g. "
                          f"'lr: [0.1, 0.01]' (an empty document, '{{}}', runs the templates "
                          f"once: write '_title: once')")
    return Config(path=path, templates=templates, resource=resource, defaults=defaults,
                  aliases=aliases, packs=packs, documents=documents, settings=settings,
                  extra=extra, text=text)


def _value_node(node: Any, key: str) -> Any:
    """The node of `key`'s value in a mapping node (None if absent)."""
    if node is None or node.id != "mapping":
        return None
    return next((v for k, v in node.value if getattr(k, "value", None) == key), None)


def _parse_templates(value: Dict[Any, Any], where: _Where, node: Any,
                     body: Any = None) -> Dict[str, str]:
    if not value:
        raise ConfigError(f"{where(node, 'document 0 (the config)', 'template')}is empty; add at "
                          f"least one command, e.g. 'train: python train.py --lr {{lr}}'")
    templates = {}
    entries = _key_nodes(body)
    for name, command in value.items():
        at = entries.get(name, node)  # errors point at the template's own line
        if not isinstance(name, str) or not _COMMAND_NAME.match(name):
            raise ConfigError(f"{where(at, 'document 0 (the config)', f'template.{name}')}a "
                              f"command name must be letters, digits and _.+=,- (it names log "
                              f"files)")
        if not isinstance(command, str) or not command.strip():
            raise ConfigError(f"{where(at, 'document 0 (the config)', f'template.{name}')}expected "
                              f"a shell command string, found {_kind(command)}")
        problem = unusable_text(command)
        if problem:
            raise ConfigError(f"{where(at, 'document 0 (the config)', f'template.{name}')}"
                              f"the command {problem}, which cannot be run; remove it")
        unclosed = Template(command).unclosed
        if unclosed:
            raise ConfigError(
                f"{where(at, 'document 0 (the config)', f'template.{name}')}"
                + "; ".join(f"unclosed placeholder '{text}' at column {column}"
                            for text, column in unclosed)
                + f" of {command!r}; close it ('{unclosed[0][0]}{_closing(unclosed[0][0])}')")
        templates[name] = command.strip()
    return templates


def parse_resource_entry(entry: Any) -> Tuple[str, ...]:
    """One `resource` entry -> the GPU ids it binds: 0 -> ('0',), '0,1' -> ('0', '1'), '' -> ()."""
    if isinstance(entry, bool):
        raise ValueError(f"{entry!r} is not a GPU index")
    if entry is None:
        return ()
    if isinstance(entry, int):
        if entry < 0:
            raise ValueError(f"{entry} is negative")
        return (str(entry),)
    if isinstance(entry, str):
        parts = tuple(p.strip() for p in entry.split(",") if p.strip())
        for part in parts:
            if not _GPU_ID.match(part):
                raise ValueError(f"'{part}' is not a GPU index or UUID")
        return parts
    if isinstance(entry, list):
        return tuple(g for item in entry for g in parse_resource_entry(item))
    raise ValueError(f"{_kind(entry)} is not a GPU index")


def is_auto_resource(value: Any) -> bool:
    """`auto`, in any case, alone or as the only entry of a list."""
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    return isinstance(value, str) and value.strip().lower() == AUTO_RESOURCE


def _parse_resource(value: Any, where: _Where, node: Any) -> Union[str, List[Tuple[str, ...]]]:
    if is_auto_resource(value):
        return AUTO_RESOURCE
    entries = value if isinstance(value, list) else [value]
    if value is None or not entries:
        raise ConfigError(f"{where(node, 'document 0 (the config)', 'resource')}is empty; list at "
                          f"least one slot, e.g. 'resource: [0, 1]' (GPU indices), or '[\"\"]' for "
                          f"one slot without a GPU")
    slots = []
    for entry in entries:
        try:
            slots.append(parse_resource_entry(entry))
        except ValueError as e:
            raise ConfigError(f"{where(node, 'document 0 (the config)', 'resource')}{e}; an entry "
                              f"is a GPU index (0), a group ('0,1') or '' for no GPU, or write "
                              f"'resource: auto' for every GPU"
                              f"{did_you_mean(entry, [AUTO_RESOURCE])}") from None
    return slots


def _closing(opening: str) -> str:
    return "}" if opening.startswith("{") else "]"


def _parse_document(index: int, data: Any, node: Any, where: _Where,
                    templates: Dict[str, str]) -> Optional[Document]:
    if data is None or data == {}:
        return None
    label = f"document {index}"
    if not isinstance(data, dict):
        raise ConfigError(f"{where(node, label)}expected a mapping of param -> list of values, "
                          f"found {_kind(data)}")
    keys = _key_nodes(node)
    title = data.get(TITLE_KEY)
    if TITLE_KEY in data and (title is None or isinstance(title, (list, dict))):
        raise ConfigError(f"{where(keys.get(TITLE_KEY), label, TITLE_KEY)}expected a name, "
                          f"found {_kind(title)}")
    title = None if title is None else str(title)
    if title is not None:
        label += f" (_title: {title})"
    params: Dict[str, List[Any]] = {}
    commands = None
    for key, value in data.items():
        if key == TITLE_KEY:
            continue
        if key == COMMANDS_KEY:
            commands = _parse_commands(value, where(keys.get(key), label, key), templates)
            continue
        if not isinstance(key, str):
            raise ConfigError(f"{where(keys.get(key), label)}param names must be strings, found "
                              f"{_kind(key)} {key!r}; quote it")
        if key in RESERVED_PARAMS:
            raise ConfigError(f"{where(keys.get(key), label, key)}is reserved (the runner sets "
                              f"{choices_text(RESERVED_PARAMS)}); rename the param")
        if isinstance(value, dict):
            raise ConfigError(f"{where(keys.get(key), label, key)}expected a list of candidate "
                              f"values or a single value, found a mapping")
        problem = unusable_text(key) or unusable_text(value)
        if problem:
            raise ConfigError(f"{where(keys.get(key), label, key)}"
                              f"{'the name' if unusable_text(key) else 'the value'} {problem}, "
                              f"which cannot be part of a file name or a command; remove it")
        params[key] = value if isinstance(value, list) else [value]
    return Document(index=index, title=title, params=params,
                    line=node.start_mark.line + 1 if node is not None else 0, commands=commands)


def _parse_commands(value: Any, where: str, templates: Dict[str, str]) -> List[str]:
    """`_cmd: test` or `_cmd: [train, test]`: template names, kept in template order."""
    names = value if isinstance(value, list) else [value]
    if not names or not all(isinstance(n, str) for n in names):
        raise ConfigError(f"{where}expected a template name or a list of them, found "
                          f"{_kind(value)}; templates are {choices_text(templates)}")
    for name in names:
        if name not in templates:
            raise ConfigError(f"{where}no template '{name}'{did_you_mean(name, templates)}; "
                              f"templates are {choices_text(templates)}")
    return [n for n in templates if n in names]


def _kind(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"a bool ({value})"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"a string ({value!r})"
    return f"a {type(value).__name__} ({value!r})"
