"""psweep-db2json, psweep-db2table, psweep-checkdir: main(argv) in-process and installed scripts.

psweep-pull and psweep-push are in test_sweep_rsync.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import runner.sweep as ps
from runner.sweep.scripts import checkdir, db2json, db2table


def func(pset):
    return {"note": f"n{pset['a']}"}


@pytest.fixture
def db(workdir):
    return ps.run(func, ps.plist("a", [1, 20]))


def script(name: str) -> str:
    """The installed console script (next to this interpreter, else on PATH)."""
    path = Path(sys.executable).parent / name
    found = str(path) if path.exists() else shutil.which(name)
    if found is None:
        pytest.fail(f"console script {name} is not installed; run: pip install -e '.[test]'")
    return found


def test_console_scripts(db):
    out = subprocess.run(
        [script("psweep-db2json"), "calc/database.pk"], capture_output=True, text=True, check=True
    )
    assert [r["_pset_id"] for r in json.loads(out.stdout)] == db._pset_id.tolist()
    out = subprocess.run(
        [script("psweep-db2table"), "-i", "-a", "-f", "simple", "calc/database.pk"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "_pset_id" in out.stdout.splitlines()[0] and db._pset_id.values[1] in out.stdout
    os.makedirs(f"calc/{db._pset_id.values[0]}")
    out = subprocess.run(
        [script("psweep-checkdir"), "calc"], capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) == {"db_not_disk": [db._pset_id.values[1]], "disk_not_db": []}


def test_console_script_error_is_one_line(workdir):
    res = subprocess.run([script("psweep-db2json"), "nope.pk"], capture_output=True, text=True)
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.startswith("psweep-db2json: error: ") and len(res.stderr.splitlines()) == 1
    assert "nope.pk" in res.stderr


def test_db2json(db, capsys):
    assert db2json.main(["calc/database.pk"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["a"] for r in records] == [1, 20] and records[0]["note"] == "n1"
    assert records[0]["_time_utc"].startswith(str(db._time_utc.values[0])[:19].replace(" ", "T"))
    assert db2json.main(["-o", "columns", "calc/database.pk"]) == 0
    assert set(json.loads(capsys.readouterr().out)) == set(db.columns)
    with pytest.raises(SystemExit) as info:
        db2json.main(["-o", "nope", "calc/database.pk"])
    assert info.value.code == 2


def table(capsys, *args):
    assert db2table.main([*args]) == 0
    return capsys.readouterr().out.splitlines()


def test_db2table_columns(db, capsys):
    lines = table(capsys, "calc/database.pk")
    assert (
        lines[0].split() == ["a", "note"]
        and lines[2].split() == ["1", "n1"]
        and set(lines[1]) == {"-", " "}
    )
    lines = table(capsys, "-a", "calc/database.pk")
    assert lines[0].split() == list(db.columns)
    lines = table(capsys, "calc/database.pk", "_pset_id", "a")
    assert lines[0].split() == ["_pset_id", "a"] and lines[3].split() == [
        db._pset_id.values[1],
        "20",
    ]
    lines = table(capsys, "-i", "calc/database.pk", "a")
    assert (
        lines[0].split() == ["a"]
        and lines[2].split() == ["0", "1"]
        and lines[3].split() == ["1", "20"]
    )


def test_db2table_numbers_aligned_at_the_point(workdir, capsys):
    ps.df_write(
        "db.pk", pd.DataFrame({"x": [1.5, 10.25, None], "s": ["a", "bbb", "c"]}, dtype=object)
    )
    assert table(capsys, "db.pk") == [
        "    x  s",
        "-----  ---",
        " 1.5   a",
        "10.25  bbb",
        "       c",
    ]


def _awkward_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "x": [1.5, 10.25, np.int64(3), 1.23456789e-4, None],
            "s": ["a", "bbb", None, pd.NA, "e"],
            "b": [True, False, True, False, True],
            "l": [[1, 2], {"k": 1}, 3, "x", pd.Timestamp(0)],
        },
        dtype=object,
    )


@pytest.mark.parametrize("fmt", db2table.PSWEEP_FORMATS)
@pytest.mark.parametrize("index", [False, True])
def test_db2table_psweep_formats_are_tabulate_tables(workdir, capsys, fmt, index):
    """psweep-db2table hands -f to tabulate: every format its help lists gives that table."""
    from tabulate import tabulate

    df = _awkward_frame()
    ps.df_write("db.pk", df)
    lines = table(capsys, "-f", fmt, *(["-i"] if index else []), "db.pk")
    assert lines == tabulate(df, headers="keys", tablefmt=fmt, showindex=index).splitlines()


def test_db2table_every_tabulate_format(workdir, capsys):
    from tabulate import tabulate, tabulate_formats

    df = _awkward_frame()
    ps.df_write("db.pk", df)
    for fmt in tabulate_formats:
        expected = tabulate(df, headers="keys", tablefmt=fmt, showindex=False).splitlines()
        assert table(capsys, "-f", fmt, "db.pk") == expected, fmt


def test_db2table_fancy_grid_literal(db, capsys):
    assert table(capsys, "-f", "fancy_grid", "calc/database.pk") == [
        "╒═════╤════════╕",
        "│   a │ note   │",
        "╞═════╪════════╡",
        "│   1 │ n1     │",
        "├─────┼────────┤",
        "│  20 │ n20    │",
        "╘═════╧════════╛",
    ]


def test_db2table_grid_literal(db, capsys):
    assert table(capsys, "-f", "grid", "calc/database.pk") == [
        "+-----+--------+",
        "|   a | note   |",
        "+=====+========+",
        "|   1 | n1     |",
        "+-----+--------+",
        "|  20 | n20    |",
        "+-----+--------+",
    ]


def test_db2table_tabulate_format(db, capsys):
    lines = table(capsys, "-f", "html", "calc/database.pk")
    assert lines[0] == "<table>" and any("<td>n20 </td>" in line or "n20" in line for line in lines)


def test_db2table_errors(db, capsys, monkeypatch):
    assert db2table.main(["-f", "simpel", "calc/database.pk"]) == 2
    assert "did you mean 'simple'" in capsys.readouterr().err
    assert db2table.main(["calc/database.pk", "nots"]) == 2
    assert "no column 'nots' (did you mean 'note'?)" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "tabulate", None)
    assert db2table.main(["-f", "latex", "calc/database.pk"]) == 2
    err = capsys.readouterr().err
    assert "needs the Python module 'tabulate'" in err
    assert "pip install '.[sweep]' in a clone of the runner repository" in err


def test_checkdir(db, capsys):
    stray = "0a1fb364-8681-4178-869e-1126f3719da4"
    os.makedirs(f"calc/{stray}")
    os.makedirs(f"calc/{db._pset_id.values[1]}")
    assert checkdir.main(["calc"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "db_not_disk": [db._pset_id.values[0]],
        "disk_not_db": [stray],
    }
    assert checkdir.main(["nowhere"]) == 2
    assert capsys.readouterr().err.startswith("psweep-checkdir: error: ")


def test_setup_installs_every_psweep_script():
    """setup.py's console scripts: psweep's five names, each a main(argv) of ours."""
    import importlib
    import re

    setup_py = (Path(__file__).parents[2] / "setup.py").read_text()
    entries = dict(re.findall(r'"(psweep-[a-z0-9]+)=([\w.]+:\w+)"', setup_py))
    assert sorted(entries) == [
        "psweep-checkdir",
        "psweep-db2json",
        "psweep-db2table",
        "psweep-pull",
        "psweep-push",
    ]
    for name, target in entries.items():
        module, func = target.split(":")
        main = getattr(importlib.import_module(module), func)
        with pytest.raises(SystemExit) as info:
            main(["--help"])
        assert info.value.code == 0, name
