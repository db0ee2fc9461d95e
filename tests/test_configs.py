"""Every example in configs/ runs as the README says, from the repository root."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = sorted(p.name for p in (ROOT / "configs").glob("*.yaml"))


@pytest.mark.parametrize("name", CONFIGS)
def test_example_config_runs(name, tmp_path):
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    argv = [sys.executable, "-m", "runner", "-y", f"configs/{name}", "-o", "output"]
    result = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    again = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "nothing to run" in again.stdout


def test_main_example_writes_metrics(tmp_path):
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    subprocess.run([sys.executable, "-m", "runner", "-y", "configs/example.yaml", "-o", "output"],
                   cwd=tmp_path, check=True, capture_output=True, timeout=120)
    metrics = sorted((tmp_path / "output").glob("*/metrics.json"))
    assert len(metrics) == 7
    assert all(0 < json.loads(m.read_text())["loss"] < 1 for m in metrics)
