"""Every command-line entry point ends in one message and an exit status, never a traceback."""

import pytest

from analysis import meta_check
from experiments.cli import run_cli
from experiments.config import ConfigError
from experiments.sources import DataError
from experiments.train import Diverged, Interrupted


def _raises(err):
    def main():
        raise err

    return main


@pytest.mark.parametrize(
    ("err", "status", "text"),
    [
        (ConfigError("steps: steps must be > 0"), 2, "error: steps: steps must be > 0\n"),
        (DataError("/d/x.mat: row 3: bad"), 2, "error: /d/x.mat: row 3: bad\n"),
        (PermissionError(13, "Permission denied", "/runs"), 2, "error: [Errno 13] Permission"),
        (Diverged("x seed 0: the training loss is not finite"), 1, "\nerror: x seed 0: the"),
        (Interrupted(41, 30, "runs/x/seed0"), 130, "The same command resumes from step 30."),
        (KeyboardInterrupt(), 130, "interrupted (no run was training; nothing to resume)"),
    ],
)
def test_errors_become_one_message_and_a_status(capsys, err, status, text):
    assert run_cli(_raises(err)) == status
    out = capsys.readouterr()
    assert text in out.err and "Traceback" not in out.err and out.out == ""


def test_other_exceptions_are_bugs_and_keep_their_traceback():
    with pytest.raises(ZeroDivisionError):
        run_cli(_raises(ZeroDivisionError()))


def test_make_check_meta_reports_a_bad_run_without_a_traceback(tmp_path, monkeypatch, capsys):
    """`make check-meta` trains through the same loop: a refused run is one error line."""
    monkeypatch.setenv("RUNS_ROOT", str(tmp_path / "runs"))
    monkeypatch.setattr("sys.argv", ["meta_check", "--seeds", "0", "--no-faces"])

    def refuse(*args, **kwargs):
        raise ConfigError("num_labels: must be a positive multiple of 10")

    monkeypatch.setattr("analysis.seeds.train", refuse)
    assert run_cli(meta_check.main) == 2
    err = capsys.readouterr().err
    assert err == "error: num_labels: must be a positive multiple of 10\n"
