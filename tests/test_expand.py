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


def test_sample_of_a_huge_space_is_instant_reproducible_and_distinct(make_config, cli, workdir):
    """12 keys x 10 values, and 30 keys x 10 values (10**30: too big for random.sample)."""
    import time

    for keys in (12, 30):
        text = "template:\n  t: echo {k0}\n---\n" + "".join(
            f"k{i}: [{', '.join(str(v) for v in range(10))}]\n" for i in range(keys))
        make_config(text)
        started = time.perf_counter()
        first = cli("--sample", "50", "--dry-run")
        assert time.perf_counter() - started < 1.0
        assert first.code == 0, first
        tasks = [line for line in first.out.splitlines() if line.endswith(": run")]
        assert len(tasks) == len(set(tasks)) == 50
        assert cli("--sample", "50", "--dry-run").out == first.out
        other = cli("--sample", "50", "--seed", "1", "--dry-run").out
        assert other != first.out and "sample seed 1" in other


def test_sample_indices_are_sorted_distinct_and_in_range():
    import random

    from runner.spec.expand import sample_indices

    for total in (10, 10 ** 12, 10 ** 30):
        chosen = sample_indices(total, 7, random.Random(3))
        assert chosen == sorted(set(chosen)) and len(chosen) == min(7, total)
        assert all(0 <= i < total for i in chosen)
        assert chosen == sample_indices(total, 7, random.Random(3))
    assert sample_indices(5, 10, random.Random(0)) == [0, 1, 2, 3, 4]


def test_time_is_mlrunners_stamp_of_the_invocation():
    plan = plan_of("template:\n  t: echo {_time} {_datetime}\n---\na: [1]\n")
    assert plan.tasks[0].commands["t"] == "echo DT DT"  # a datetime it cannot read stays as is
    config = parse_config("template:\n  t: echo {_time} {_datetime}\n---\na: [1]\n", "p.yaml")
    task = expand(config, Selection(), "out", "2026-11-21.10_05_09").tasks[0]
    assert task.commands["t"] == "echo 20261121.100509 2026-11-21.10_05_09"
    assert task.params["_time"] == "20261121.100509"


def test_cmd_picks_a_documents_templates_and_c_overrides_it():
    text = """
        template:
          train: echo train {a}
          test: echo test {a} {split}
          report: echo report {a}
        ---
        a: [1]
        split: [all]
        ---
        _cmd: test
        a: [2]
        split: [dev]
        ---
        _cmd: [report, train]
        a: [3]
    """
    plan = plan_of(text)
    assert [list(t.commands) for t in plan.tasks] == [["train", "test", "report"], ["test"],
                                                      ["train", "report"]]
    assert names(plan) == ["A_1-Split_all", "A_2-Split_dev", "A_3"]  # `_cmd` is in no name
    assert all("_cmd" not in t.params for t in plan.tasks)
    # document 3 has no `split`, but does not run `test` ... unless -c says so
    with pytest.raises(ConfigError, match=r"template 'test' uses 'split', which 1 task has no "
                                          r"value for \(A_3\)"):
        plan_of(text, commands=["test"])
    plan = plan_of(text, commands=["report"])
    assert [list(t.commands) for t in plan.tasks] == [["report"]] * 3
    assert plan.commands == ["report"]


def test_the_same_params_with_other_cmds_run_those_commands_too():
    plan = plan_of("""
        template:
          train: echo train {a}
          test: echo test {a}
          report: echo report {a}
        ---
        _cmd: report
        a: [1, 2]
        ---
        _cmd: [train]
        a: [1]
    """)
    assert names(plan) == ["A_1", "A_2"]
    assert plan.tasks[0].commands == {"train": "echo train 1", "report": "echo report 1"}
    assert plan.tasks[1].commands == {"report": "echo report 2"}
    assert plan.duplicates == 1
    assert plan.commands == ["train", "report"]


def test_alias_groups_set_their_params_below_the_document_and_above_defaults():
    plan = plan_of("""
        template:
          t: python t.py {p1} [p2] {p3} [mode]
        default: {p1: d1, p2: d2, p3: d3}
        alias:
          mode:
            fast: {p1: 1, p2: "1", steps: 10}
            slow: {p1: 2, p2: "2", steps: 99}
        ---
        mode: [fast, slow]
        ---
        mode: fast
        p1: mine
    """)
    assert [t.commands["t"] for t in plan.tasks] == [
        "python t.py 1 --p2 1 d3 --p1 1 --p2 1 --steps 10",
        "python t.py 2 --p2 2 d3 --p1 2 --p2 2 --steps 99",
        "python t.py mine --p2 1 d3 --p1 1 --p2 1 --steps 10"]
    assert plan.tasks[0].params["steps"] == 10 and plan.tasks[0].params["mode"] == "fast"
    assert names(plan) == ["Mode_fast", "Mode_slow", "Mode_fast-P1_mine"]
    assert plan.orphans == []  # [mode] uses the group's params; `mode` picks the group


def test_an_alias_given_in_default_sets_its_group_too():
    plan = plan_of("""
        template:
          t: echo {layers}
        default: {size: small}
        alias:
          size: {small: {layers: 2}, big: {layers: 8}}
        ---
        size: [big]
        ---
        x: [1]
    """)
    assert [t.commands["t"] for t in plan.tasks] == ["echo 8", "echo 2"]
