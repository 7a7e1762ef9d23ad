"""The tutorials in docs/tutorials run as a user runs them (a subprocess, from a folder outside
the repository) at a small size, and their estimators agree."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

TUTORIALS = Path(__file__).resolve().parents[1] / "docs" / "tutorials"


def _run(tmp_path: Path, script: str, *args: str) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("PYTHONPATH", None)
    done = subprocess.run(
        [sys.executable, str(TUTORIALS / script), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _errors(out: str, pattern: str) -> dict[str, float]:
    return {m[0]: float(m[1]) for m in re.findall(pattern, out)}


def test_weight_decay_tutorial(tmp_path):
    out = _run(tmp_path, "weight_decay.py", "--rounds", "3", "--steps", "3")
    errors = _errors(out, r"K=\d (\w+) +[-+][\d.e+-]+  ([\d.e+-]+)")
    assert set(errors) == {"func", "higher", "auto", "forward", "fd"}, out
    assert max(v for k, v in errors.items() if k != "fd") <= 1e-10 and errors["fd"] <= 1e-5
    assert len(re.findall(r"round +\d+ +log_wd", out)) >= 2


def test_reweight_tutorial(tmp_path):
    out = _run(tmp_path, "reweight_noisy.py", "--steps", "20")
    errors = _errors(out, r"(\w+) +rel\. error ([\d.e+-]+)")
    assert set(errors) == {"func", "higher", "forward", "fd", "auto"}, out
    assert max(v for k, v in errors.items() if k != "fd") <= 1e-12 and errors["fd"] <= 1e-6
    assert re.search(r"plain 0\.\d+ +reweighted \(auto\) 0\.\d+", out), out


def test_new_method_tutorial(tmp_path):
    out = _run(tmp_path, "new_method/meta_uweight_digits.py", "--steps", "20", "--seeds", "0")
    errors = _errors(out, r"(\w+) +[-+][\d.e+-]+  rel\. diff ([\d.e+-]+)")
    assert set(errors) == {"func", "higher", "forward", "fd", "auto"}, out
    assert max(v for k, v in errors.items() if k != "fd") <= 1e-5 and errors["fd"] <= 1e-3
    assert re.search(r"pseudo_label_digits +\d+\.\d+\n +meta_uweight_digits +\d+\.\d+", out)


def test_side_by_side_agrees_with_higher_and_torchopt(tmp_path):
    out = _run(tmp_path, "side_by_side.py", "--steps", "2", "--repeats", "2")
    rows = re.findall(r"\| ([\w\- ()]+) \| (\d+) \| [\d.]+ \| [-+][\d.e+-]+ \| ([\d.e+-]+) \|", out)
    assert [r[0] for r in rows] == ["bilevel-ssl (func)", "higher", "TorchOpt"], out
    assert max(float(r[2]) for r in rows) <= 1e-6
