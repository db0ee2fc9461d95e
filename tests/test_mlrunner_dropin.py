"""mlrunner's YAML files give the same tasks running the same commands under `run --dry-run`.

tests/fixtures/mlrunner/expected.json is what mlrunner 0.5.9 itself made of each YAML file there
(its own `run --dry-run`, recorded by tests/fixtures/mlrunner/record.py in a virtual environment
with mlrunner installed). Compared apart from the differences the README lists on purpose: the
log redirect and CUDA_VISIBLE_DEVICES prefix (the runner adds those when it runs a command, and
shows the template's text here), `{_time}`'s value (the time of the invocation), task names, the
param that picks an alias group (kept as a param), and `--no-subdir` running every task.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path

import pytest

from runner.spec.config import load_config
from runner.spec.expand import Selection, expand

FIXTURES = Path(__file__).parent / "fixtures" / "mlrunner"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())
TIME = re.compile(r"\b\d{8}\.\d{6}\b")  # `{_time}`: %Y%m%d.%H%M%S
SCRIPT = re.compile(r"^CUDA_VISIBLE_DEVICES=\S* (?P<command>.*) > (?P<log>\S+|'[^']*') 2>&1$",
                    re.S)
DRY_RUN_COMMAND = re.compile(r"^  (?P<command>\S+): (run|skip) \([^)]*\): (?P<text>.*)$")


def normalised(text: str, output: str, name: str, no_subdir: bool) -> str:
    """A command with its task's output directory, name and `_time` replaced by markers."""
    text = text.strip()
    if not no_subdir:  # with --no-subdir, _output is the output directory for both tools
        text = text.replace(shlex.quote(output), "<OUTPUT>").replace(output, "<OUTPUT>")
    text = text.replace(shlex.quote(name), "<NAME>").replace(name, "<NAME>")
    return TIME.sub("<TIME>", text)


def our_dry_run(out: str):
    """[(name, {command: text})] from `run --dry-run`'s output, in task order."""
    tasks = []
    for line in out.splitlines():
        match = DRY_RUN_COMMAND.match(line)
        if match:
            tasks[-1][1][match.group("command")] = match.group("text")
        elif line.endswith((": run", ": skip")) and not line.startswith(" "):
            tasks.append((line.rsplit(": ", 1)[0], {}))
    return tasks


def selection(argv):
    titles = argv[argv.index("-t") + 1:argv.index("-t") + 2] if "-t" in argv else None
    commands = argv[argv.index("-c") + 1:argv.index("-c") + 2] if "-c" in argv else None
    return Selection(titles=titles, commands=commands)


@pytest.mark.parametrize("case", EXPECTED["cases"],
                         ids=[f"{c['yaml']}{''.join(c['argv'])}" for c in EXPECTED["cases"]])
def test_mlrunner_yaml_expands_to_the_same_tasks_and_commands(case, cli, workdir):
    shutil.copy(FIXTURES / case["yaml"], workdir)
    no_subdir = "--no-subdir" in case["argv"]
    result = cli("-y", case["yaml"], "-o", "out", "--dry-run", *case["argv"])
    assert result.code == 0, result
    ours = our_dry_run(result.out)
    config = load_config(case["yaml"])
    plan = expand(config, selection(case["argv"]), "out", "2026-01-01.00_00_00",
                  no_param_dir=no_subdir)
    assert [t.name for t in plan.tasks] == [name for name, _ in ours]

    theirs = case["tasks"]
    if no_subdir:  # mlrunner 0.5.9 plans every task but runs only the first (one shared `stat`)
        assert len(ours) == case["planned"] and len(theirs) == 1
        ours, tasks = ours[:1], plan.tasks[:1]
    else:
        tasks = plan.tasks
    assert len(ours) == len(theirs)
    for (name, commands), task, expected in zip(ours, tasks, theirs):
        mine = {c: normalised(text, task.params["_output"], name, no_subdir)
                for c, text in commands.items()}
        scripts = {}
        for command, script in expected["commands"].items():
            match = SCRIPT.match(script)
            assert match, script
            scripts[command] = normalised(match.group("command"), expected["output"],
                                          expected["name"], no_subdir)
        assert mine == scripts, (name, expected["name"])
        if "params" in expected:
            params = {k: v for k, v in task.params.items()
                      if not k.startswith("_") and k not in config.aliases}
            assert params == expected["params"], (name, expected["name"])


def test_every_fixture_yaml_is_compared():
    compared = {case["yaml"] for case in EXPECTED["cases"]}
    assert compared == {p.name for p in FIXTURES.glob("*.yaml")}
    assert EXPECTED["mlrunner"] == "0.5.9"


def test_no_subdir_is_no_param_dir(make_config, cli, workdir):
    make_config("""
        template:
          run: echo {file} > {_output}/{_name}.out
        ---
        file: [a, b]
    """)
    assert cli("--no-subdir").code == 0
    assert sorted(p.name for p in (workdir / "output").glob("*.out")) == ["File_a.out",
                                                                         "File_b.out"]
    assert not (workdir / "output" / "File_a").exists()
