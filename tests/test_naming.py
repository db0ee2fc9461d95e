"""Task names: `Key_Value` entries joined by `-`, short, unique and safe as one path component."""

from __future__ import annotations

import pytest

from runner.spec.naming import MAX_NAME_BYTES, abbreviate_key, format_value, make_name


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
])
def test_value_formatting(value, text):
    assert format_value(value) == text


def test_numbers_that_differ_get_different_names():
    assert make_name([("x", 1234567)]) != make_name([("x", 1234568)])
    assert make_name([("x", 0.1)]) != make_name([("x", 0.1000001)])
    assert make_name([("x", 1)]) != make_name([("x", 1.0)])


def test_existing_path_becomes_its_last_component(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.txt").write_text("")
    assert make_name([("file", "data/train.txt")]) == "File_train.txt"
    assert make_name([("file", "data/")]) == "File_data"
    assert make_name([("file", "missing/train.txt")]) == "File_missing_train.txt"


def test_seed_style():
    assert make_name([("curl", 1), ("bracket", 1)]) == "Curl_1-Bracket_1"


@pytest.mark.parametrize("value", ["../../etc", "a b", "x;rm -rf /", "$(id)", "é", "a\nb", "."])
def test_names_are_safe_single_components(value):
    name = make_name([("v", value)])
    assert "/" not in name and "\n" not in name and " " not in name
    assert all(c.isalnum() or c in "._+=,-" or c == "_" for c in name), name
    assert name.isascii()


def test_name_never_starts_with_dot_or_dash():
    assert make_name([(".hidden", 1)])[0] not in ".-"
    assert make_name([("-x", 1)])[0] not in ".-"
    assert make_name([]) == "task"


def test_long_names_are_shortened_and_stay_unique():
    a = make_name([("text", "a" * 400 + "1")])
    b = make_name([("text", "a" * 400 + "2")])
    assert len(a.encode()) <= MAX_NAME_BYTES <= 255
    assert a != b
