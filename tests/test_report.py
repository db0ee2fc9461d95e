"""`run report`: the HTML report of a real sweep, its data, bad input, and the page as headless
Chromium renders it (table rows, plot marks, no script error)."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import support
from browser import Browser, find_chromium
from runner.cli import main

TRAIN = """\
import json, sys
lr, opt, out, code = float(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
print(f"training lr={lr} opt={opt}")
if code:
    print("diverged at step 3", file=sys.stderr)
    sys.exit(code)
with open(f"{out}/metrics.json", "w") as f:
    loss = lr * (2 if opt == "sgd" else 1)
    json.dump({"loss": loss, "acc": 1 - lr, "val": {"loss": lr + 0.5}}, f)
"""

SWEEP = """\
template:
  train: {python} {train} {{lr}} {{opt}} {{_output}} {{code}}
  evaluate: cat {{_output}}/metrics.json
resource: [0, 1]
---
lr: [0.1, 0.01, 0.001]
opt: [adam, sgd]
code: [0]
---
lr: [1.0]
opt: [adam]
code: [3]
"""
TASKS = 7  # 6 succeed (train, evaluate), 1 fails in train with exit status 3
FAILED = "Lr_1.0-Opt_adam-Code_3"
STARTED_COMMANDS = 13


def make_sweep(folder: Path) -> Path:
    """A real sweep, run with `run -y`: 7 tasks on two slots, one of them failing."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.py").write_text(TRAIN)
    (folder / "params.yaml").write_text(SWEEP.format(python=sys.executable,
                                                     train=folder / "train.py"))
    output = folder / "output"
    assert main(["-y", str(folder / "params.yaml"), "-o", str(output)]) == 1
    return output


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """The output directory of the sweep above (shared by the tests that only read it)."""
    return make_sweep(tmp_path_factory.mktemp("sweep"))


@pytest.fixture
def own_copy(finished: Path, tmp_path: Path) -> Path:
    """A copy of the finished sweep that a test may damage."""
    copy = tmp_path / "output"
    shutil.copytree(finished, copy)
    return copy


def embedded_data(html: Path) -> dict:
    """The data the report embedded (what its script draws)."""
    text = html.read_text()
    found = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', text,
                      re.S)
    assert found, "no embedded data"
    return json.loads(found.group(1))


# -- the file and its data -------------------------------------------------------------------

def test_report_is_one_self_contained_file(finished, cli, tmp_path):
    html = tmp_path / "r.html"
    result = cli("report", "-o", str(finished), "--html", str(html))
    assert result.code == 0, result
    assert result.out == f"report: {html}\n"
    text = html.read_text()
    # Nothing is loaded from elsewhere: no element with a src or href, plotly.js inline.
    assert not re.search(r"<(script|link|img|iframe)\b[^>]*\b(src|href)\s*=", text, re.I)
    assert "Plotly" in text and len(text) > 1_000_000
    assert text.count("</script>") == 3  # plotly, the data, the page's script


def test_default_path_is_inside_the_output(own_copy, cli):
    result = cli("report", "-o", str(own_copy))
    assert result.code == 0, result
    assert (own_copy / "report.html").is_file()
    assert result.out == f"report: {own_copy / 'report.html'}\n"


