"""`bilevel-ssl`, the installed command: it names itself, not `make`, in its usage lines and in
the commands it advises (a pip-installed package has no Makefile)."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import pytest

from analysis import commands, figures
from experiments import cli
from experiments.run import Run

ROOT = Path(__file__).resolve().parents[2]


def test_the_command_name_is_the_console_script():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert commands.PROG == cli.PROG and list(scripts) == [cli.PROG]


@pytest.mark.parametrize(
    "argv0, expected",
    [
        (
            "bilevel-ssl exp",
            "bilevel-ssl exp metasemi_digits --seed 1 --scale smoke --nproc 2 estimator=fd 'a=b c'",
        ),
        (
            "/usr/lib/python3.11/experiments/__main__.py",
            'make exp NAME=metasemi_digits SEED=1 SCALE=smoke ARGS="estimator=fd a=b c" NPROC=2',
        ),
    ],
)
def test_a_run_names_the_command_that_trains_it_as_this_process_was_started(
    monkeypatch, argv0, expected
):
    monkeypatch.setattr(sys, "argv", [argv0])
    run = Run("metasemi_digits", 1, "smoke", ("estimator=fd", "a=b c"))
    assert run.command(2) == expected


def test_usage_lines_and_advice_name_bilevel_ssl(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(sys, "argv", ["/venv/bin/bilevel-ssl"])  # main renames argv[0]
    with pytest.raises(SystemExit) as stop:
        commands.main(["exp", "--help"])
    assert stop.value.code == 0 and capsys.readouterr().out.startswith("usage: bilevel-ssl exp ")
    with pytest.raises(SystemExit):
        commands.main(["sweep", "--help"])
    assert capsys.readouterr().out.startswith("usage: bilevel-ssl sweep ")
    monkeypatch.setenv("RUNS_ROOT", str(tmp_path / "runs"))
    assert commands.main(
        ["figures", "--scale", "smoke", "--out", str(tmp_path), "--only", "impute"]
    )
    err = capsys.readouterr().err
    assert "bilevel-ssl exp impute_v1_synthfaces --seed 0 --scale smoke" in err
    assert "bilevel-ssl reproduce --scale smoke makes every missing run" in err
    assert "make " not in err
    sys.argv[0] = "python"  # as `python -m analysis.figures` / `make figures`
    assert figures.main(["--scale", "smoke", "--out", str(tmp_path), "--only", "impute"]) == 1
    err = capsys.readouterr().err
    assert "make exp NAME=impute_v1_synthfaces SEED=0 SCALE=smoke" in err
    assert "make reproduce SCALE=smoke" in err


@pytest.fixture(autouse=True)
def _restore_argv(monkeypatch):
    monkeypatch.setattr(sys, "argv", list(sys.argv))
