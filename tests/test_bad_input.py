"""Bad input: one clear line on stderr, exit status 2, no traceback, and nothing written."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

GOOD = """
template:
  train: echo {lr}
resource: [0]
---
lr: [1, 2]
"""


def assert_refused(result, *fragments: str) -> None:
    assert result.code == 2, result
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("run: error: ")
    assert "Traceback" not in result.err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def assert_nothing_written(workdir: Path, before: set) -> None:
    assert not (workdir / "output").exists()
    assert set(os.listdir(workdir)) == before


@pytest.mark.parametrize("text, fragments", [
    ("template:\n  train: echo {lr\n  x: [1\n", ["line", "invalid YAML"]),
    ("templates:\n  train: echo 1\n", ["unknown key", "did you mean 'template'?", "'resource'"]),
    ("template: echo 1\n", ["key 'template'", "expected a mapping of command name", "a string"]),
    ("template:\n  train: echo 1\nresource: [0]\n---\n- 1\n- 2\n",
     ["document 1", "expected a mapping of param -> list of values", "a list"]),
    ("template:\n  train: echo 1\nresource: [0]\n---\nlr: {a: 1}\n",
     ["key 'lr'", "found a mapping"]),
    ("template:\n  train: echo 1\nresource: []\n", ["'resource'", "is empty"]),
    ("template:\n  train: echo 1\nresource:\n", ["'resource'", "is empty"]),
    ("template:\n  train: echo 1\nresource: [gpu0]\n", ["'gpu0' is not a GPU index"]),
    ("template: {}\nresource: [0]\n", ["'template'", "is empty"]),
    ("resource: [0]\n", ["missing 'template:'"]),
    ("", ["no config document"]),
    ("template:\n  train: echo 1\n  train: echo 2\n", ["line 3", "appears twice"]),
    ("template:\n  train: echo {lr} {bs}\n  test: echo {lr}\nresource: [0]\n---\n_title: a\nbs: [1]\n"
     "---\nlr: [1]\n",
     ["template 'train' uses 'lr', which 1 task has no value for (Bs_1)",
      "template 'train' uses 'bs', which 1 task has no value for (Lr_1)",
      "template 'test' uses 'lr'"]),
    ("template:\n  train: echo {x}\n---\nx: [null]\n", ["'x' is null"]),
    ("template:\n  train: echo {p}\npack:\n  p: [a]\n---\np: [1]\n", ["uses the pack 'p'"]),
    ("template:\n  train: echo {a}\npack:\n  p: [a]\n---\na: [1]\np: [2]\n",
     ["the pack 'p' sets 'a', which the document also sets explicitly"]),
    ("template:\n  train: echo {a}\npack:\n  p: {x: {a: 1}}\n---\np: [y]\n",
     ["the pack has no entry 'y'", "'x'"]),
    ("template:\n  train: echo {a}\n---\n_name: [1]\na: [1]\n", ["'_name'", "is reserved"]),
])
def test_bad_config_is_refused_in_one_line(make_config, cli, workdir, text, fragments):
    make_config(text)
    before = set(os.listdir(workdir))
    assert_refused(cli("-y", "params.yaml"), "params.yaml", *fragments)
    assert_nothing_written(workdir, before)


def test_missing_file(cli, workdir):
    assert_refused(cli("-y", "nope.yaml"), "nope.yaml: no such file", "-y FILE")
    assert_nothing_written(workdir, set())


def test_directory_instead_of_file(cli, workdir):
    (workdir / "configs").mkdir()
    assert_refused(cli("-y", "configs"), "is a directory")


@pytest.mark.parametrize("argv, fragments", [
    (["-c", "tran"], ["-c tran", "did you mean 'train'?", "'train', 'test'"]),
    (["-t", "machine3"], ["-t machine3", "titles are 'machine1', 'machine2'"]),
    (["-r", "x"], ["-r", "'x' is not a GPU index"]),
    (["--sample", "0"], ["--sample 0", "positive"]),
    (["--bogus"], ["unrecognized arguments: --bogus"]),
    (["--sample", "many"], ["--sample", "invalid int value"]),
])
def test_bad_options_are_refused(make_config, cli, workdir, argv, fragments):
    make_config("""
        template:
          train: echo {lr}
          test: echo {lr}
        ---
        _title: machine1
        lr: [1]
        ---
        _title: machine2
        lr: [2]
    """)
    before = set(os.listdir(workdir))
    assert_refused(cli(*argv), *fragments)
    assert_nothing_written(workdir, before)


def test_title_without_titled_documents(make_config, cli, workdir):
    make_config(GOOD)
    assert_refused(cli("-t", "a"), "has no document with a _title")


def test_unwritable_output_directory(make_config, cli, workdir):
    make_config(GOOD)
    (workdir / "afile").write_text("x")
    assert_refused(cli("-o", "afile/output"), "-o afile/output", "cannot write")
    assert_refused(cli("-o", "afile"), "-o afile", "not a directory")
    assert (workdir / "afile").read_text() == "x"


@pytest.fixture
def read_only_dir(workdir):
    """A directory nobody may write into: mode 555, or immutable (chattr +i) when we are root."""
    path = workdir / "ro"
    path.mkdir()
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i", str(path)], check=True)
    else:
        path.chmod(0o555)
    yield path
    if os.geteuid() == 0:
        subprocess.run(["chattr", "-i", str(path)], check=True)
    else:
        path.chmod(0o755)


def test_read_only_output_directory(make_config, cli, read_only_dir):
    make_config(GOOD)
    assert_refused(cli("-o", "ro/output"), "-o ro/output", "cannot write")
    assert_refused(cli("-o", "ro"), "-o ro", "cannot write")
    assert os.listdir(read_only_dir) == []


def test_status_of_missing_directory(cli, workdir):
    assert_refused(cli("status", "-o", "nowhere"), "no such output directory")
