"""Named profiles: where and how a job runs (`device`, `host`, `env`, `resources`).

Profiles come in the launcher's `config.json` format, unchanged::

    {"remote-gpu": {"device": "gpu", "host": "mycluster", "env": "conda activate deep",
                    "resources": {"time": "2-00:00:00", "gres": "gpu:v100:1", "mem": "8000"}}}

or in YAML, as a `profiles:` mapping of the same shape (in a file of its own or in document 0 of
a runner YAML). `host: local` runs here; any other host names a SLURM cluster, and `resources`
are its long sbatch options. An optional `python` names the interpreter that runs the runner (and
`.py` scripts) on the nodes.

Look-up order for a name: `--profiles FILE`, the runner YAML's own `profiles:`, `./config.json`,
`./profiles.yaml`, then the user's config directory (`$XDG_CONFIG_HOME/runner/` or
`~/.config/runner/`, same two names). The first source that defines the name wins.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Union

from runner.errors import ConfigError, choices_text, did_you_mean

LOCAL_HOST = "local"
DEVICES = ("gpu", "cpu")
PROFILE_FILES = ("config.json", "profiles.yaml")
PROFILES_KEY = "profiles"
PROFILE_KEYS = {
    "device": "'gpu' or 'cpu'",
    "host": "'local', or the name of a SLURM cluster",
    "env": "setup lines run before the command (a string or a list of strings)",
    "resources": "mapping of long sbatch option -> value, e.g. {time: '2:00:00', mem: 8000}",
    "python": "the Python interpreter on the nodes (default: the one running `run`)",
    "engine": "the engine that runs its tasks: 'local', 'slurm' or 'dask' (default: dask with "
              "a 'scheduler', else local for host 'local', slurm for any other host)",
    "scheduler": "the address of the dask scheduler for engine 'dask', e.g. tcp://head:8786",
}
_OPTION = re.compile(r"^[A-Za-z][A-Za-z0-9_-]+$")

ResourceValue = Union[str, bool]


@dataclass(frozen=True)
class Profile:
    """One named way to run a job."""

    name: str
    host: str
    device: str = "cpu"
    env: Tuple[str, ...] = ()
    resources: Tuple[Tuple[str, ResourceValue], ...] = ()  # (option, value), in file order
    python: Optional[str] = None
    source: str = ""
    engine_name: Optional[str] = None  # as written; None: chosen by the host
    scheduler: Optional[str] = None  # the dask scheduler's address

    @property
    def is_local(self) -> bool:
        return self.host == LOCAL_HOST

    @property
    def engine(self) -> str:
        """The engine that runs this profile's tasks."""
        if self.engine_name:
            return self.engine_name
        return "dask" if self.scheduler else "local" if self.is_local else "slurm"

    @property
    def resource_map(self) -> Dict[str, ResourceValue]:
        return dict(self.resources)

    def to_json(self) -> Dict[str, Any]:
        return {"name": self.name, "host": self.host, "device": self.device, "env": list(self.env),
                "resources": self.resource_map, "python": self.python, "source": self.source,
                "engine": self.engine, "scheduler": self.scheduler}


class ProfileSet:
    """The profile sources in look-up order; each file is read only when a look-up reaches it."""

    def __init__(self) -> None:
        self._sources: List[Tuple[str, Callable[[], Dict[str, Profile]]]] = []
        self._loaded: Dict[int, Dict[str, Profile]] = {}

    def add(self, source: str, load: Callable[[], Dict[str, Profile]]) -> None:
        self._sources.append((source, load))

    def _profiles(self, index: int) -> Dict[str, Profile]:
        if index not in self._loaded:
            self._loaded[index] = self._sources[index][1]()
        return self._loaded[index]

    @property
    def names(self) -> List[str]:
        return list(dict.fromkeys(n for i in range(len(self._sources)) for n in self._profiles(i)))

    def get(self, name: str) -> Profile:
        for index in range(len(self._sources)):
            profiles = self._profiles(index)
            if name in profiles:
                return profiles[name]
        searched = ", ".join(source for source, _ in self._sources)
        if not self.names:
            raise ConfigError(
                f"profile '{name}': no profiles defined (looked in: "
                f"{searched or 'no profile file found'}); write ./config.json or "
                f"./profiles.yaml, or pass --profiles FILE")
        raise ConfigError(f"profile '{name}': unknown profile{did_you_mean(name, self.names)}; "
                          f"known profiles are {choices_text(self.names)} (from {searched})")


def user_config_dir(environ: Mapping[str, str] = os.environ) -> str:
    """`$XDG_CONFIG_HOME/runner`, or `~/.config/runner`."""
    base = environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "runner")


def parse_env(value: Any, where: str) -> Tuple[str, ...]:
    """`env` as setup lines: a string (may hold several lines) or a list of strings."""
    if value is None or value == "":
        return ()
    items = value if isinstance(value, list) else [value]
    lines: List[str] = []
    for item in items:
        if not isinstance(item, str):
            raise ConfigError(f"{where}key 'env': expected a string or a list of strings, "
                              f"found {type(item).__name__} {item!r}")
        lines.extend(line for line in item.splitlines() if line.strip())
    return tuple(lines)


