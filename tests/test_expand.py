"""Expansion: titles, product order, sampling, packs, defaults, dedup and reserved params."""

from __future__ import annotations

import textwrap

import pytest

from runner.spec.config import parse_config
from runner.errors import ConfigError, UsageError
from runner.spec.expand import Selection, expand


def plan_of(text, output="out", **selection):
    config = parse_config(textwrap.dedent(text).lstrip("\n"), "p.yaml")
    return expand(config, Selection(**selection), output, "DT")


def names(plan):
    return [t.name for t in plan.tasks]


def test_product_first_key_varies_slowest():
    plan = plan_of("""
        template:
          t: echo {a} {b}
        ---
        a: [1, 2]
        b: [x, y, z]
    """)
    assert names(plan) == ["A_1-B_x", "A_1-B_y", "A_1-B_z", "A_2-B_x", "A_2-B_y", "A_2-B_z"]
    assert plan.tasks[4].commands == {"t": "echo 2 y"}


def test_scalar_means_one_value_and_documents_keep_order():
    plan = plan_of("""
        template:
          t: echo {a}
        ---
        a: 5
        ---
        a: [6, 7]
    """)
    assert names(plan) == ["A_5", "A_6", "A_7"]
    assert [t.document for t in plan.tasks] == [1, 2, 2]


def test_titles_select_documents_and_compare_as_strings():
    text = """
        template:
          t: echo {a}
        ---
        _title: 1
        a: [1]
        ---
        _title: two
        a: [2]
        ---
        a: [3]
    """
    assert names(plan_of(text, titles=["1"])) == ["A_1"]
    assert names(plan_of(text, titles=["two", "1"])) == ["A_1", "A_2"]
    assert names(plan_of(text)) == ["A_1", "A_2", "A_3"]
    with pytest.raises(UsageError, match="titles are '1', 'two'"):
        plan_of(text, titles=["three"])


def test_reserved_params():
    plan = plan_of("""
        template:
          t: echo {_name} {_output} {_datetime}
        ---
        a: [1]
    """, output="./results/")
    task = plan.tasks[0]
    assert task.params == {"a": 1, "_name": "A_1", "_output": "results/A_1", "_datetime": "DT",
                           "_time": "DT"}
    assert task.commands["t"] == "echo A_1 results/A_1 DT"


def test_no_param_dir_output_is_the_directory_itself():
    config = parse_config("template:\n  t: echo {_output}\n---\na: [1]\n", "p.yaml")
    plan = expand(config, Selection(), "out", "DT", no_param_dir=True)
    assert plan.tasks[0].params["_output"] == "out"


def test_defaults_fill_but_never_name():
    plan = plan_of("""
        template:
          t: echo {a} {b}
        default: {b: 9, a: 0}
        ---
        a: [1]
        ---
        a: [2]
        b: [3]
    """)
    assert names(plan) == ["A_1", "A_2-B_3"]
    assert [t.commands["t"] for t in plan.tasks] == ["echo 1 9", "echo 2 3"]


def test_dedup_is_by_type_and_value():
    plan = plan_of("""
        template:
          t: echo {a}
        default: {b: 1}
        ---
        a: [1, 1.0, true, 1]
        ---
        a: [1]
        b: [1]
        ---
        a: [1]
        b: [1.0]
    """)
    assert names(plan) == ["A_1", "A_1.0", "A_T", "A_1-B_1.0"]
    assert plan.duplicates == 2


def test_list_pack_gives_every_param_the_value():
    plan = plan_of("""
        template:
          t: echo {curl} {bracket}
        pack:
          pack_replace: [curl, bracket]
        ---
        pack_replace: [1, 2]
    """)
    assert names(plan) == ["PaReplace_1", "PaReplace_2"]
    assert plan.tasks[1].params == {"curl": 2, "bracket": 2, "_name": "PaReplace_2",
                                    "_output": "out/PaReplace_2", "_datetime": "DT",
                                    "_time": "DT"}


def test_mapping_pack_selects_params_by_value():
    plan = plan_of("""
        template:
          t: echo {curl} {bracket} {x}
        pack:
          pack_remap:
            remap1: {curl: 1, bracket: 2}
            remap2: {curl: 3, bracket: 4}
        ---
        pack_remap: [remap1, remap2]
        x: [0]
    """)
    assert [t.commands["t"] for t in plan.tasks] == ["echo 1 2 0", "echo 3 4 0"]
    assert names(plan) == ["PaRemap_remap1-X_0", "PaRemap_remap2-X_0"]


