"""Task names: `Key_Value` entries joined by `-`, decided by the YAML alone, unique and safe as one
path component."""

from __future__ import annotations

import json
import textwrap

import pytest

from runner.errors import ConfigError
from runner.spec.config import parse_config
from runner.spec.expand import Selection, expand
from runner.spec.naming import (HASH_MARK, MAX_NAME_BYTES, Namer, abbreviate_key, format_value,
                                make_name)


def names_of(text, **selection):
    config = parse_config(textwrap.dedent(text).lstrip("\n"), "p.yaml")
    return [t.name for t in expand(config, Selection(**selection), "out", "DT").tasks]


@pytest.mark.parametrize("key, short", [
    ("learning_rate", "LeRate"), ("batch-size", "BaSize"), ("n_layers", "nLayers"),
    ("lr", "Lr"), ("curl", "Curl"), ("model_hidden_dim", "MoHiDim"), ("a-b_c", "aB_c"),
    ("_x", "X"),
])
def test_key_abbreviation(key, short):
    assert abbreviate_key(key) == short


@pytest.mark.parametrize("value, text", [
    (True, "T"), (False, "F"), (1, "1"), (1234567, "1234567"), (0.1, "0.1"), (1e-05, "1e-5"),
    (2.5e10, "25000000000.0"), (1e20, "1e20"), (1.0, "1.0"), (None, "None"), ([1, 2], "1,2"),
    ("data/train.txt", "train.txt"), ("data/", "data"), ("/abs/path/x", "x"), ("/", "/"),
    ("../../etc", "etc"),
])
def test_value_formatting(value, text):
    assert format_value(value) == text


def test_numbers_that_differ_get_different_names():
    assert make_name([("x", 1234567)]) != make_name([("x", 1234568)])
    assert make_name([("x", 0.1)]) != make_name([("x", 0.1000001)])
    assert make_name([("x", 1)]) != make_name([("x", 1.0)])


