"""Imports: every module on its own, optional dependencies only where needed, clear errors."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import pytest

import runner.sweep as ps
import runner.sweep.scripts
from runner.sweep.errors import SweepDependencyError

MODULES = sorted(
    [f"runner.sweep.{m.name}" for m in pkgutil.iter_modules(ps.__path__)]
    + [
        f"runner.sweep.scripts.{m.name}"
        for m in pkgutil.iter_modules(runner.sweep.scripts.__path__)
    ]
)


def python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)


def test_every_module_imports_first():
    code = (
        "import importlib, sys\n"
        f"for name in {MODULES!r}:\n"
        "    for key in [k for k in sys.modules if k == 'runner' or k.startswith('runner.')]:\n"
        "        del sys.modules[key]\n"
        "    importlib.import_module(name)\n"
        "print(len(sys.argv))\n"
    )
    res = python(code)
    assert res.returncode == 0, res.stderr
    assert len(MODULES) >= 15


SWEEP_DEPS = ("pandas", "joblib", "jinja2", "numpy")


def test_runner_does_not_import_sweep_dependencies():
    probe = "print(sorted(m for m in {names} if m in sys.modules))"
    res = python("import sys, runner, runner.errors; " + probe.format(names=SWEEP_DEPS))
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"
    res = python(
        "import sys, runner.sweep; " + probe.format(names=("jinja2", "distributed", "tabulate"))
    )
    assert res.stdout.strip() == "[]", res.stderr


@pytest.mark.parametrize("missing", ["pandas", "joblib"])
def test_missing_dependency_names_the_extra(missing):
    res = python(
        f"import sys; sys.modules[{missing!r}] = None\n"
        "try:\n    import runner.sweep\n"
        "except ImportError as ex:\n    print(type(ex).__name__, ex)\n"
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("SweepDependencyError runner.sweep needs the Python module")
    assert f"'{missing}'" in res.stdout
    assert "pip install '.[sweep]' in a clone of the runner repository" in res.stdout


def test_missing_jinja2_only_matters_for_jinja_templates(monkeypatch):
    from runner.sweep.templates import render_template

    monkeypatch.setitem(sys.modules, "jinja2", None)
    assert render_template("a=$a", {"a": 1}, mode="dollar") == "a=1"
    with pytest.raises(SweepDependencyError, match=r"pip install '\.\[sweep\]' in a clone"):
        render_template("a={{ a }}", {"a": 1})


SPEC_NAMES = """
plist pgrid itr2params stargrid merge_dicts filter_params_unique filter_params_dup_hash intspace
logspace run pset_hash PSET_HASH_ALG PsweepHashError df_read df_write df_to_json df_print
df_filter_conds filter_cols df_extract_dicts df_extract_params df_extract_row df_extract_pset
df_update_pset_hash df_update_pset_cols df_ensure_dtypes check_calc_dir prep_batch FileTemplate
Machine gather_calc_templates gather_machines system makedirs fullpath itr is_seq flatten
flatten_dict file_write file_read pickle_write pickle_read json_write json_read get_uuid
get_many_uuids git_clean in_git_repo git_enter git_exit func_wrapper capture_logs_wrapper CALC_DIR
DATABASE_BASENAME FILL_VALUE __version__
""".split()


def test_spec_names_exist():
    missing = [name for name in SPEC_NAMES if not hasattr(ps, name)]
    assert missing == []
    assert set(SPEC_NAMES) - {"__version__"} <= set(ps.__all__)
    assert issubclass(ps.PsweepHashError, TypeError)
