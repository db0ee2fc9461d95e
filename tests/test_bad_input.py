"""Bad input: one clear line on stderr, exit status 2, no traceback, and nothing written."""

from __future__ import annotations

import os
import subprocess
import time
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
    ("template:\n  train: echo {a}\n---\n_time: [1]\na: [1]\n", ["'_time'", "is reserved"]),
    # no parameter document: not "0 tasks, nothing to run"
    ("template:\n  train: echo 1\nresource: [0]\n", ["no parameter document", "'---'"]),
    ("template:\n  train: echo 1\n---\n---\n{}\n", ["no parameter document"]),
    # placeholders left open, and every placeholder without a value, in one line
    ("template:\n  train: python t.py --lr {lr --out {_output}\n---\nlr: [1]\n",
     ["line 2", "key 'template.train'", "unclosed placeholder '{lr' at column 18",
      "close it ('{lr}')"]),
    ("template:\n  train: python t.py [fp16 --lr {lr}\n---\nlr: [1]\n",
     ["key 'template.train'", "unclosed placeholder '[fp16'", "close it ('[fp16]')"]),
    ("template:\n  train: echo {a} {b} [c]\n  test: echo {d}\n---\nx: [1]\n",
     ["template 'train' uses 'a'", "template 'train' uses 'b'", "template 'train' uses 'c'",
      "template 'test' uses 'd'"]),
    # values that cannot be part of a file name or a command
    ('template:\n  train: echo {x}\n---\nx: ["a\\0b"]\n',
     ["document 1, key 'x'", "the value 'a\\x00b' contains a NUL byte",
      "cannot be part of a file name or a command"]),
    ('template:\n  train: echo {x}\n---\nx: [[ok, "a\\0b"]]\n', ["key 'x'", "NUL byte"]),
    ('template:\n  train: echo {x}\n---\n"x\\0": [1]\n', ["the name 'x\\x00'", "NUL byte"]),
    ('template:\n  train: echo {x} {y}\ndefault: {y: "\\0"}\n---\nx: [1]\n',
     ["template 'train'", "the value of 'y'", "NUL byte", "(in 1 task: X_1)"]),
    ('template:\n  train: "echo \\0"\n---\nx: [1]\n', ["template.train", "NUL byte"]),
    # `_cmd` names templates
    ("template:\n  train: echo 1\n---\n_cmd: trian\nx: [1]\n",
     ["key '_cmd'", "no template 'trian' (did you mean 'train'?)"]),
    ("template:\n  train: echo 1\n---\n_cmd: [1]\nx: [1]\n", ["key '_cmd'", "expected a template"]),
    # an alias group's value must be one of its entries
    ("template:\n  train: echo {p}\nalias:\n  m: {a: {p: 1}}\n---\nm: [b]\n",
     ["document 1, key 'm'", "the alias has no entry 'b'", "'a'"]),
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


def test_a_log_file_name_too_long_for_the_file_system_is_refused(make_config, cli, workdir):
    """With --no-param-dir a log is `log.<command>.<datetime>.<name>`: one file name."""
    command = "c" * 40
    make_config(f"template:\n  {command}: echo {{v}}\n---\nv: ['{'x' * 190}']\n")
    before = set(os.listdir(workdir))
    assert_refused(cli("--no-param-dir"), f"template '{command}'", "bytes, more than the 255")
    assert_nothing_written(workdir, before)
    assert cli("--dry-run").code == 0  # in a task directory the log is only log.<cmd>.<time>


def test_a_command_name_too_long_for_any_log_file_is_refused(make_config, cli, workdir):
    make_config(f"template:\n  {'c' * 240}: echo 1\n---\nv: [1]\n")
    before = set(os.listdir(workdir))
    assert_refused(cli(), "the log file name 'log.ccc", "shorten the command's name")
    assert_nothing_written(workdir, before)


@pytest.mark.parametrize("argv, fragments", [
    ([], ["params.yaml, document 1", "12 params of 10 x 10 x 10 x 10 x 10 x 10 x 10 x 10 x ... "
          "values give 1,000,000,000,000 tasks",
          "more than the cap of 1,000,000", "--sample N", "--max-tasks N"]),
    (["--max-tasks", "999999999999"], ["1,000,000,000,000 tasks", "cap of 999,999,999,999"]),
    (["--sample", "2000000"], ["(--sample 2,000,000)", "lower --sample"]),
    (["--max-tasks", "0"], ["--max-tasks 0", "positive"]),
])
def test_a_space_beyond_the_task_cap_is_refused_before_expanding(make_config, cli, workdir,
                                                                   argv, fragments):
    keys = "".join(f"k{i}: [{', '.join(str(v) for v in range(10))}]\n" for i in range(12))
    make_config("template:\n  train: echo {k0}\n---\n" + keys)
    before = set(os.listdir(workdir))
    started = time.perf_counter()
    assert_refused(cli(*argv), *fragments)
    assert time.perf_counter() - started < 1.0
    assert_nothing_written(workdir, before)


def test_the_cap_counts_every_selected_document(make_config, cli, workdir):
    make_config("template:\n  train: echo {a}\n---\na: [1, 2, 3]\n---\na: [4, 5, 6]\n")
    assert_refused(cli("--max-tasks", "5"), "the selected documents give 6 tasks together",
                   "cap of 5")
    assert cli("--max-tasks", "6", "--dry-run").code == 0


def test_a_task_name_too_long_for_the_file_system_is_refused(make_config, cli, workdir,
                                                            monkeypatch):
    """Names are cut at 200 bytes; a file system that allows fewer (eCryptfs: 143) refuses
    them before anything is written. Faked here: no such file system is at hand."""
    import runner.spec.expand

    monkeypatch.setattr(runner.spec.expand, "name_max", lambda output: 143)
    make_config("template:\n  train: echo {v}\n---\nv: ['" + "x" * 150 + "', short]\n")
    before = set(os.listdir(workdir))
    assert_refused(cli(), "task 'V_xxx", "its name is 152 bytes, more than the 143",
                   "shorten its params' values")
    assert_nothing_written(workdir, before)


def test_the_file_name_limit_is_the_file_systems():
    from runner.spec.expand import name_max

    assert name_max("/definitely/missing/dir") == name_max("/") >= 143
