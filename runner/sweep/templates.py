"""Batch runs from template files: `prep_batch` writes one folder per pset and submit scripts.

Layout read::

    templates/calc/<file>                   rendered into <calc_dir>/<_pset_id>/<file>
    templates/machines/<machine>/jobscript  rendered into <calc_dir>/<_pset_id>/jobscript_<machine>
    templates/machines/<machine>/info.yaml  machine settings, e.g. `subcmd: sbatch`

and `<calc_dir>/run_<machine>.sh` submits every pset's jobscript (older runs commented out).
"""

from __future__ import annotations

import os
import string
from typing import Any, Sequence

import pandas as pd

from runner.errors import ConfigError
from runner.spec.yamlfile import parse_yaml_documents, read_yaml_text
from runner.sweep.database import CALC_DIR, DATABASE_BASENAME
from runner.sweep.errors import SweepDependencyError, SweepValueError
from runner.sweep.fileio import file_read, file_write, pickle_write
from runner.sweep.git import git_enter, git_exit
from runner.sweep.runloop import run, setup_simulate_dir

TEMPLATE_MODES = ("jinja", "dollar")
JOBSCRIPT_NAME = "jobscript"
INFO_FILENAME = "info.yaml"
PSET_FILENAME = "pset.pk"


def _jinja2() -> Any:
    try:
        import jinja2
    except ImportError as ex:
        raise SweepDependencyError(
            "jinja2", "sweep", "prep_batch(..., template_mode='jinja')"
        ) from ex
    return jinja2


def render_template(txt: str, pset: dict, mode: str = "jinja") -> str:
    """Fill a template from `pset`: jinja2 (strict about undefined names) or `$name` style."""
    if mode == "dollar":
        return string.Template(txt).substitute(pset)
    if mode == "jinja":
        jinja2 = _jinja2()
        return jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(txt).render(pset)
    raise SweepValueError(
        f"template_mode={mode!r} not supported; use one of {', '.join(map(repr, TEMPLATE_MODES))}"
    )


class FileTemplate:
    """A template file and the name its rendered copy gets (`basename + target_suffix`)."""

    def __init__(self, filename: str, target_suffix: str = ""):
        self.filename = filename
        self.basename = os.path.basename(filename)
        self.dirname = os.path.dirname(filename)
        self.targetname = f"{self.basename}{target_suffix}"

    def __repr__(self) -> str:
        return self.filename

    def fill(self, pset: dict, mode: str = "jinja") -> str:
        """The template's text filled from `pset`; an error names the template file."""
        try:
            return render_template(file_read(self.filename), pset, mode)
        except Exception as ex:
            ex.add_note(f"failed to fill template: {self.filename}")
            raise


class Machine:
    """A machine: `templates/machines/<name>/` with a jobscript template and info.yaml settings."""

    def __init__(self, machine_dir: str, jobscript_name: str = JOBSCRIPT_NAME):
        self.name = os.path.basename(os.path.normpath(machine_dir))
        self.template = FileTemplate(
            os.path.join(machine_dir, jobscript_name), target_suffix="_" + self.name
        )
        info_fn = os.path.join(machine_dir, INFO_FILENAME)
        try:
            documents = parse_yaml_documents(read_yaml_text(info_fn), info_fn)
        except ConfigError as e:  # the one YAML reader: limits on anchors, depth and size
            raise SweepValueError(str(e)) from None
        info = (documents[0][0] if documents else None) or {}
        if not isinstance(info, dict):
            raise SweepValueError(
                f"{info_fn}: expected a mapping such as `subcmd: sbatch`, got {info!r}"
            )
        for key, val in info.items():
            if key in self.__dict__:
                raise SweepValueError(
                    f"{info_fn}: key {key!r} is reserved (cannot overwrite Machine.{key})"
                )
            setattr(self, key, val)

    def __repr__(self) -> str:
        return f"{self.name}:{self.template}"


def gather_calc_templates(calc_templ_dir: str) -> list[FileTemplate]:
    """One FileTemplate per file in `calc_templ_dir`."""
    names = sorted(os.listdir(calc_templ_dir))
    return [
        FileTemplate(os.path.join(calc_templ_dir, name))
        for name in names
        if os.path.isfile(os.path.join(calc_templ_dir, name))
    ]


