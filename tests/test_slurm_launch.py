"""`run launch-script`: the launcher's example with a local profile (here, N runs in sequence)
and with a cluster profile (`--dry-run` prints the sbatch script). Real processes and signals."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from support import run_process, wait_for

ROOT = Path(__file__).resolve().parent.parent


def launch(cwd, *argv, timeout=60):
    return subprocess.run([sys.executable, "-m", "runner", "launch-script", *argv], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def test_seed_example_runs_here_ten_times(tmp_path):
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    result = launch(tmp_path, "--runs=10", "--profiles", "configs/config.json", "local-gpu",
                    "configs/dummytrain.py", "--steps=10")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("step 10/10") == 10
    assert [line.split(":")[0] for line in result.stdout.splitlines()
            if line.startswith("run ") and "exit status 0" in line] == [
        f"run {i}/10" for i in range(1, 11)]
    assert "10 runs: 10 succeeded, 0 failed" in result.stdout


def test_cpu_profile_hides_the_gpus_and_gpu_profile_keeps_them(tmp_path):
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    env_script = tmp_path / "cvd.py"
    env_script.write_text("import os; print('CVD=' + os.environ.get('CUDA_VISIBLE_DEVICES', "
                          "'unset'))\n")
    base = ["--profiles", "configs/config.json"]
    cpu = subprocess.run([sys.executable, "-m", "runner", "launch-script", *base, "local-cpu",
                          "cvd.py"], cwd=tmp_path, capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", "CUDA_VISIBLE_DEVICES": "3"})
    gpu = subprocess.run([sys.executable, "-m", "runner", "launch-script", *base, "local-gpu",
                          "cvd.py"], cwd=tmp_path, capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", "CUDA_VISIBLE_DEVICES": "3"})
    assert "CVD=\n" in cpu.stdout, cpu.stdout + cpu.stderr
    assert "CVD=3\n" in gpu.stdout, gpu.stdout + gpu.stderr


def test_env_lines_run_before_each_local_run_and_flags_pass_unchanged(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"here": {
        "host": "local", "env": ["export GREETING='hello there'", "cd sub"],
        "python": sys.executable}}))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "show.py").write_text(
        "import json, os, sys; print(json.dumps([os.getcwd(), os.environ['GREETING'], "
        "sys.argv[1:]]))\n")
    flags = ["it's", "$HOME", "a  b", "--x=\"q\""]
    result = launch(tmp_path, "here", "show.py", *flags)
    assert result.returncode == 0, result.stdout + result.stderr
    line = next(x for x in result.stdout.splitlines() if x.startswith("["))
    assert json.loads(line) == [str(tmp_path / "sub"), "hello there", flags]


def test_failed_runs_are_counted_and_the_rest_still_run(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"here": {"host": "local"}}))
    (tmp_path / "flaky.py").write_text(
        "import os, sys\nn = len(os.listdir('marks'))\nopen(f'marks/{n}', 'w').close()\n"
        "sys.exit(3 if n == 1 else 0)\n")
    (tmp_path / "marks").mkdir()
    result = launch(tmp_path, "--runs", "3", "here", "flaky.py")
    assert result.returncode == 1
    assert "run 2/3: exit status 3" in result.stdout
    assert "3 runs: 2 succeeded, 1 failed" in result.stdout
    assert len(list((tmp_path / "marks").iterdir())) == 3


def test_ctrl_c_stops_the_chain(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"here": {"host": "local"}}))
    (tmp_path / "slow.py").write_text(
        "import os, time\nopen(f'started.{os.getpid()}', 'w').close()\ntime.sleep(60)\n")
    proc = run_process(["launch-script", "--runs", "5", "here", "slow.py"], tmp_path)
    wait_for(lambda: list(tmp_path.glob("started.*")), what="the first run to start")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, out + err
    assert "interrupted after 1 of 5 runs" in out
    assert len(list(tmp_path.glob("started.*"))) == 1
    pid = int(next(tmp_path.glob("started.*")).suffix[1:])
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text(
    ).rsplit(")", 1)[1].split()[0]


def test_dry_run_prints_the_script_for_a_cluster_and_the_command_here(tmp_path):
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    cluster = launch(tmp_path, "--dry-run", "--runs=10", "--profiles", "configs/config.json",
                     "cluster-gpu", "configs/dummytrain.py", "--steps=10")
    assert cluster.returncode == 0, cluster.stderr
    assert cluster.stdout == (
        "#!/bin/bash\n#SBATCH --array=0-9\n#SBATCH --cpus-per-task=1\n#SBATCH --gres=gpu:1\n"
        "#SBATCH --mem=500\n#SBATCH --time=00:10:00\n\nexport OMP_NUM_THREADS=1\n"
        "python3 configs/dummytrain.py --steps=10\n")
    here = launch(tmp_path, "--dry-run", "--runs=10", "--profiles", "configs/config.json",
                  "local-gpu", "configs/dummytrain.py", "--steps=10")
    assert here.returncode == 0
    assert "would run here (10 times, in sequence)" in here.stdout
    assert here.stdout.rstrip().endswith("configs/dummytrain.py --steps=10")
    assert not (tmp_path / ".runner").exists()


def test_bad_launch_input(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"here": {"host": "local"}}))
    for argv, fragment in ((["--runs", "0", "here", "x.py"], "--runs 0"),
                           (["nope", "x.py"], "unknown profile"),
                           (["here"], "the following arguments are required: script")):
        result = launch(tmp_path, *argv)
        assert result.returncode == 2, result
        assert result.stderr.count("\n") == 1 and fragment in result.stderr, result.stderr