def test_data_has_every_task_the_timeline_and_the_failure(finished, cli, tmp_path):
    html = tmp_path / "r.html"
    assert cli("report", "-o", str(finished), "--html", str(html)).code == 0
    data = embedded_data(html)
    names = [c["name"] for c in data["columns"]]
    assert len(data["rows"]) == TASKS
    rows = {r[names.index("_name")]: dict(zip(names, r)) for r in data["rows"]}
    assert rows[FAILED]["_state"] == "failed" and rows[FAILED]["_train_exit_status"] == 3
    assert rows["Lr_0.1-Opt_sgd-Code_0"]["loss"] == 0.2
    assert rows["Lr_0.1-Opt_sgd-Code_0"]["val.loss"] == 0.6
    assert [p["name"] for p in data["params"]] == ["code", "lr", "opt"]  # as param.json has them
    assert {p["name"]: (p["numeric"], p["log"]) for p in data["params"]} == {
        "lr": (True, True), "opt": (False, False), "code": (True, False)}
    assert data["metrics"] == ["loss", "acc", "val.loss"] and data["metric"] == "loss"

    summary = data["summary"]
    assert summary["tasks"] == TASKS and summary["counts"] == {"done": 6, "failed": 1}
    assert summary["lanes"] == ["slot 0 (GPU 0)", "slot 1 (GPU 1)"]
    assert summary["wall_seconds"] > 0 and summary["task_hours"] > 0
    assert summary["gpu_hours"] == pytest.approx(summary["task_hours"])  # one GPU per slot

    timeline = data["timeline"]
    assert len(timeline["bars"]) == STARTED_COMMANDS
    assert timeline["commands"] == ["train", "evaluate"]
    assert all(end >= start for *_, start, end in timeline["bars"])
    states = {(names_row, timeline["commands"][c], s)
              for names_row, c, s, *_ in timeline["bars"] if s != "done"}
    assert states == {(list(rows).index(FAILED), "train", "failed")}

    [failure] = data["failures"]
    assert failure["task"] == FAILED and failure["command"] == "train"
    assert failure["exit_status"] == 3 and failure["signal"] is None
    assert failure["attempts"] == 1
    assert failure["tails"][0][-2:] == ["training lr=1.0 opt=adam", "diverged at step 3"]


def test_metric_option_chooses_the_colour(finished, cli, tmp_path):
    html = tmp_path / "r.html"
    assert cli("report", "-o", str(finished), "--html", str(html), "--metric", "val.loss").code == 0
    assert embedded_data(html)["metric"] == "val.loss"


@pytest.mark.parametrize("argv, message", [
    (["--metric", "los"], "--metric los: no such metric (did you mean 'loss'?); metrics are "
                          "'loss', 'acc', 'val.loss'"),
    (["--html", "{tmp}"], "is a directory"),
    (["--html", "{tmp}/missing/r.html"], "no such folder"),
    (["-o", "{tmp}/nothing"], "no such output directory"),
])
def test_bad_input_is_one_line_and_writes_nothing(finished, cli, tmp_path, argv, message):
    argv = [a.format(tmp=tmp_path) for a in argv]
    options = argv if "-o" in argv else ["-o", str(finished), *argv]
    result = cli("report", *options)
    assert result.code == 2
    assert result.err.startswith("run: error: ") and message in result.err
    assert result.err.count("\n") == 1 and "Traceback" not in result.err
    assert not (finished / "report.html").exists() and list(tmp_path.iterdir()) == []


def test_without_plotly_it_says_how_to_install(finished, cli, monkeypatch):
    monkeypatch.setitem(sys.modules, "plotly", None)  # `import plotly...` raises ImportError
    monkeypatch.setitem(sys.modules, "plotly.offline", None)
    result = cli("report", "-o", str(finished))
    assert result.code == 2
    assert "pip install '.[report]' in a clone of the runner repository" in result.err
    assert result.err.count("\n") == 1
    assert not (finished / "report.html").exists()


def test_odd_values_in_a_task_do_not_stop_the_report(own_copy, cli):
    """A state entry with values of the wrong type: that task shows what is known."""
    stat_path = own_copy / "Lr_0.01-Opt_adam-Code_0" / "stat.json"
    state = json.loads(stat_path.read_text())
    state["train"].update(start="yesterday", end="later", gpus=5, slot=[1], host=None)
    state["evaluate"].update(exit_status=[1], signal="x", status="failed", log=3)
    stat_path.write_text(json.dumps(state))
    (own_copy / "Lr_0.1-Opt_adam-Code_0" / "metrics.json").write_text(
        json.dumps({"loss": float("nan"), "acc": [1, 2], "val": {"loss": None}}))
    result = cli("report", "-o", str(own_copy))
    assert result.code == 0, result
    data = embedded_data(own_copy / "report.html")
    names = [c["name"] for c in data["columns"]]
    rows = {r[names.index("_name")]: dict(zip(names, r)) for r in data["rows"]}
    assert rows["Lr_0.1-Opt_adam-Code_0"]["loss"] == "nan"  # shown, not plotted
    assert rows["Lr_0.1-Opt_adam-Code_0"]["acc"] == "[1, 2]"
    assert len(data["timeline"]["bars"]) <= STARTED_COMMANDS - 1  # no time for that train
    assert FAILED in {f["task"] for f in data["failures"]}


