"""prep_batch and the template classes, in jinja and dollar mode."""

from __future__ import annotations

import os
import subprocess

import jinja2
import pytest

import runner.sweep as ps

JINJA_RUN_PY = "a = {{ param_a }}\nb = '{{ param_b }}'\nid = '{{ _pset_id }}'\n"
JINJA_JOB = (
    '#SBATCH -J foo_{{ _pset_seq }}_{{ _pset_id }}\necho "hostname=$(hostname)"\npython3 run.py\n'
)
DOLLAR_RUN_PY = "a = $param_a\nb = '${param_b}'\nid = '$_pset_id'\n"
DOLLAR_JOB = (
    '#SBATCH -J foo_${_pset_seq}_${_pset_id}\necho "hostname=$$(hostname)"\npython3 run.py\n'
)
HEADER = "#!/bin/sh\n\nhere=$(readlink -f $(dirname $0))\n"


def params():
    return ps.pgrid(ps.plist("param_a", [1, 2]), ps.plist("param_b", ["xx"]))


def expected_script(df, subcmd, machine):
    latest = max(df._run_seq)
    lines = [
        f"{'' if r == latest else '# '}cd $here/{i}; {subcmd} jobscript_{machine}  "
        f"# run_seq={r} pset_seq={s}"
        for i, r, s in zip(df._pset_id, df._run_seq, df._pset_seq)
    ]
    old = [line for line in lines if line.startswith("# ")]
    new = [line for line in lines if not line.startswith("# ")]
    body = "".join("\n" + "\n".join(part) for part in (old, new) if part)
    return HEADER + body + "\n"


@pytest.mark.parametrize(
    "mode, run_py, job", [("jinja", JINJA_RUN_PY, JINJA_JOB), ("dollar", DOLLAR_RUN_PY, DOLLAR_JOB)]
)
def test_prep_batch_writes_files(workdir, make_templates, mode, run_py, job):
    make_templates({"run.py": run_py}, {"cluster": (job, "sbatch"), "local": (job, "sh")})
    df = ps.prep_batch(params(), template_mode=mode, write_pset=True)
    end = "" if mode == "jinja" else "\n"  # jinja2 drops the final newline (psweep's Environment)
    assert list(df.columns) == [
        "param_a",
        "param_b",
        "_pset_hash",
        "_pset_id",
        "_run_seq",
        "_pset_seq",
        "_run_id",
        "_calc_dir",
        "_time_utc",
        "_exec_host",
        "_pset_runtime",
    ]
    assert sorted(os.listdir("calc")) == sorted(
        [*df._pset_id, "database.pk", "run_cluster.sh", "run_local.sh"]
    )
    for row in ps.df_extract_dicts(df):
        pdir = workdir / "calc" / row["_pset_id"]
        assert sorted(os.listdir(pdir)) == [
            "jobscript_cluster",
            "jobscript_local",
            "pset.pk",
            "run.py",
        ]
        run_py_txt = f"a = {row['param_a']}\nb = 'xx'\nid = '{row['_pset_id']}'{end}"
        assert (pdir / "run.py").read_text() == run_py_txt
        job_txt = f"#SBATCH -J foo_{row['_pset_seq']}_{row['_pset_id']}\n"
        assert (pdir / "jobscript_cluster").read_text() == (
            job_txt + f'echo "hostname=$(hostname)"\npython3 run.py{end}'
        )
        pset = ps.pickle_read(str(pdir / "pset.pk"))
        assert pset["param_a"] == row["param_a"] and pset["_pset_id"] == row["_pset_id"]
    assert (workdir / "calc" / "run_cluster.sh").read_text() == expected_script(
        df, "sbatch", "cluster"
    )
    assert (workdir / "calc" / "run_local.sh").read_text() == expected_script(df, "sh", "local")


def test_run_script_exact_text_over_two_runs(workdir, make_templates):
    make_templates({"run.py": "x"}, {"cluster": ("j", "sbatch")})
    df1 = ps.prep_batch(ps.plist("a", [1]))
    i0 = df1._pset_id.values[0]
    assert (workdir / "calc/run_cluster.sh").read_text() == (
        "#!/bin/sh\n\nhere=$(readlink -f $(dirname $0))\n\n"
        f"cd $here/{i0}; sbatch jobscript_cluster  # run_seq=0 pset_seq=0\n"
    )
    df2 = ps.prep_batch(ps.plist("a", [2, 3]))
    i1, i2 = df2._pset_id.values[1:]
    assert (workdir / "calc/run_cluster.sh").read_text() == (
        "#!/bin/sh\n\nhere=$(readlink -f $(dirname $0))\n\n"
        f"# cd $here/{i0}; sbatch jobscript_cluster  # run_seq=0 pset_seq=0\n"
        f"cd $here/{i1}; sbatch jobscript_cluster  # run_seq=1 pset_seq=1\n"
        f"cd $here/{i2}; sbatch jobscript_cluster  # run_seq=1 pset_seq=2\n"
    )
    assert not (workdir / "calc" / i1 / "pset.pk").exists()