def test_a_path_is_named_by_its_last_component_whether_or_not_it_exists(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = make_name([("file", "data/train.txt")]), make_name([("file", "missing/x.txt")])
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.txt").write_text("")
    (tmp_path / "missing").mkdir()
    (tmp_path / "missing" / "x.txt").mkdir()
    after = make_name([("file", "data/train.txt")]), make_name([("file", "missing/x.txt")])
    assert before == after == ("File_train.txt", "File_x.txt")


def test_names_stay_the_same_after_the_commands_created_what_the_values_name(
        make_config, cli, workdir):
    """The seed named a value by its basename only once it existed, so a second run of the same
    YAML found other names and ran everything again."""
    make_config("""
        template:
          make: mkdir -p {where}
        ---
        where: [runs/exp1, plain, deep/er/run]
    """)
    first = cli("--dry-run")
    assert first.code == 0, first
    assert cli().code == 0
    assert (workdir / "runs" / "exp1").is_dir() and (workdir / "plain").is_dir()
    again = cli("--dry-run")
    task_lines = [line for line in first.out.splitlines() if line.endswith(": run")]
    assert [line.split(":")[0] for line in task_lines] == ["Where_exp1", "Where_plain",
                                                           "Where_run"]
    assert [line for line in again.out.splitlines() if line.endswith(": skip")] == [
        line.replace(": run", ": skip") for line in task_lines]


def test_values_whose_text_collides_get_a_stable_hash_each_and_the_others_stay_plain():
    text = """
        template:
          t: echo {x} {y}
        ---
        x: [a/b, a b, c/b, a_b, a_c]
        y: [1]
    """
    first = names_of(text)
    assert len(set(first)) == 5
    entries = [n.split("-")[0] for n in first]
    assert [e.split(HASH_MARK)[0] for e in entries] == ["X_b", "X_a_b", "X_b", "X_a_b", "X_a_c"]
    assert all(len(e.split(HASH_MARK)[1]) == 6 for e in entries[:4])
    assert entries[4] == "X_a_c"  # collides with nothing: no hash
    assert first == names_of(text)
    # the hash is of the value: another order of the values keeps every name
    assert set(names_of(text.replace("[a/b, a b, c/b, a_b, a_c]", "[a_c, a_b, c/b, a b, a/b]"))
               ) == set(first)


def test_collisions_are_found_across_documents_whatever_t_selects():
    text = """
        template:
          t: echo {data}
        ---
        _title: one
        data: [corpus/a/train.txt]
        ---
        _title: two
        data: [corpus/b/train.txt]
    """
    both = names_of(text)
    assert len(set(both)) == 2 and all(HASH_MARK in n for n in both)
    assert names_of(text, titles=["one"]) == both[:1]
    assert names_of(text, titles=["two"]) == both[1:]


def test_a_hashed_name_can_never_equal_a_plain_one():
    """`~` never survives in a value's text, so `X_a_b~<hash>` is not some value's plain name."""
    namer = Namer([{"x": ["a/b", "c/b"]}])
    hashed = namer.entry("x", "a/b")
    assert HASH_MARK in hashed
    other = Namer([{"x": ["a/b", "c/b", hashed[2:]]}])
    assert other.entry("x", hashed[2:]) != hashed
    assert HASH_MARK not in make_name([("x", "~~")])


def test_true_and_the_string_t_are_told_apart():
    assert len(set(names_of("template:\n  t: echo {a}\n---\na: [true, 'T', 1, '1']\n"))) == 4


def test_keys_whose_abbreviations_collide_are_told_apart():
    found = names_of("""
        template:
          t: echo {learning_rate} {lea_rate}
        default: {learning_rate: 0, lea_rate: 0}
        ---
        learning_rate: [1]
        ---
        lea_rate: [1]
    """)
    assert len(set(found)) == 2
    assert all(n.startswith("LeRate" + HASH_MARK) for n in found)


def test_two_tasks_with_different_params_and_one_name_are_still_refused():
    """A value's text that runs into the next entry (`x-B_y`) cannot be told apart per param."""
    with pytest.raises(ConfigError, match=r"both be named 'A_x-B_y'.*\{a: 'x-B_y', b: 0\}.*"
                                          r"\{a: 'x', b: 'y'\}"):
        names_of("""
            template:
              t: echo {a} {b}
            default: {b: 0}
            ---
            a: [x-B_y]
            ---
            a: [x]
            b: [y]
        """)


def test_seed_style():
    assert make_name([("curl", 1), ("bracket", 1)]) == "Curl_1-Bracket_1"


@pytest.mark.parametrize("value, kept", [
    ("中文", "中文"), ("ру", "ру"), ("é", "é"), ("हिन्दी", "हिन्दी"), ("α-β", "α-β"),
    ("a b", "a_b"), ("😀", "_"),
])
def test_letters_and_digits_of_any_script_are_kept(value, kept):
    assert make_name([("v", value)]) == f"V_{kept}"


@pytest.mark.parametrize("value", ["../../etc", "a b", "x;rm -rf /", "$(id)", "é", "a\nb", ".",
                                   "a\x00b", "tab\there", "~", "\u2028", "*?"])
def test_names_are_safe_single_components(value):
    name = make_name([("v", value)])
    assert "/" not in name and "\n" not in name and " " not in name and "\x00" not in name
    assert all(c.isalnum() or c in "._+=,-" or c == "_" for c in name), name


def test_name_never_starts_with_dot_or_dash():
    assert make_name([(".hidden", 1)])[0] not in ".-"
    assert make_name([("-x", 1)])[0] not in ".-"
    assert make_name([]) == "task"


@pytest.mark.parametrize("char", ["a", "中", "é", "😀"])
def test_long_names_are_shortened_in_bytes_and_stay_unique(char):
    a = make_name([("text", char * 400 + "1")])
    b = make_name([("text", char * 400 + "2")])
    assert len(a.encode("utf-8")) <= MAX_NAME_BYTES <= 255
    assert a != b
    a.encode("utf-8").decode("utf-8")  # whole characters only


def test_names_of_long_unicode_values_fit_the_log_file_name(make_config, cli, workdir):
    """`log.<command>.<datetime>.<name>` (with --no-param-dir) must fit in 255 bytes."""
    make_config("template:\n  train: echo {v} > /dev/null\n---\nv: ['" + "中" * 300 + "']\n")
    result = cli("--no-param-dir")
    assert result.code == 0, result
    logs = [p.name for p in workdir.joinpath("output").iterdir() if p.name.startswith("log.")]
    assert len(logs) == 1 and len(logs[0].encode("utf-8")) <= 255
    params = json.loads(next(workdir.joinpath("output", ".runner", "tasks").iterdir())
                        .joinpath("param.json").read_text())
    assert params["v"] == "中" * 300
