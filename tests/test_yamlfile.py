"""Hostile YAML (recursive anchors, alias bombs, deep nesting, tabs, endless files) in every YAML
the runner reads (params, gridspecs, profiles): one line, exit status 2, nothing written, within
bounded time and memory, measured on the real command in a process of its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from runner.errors import ConfigError
from runner.spec.yamlfile import MAX_DEPTH, parse_yaml_documents

TIME_LIMIT = 2.0  # seconds, for the whole `run` process
MEMORY_LIMIT = 200 * 1024  # KiB of peak RSS

# Runs ARGV (argv[1:]) as a child and reports its wall time, its peak RSS and its exit status:
# a fresh process, so RUSAGE_CHILDREN holds that one child alone.
MEASURE = textwrap.dedent("""
    import json, resource, subprocess, sys, time
    started = time.perf_counter()
    done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
    print(json.dumps({"seconds": time.perf_counter() - started, "code": done.returncode,
                      "rss_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
                      "stderr": done.stderr, "stdout": done.stdout}))
""")

PARAMS_HEAD = "template:\n  train: echo {x}\n---\n"


def bomb(levels: int = 9, width: int = 9) -> str:
    """The YAML "billion laughs": each level lists the previous one `width` times."""
    lines = ["a0: &a0 [" + ", ".join(['"lol"'] * width) + "]"]
    for level in range(1, levels):
        lines.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


HOSTILE = {
    "recursive": ("x: &a [1, *a]\n", ["anchor '&a' contains an alias of itself"]),
    "recursive-mapping": ("x: &m {k: *m}\n", ["anchor '&m' contains an alias of itself"]),
    "recursive-merge": ("x: &m {<<: *m}\n", ["anchor '&m' contains an alias of itself"]),
    "bomb": (bomb() + "x: [1]\n", ["expands to", "above the limit of 1,000,000"]),
    "deep": ("x: " + "[" * MAX_DEPTH + "1" + "]" * MAX_DEPTH + "\n",  # one level too many
             [f"nested deeper than {MAX_DEPTH} levels"]),
    "very-deep": ("x: " + "[" * 1_000_000 + "]" * 1_000_000 + "\n",
                  [f"nested deeper than {MAX_DEPTH} levels"]),
    "deep-through-aliases": ("a: &a " + "[" * 60 + "]" * 60 + "\nx: " + "[" * 60 + "*a"
                             + "]" * 60 + "\n", ["deeper than 100 levels once aliases"]),
}


def measure(argv, cwd: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", MEASURE, sys.executable, "-m", "runner", *argv],
                          cwd=cwd, capture_output=True, text=True, timeout=60)
    return json.loads(done.stdout)


def assert_refused_quickly(result: dict, *fragments: str) -> None:
    lines = result["stderr"].strip().splitlines()
    assert result["code"] == 2, result
    assert len(lines) == 1 and lines[0].startswith("run: error: "), result["stderr"]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert result["seconds"] < TIME_LIMIT, result
    assert result["rss_kib"] < MEMORY_LIMIT, result


@pytest.mark.parametrize("kind", list(HOSTILE))
def test_hostile_params_yaml_is_refused_fast_and_small(kind, workdir):
    text, fragments = HOSTILE[kind]
    (workdir / "params.yaml").write_text(PARAMS_HEAD + text)
    result = measure(["-y", "params.yaml"], workdir)
    assert_refused_quickly(result, "params.yaml, line", *fragments)
    assert sorted(os.listdir(workdir)) == ["params.yaml"]


@pytest.mark.parametrize("kind", ["recursive", "bomb", "very-deep"])
def test_hostile_gridspec_is_refused_fast_and_small(kind, workdir):
    text, fragments = HOSTILE[kind]
    (workdir / "grid.yml").write_text("program: echo\nparameters:\n  p: {values: [1]}\n" + text)
    result = measure(["sweep", "grid.yml"], workdir)
    assert_refused_quickly(result, "grid.yml, line", *fragments)
    assert sorted(os.listdir(workdir)) == ["grid.yml"]


@pytest.mark.parametrize("kind", ["recursive", "bomb", "very-deep"])
def test_hostile_profile_file_is_refused_fast_and_small(kind, workdir):
    text, fragments = HOSTILE[kind]
    (workdir / "profiles.yaml").write_text(
        "profiles:\n  here: {host: local, device: cpu}\n" + text)
    (workdir / "job.sh").write_text("echo hi\n")
    result = measure(["launch-script", "--dry-run", "--profiles", "profiles.yaml", "here",
                      "job.sh"], workdir)
    assert_refused_quickly(result, "profiles.yaml, line", *fragments)
    assert sorted(os.listdir(workdir)) == ["job.sh", "profiles.yaml"]


def test_deep_json_profile_file_is_refused(workdir, cli):
    (workdir / "config.json").write_text('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}")
    (workdir / "job.sh").write_text("echo hi\n")
    result = cli("launch-script", "--dry-run", "--profiles", "config.json", "here", "job.sh")
    assert result.code == 2 and result.err.strip() == (
        "run: error: config.json: nested deeper than 100 levels; flatten the structure"), result


def test_an_endless_file_is_refused_without_reading_it_all(workdir):
    result = measure(["-y", "/dev/zero"], workdir)
    assert_refused_quickly(result, "/dev/zero: larger than 16 MiB")


@pytest.mark.parametrize("text, where", [
    ("template:\n\ttrain: echo {x}\n---\nx: [1]\n", "line 2, column 1"),
    ("template:\n  train: echo {x}\n---\nx: [1]\n\ty: [2]\n", "line 5, column 1"),
])
def test_a_tab_used_for_indentation_is_named(make_config, cli, workdir, text, where):
    make_config(text)
    result = cli("-y", "params.yaml")
    assert result.code == 2
    assert result.err.strip() == (f"run: error: params.yaml, {where}: a tab is used for "
                                  f"indentation; YAML indents with spaces only, replace the tab "
                                  f"with spaces")
    assert not (workdir / "output").exists()


def test_nesting_up_to_the_limit_and_shared_anchors_are_fine():
    deep = "x: " + "[" * (MAX_DEPTH - 1) + "1" + "]" * (MAX_DEPTH - 1) + "\n"  # the mapping too
    (data, _), = parse_yaml_documents(deep, "deep.yaml")
    for _ in range(MAX_DEPTH):
        data = data["x"] if isinstance(data, dict) else data[0]
    assert data == 1
    shared = "base: &b {lr: 0.1, steps: [1, 2]}\none: *b\ntwo: {<<: *b, lr: 0.2}\n"
    (data, _), = parse_yaml_documents(shared, "shared.yaml")
    assert data["one"] == {"lr": 0.1, "steps": [1, 2]}
    assert data["two"] == {"lr": 0.2, "steps": [1, 2]}


def test_a_bomb_below_the_limit_is_read():
    (data, _), = parse_yaml_documents(bomb(levels=5, width=9), "small.yaml")
    assert len(data["a4"]) == 9 and data["a4"][8][8][8][8][8] == "lol"
    with pytest.raises(ConfigError, match="above the limit"):
        parse_yaml_documents(bomb(levels=7, width=9), "big.yaml")  # 9**7 > 1,000,000


def test_duplicate_keys_anywhere_are_refused():
    with pytest.raises(ConfigError, match=r"line 3: key 'b' appears twice .*first on line 2"):
        parse_yaml_documents("a:\n  b: 1\n  b: 2\n", "dup.yaml")


@pytest.mark.parametrize("kind", list(HOSTILE))
def test_the_pure_python_parser_has_the_same_limits(kind):
    """Where PyYAML has no libyaml, its own parser reads the file, within the same limits."""
    text, fragments = HOSTILE[kind]
    with pytest.raises(ConfigError) as refused:
        parse_yaml_documents(PARAMS_HEAD + text, "params.yaml", pure=True)
    for fragment in fragments:
        assert fragment in str(refused.value)


def test_the_pure_python_parser_names_a_tab():
    with pytest.raises(ConfigError, match=r"line 2, column 1: a tab is used for indentation"):
        parse_yaml_documents("a:\n\tb: 1\n", "tab.yaml", pure=True)
    (data, _), = parse_yaml_documents("a: [1, {b: c}]\n", "ok.yaml", pure=True)
    assert data == {"a": [1, {"b": "c"}]}
