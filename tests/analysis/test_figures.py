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


def test_docs_gets_each_table_a_figure_writes_marked_with_its_command(tmp_path, capsys):
    def build(ctx):
        (ctx.out / "t.md").parent.mkdir(parents=True, exist_ok=True)
        (ctx.out / "t.md").write_text("| a |\n|---|\n| 1 |\n")
        (ctx.out / "t.png").write_bytes(b"png")
        return [ctx.out / "t.png", ctx.out / "t.md"]

    fig = figures.Figure("fig", "a test figure", figures._no_runs, build)
    docs = tmp_path / "docs"
    ctx = figures.Context(out=tmp_path / "figs", docs=docs)
    assert figures.build_all(ctx, [fig]) == {}
    assert [p.name for p in docs.iterdir()] == ["t.md"]  # tables only
    text = (docs / "t.md").read_text()
    assert f"`python -m analysis.figures --only fig --docs {docs}`" in text.splitlines()[0]
    assert text.endswith("| a |\n|---|\n| 1 |\n")
    assert f"wrote {docs / 't.md'}" in capsys.readouterr().out
    assert figures.build_all(figures.Context(out=tmp_path / "f2"), [fig]) == {}
    assert [p.name for p in docs.iterdir()] == ["t.md"]  # without --docs, nothing there


def test_docs_refused_at_smoke_scale(capsys):
    with pytest.raises(SystemExit):
        figures.main(["--scale", "smoke", "--docs", "d"])
    assert "--docs writes the documentation's measured tables" in capsys.readouterr().err