def test_damaged_files_of_one_task_leave_the_others(own_copy, cli):
    (own_copy / "Lr_0.1-Opt_adam-Code_0" / "metrics.json").write_text('{"loss": 0.')
    (own_copy / "Lr_0.01-Opt_sgd-Code_0" / "stat.json").write_text('["not", "a", "mapping"]')
    result = cli("report", "-o", str(own_copy))
    assert result.code == 0, result
    assert "run: warning:" in result.err and "metrics.json" in result.err
    data = embedded_data(own_copy / "report.html")
    assert len(data["rows"]) == TASKS


def test_a_running_sweep(workdir, cli):
    """While a command runs: the summary says so, the timeline has its bar up to now."""
    for lr in (1, 2):
        os.mkfifo(workdir / f"go.{lr}")
    (workdir / "params.yaml").write_text(textwrap.dedent("""\
        template:
          train: |-
            cat go.{lr} > /dev/null && echo '{"loss": 1}' > {_output}/metrics.json
        ---
        lr: [1, 2]
    """))
    process = support.run_process(["-y", "params.yaml", "-o", "output"], workdir)
    try:
        support.wait_for(lambda: any(s.get("train") == "running"
                                     for s in support.statuses(workdir / "output").values()),
                         what="a running command")
        result = cli("report", "-o", "output")
        assert result.code == 0, result
        data = embedded_data(workdir / "output" / "report.html")
        assert data["summary"]["running"] is True
        assert [bar[2] for bar in data["timeline"]["bars"]] == ["running"]
        assert data["summary"]["counts"] == {"running": 1, "pending": 1}
    finally:
        for lr in (1, 2):  # let each task's `cat` finish, once it reads
            fifo = workdir / f"go.{lr}"
            writer = support.wait_for(lambda fifo=fifo: open_writer(fifo, process),
                                      what="a reader")
            if writer != "ended":
                os.close(writer)
        out, err = process.communicate(timeout=30)
        assert process.returncode == 0, (out, err)


def open_writer(fifo: Path, process: subprocess.Popen):
    """A write end of the FIFO once a task reads it; "ended" if the run has ended; else None."""
    if process.poll() is not None:
        return "ended"
    try:
        return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:  # ENXIO: nobody reads it yet
        return None


def test_open_hands_the_file_to_the_browser(finished, tmp_path):
    """`--open` uses the desktop's browser ($BROWSER here: a script that records its argument)."""
    record = tmp_path / "opened"
    opener = tmp_path / "opener"
    opener.write_text(f"#!/bin/sh\necho \"$1\" > {record}\n")
    opener.chmod(opener.stat().st_mode | stat.S_IXUSR)
    html = tmp_path / "r.html"
    done = subprocess.run([sys.executable, "-m", "runner", "report", "-o", str(finished),
                           "--html", str(html), "--open"], check=False, capture_output=True,
                          env=dict(os.environ, BROWSER=str(opener)), text=True, timeout=60)
    assert done.returncode == 0, done
    assert record.read_text().strip() == html.as_uri()


def test_report_of_a_launch_directory(workdir, cli, monkeypatch):
    (workdir / "jobs.txt").write_text('echo one --a=1\nsh -c "echo bad >&2; exit 4" --a=2\n')
    assert cli("launch", "jobs.txt", "-j", "2").code == 1
    monkeypatch.chdir(workdir / "runs")  # the logs are found from anywhere
    result = cli("report", "-o", "jobs")
    assert result.code == 0, result
    data = embedded_data(workdir / "runs" / "jobs" / "report.html")
    assert len(data["rows"]) == 2 and len(data["timeline"]["bars"]) == 2
    [failure] = data["failures"]
    assert failure["exit_status"] == 4 and ["bad"] in failure["tails"]


# -- in a real browser -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser():
    if not find_chromium():
        message = "no chromium on PATH (Debian: apt-get install chromium; .ci/run installs it)"
        if os.environ.get("RUNNER_REQUIRE_BROWSER") == "1":
            pytest.fail(message + ", and RUNNER_REQUIRE_BROWSER=1")
        pytest.skip(message)
    with Browser() as started:
        yield started


@pytest.fixture(scope="module")
def page(finished, browser):
    """The finished sweep's report, opened and drawn."""
    html = finished.parent / "report.html"
    assert main(["report", "-o", str(finished), "--html", str(html)]) == 0
    opened = browser.open(html.as_uri(), "document.body.dataset.ready")
    assert opened.evaluate("document.body.dataset.ready") == "1", opened.errors
    return opened


