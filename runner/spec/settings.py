"""Per-task settings: how a task runs rather than what it computes.

A setting is given in document 0 (for every task) or as a param of the task (from a document, a
pack or `default:`; a param wins). Values are validated and normalised here once, so the scheduler,
the executor and remote backends read plain numbers from `Task.settings`.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Dict

from runner.errors import choices_text, did_you_mean

_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B?|B)\s*$", re.IGNORECASE)
_UNITS = {"b": 1, "k": 10 ** 3, "m": 10 ** 6, "g": 10 ** 9, "t": 10 ** 12,
          "ki": 2 ** 10, "mi": 2 ** 20, "gi": 2 ** 30, "ti": 2 ** 40}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(d|h|m|s)", re.IGNORECASE)
_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_memory(value: Any) -> int:
    """'10GiB' -> bytes. A unit is required (B, KB/KiB, MB/MiB, GB/GiB, TB/TiB; K/M/G/T)."""
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError(f"{value!r} has no unit; write e.g. '10GiB' or '500MiB'")
    match = _MEMORY.match(value)
    if not match:
        raise ValueError(f"{value!r} is not a memory size; write e.g. '10GiB' or '500MiB'")
    number, unit = match.groups()
    unit = unit.lower().rstrip("b") or "b"
    return int(float(number) * _UNITS[unit])


def parse_duration(value: Any) -> float:
    """Seconds from 90, '90s', '10m', '1h30m', '2d', 'HH:MM:SS' or 'D-HH:MM:SS'."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str) and re.fullmatch(r"\s*(\d+-)?\d+(:\d+){0,2}\s*", value):
        days, _, clock = value.strip().rpartition("-")
        parts = [int(p) for p in clock.split(":")]
        while len(parts) < 3:
            parts.insert(0, 0)
        seconds = (int(days or 0) * 86400 + parts[0] * 3600 + parts[1] * 60 + parts[2])
    elif isinstance(value, str) and re.fullmatch(r"(\s*\d+(\.\d+)?\s*[dhms])+\s*", value, re.I):
        seconds = sum(float(n) * _SECONDS[u.lower()] for n, u in _DURATION_PART.findall(value))
    else:
        raise ValueError(f"{value!r} is not a duration; write seconds (90) or e.g. '10m', "
                         f"'1h30m', '02:00:00'")
    if seconds <= 0:
        raise ValueError(f"{value!r} is not a positive duration")
    return seconds


def parse_count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{value!r} is not a positive whole number")
    return value


def parse_percent(value: Any) -> float:
    if isinstance(value, str) and value.strip().endswith("%"):
        value = value.strip()[:-1]
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{value!r} is not a percentage; write e.g. 80 or '80%'") from None
    if not 0 <= number <= 100:
        raise ValueError(f"{value!r} is not between 0 and 100")
    return number


RETRY_KEYS = ("count", "on", "delay")
# What `on:` may name; anything else is an exit status (3, 'exit 3') or a signal ('signal 9').
RETRY_CONDITIONS = {
    "any": "any failure: a non-zero exit status, a signal or a timeout",
    "timeout": "the command ran past its timeout",
    "oom": "the log of the attempt reports that GPU memory ran out (CUDA out of memory, ...)",
}
_SIGNALS = {"HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "ABRT": 6, "BUS": 7, "FPE": 8, "KILL": 9,
            "USR1": 10, "SEGV": 11, "USR2": 12, "PIPE": 13, "ALRM": 14, "TERM": 15}
_RETRY_HINT = ("write e.g. 'retries: 2' or 'retries: {count: 2, on: [timeout, oom, exit 137], "
               "delay: 30s}'")