def test_sample_is_reproducible_ordered_and_recorded():
    text = """
        template:
          t: echo {a} {b}
        ---
        a: [1, "x", 2.5, true, null, [1, 2]]
        b: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
        ---
        a: [100]
        b: [0]
    """
    first = plan_of(text.replace("{a} {b}", "{b}"), sample=5)
    again = plan_of(text.replace("{a} {b}", "{b}"), sample=5)
    other = plan_of(text.replace("{a} {b}", "{b}"), sample=5, seed=7)
    assert names(first) == names(again)
    assert names(first) != names(other)
    assert len(first.tasks) == 6  # 5 from document 1, the only one of document 2
    assert first.tasks[-1].name == "A_100-B_0"
    full = names(plan_of(text.replace("{a} {b}", "{b}")))
    assert [full.index(n) for n in names(first)] == sorted(full.index(n) for n in names(first))
    assert first.seed == 0 and other.seed == 7
    assert plan_of(text.replace("{a} {b}", "{b}")).seed is None


def test_sample_larger_than_the_grid_takes_all():
    plan = plan_of("template:\n  t: echo {a}\n---\na: [1, 2]\n", sample=10)
    assert names(plan) == ["A_1", "A_2"]


def test_empty_value_list_yields_no_tasks_and_says_so():
    plan = plan_of("""
        template:
          t: echo {a}
        ---
        a: []
        ---
        a: [1]
    """)
    assert names(plan) == ["A_1"]
    assert plan.notices == ["document 1 has no values for 'a': it yields no tasks"]


def test_orphans_are_params_no_selected_template_uses():
    text = """
        template:
          train: echo {lr}
          test: echo {split}
        default: {seed: 1}
        ---
        lr: [1]
        split: [a]
        note: [x]
    """
    assert plan_of(text).orphans == ["note", "seed"]
    assert plan_of(text, commands=["train"]).orphans == ["split", "note", "seed"]


def test_commands_keep_template_order():
    plan = plan_of("template:\n  a: echo 1\n  b: echo 2\n  c: echo 3\n---\nx: [1]\n",
                   commands=["c", "a"])
    assert list(plan.tasks[0].commands) == ["a", "c"]


def test_large_sweep_has_unique_names():
    plan = plan_of("""
        template:
          t: echo {a} {b} {c}
        ---
        a: [1234567, 1234568, 0.1, 0.10000001, "0.2"]
        b: [x, y, z, w]
        c: [true, false, 1, 0]
    """)
    assert len(set(names(plan))) == len(plan.tasks) == 80


def test_a_string_and_a_number_that_print_alike_get_a_hash_each():
    plan = plan_of("template:\n  t: echo {a}\n---\na: [0.1, '0.1', 0.2]\n")
    first, second, third = names(plan)
    assert first.startswith("A_0.1~") and second.startswith("A_0.1~") and first != second
    assert third == "A_0.2"  # a value that collides with nothing keeps its plain text
    assert names(plan_of("template:\n  t: echo {a}\n---\na: [0.1, '0.1', 0.2]\n")) == [
        first, second, third]


def test_settings_come_from_document_0_and_params_override_them():
    plan = plan_of("""
        template:
          t: echo {a}
        gpu_memory: 10GiB
        timeout: 1h30m
        ---
        a: [1]
        ---
        a: [2]
        gpu_memory: [512MiB, 2GB]
        retries: 2
    """)
    RETRY_TWICE = {"count": 2, "on": ["any"], "delay": 0.0}  # `retries: 2`, normalised
    assert [t.settings for t in plan.tasks] == [
        {"gpu_memory": 10 * 2 ** 30, "timeout": 5400.0},
        {"gpu_memory": 512 * 2 ** 20, "timeout": 5400.0, "retries": RETRY_TWICE},
        {"gpu_memory": 2 * 10 ** 9, "timeout": 5400.0, "retries": RETRY_TWICE}]
    assert plan.orphans == []  # settings used by the runner are not orphans


def test_a_setting_from_default_applies():
    plan = plan_of("""
        template:
          t: echo {a}
        default: {timeout: "00:01:00"}
        ---
        a: [1]
    """)
    assert plan.tasks[0].settings == {"timeout": 60.0}


@pytest.mark.parametrize("text, message", [
    ("gpu_memory: 10\n---\na: [1]\n", "has no unit"),
    ("timeout: soon\n---\na: [1]\n", "'soon' is not a duration"),
    ("gpus_per_task: 0\n---\na: [1]\n", "not a positive whole number"),
    ("---\na: [1]\ngpu_memory: [lots]\n", "setting 'gpu_memory': 'lots' is not a memory size"),
    ("max_gpu_util: 120\n---\na: [1]\n", "not between 0 and 100"),
])
def test_bad_settings_are_located(text, message):
    with pytest.raises(ConfigError, match=message):
        plan_of("template:\n  t: echo {a}\n" + text)