# Counts what each plot drew, from the rendered page.
MARKS = """(() => {
  const div = (id) => document.getElementById(id);
  const painted = (canvas) => {
    const copy = document.createElement("canvas");
    copy.width = canvas.width; copy.height = canvas.height;
    const context = copy.getContext("2d");
    context.drawImage(canvas, 0, 0);
    const pixels = context.getImageData(0, 0, copy.width, copy.height).data;
    let count = 0;
    for (let i = 3; i < pixels.length; i += 4) if (pixels[i]) count++;
    return count;
  };
  return {
    axes: div("parcoords")._fullData[0].dimensions.map((d) => d.label),
    lines: div("parcoords")._fullData[0].dimensions[0].values.length,
    focus: painted(div("parcoords").querySelector("canvas.gl-canvas-focus")),
    axisTitles: div("parcoords").querySelectorAll("svg .axis-title").length,
    byParam: [...document.querySelectorAll("#by-param .plot")].map((d) => ({
      param: d.dataset.param, points: d.querySelectorAll(".plot path.point").length,
      boxes: d.querySelectorAll(".boxlayer path.box").length})),
    timeline: [...div("timeline").querySelectorAll(".scatterlayer .trace")].map((t) => ({
      paths: [...t.querySelectorAll("path.js-line")]
        .filter((p) => /\\d/.test(p.getAttribute("d"))).length})),
    timelineNames: div("timeline")._fullData.map((t) => t.name),
    hoverPoints: div("timeline")._fullData.reduce(
      (n, t) => n + t.x.filter((x) => x !== null).length, 0),
  };
})()"""


def rows_shown(page) -> int:
    return page.evaluate("document.querySelectorAll('#results tbody tr').length")


def test_page_draws_every_part_without_script_errors(page):
    assert page.errors == []
    assert rows_shown(page) == TASKS
    assert page.evaluate("document.querySelectorAll('#results tbody tr.failed').length") == 1
    assert page.evaluate("document.querySelector('#results tr.failed td:nth-child(4)')"
                         ".textContent") == FAILED
    assert page.evaluate("document.getElementById('count').textContent") == "7 of 7 tasks"
    summary = page.evaluate("document.getElementById('summary').textContent")
    assert "6 done" in summary and "1 failed" in summary and "slot 1 (GPU 1)" in summary

    marks = page.evaluate(MARKS)
    assert marks["axes"] == ["code", "lr", "opt", "acc", "val.loss", "loss"]
    assert marks["lines"] == 6 and marks["focus"] > 1000 and marks["axisTitles"] == 6
    assert marks["byParam"] == [
        {"param": "code", "points": 6, "boxes": 0},
        {"param": "lr", "points": 6, "boxes": 0},
        {"param": "opt", "points": 6, "boxes": 2}]
    assert marks["timelineNames"] == ["done", "failed"]
    assert all(trace["paths"] >= 1 for trace in marks["timeline"])
    assert marks["hoverPoints"] == 3 * STARTED_COMMANDS

    failures = page.evaluate("document.getElementById('failures').textContent")
    assert FAILED in failures and "exit status 3" in failures and "diverged at step 3" in failures


def test_table_sorts_filters_and_hides_columns(page):
    column = ("[...document.querySelectorAll('#results tbody tr')]"
              ".map((r) => r.children[{}].textContent)")
    header = "[...document.querySelectorAll('#results thead th')].map((h) => h.textContent)"
    page.evaluate("document.querySelector('#results th[data-column=loss]').click()")
    shown = page.evaluate(header)
    loss = shown.index("loss")
    values = page.evaluate(column.format(loss))
    assert values == ["0.001", "0.002", "0.01", "0.02", "0.1", "0.2", "-"]
    page.evaluate("document.querySelector('#results th[data-column=loss]').click()")
    assert page.evaluate(column.format(loss))[:2] == ["0.2", "0.1"]

    page.evaluate("{ const f = document.getElementById('filter'); f.value = 'sgd';"
                  "  f.dispatchEvent(new Event('input')); }")
    support.wait_for(lambda: rows_shown(page) == 3, what="the filter")
    page.evaluate("{ const f = document.getElementById('filter'); f.value = '';"
                  "  f.dispatchEvent(new Event('input')); }")
    support.wait_for(lambda: rows_shown(page) == TASKS, what="the filter's end")

    page.evaluate("document.querySelector('#columns input[data-column=opt]').click()")
    assert "opt" not in page.evaluate(header)
    page.evaluate("document.querySelector('#columns input[data-column=_host]').click()")
    assert page.evaluate(header)[-1] == "val.loss" and "_host" in page.evaluate(header)
    page.evaluate("document.querySelector('#columns input[data-column=opt]').click()")
    page.evaluate("document.querySelector('#columns input[data-column=_host]').click()")
    assert page.errors == []


