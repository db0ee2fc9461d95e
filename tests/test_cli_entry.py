"""The `run` entry point: `--version`, a mistyped subcommand, and `run results --sort -COL`."""

from __future__ import annotations

import subprocess
import sys

import pytest

from runner import __version__


def test_version(cli):
    result = cli("--version")
    assert (result.code, result.out, result.err) == (0, f"run {__version__}\n", "")


def test_version_as_a_real_process(workdir):
    done = subprocess.run([sys.executable, "-m", "runner", "--version"], capture_output=True,
                          text=True, timeout=60, cwd=workdir)
    assert (done.returncode, done.stdout) == (0, f"run {__version__}\n")


@pytest.mark.parametrize("typo, meant", [("lauch", "launch"), ("stauts", "status"),
                                         ("reprot", "report"), ("result", "results")])
def test_a_mistyped_subcommand_says_which_was_meant(cli, workdir, typo, meant):
    result = cli(typo, "-o", "output")
    assert result.code == 2 and result.out == ""
    assert result.err == f"run: error: unknown command '{typo}' (did you mean '{meant}'?)\n"
    assert list(workdir.iterdir()) == []


def test_other_words_and_options_stay_the_yaml_runners(cli, make_config):
    far = cli("banana")
    assert far.code == 2 and "unrecognized arguments: banana" in far.err
    make_config("template: {a: 'true'}\n---\nx: [1]\n")
    assert cli("-y", "params.yaml", "lauch").code == 2  # not the first argument: argparse's
    assert cli("-y", "params.yaml", "-o", "out").code == 0


SWEEP = """
template:
  train: |-
    [ {code} = 0 ] || exit {code}; printf '{"loss": %s}' {loss} > {_output}/metrics.json
---
loss: [0.5, 2, 0.25]
code: [0]
---
loss: [9]
code: [1]
"""


@pytest.mark.parametrize("argv", [["--sort", "-loss_"], ["--sort=-loss_"]])
def test_results_sort_descending(cli, make_config, argv):
    make_config(SWEEP)
    assert cli().code == 1
    result = cli("results", *argv, "--columns", "_name", "loss_")
    assert result.code == 0, result
    values = [line.split()[1] for line in result.out.splitlines()[1:-1]]
    assert values == ["2", "0.5", "0.25", "-"]  # the failed task has no metric: last
    ascending = cli("results", "--sort", "loss_", "--columns", "loss_").out.split()[1:-2]
    assert ascending == ["0.25", "0.5", "2", "-"]


def test_results_sort_by_an_unknown_column(cli, make_config):
    make_config(SWEEP)
    assert cli().code == 1
    result = cli("results", "--sort", "-los_")
    assert result.code == 2
    assert result.err.startswith("run: error: --sort -los_: no such column (did you mean "
                                 "'loss_'?); columns are ")
