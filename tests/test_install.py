"""The installed package as a user meets it: the `bilevel-ssl` command from a folder of their
own that holds an `experiments/` package, runs whose progress bar carries no third-party
warnings, and (slow) `pip install` of the repository into a clean virtualenv used from outside
the repository."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from bilevel import __version__

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bilevel", "methods", "experiments", "analysis")
SCRIPT = Path(sys.executable).parent / "bilevel-ssl"  # the development install's console script
MARK = "the user's own experiments package was imported"


def _env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **extra}
    env.pop("PYTHONPATH", None)
    return env


def _run(cmd: list, cwd: Path, **extra: str) -> subprocess.CompletedProcess:
    cmd = [str(c) for c in cmd]
    return subprocess.run(cmd, cwd=cwd, env=_env(**extra), capture_output=True, text=True)


def _user_folder(tmp_path: Path) -> Path:
    """A user's working folder with a package of their own named `experiments`."""
    work = tmp_path / "work"
    (work / "experiments").mkdir(parents=True)
    (work / "experiments" / "__init__.py").write_text(
        f"import sys\nprint({MARK!r}, file=sys.stderr)\n"
    )
    return work


def _installed_script() -> Path:
    assert SCRIPT.is_file(), (
        f"{SCRIPT} is missing: reinstall the package (make setup, or pip install --no-deps "
        "--no-build-isolation -e .)"
    )
    return SCRIPT


def test_console_script_is_not_shadowed_by_a_users_experiments_folder(tmp_path):
    """`bilevel-ssl` runs with its own folder first on sys.path, so the user's `experiments/`
    is not imported and the installed experiments are listed; `python` run in the same folder
    imports the user's folder instead (`python -m experiments` then fails under a regular
    install: the slow test below; the development install's editable finder still serves the
    submodules): why the entry point is the documented way to run the toolkit."""
    work = _user_folder(tmp_path)
    done = _run([_installed_script(), "list"], work)
    assert done.returncode == 0, done.stderr
    assert "metasemi_digits" in done.stdout and MARK not in done.stderr
    version = _run([SCRIPT, "--version"], work)
    assert version.stdout == f"bilevel-ssl {__version__}\n"
    imported = _run([sys.executable, "-c", "import experiments; print(experiments.__file__)"], work)
    assert imported.stdout.strip() == str(work / "experiments" / "__init__.py")


def test_bilevel_ssl_commands(tmp_path):
    """Each subcommand reaches its module's options; no command and an unknown one exit 2."""
    work = _user_folder(tmp_path)
    done = _run([_installed_script(), "figures", "--help"], work)
    assert done.returncode == 0 and "usage: bilevel-ssl figures" in done.stdout, done.stderr
    for argv in ([], ["nope"]):
        done = _run([SCRIPT, *argv], work)
        assert done.returncode == 2 and "commands:\n  list" in done.stderr


def test_a_run_prints_no_third_party_warnings(tmp_path):
    """A short `make exp` of a meta method with the default estimator (auto → forward, whose
    first dual tensor makes torch script its jvp decompositions) and TensorBoard on, with every
    warning shown (`-W default`): no FutureWarning or DeprecationWarning in the progress bar."""
    work = _user_folder(tmp_path)
    argv = ["metasemi_digits", "--scale", "smoke", "steps=3", "eval_every=3", "tensorboard=true"]
    done = _run(
        [_installed_script(), "exp", *argv],
        work,
        PYTHONWARNINGS="default",
        RUNS_ROOT=str(tmp_path / "runs"),
    )
    assert done.returncode == 0, done.stderr
    assert not re.findall(r"\w*Warning\b.*", done.stderr), done.stderr


@pytest.mark.slow
def test_pip_install_into_a_clean_virtualenv_runs_outside_the_repository(tmp_path):
    """`pip install .` (not editable) of a copy of the repository into a fresh virtualenv,
    with the development environment's packages on its path for the dependencies (no network):
    the installed packages, not the repository's, serve `bilevel-ssl list`, a training run and
    a tutorial, from a folder outside the repository that holds an `experiments/` package,
    where `python -m experiments` fails as the issue reported."""
    build_before = (ROOT / "build").exists()
    src = tmp_path / "src"  # the build happens here: no build/ left in the clone
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    for package in PACKAGES:
        shutil.copytree(ROOT / package, src / package, ignore=shutil.ignore_patterns("__pycache__"))
    env = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", env], check=True)
    python = env / "bin" / "python"
    site = _run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], tmp_path)
    # after the new environment's own site-packages: torch, pip, setuptools … of this one
    (Path(site.stdout.strip()) / "dev_env.pth").write_text(sysconfig.get_path("purelib") + "\n")
    pip = [python, "-m", "pip", "install", "-v", "--no-deps", "--no-build-isolation"]
    built = _run([*pip, "--ignore-installed", "--no-index", src], tmp_path)
    assert built.returncode == 0, built.stderr
    log = built.stdout + built.stderr  # -v: the build backend's output
    assert not re.findall(r"\w+Warning\b.*", log), log  # e.g. the licence table's deprecation
    assert (ROOT / "build").exists() == build_before

    work = _user_folder(tmp_path)
    listed = _run([env / "bin" / "bilevel-ssl", "list"], work)
    assert listed.returncode == 0 and "metasemi_digits" in listed.stdout, listed.stderr
    assert MARK not in listed.stderr
    code = "import bilevel, experiments.command as c; print(bilevel.__version__, bilevel.__file__)"
    code += "; print(c.__file__)"
    where = _run([python, "-c", code], tmp_path)
    version, *files = where.stdout.split()
    assert version == __version__, where.stderr
    assert all(Path(f).is_relative_to(env) for f in files), files
    assert (Path(files[0]).parent / "py.typed").is_file()
    shadowed = _run([python, "-m", "experiments", "--list"], work)
    assert shadowed.returncode != 0 and MARK in shadowed.stderr
    assert "No module named experiments.__main__" in shadowed.stderr
    smoke = ["metasemi_digits", "--scale", "smoke", "--quiet", "steps=2", "eval_every=2"]
    run = _run([env / "bin" / "bilevel-ssl", "exp", *smoke], work, RUNS_ROOT=str(work / "runs"))
    assert run.returncode == 0, run.stderr
    assert (work / "runs" / "metasemi_digits+eval_every=2+steps=2+smoke" / "seed0").is_dir()
    tutorial = ROOT / "docs" / "tutorials" / "weight_decay.py"
    if tutorial.is_file():  # the docs' tutorials, run by the installed package
        done = _run([python, tutorial, "--rounds", "2", "--steps", "2"], work)
        assert done.returncode == 0, done.stderr