def test_brushing_an_axis_selects_tasks_in_the_table(page):
    """Dragging along the lr axis from its top (0.1) halfway down keeps the tasks of lr 0.1."""
    page.evaluate("document.getElementById('parcoords').scrollIntoView()")
    x, y, width, height = page.evaluate(
        "(() => { const r = document.querySelectorAll('#parcoords .axis-brush')[1]"
        ".getBoundingClientRect(); return [r.x, r.y, r.width, r.height]; })()")
    page.drag(x + width / 2, y + 2, y + height / 2)
    support.wait_for(lambda: rows_shown(page) == 2, what="the brushed rows")
    lrs = page.evaluate("[...document.querySelectorAll('#results tbody tr')]"
                        ".map((r) => r.children[1].textContent)")
    assert lrs == ["0.1", "0.1"]
    assert "2 selected" in page.evaluate("document.getElementById('selection').textContent")
    page.evaluate("document.getElementById('clear-selection').click()")
    support.wait_for(lambda: rows_shown(page) == TASKS, what="the cleared selection")
    assert page.evaluate("document.getElementById('parcoords').data[0].dimensions"
                         ".every((d) => !d.constraintrange)")
    assert page.errors == []


def test_changing_the_metric_redraws_the_plots(page):
    page.evaluate("{ const m = document.getElementById('metric'); m.value = 'acc';"
                  "  m.dispatchEvent(new Event('change')); }")
    support.wait_for(lambda: page.evaluate(
        "document.getElementById('by-param-title').textContent") == "acc against each varying "
                                                                     "param", what="redraw")
    marks = page.evaluate(MARKS)
    assert marks["axes"][-1] == "acc" and marks["lines"] == 6
    assert [p["points"] for p in marks["byParam"]] == [6, 6, 6]
    assert page.errors == []


def test_values_are_shown_as_text_never_as_markup(browser, make_config, cli, workdir):
    """Params, metric names and log lines that look like HTML or a closing script tag."""
    nasty = "</script><b id=injected>x</b>"
    make_config(f"""
        template:
          train: |-
            printf '{{"<i>m</i>": 1}}' > {{_output}}/metrics.json; echo '{nasty}'; exit {{code}}
        ---
        note: ['{nasty}']
        code: [0, 1]
    """)
    assert cli().code == 1
    assert cli("report", "-o", "output").code == 0
    page = browser.open((workdir / "output" / "report.html").as_uri(),
                        "document.body.dataset.ready")
    assert page.errors == []
    assert page.evaluate("document.querySelectorAll('#injected, i').length") == 0
    table = page.evaluate("document.getElementById('results').textContent")
    assert nasty in table and "<i>m</i>" in table
    assert nasty in page.evaluate("document.getElementById('failures').textContent")


@pytest.mark.parametrize("tasks", [0, 2])
def test_nothing_to_plot_is_said_not_failed(browser, make_config, cli, workdir, tasks):
    """No task yet, or tasks without metrics: each part says why it is empty; no error."""
    if tasks:
        make_config("template:\n  a: echo {x}\n---\nx: [1, 2]\n")
        assert cli().code == 0
    else:
        (workdir / "output").mkdir()
    assert cli("report", "-o", "output").code == 0
    page = browser.open((workdir / "output" / "report.html").as_uri(),
                        "document.body.dataset.ready")
    assert page.evaluate("document.body.dataset.ready") == "1" and page.errors == []
    assert rows_shown(page) == tasks
    notes = page.evaluate("document.getElementById('by-param-note').textContent")
    assert notes == "No task wrote a numeric metric (metrics.json)."
    timeline = page.evaluate("document.querySelectorAll('#timeline .js-line').length")
    assert (timeline > 0) == bool(tasks)