def parse_retries(value: Any) -> Dict[str, Any]:
    """`retries: N` (N retries on any failure) or `{count: N, on: [...], delay: D}`, normalised to
    `{"count": N, "on": ["any" | "timeout" | "oom" | "exit N" | "signal N" | "log REGEX"],
    "delay": seconds}`."""
    if isinstance(value, bool) or not isinstance(value, (int, dict)):
        raise ValueError(f"{value!r} is not a retry policy; {_RETRY_HINT}")
    if isinstance(value, int):
        value = {"count": value}
    # YAML 1.1 reads a bare `on` key as the boolean true.
    value = {("on" if key is True else key): item for key, item in value.items()}
    for key in value:
        if key not in RETRY_KEYS:
            raise ValueError(f"unknown key {key!r}{did_you_mean(str(key), RETRY_KEYS)}; the keys "
                             f"are {choices_text(RETRY_KEYS)}")
    if "count" not in value:
        raise ValueError(f"no 'count' (how many times to run a failed command again); "
                         f"{_RETRY_HINT}")
    count = value["count"]
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ValueError(f"count {count!r} is not a whole number of retries (0 or more)")
    on = value.get("on", ["any"])
    conditions = [parse_retry_condition(c) for c in (on if isinstance(on, list) else [on])]
    if not conditions:
        raise ValueError("'on' is empty; name the failures to retry, e.g. [timeout, oom]")
    delay = value.get("delay", 0)
    try:
        delay = 0.0 if delay in (0, "0") else parse_duration(delay)
    except ValueError as e:
        raise ValueError(f"delay: {e}") from None
    return {"count": count, "on": list(dict.fromkeys(conditions)), "delay": delay}


def parse_retry_condition(item: Any) -> str:
    """One entry of `retries.on` in its normal form."""
    if isinstance(item, bool):
        raise ValueError(f"on: {item!r} is not a failure to retry")
    if isinstance(item, int):
        item = f"exit {item}"
    if isinstance(item, dict) and list(item) == ["log"] and isinstance(item["log"], str):
        item = f"log {item['log']}"
    if not isinstance(item, str):
        raise ValueError(f"on: {item!r} is not a failure to retry; name one of "
                         f"{', '.join(RETRY_CONDITIONS)}, 'exit N', 'signal N' or {{log: REGEX}}")
    text = item.strip()
    word, _, rest = text.partition(" ")
    word, rest = word.lower(), rest.strip()
    if word in RETRY_CONDITIONS and not rest:
        return word
    if word == "exit" and re.fullmatch(r"\d+", rest) and 1 <= int(rest) <= 255:
        return f"exit {int(rest)}"
    if word == "signal" or (word.upper().startswith("SIG") and not rest):
        name = (rest or word).upper()
        name = name[3:] if name.startswith("SIG") else name
        number = int(name) if name.isdigit() else _SIGNALS.get(name)
        if number and 1 <= number <= 64:
            return f"signal {number}"
    if word == "log" and rest:
        try:
            re.compile(rest)
        except re.error as e:
            raise ValueError(f"on: log {rest!r} is not a regular expression ({e})") from None
        return f"log {rest}"
    close = did_you_mean(word, RETRY_CONDITIONS)
    raise ValueError(f"on: {item!r} is not a failure to retry{close}; name one of "
                     f"{', '.join(RETRY_CONDITIONS)}, 'exit N' (1-255), 'signal N' (or 'SIGKILL') "
                     f"or {{log: REGEX}}")


# setting -> (parser, what it means). Features that add settings register them here.
SETTINGS: Dict[str, tuple] = {
    "gpus_per_task": (parse_count, "GPUs each task gets (a whole number)"),
    "gpu_memory": (parse_memory, "GPU memory a task needs, e.g. '10GiB'"),
    "max_gpu_util": (parse_percent, "start a task on a GPU only below this utilisation (%)"),
    "timeout": (parse_duration, "stop a command after this long, e.g. '2h' or 7200"),
    "retries": (parse_retries, "how often, and on which failures, to run a failed command again: "
                            "2, or {count: 2, on: [timeout, oom, exit 137], delay: 30s}"),
}


def parse_setting(key: str, value: Any) -> Any:
    """The normalised value of one setting; ValueError with the reason if it is invalid."""
    parser: Callable[[Any], Any] = SETTINGS[key][0]
    return parser(value)