def parse_resources(value: Any, where: str) -> Tuple[Tuple[str, ResourceValue], ...]:
    """`resources` as (long sbatch option, value) pairs; '' or {} means none."""
    if value is None or value == "" or value == {}:
        return ()
    if not isinstance(value, dict):
        raise ConfigError(f"{where}key 'resources': expected a mapping of sbatch option -> "
                          f"value (or \"\" for none), found {type(value).__name__} {value!r}")
    out = []
    for key, item in value.items():
        option = str(key)[2:] if str(key).startswith("--") else str(key)
        if not _OPTION.match(option):
            raise ConfigError(f"{where}key 'resources.{key}': expected a long sbatch option name "
                              f"such as 'cpus-per-task' or 'time' (not a one-letter flag)")
        if isinstance(item, bool):
            if item:
                out.append((option, True))
            continue
        if isinstance(item, (int, float)) or (isinstance(item, str) and item.strip()):
            text = str(item).strip()
            if "\n" in text:
                raise ConfigError(f"{where}key 'resources.{key}': a value must be one line")
            out.append((option, text))
            continue
        raise ConfigError(f"{where}key 'resources.{key}': expected a string, a number or true, "
                          f"found {item!r}")
    return tuple(out)


def parse_profile(name: str, data: Any, source: str) -> Profile:
    """One profile from its mapping; errors name the source and the profile."""
    where = f"{source}, profile '{name}': "
    if not isinstance(data, dict):
        raise ConfigError(f"{where}expected a mapping with {choices_text(PROFILE_KEYS)}, found "
                          f"{type(data).__name__}")
    for key in data:
        if key not in PROFILE_KEYS:
            raise ConfigError(f"{where}unknown key '{key}'{did_you_mean(key, PROFILE_KEYS)}; "
                              f"valid keys are {choices_text(PROFILE_KEYS)}")
    scheduler = data.get("scheduler")
    if scheduler is not None and (not isinstance(scheduler, str) or not scheduler.strip()
                                  or len(scheduler.split()) != 1):
        raise ConfigError(f"{where}key 'scheduler': expected the address of a dask scheduler "
                          f"such as tcp://head:8786, found {scheduler!r}")
    host = data.get("host", LOCAL_HOST if scheduler is not None else None)
    if not isinstance(host, str) or not host.strip():
        raise ConfigError(f"{where}key 'host': expected 'local' or a cluster name, found "
                          f"{host!r}")
    device = data.get("device", "cpu")
    if device not in DEVICES:
        raise ConfigError(f"{where}key 'device': expected one of {choices_text(DEVICES)}, "
                          f"found {device!r}")
    python = data.get("python")
    if python is not None and (not isinstance(python, str) or not python.strip()):
        raise ConfigError(f"{where}key 'python': expected the path of an interpreter, found "
                          f"{python!r}")
    engine = data.get("engine")
    if engine is not None and (not isinstance(engine, str) or not engine.strip()):
        raise ConfigError(f"{where}key 'engine': expected the name of an engine ('local', "
                          f"'slurm', 'dask'), found {engine!r}")
    return Profile(name=str(name), host=host.strip(), device=device,
                   env=parse_env(data.get("env"), where),
                   resources=parse_resources(data.get("resources"), where),
                   python=python.strip() if python else None, source=source,
                   engine_name=engine.strip() if engine else None,
                   scheduler=scheduler.strip() if scheduler else None)


def parse_profiles(data: Any, source: str) -> Dict[str, Profile]:
    """name -> Profile from a mapping of profiles."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of profile name -> profile, found "
                          f"{type(data).__name__}")
    return {str(name): parse_profile(str(name), value, source) for name, value in data.items()}


def load_profiles_file(path: str) -> Dict[str, Profile]:
    """The profiles of a `config.json` (launcher format) or a YAML file with `profiles:`."""
    from runner.spec.yamlfile import read_yaml_text

    try:
        text = read_yaml_text(path)
    except FileNotFoundError:
        raise ConfigError(f"--profiles {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read it: {e}") from None
    return parse_profiles(_profiles_data(text, path), path)


def _profiles_data(text: str, path: str) -> Any:
    """The profiles mapping of a file's text: JSON, or YAML (which also reads JSON with the
    trailing commas that hand-written config.json files often have)."""
    from runner.spec.yamlfile import MAX_DEPTH, parse_yaml_documents

    if path.endswith(".json"):
        try:
            return json.loads(text)
        except RecursionError:
            raise ConfigError(f"{path}: nested deeper than {MAX_DEPTH} levels; flatten the "
                              f"structure") from None
        except ValueError as e:
            json_error = e
    else:
        json_error = None

    try:
        docs = [data for data, _ in parse_yaml_documents(text, path)]
    except ConfigError:
        if json_error is not None:
            raise ConfigError(f"{path}: not valid JSON: {json_error}") from None
        raise
    if not docs or docs[0] is None:
        raise ConfigError(f"{path}: empty; expected a mapping of profile name -> profile")
    first = docs[0]
    if isinstance(first, dict) and PROFILES_KEY in first:  # profiles.yaml or a runner YAML
        return first[PROFILES_KEY]
    if len(docs) > 1:
        raise ConfigError(f"{path}: document 0 has no '{PROFILES_KEY}:' key")
    return first


def find_profiles(explicit: Optional[str] = None, embedded: Optional[Any] = None,
                  embedded_source: str = "", cwd: Optional[str] = None,
                  environ: Mapping[str, str] = os.environ) -> ProfileSet:
    """Every profile source, in look-up order (see the module's docstring)."""
    found = ProfileSet()
    if explicit:
        found.add(explicit, lambda: load_profiles_file(explicit))
    if embedded is not None:
        found.add(embedded_source, lambda: parse_profiles(embedded, embedded_source))
    for directory in (cwd or os.getcwd(), user_config_dir(environ)):
        for name in PROFILE_FILES:
            path = os.path.join(directory, name)
            if os.path.isfile(path):
                found.add(path, lambda path=path: load_profiles_file(path))
    return found


def load_profile(name: str, explicit: Optional[str] = None, embedded: Optional[Any] = None,
                 embedded_source: str = "") -> Profile:
    """The profile called `name` from the first source that defines it."""
    return find_profiles(explicit, embedded, embedded_source).get(name)