def gather_machines(machine_templ_dir: str) -> list[Machine]:
    """One Machine per folder in `machine_templ_dir`."""
    names = sorted(os.listdir(machine_templ_dir))
    return [
        Machine(os.path.join(machine_templ_dir, name))
        for name in names
        if os.path.isdir(os.path.join(machine_templ_dir, name))
    ]


def make_run_script(df: pd.DataFrame, machine: Machine) -> str:
    """Text of `run_<machine>.sh`: one submit line per row, rows of older runs commented out."""
    subcmd = getattr(machine, "subcmd", None)
    if subcmd is None:
        raise SweepValueError(
            f"machine {machine.name!r}: its {INFO_FILENAME} has no `subcmd` (e.g. `subcmd: sbatch`)"
        )
    latest = df._run_seq.values.max()
    old, new = [], []
    for pset_id, pset_seq, run_seq in zip(
        df._pset_id.values, df._pset_seq.values, df._run_seq.values
    ):
        line = (
            f"cd $here/{pset_id}; {subcmd} {machine.template.targetname}  "
            f"# run_seq={run_seq} pset_seq={pset_seq}"
        )
        if run_seq == latest:
            new.append(line)
        else:
            old.append("# " + line)
    body = "".join("\n" + "\n".join(lines) for lines in (old, new) if lines)
    return f"#!/bin/sh\n\nhere=$(readlink -f $(dirname $0))\n{body}\n"


class _RenderPset:
    """The func of prep_batch: write every template (and optionally the pset) for one pset."""

    def __init__(
        self, calc_dir: str, templates: Sequence[FileTemplate], mode: str, write_pset: bool
    ):
        self.calc_dir, self.templates, self.mode, self.write_pset = (
            calc_dir,
            templates,
            mode,
            write_pset,
        )

    def __call__(self, pset: dict) -> dict:
        pset_dir = os.path.join(self.calc_dir, pset["_pset_id"])
        for template in self.templates:
            file_write(
                os.path.join(pset_dir, template.targetname), template.fill(pset, mode=self.mode)
            )
        if self.write_pset:
            pickle_write(os.path.join(pset_dir, PSET_FILENAME), pset)
        return {}


def prep_batch(
    params: Sequence[dict],
    *,
    calc_templ_dir: str = "templates/calc",
    machine_templ_dir: str = "templates/machines",
    git: bool = False,
    write_pset: bool = False,
    template_mode: str = "jinja",
    **kwds: Any,
) -> pd.DataFrame:
    """Render templates for each pset through `run` and write `<calc_dir>/run_<machine>.sh`.

    `write_pset` also pickles each pset to `<calc_dir>/<pset_id>/pset.pk`; `template_mode` is
    "jinja" (strict: undefined names are errors) or "dollar" (string.Template, `$$` for `$`).
    Other keywords go to `run`; `simulate=True` works in `<calc_dir>.simulate`.
    """
    if template_mode not in TEMPLATE_MODES:
        raise SweepValueError(
            f"template_mode={template_mode!r} not supported; use one of "
            + ", ".join(map(repr, TEMPLATE_MODES))
        )
    git_enter(git)
    calc_dir = kwds.pop("calc_dir", CALC_DIR)
    database_basename = kwds.pop("database_basename", DATABASE_BASENAME)
    if kwds.pop("simulate", False):
        calc_dir = setup_simulate_dir(calc_dir, database_basename)

    machines = gather_machines(machine_templ_dir)
    templates = gather_calc_templates(calc_templ_dir) + [machine.template for machine in machines]
    func = _RenderPset(calc_dir, templates, template_mode, write_pset)
    df = run(
        func,
        params,
        git=False,
        simulate=False,
        calc_dir=calc_dir,
        database_basename=database_basename,
        **kwds,
    )

    for machine in machines:
        file_write(os.path.join(calc_dir, f"run_{machine.name}.sh"), make_run_script(df, machine))
    git_exit(git, df)
    return df