def test_run_script_runs_the_jobs(workdir, make_templates, tmp_path):
    make_templates({}, {"local": ("echo {{ a }} > out.txt\n", "sh")})
    df = ps.prep_batch(ps.plist("a", [5, 6]))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    subprocess.run(["sh", str(workdir / "calc" / "run_local.sh")], check=True, cwd=elsewhere)
    for a, pset_id in zip(df.a, df._pset_id):
        assert (workdir / "calc" / pset_id / "out.txt").read_text() == f"{a}\n"


def test_jinja_is_strict(workdir, make_templates):
    make_templates({"run.py": "{{ nope }}"}, {"local": ("x", "sh")})
    with pytest.raises(jinja2.UndefinedError) as info:
        ps.prep_batch(ps.plist("a", [1]))
    assert any("templates/calc/run.py" in note for note in info.value.__notes__)
    assert not os.path.exists("calc/database.pk")


def test_dollar_mode_missing_key(workdir, make_templates):
    make_templates({"run.py": "$nope"}, {"local": ("x", "sh")})
    with pytest.raises(KeyError, match="nope"):
        ps.prep_batch(ps.plist("a", [1]), template_mode="dollar")


def test_bad_template_mode(workdir, make_templates):
    make_templates({"run.py": "x"}, {"local": ("x", "sh")})
    with pytest.raises(ValueError, match="template_mode='mustache'"):
        ps.prep_batch(ps.plist("a", [1]), template_mode="mustache")
    assert not os.path.exists("calc")


def test_prep_batch_options(workdir, make_templates):
    base = make_templates({"in.txt": "{{ a }}"}, {"local": ("x", "sh")}, root=workdir / "t")
    kw = dict(calc_templ_dir=str(base / "calc"), machine_templ_dir=str(base / "machines"))
    df = ps.prep_batch(ps.plist("a", [1]), calc_dir="out", database_basename="db.pk", **kw)
    assert sorted(os.listdir("out")) == sorted([df._pset_id.values[0], "db.pk", "run_local.sh"])
    df_sim = ps.prep_batch(
        ps.plist("a", [2]), calc_dir="out", database_basename="db.pk", simulate=True, **kw
    )
    assert len(df_sim) == 2 and len(ps.df_read("out/db.pk")) == 1
    assert (workdir / "out.simulate" / df_sim._pset_id.values[1] / "in.txt").read_text() == "2"
    assert "run_local.sh" in os.listdir("out.simulate")


def test_prep_batch_git(workdir, make_templates, monkeypatch):
    for var in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL"):
        monkeypatch.setenv(var, "t@x")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(workdir.parent))
    make_templates({"run.py": "x"}, {"local": ("x", "sh")})
    with pytest.raises(ps.SweepError, match="not in a git repo"):
        ps.prep_batch(ps.plist("a", [1]), git=True)
    subprocess.run("git init -q && git add -A && git commit -qm init", shell=True, check=True)
    df = ps.prep_batch(ps.plist("a", [1]), git=True)
    msg = subprocess.run(
        ["git", "log", "-1", "--format=%s"], capture_output=True, text=True
    ).stdout.strip()
    assert msg == f"psweep: {workdir.name}: run_id={df._run_id.values[-1]}"
    assert ps.git_clean()


def test_template_classes(workdir, make_templates):
    base = make_templates(
        {"b.txt": "{{ x }}", "a.txt": "$x"}, {"cluster": ("j", "sbatch"), "local": ("j", "sh")}
    )
    templates = ps.gather_calc_templates(str(base / "calc"))
    assert [t.basename for t in templates] == ["a.txt", "b.txt"]
    assert templates[0].fill({"x": 3}, mode="dollar") == "3" and templates[1].fill({"x": 4}) == "4"
    assert repr(templates[0]) == templates[0].filename == str(base / "calc" / "a.txt")
    machines = ps.gather_machines(str(base / "machines"))
    assert [(m.name, m.subcmd, m.template.targetname) for m in machines] == [
        ("cluster", "sbatch", "jobscript_cluster"),
        ("local", "sh", "jobscript_local"),
    ]
    assert repr(machines[0]) == f"cluster:{base / 'machines' / 'cluster' / 'jobscript'}"
    ft = ps.FileTemplate("dir/name.sh", target_suffix="_m")
    assert (ft.basename, ft.dirname, ft.targetname) == ("name.sh", "dir", "name.sh_m")
    (base / "machines" / "local" / "info.yaml").write_text("name: clash\n")
    with pytest.raises(ValueError, match="reserved"):
        ps.Machine(str(base / "machines" / "local"))
