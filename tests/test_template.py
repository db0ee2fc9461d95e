"""Placeholders: `{p}` shell-quoted values, `[p]` flags and aliases, rendered in one pass."""

from __future__ import annotations

import shlex
import subprocess

import pytest

from runner.spec.template import RenderError, Template


def render(text, aliases=None, **params):
    return Template(text, aliases).render(params)


def test_values_are_shell_quoted():
    assert render("echo {s}", s="a b") == "echo 'a b'"
    assert render("echo {s}", s="it's") == "echo 'it'\"'\"'s'"
    assert render("echo {n} {f} {b}", n=3, f=0.5, b=True) == "echo 3 0.5 True"
    assert render("echo {l}", l=[1, "a b"]) == "echo 1 'a b'"


@pytest.mark.parametrize("value", ["a  b", "it's \"quoted\"", "{y}", "[y]", "../x", "$(id)", "*",
                                   "tab\there", "new\nline", ""])
def test_values_arrive_intact_in_the_shell(value):
    command = render("printf '%s' {v}", v=value, y="WRONG")
    assert subprocess.run(["/bin/sh", "-c", command], capture_output=True,
                          text=True).stdout == value


def test_values_are_not_substituted_again():
    assert render("echo {x} [x]", x="{y}", y="no") == "echo '{y}' --x '{y}'"


def test_flags():
    assert render("t [a] [b] [c]", a=True, b=False, c=0.1) == "t --a  --c 0.1"
    assert render("t [s]", s="a b") == "t --s 'a b'"


def test_list_alias_gives_every_target_the_value():
    aliases = {"ar": ["a1", "a2"]}
    assert render("t [ar]", aliases, ar=1) == "t --a1 1 --a2 1"
    assert render("t {ar}", aliases, ar=1) == "t 1"


def test_mapping_alias_selects_flags_by_value():
    aliases = {"mode": {"fast": {"x": 1, "verbose": True, "quiet": False, "debug": True}}}
    assert render("t [mode]", aliases, mode="fast") == "t --verbose --debug --x 1"
    with pytest.raises(RenderError, match="has no entry for the value 'slow'.*'fast'"):
        render("t [mode]", aliases, mode="slow")


def test_shell_syntax_is_left_alone():
    text = "echo ${HOME} $x {{lr}} [[lr]] [[ -f x ]] awk '{print $1}' a[0]"
    assert render(text, lr=1) == "echo ${HOME} $x {lr} [lr] [[ -f x ]] awk '{print $1}' a[0]"


def test_placeholders_are_listed_once_in_order():
    assert Template("{a} [b] {a} {_output}").placeholders == ("a", "b", "_output")


def test_missing_and_unusable_values():
    with pytest.raises(KeyError):
        render("{missing}")
    with pytest.raises(RenderError, match="null"):
        render("{x}", x=None)
    with pytest.raises(RenderError, match="mapping"):
        render("{x}", x={"a": 1})


def test_quoting_round_trips_through_shlex():
    assert shlex.split(render("prog {a} {b}", a="x y", b="'")) == ["prog", "x y", "'"]


@pytest.mark.parametrize("text, unclosed", [
    ("--lr {lr --out {_output}", [("{lr", 6)]),
    ("--lr {lr", [("{lr", 6)]),
    ("[fp16 --lr {lr}", [("[fp16", 1)]),
    ("echo {a} {b --x [c", [("{b", 10), ("[c", 17)]),
    ("echo {lr}}", []),
])
def test_unclosed_placeholders_are_found(text, unclosed):
    assert Template(text).unclosed == unclosed


@pytest.mark.parametrize("text", [
    "awk '{print $1}' data.txt",
    "awk '{if ($1 > 0) { n++ } } END {print n}'",
    "[ -f x ] && echo yes",
    "[[ -n $x ]] && echo {lr}",
    "echo {a,b}.txt",
    "echo ${HOME} ${X:-{lr}}",
    "{ cd build; make; }",
    "python -c 'print({a: 1})'",
    "sed 's/[a-z0-9 ]//g'",
    "find . -name '*.py' -exec rm {} \\;",
    "echo {{lr}} [[fp16]]",
])
def test_shell_text_is_not_an_unclosed_placeholder(text):
    assert Template(text).unclosed == []
    assert subprocess.run(["bash", "-n", "-c", Template(text).render({"lr": 1})]).returncode == 0


def test_nul_bytes_cannot_be_part_of_a_command():
    with pytest.raises(RenderError, match=r"'x'.*contains a NUL byte"):
        render("echo {x}", x="a\x00b")
    with pytest.raises(RenderError, match="NUL byte"):
        render("t [x]", x=["ok", "a\x00b"])
    with pytest.raises(RenderError, match="not valid Unicode"):
        render("echo {x}", x="a\udc80")
