"""Every public name of the real psweep 0.16 (`dir(psweep)`) is in runner.sweep, as the same object
where psweep hands on someone else's (modules, typing names, os.path.join), and star imports give
the same names."""

from __future__ import annotations

import inspect
import subprocess
import sys
from types import ModuleType

import runner.sweep as ps


def public(names) -> set[str]:
    return {name for name in names if not name.startswith("_")}


def test_every_public_name_of_psweep_is_here(psweep016):
    missing = public(dir(psweep016)) - set(dir(ps))
    assert missing == set()
    assert isinstance(ps.__version__, str)


def test_names_psweep_hands_on_are_the_same_objects(psweep016):
    for name in sorted(public(dir(psweep016))):
        theirs, ours = getattr(psweep016, name), getattr(ps, name)
        if name == "psweep":  # psweep's own module psweep.psweep; ours: runner.sweep itself
            assert ours is ps
        elif isinstance(theirs, ModuleType):
            assert ours is theirs, name
        elif not str(getattr(theirs, "__module__", "")).startswith("psweep"):
            assert ours is theirs or ours == theirs, name  # partial, Any, pj, constants, pd.NA
        else:  # psweep's own functions and classes: ours, of the same kind
            assert callable(ours) == callable(theirs), name
            assert inspect.isclass(ours) == inspect.isclass(theirs), name
    assert ps.pj("calc", "x") == "calc/x"
    assert ps.GIT_ADD_ALL == psweep016.GIT_ADD_ALL == "git add -A -v"


def test_star_import_gives_psweeps_names(psweep016):
    theirs: dict = {}
    exec("from psweep import *", theirs)
    ours: dict = {}
    exec("from runner.sweep import *", ours)
    assert public(theirs) - public(ours) == set()
    assert ours["np"] is theirs["np"] and ours["pj"] is theirs["pj"]
    assert set(ps.__all__) <= set(dir(ps))


def test_psweep_module_path(psweep016):
    from runner.sweep.psweep import pgrid, plist, run

    assert run is ps.run and pgrid is ps.pgrid and plist is ps.plist
    assert public(dir(psweep016.psweep)) <= set(dir(ps.psweep))
    import runner.sweep.psweep

    assert runner.sweep.psweep is ps


def test_jinja2_is_imported_on_first_use():
    code = (
        "import sys, runner.sweep as ps\n"
        "print('jinja2' in sys.modules)\n"
        "print(ps.jinja2.__name__, 'jinja2' in sys.modules, 'jinja2' in dir(ps))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["False", "jinja2", "True", "True"]
