"""Fixtures for the runner.sweep tests: a working folder, template trees, and the real psweep 0.16.

psweep 0.16 is installed from PyPI with `pip install --target` into pytest's cache folder (once),
not into the environment: its wheel ships console scripts named like ours (psweep-db2json,
psweep-db2table, psweep-checkdir), so installing both into one environment overwrites one set.
A second target pairs psweep with pandas 2, on which most psweep databases were written.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import warnings
from pathlib import Path
from types import ModuleType
from typing import Callable

import pytest

PSWEEP_VERSION = "0.16.0"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """tmp_path as the current folder (run() writes calc/ relative to it)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="session")
def psweep016(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> ModuleType:
    """The real psweep 0.16 module, imported from a private --target install."""
    target = _pip_target(
        request, tmp_path_factory, f"psweep-{PSWEEP_VERSION}", [f"psweep=={PSWEEP_VERSION}"]
    )
    sys.path.insert(0, str(target))
    try:
        with warnings.catch_warnings():  # psweep's import calls warnings.simplefilter("default")
            module = importlib.import_module("psweep")
    finally:
        sys.path.remove(str(target))
    assert module.__version__ == PSWEEP_VERSION, module.__file__
    return module


def _pip_target(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    name: str,
    reqs: list[str],
) -> Path:
    """`pip install --target` of `reqs` (no dependencies) into pytest's cache, once."""
    cache = getattr(request.config, "cache", None)
    target = Path(cache.mkdir(name) if cache else tmp_path_factory.mktemp(name))
    if not (target / ".complete").exists():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-deps",
                "--upgrade",
                "--target",
                str(target),
                *reqs,
            ],
            check=True,
        )
        (target / ".complete").write_text(" ".join(reqs))
    return target


@pytest.fixture(scope="session")
def psweep016_pandas2(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Callable:
    """Run Python code in a subprocess where psweep 0.16 runs on pandas 2 (common for psweep)."""
    target = _pip_target(
        request,
        tmp_path_factory,
        f"psweep-{PSWEEP_VERSION}-pandas2",
        [f"psweep=={PSWEEP_VERSION}", "pandas>=2.2,<3", "pytz"],
    )

    def run_code(code: str, cwd: Path) -> str:
        env = {**os.environ, "PYTHONPATH": str(target)}
        res = subprocess.run(
            [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True
        )
        assert res.returncode == 0, res.stderr
        return res.stdout

    return run_code


@pytest.fixture
def make_templates(tmp_path: Path) -> Callable[..., Path]:
    """Factory: a templates/ tree with calc files and machines {name: (jobscript, subcmd)}."""

    def make(
        calc: dict[str, str], machines: dict[str, tuple[str, str]], root: Path | None = None
    ) -> Path:
        base = (root or tmp_path) / "templates"
        (base / "calc").mkdir(parents=True)
        for name, txt in calc.items():
            (base / "calc" / name).write_text(txt)
        for name, (jobscript, subcmd) in machines.items():
            mdir = base / "machines" / name
            mdir.mkdir(parents=True)
            (mdir / "jobscript").write_text(jobscript)
            (mdir / "info.yaml").write_text(f"---\nsubcmd: {subcmd}\n")
        return base

    return make
