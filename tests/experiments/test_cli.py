"""Every command-line entry point ends in one message and an exit status, never a traceback."""

import pytest

from analysis import meta_check
from bilevel.extras import MissingExtra
from experiments.cli import run_cli
from experiments.config import ConfigError
from experiments.errors import Diverged, Interrupted
from experiments.sources import DataError


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
        (MissingExtra("x needs the higher package: pip …"), 2, "error: x needs the higher"),
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

    monkeypatch.setattr("experiments.run.train", refuse)
    assert run_cli(meta_check.main) == 2
    err = capsys.readouterr().err
    assert err == "error: num_labels: must be a positive multiple of 10\n"


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (["--nproc", "0"], "error: nproc: must be >= 1 (processes of the run), got 0"),
        (["--nproc", "-1"], "error: nproc: must be >= 1 (processes of the run), got -1"),
        (["--seed", str(2**64)], "error: seed: must be an integer in [0, 2^63 - 1], got 184467"),
        (["--seed", "-3"], "error: seed: must be an integer in [0, 2^63 - 1], got -3"),
        (["lr=0.1", "lr=0.2"], "error: override: lr is given twice ('lr=0.1' and 'lr=0.2')"),
    ],
)
def test_make_exp_refuses_bad_command_lines_before_any_work(
    tmp_path, monkeypatch, capsys, args, text
):
    """Through `python -m experiments`: exit 2, one line, no run directory."""
    from experiments.__main__ import main

    monkeypatch.setenv("RUNS_ROOT", str(tmp_path / "runs"))
    assert main(["supervised_digits", "--scale", "smoke", "--quiet", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith(text) and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "runs").exists()


def test_make_sweep_refuses_a_grid_key_given_twice(tmp_path, monkeypatch, capsys):
    from analysis import sweep

    monkeypatch.setenv("RUNS_ROOT", str(tmp_path / "runs"))
    status = run_cli(lambda: sweep.main(["supervised_digits", "--grid", "lr=0.1 lr=0.2"]))
    assert status == 2
    assert "error: grid: lr is given twice ('lr=0.1' and 'lr=0.2')" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_runtime_settings_are_not_part_of_the_run_directory():
    """`workers` may change on resume (docs/experiments.md): a run cut with ARGS="workers=2"
    and rerun without it is the same run directory."""
    from experiments.run import run_name

    assert run_name("x", ["workers=2", "lr=0.1"]) == run_name("x", ["lr=0.1"]) == "x+lr=0.1"
    assert run_name("x", ["tensorboard=false"]) == "x"


def test_make_sweep_refuses_a_key_in_both_args_and_grid():
    from analysis import sweep

    with pytest.raises(ConfigError, match="lr is given twice"):
        sweep.expand("supervised_digits", [0], "lr=0.1,0.2", ("lr=0.3",))


def test_process_launching_and_collectives_import_nothing_of_the_command():
    """No import circle: `experiments.launch` gets the entry point as an argument and
    `experiments.distributed` holds the collectives; neither imports the command."""
    import ast
    from pathlib import Path

    import experiments

    folder = Path(experiments.__file__).parent
    for name in ("launch", "distributed"):
        tree = ast.parse((folder / f"{name}.py").read_text())
        imported = {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert not {m for m in imported if m.endswith(("__main__", "command"))}, name
