"""`run sweep GRIDSPEC.yml`: values, value, ranges, order, quoting, errors, the output path."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest

from runner.spec.gridspec import parse_gridspec
from runner.spec.runfile import job_id

SEED = """
program: python3 my_script.py
parameters:
  alpha:
    values:
      - 1
      - 2
      - 5
  beta:
    values: [0.1, 0.25, 0.5]
  gamma:
    value: 100
"""


@pytest.fixture
def gridspec(workdir: Path):
    def make(text: str, name: str = "gridspec.yml") -> Path:
        path = workdir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return path

    return make


def commands(text: str) -> list:
    return list(parse_gridspec(textwrap.dedent(text)).commands())


def test_seed_example(gridspec, cli, workdir):
    gridspec(SEED)
    result = cli("sweep", "gridspec.yml")
    assert result.code == 0, result
    assert result.out == "gridspec.runfile\n"
    assert "9 commands (alpha 3 x beta 3 x gamma 1) -> gridspec.runfile" in result.err
    lines = (workdir / "gridspec.runfile").read_text().splitlines()
    assert lines[:4] == ["python3 my_script.py --alpha=1 --beta=0.1 --gamma=100",
                         "python3 my_script.py --alpha=1 --beta=0.25 --gamma=100",
                         "python3 my_script.py --alpha=1 --beta=0.5 --gamma=100",
                         "python3 my_script.py --alpha=2 --beta=0.1 --gamma=100"]
    assert len(lines) == 9 and lines[-1] == "python3 my_script.py --alpha=5 --beta=0.5 --gamma=100"


def test_ranges_and_kept_falsy_values():
    assert commands("""
        program: p
        parameters:
          seed: {min: 0, max: 5, step: 2}
          n: {max: 2}
          down: {min: 3, max: 0, step: -2}
          zero: {value: 0}
          flag: {value: false}
          empty: {value: ''}
    """) == [f"p --seed={s} --n={n} --down={d} --zero=0 --flag=False --empty=''"
             for s in (0, 2, 4) for n in (0, 1) for d in (3, 1)]


def test_values_are_shell_quoted_and_reach_the_program_intact(gridspec, cli, workdir):
    (workdir / "args.py").write_text(
        "import json, sys\nwith open('args.jsonl', 'a') as f:\n"
        "    f.write(json.dumps(sys.argv[1:]) + '\\n')\n")
    values = ["a b", "it's", "$HOME", "x;y", "*", "--z", "[1, 2]", "\\", ""]
    gridspec(f"""
        program: {sys.executable} args.py
        parameters:
          v: {{values: {json.dumps(values)}}}
          l: {{value: [1, 'two']}}
    """)
    assert cli("sweep", "gridspec.yml").code == 0
    text = (workdir / "gridspec.runfile").read_text()
    assert "--v='a b'" in text and "--l='[1, \"two\"]'" in text
    result = cli("launch", "gridspec.runfile", "-j", "2")
    assert result.code == 0, result.out
    calls = [json.loads(line) for line in (workdir / "args.jsonl").read_text().splitlines()]
    assert sorted(calls) == sorted([f"--v={v}", '--l=[1, "two"]'] for v in values)
    meta = json.loads((workdir / "runs/gridspec/metadata.json").read_text())
    assert sorted(e["parameters"]["v"] for e in meta.values()) == sorted(values)
    assert {e["parameters"]["l"] for e in meta.values()} == {'[1, "two"]'}


def test_multiline_program_is_joined():
    assert commands("""
        program: >
          python3
          train.py --fixed=1
        parameters:
          a: {value: 1}
    """) == ["python3 train.py --fixed=1 --a=1"]
    assert commands("program: |\n  python3 x.py \\\n    --y=2\nparameters:\n  a: {value: 1}\n") == [
        "python3 x.py --y=2 --a=1"]


def test_method_grid_and_labels_are_accepted():
    assert commands("""
        name: my sweep
        description: what it is for
        method: grid
        program: p
        parameters: {a: {values: [1, 2]}}
    """) == ["p --a=1", "p --a=2"]


def test_default_output_path_is_next_to_the_gridspec(gridspec, cli, workdir):
    gridspec(SEED, name="conf/grid.yaml")
    result = cli("sweep", "conf/grid.yaml")
    assert result.code == 0 and result.out == "conf/grid.runfile\n"
    assert (workdir / "conf/grid.runfile").exists() and not (workdir / "grid.runfile").exists()
    gridspec(SEED, name="plain")
    assert cli("sweep", "plain").out == "plain.runfile\n"


def test_output_option_and_launch_of_the_printed_path(gridspec, cli, workdir):
    gridspec("program: echo\nparameters:\n  a: {values: [1, 2]}\n")
    result = cli("sweep", "gridspec.yml", "-o", "my.runfile")
    assert result.code == 0 and result.out == "my.runfile\n"
    assert cli("sweep", "gridspec.yml", "--out", "other").out == "other\n"
    launched = cli("launch", result.out.strip())
    assert launched.code == 0
    meta = json.loads((workdir / "runs/my/metadata.json").read_text())
    assert meta[job_id("echo --a=2")]["parameters"] == {"a": "2"}
    assert (workdir / "runs/my/logs" / job_id("echo --a=1") / "out.log").read_text() == "--a=1\n"


@pytest.mark.parametrize("text, message", [
    ("parameters:\n  a: {values: [1]}\n", "gridspec.yml, line 1: missing 'program:'"),
    ("program: ''\nparameters:\n  a: {values: [1]}\n", "'program' expected the command"),
    ("program: p\n", "missing 'parameters:'"),
    ("program: p\nparameters: [a]\n", "'parameters' expected mapping of parameter"),
    ("program: p\nparamters:\n  a: {values: [1]}\n",
     "line 2: unknown key 'paramters' (did you mean 'parameters'?)"),
    ("program: p\nmethod: random\nparameters:\n  a: {values: [1]}\n",
     "method 'random' is not supported"),
    ("program: p\nparameters:\n  a: {values: []}\n",
     "line 3, parameter 'a': 'values' is empty"),
    ("program: p\nparameters:\n  a:\n    distribution: uniform\n    min: 0\n    max: 1\n",
     "line 4, parameter 'a': 'distribution' is not supported"),
    ("program: p\nparameters:\n  a: {valus: [1]}\n", "'valus' is not supported (did you mean "
                                                      "'values'?)"),
    ("program: p\nparameters:\n  a: {values: [1], value: 2}\n",
     "give exactly one of 'values', 'value' or 'min'/'max'/'step', not values and value"),
    ("program: p\nparameters:\n  a: [1, 2]\n", "expected a mapping with 'values: [...]'"),
    ("program: p\nparameters:\n  a: {values: 3}\n", "'values' expected a list"),
    ("program: p\nparameters:\n  a: {min: 0, max: 1.5}\n", "'max' expected an integer"),
    ("program: p\nparameters:\n  a: {min: 0}\n", "a range needs 'max'"),
    ("program: p\nparameters:\n  a: {min: 5, max: 1}\n", "has no value"),
    ("program: p\nparameters:\n  a: {max: 3, step: 0}\n", "'step' is 0"),
    ("program: p\nparameters:\n  a: {value: null}\n", "a value is empty (null)"),
    ("program: p\nparameters:\n  a b: {value: 1}\n", "a parameter name must be"),
    ("program: p\nparameters:\n  off: {value: 1}\n", "YAML reads this name as False; quote it"),
    ("program: p\nparameters:\n  a: {value: 1}\n  a: {value: 2}\n", "appears twice"),
    ("program: p\nparameters: {a: {value: 1}\n", "invalid YAML"),
    ("- program: p\n", "expected a mapping with 'program:'"),
    ("", "gridspec.yml: empty"),
    ("program: p\nparameters: {a: {value: 1}}\n---\nprogram: q\n", "one YAML document"),
])
def test_bad_gridspecs_are_one_line_and_exit_2(gridspec, cli, workdir, text, message):
    gridspec(text)
    result = cli("sweep", "gridspec.yml")
    assert result.code == 2
    assert result.err.count("\n") == 1 and message in result.err, result.err
    assert not (workdir / "gridspec.runfile").exists()


@pytest.mark.parametrize("value, shown", [
    ('"a\\nb"', "\\n"), ('"a\\rb"', "\\r"), ('"a\\vb"', "\\v"), ('"a\\fb"', "\\f"),
    ('"a\\x1cb"', "\\x1c"), ('"a\\x85b"', "\\x85"), ('"a\\u2028b"', "\\u2028"),
    ('"a\\u2029b"', "\\u2029"),
])
def test_a_value_with_a_line_break_is_refused(gridspec, cli, workdir, value, shown):
    """A runfile holds one command per line: such a value would split its command in two."""
    gridspec(f"""
        program: python3 x.py
        parameters:
          tag:
            value: {value}
          seed: {{values: [1, 2]}}
    """)
    result = cli("sweep", "gridspec.yml")
    assert result.code == 2, result
    assert result.err.count("\n") == 1, result.err
    assert "gridspec.yml, line 3, parameter 'tag'" in result.err
    assert f"contains a line break ({shown})" in result.err
    assert not (workdir / "gridspec.runfile").exists()


def test_lists_with_line_breaks_stay_on_one_line_as_json():
    lines = commands("""
        program: p
        parameters:
          a: {value: ["x\\ny"]}
    """)
    assert lines == ["p --a='[\"x\\ny\"]'"]  # JSON's escape: a backslash and an n


@pytest.mark.parametrize("argv, message", [
    (["sweep", "missing.yml"], "missing.yml: no such file"),
    (["sweep"], "the following arguments are required: GRIDSPEC"),
    (["sweep", "g.runfile"], "is the gridspec itself"),
    (["sweep", "gridspec.yml", "-o", "nodir/x.runfile"], "no such directory"),
])
def test_bad_sweep_arguments(gridspec, cli, workdir, argv, message):
    gridspec(SEED)
    gridspec(SEED, name="g.runfile")
    result = cli(*argv)
    assert result.code == 2 and message in result.err and result.err.count("\n") == 1
    assert not (workdir / "gridspec.runfile").exists()


def test_a_grid_beyond_the_cap_is_refused_before_writing(gridspec, cli, workdir):
    lines = [f"  p{i}: {{values: [{', '.join(map(str, range(10)))}]}}\n" for i in range(12)]
    gridspec("program: echo\nparameters:\n" + "".join(lines))
    result = cli("sweep", "gridspec.yml")
    assert result.code == 2 and result.err.count("\n") == 1, result
    assert ("12 parameters of 10 x 10 x 10 x 10 x 10 x 10 x 10 x 10 x ... values give "
            "1,000,000,000,000 commands, more than the cap of 1,000,000") in result.err
    assert not (workdir / "gridspec.runfile").exists()
    gridspec("program: echo\nparameters:\n" + "".join(lines[:2]))
    assert cli("sweep", "gridspec.yml", "--max-tasks", "99").code == 2
    assert cli("sweep", "gridspec.yml", "--max-tasks", "100").code == 0
    assert len((workdir / "gridspec.runfile").read_text().splitlines()) == 100
