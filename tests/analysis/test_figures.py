"""`make figures` / `make reproduce` at smoke scale, in a temporary runs root."""

import pytest

from analysis import figures, reproduce


@pytest.fixture
def roots(tmp_path, monkeypatch):
    monkeypatch.setenv("RUNS_ROOT", str(tmp_path / "runs"))
    return tmp_path


def test_figures_without_runs_fail_and_name_the_commands(roots, capsys):
    out = roots / "figs"
    rc = figures.main(["--scale", "smoke", "--out", str(out), "--only", "impute"])
    err = capsys.readouterr().err
    assert rc == 1
    assert "[impute] not built: 4 run(s) missing" in err
    assert "make exp NAME=impute_v1_synthfaces SEED=0 SCALE=smoke" in err
    assert "make reproduce SCALE=smoke" in err
    assert not out.exists() or not any(out.iterdir())


def test_unknown_figure_name():
    with pytest.raises(SystemExit, match="unknown figure 'nope'"):
        figures.main(["--only", "nope"])


@pytest.mark.slow
def test_reproduce_smoke_writes_every_figure(roots, capsys):
    out = roots / "figs"
    assert reproduce.main(["--scale", "smoke", "--seeds", "0", "--out", str(out)]) == 0
    names = {p.name for p in out.iterdir()}
    for fig in (
        "metagrad_theorem1",
        "metagrad_theorem2",
        "metasemi_assumption1",
        "metathreshold_fig4_pseudo_labels",
        "metathreshold_fig5a_histogram",
        "metathreshold_fig5b_imbalanced",
        "metathreshold_fig5c_over_training",
        "impute_fig2_holdout",
        "impute_fig3_landmarks",
        "error_vs_labels",
        "estimators_matter",
        "equal_time",
    ):
        assert {f"{fig}.png", f"{fig}.pdf"} <= names, fig
    for table in ("metagrad_theorem1", "metathreshold_fig5b_imbalanced", "equal_time"):
        assert {f"{table}.csv", f"{table}.md"} <= names, table
    # a second call finds every run and only rebuilds the figures
    assert figures.main(["--scale", "smoke", "--seeds", "0", "--out", str(out)]) == 0
    assert "not built" not in capsys.readouterr().err
