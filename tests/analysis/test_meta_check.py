"""The meta-vs-base table, and the demo at smoke scale."""

import pandas as pd
import pytest

from analysis import demo, meta_check
from analysis.meta_check import pair_table


def _row(run, seed, value, speed):
    return {
        "run": run,
        "experiment": run,
        "seed": seed,
        "metric": "test/error",
        "value": value,
        "wall_time_s": 1.0,
        "steps_per_s": speed,
    }


def test_pair_table_compares_each_meta_method_with_its_base():
    frame = pd.DataFrame(
        [
            _row("pl_mixup_digits", 0, 10.0, 30.0),
            _row("pl_mixup_digits", 1, 12.0, 30.0),
            _row("pl_mixup_digits", 2, 5.0, 30.0),
            _row("metagrad_digits", 0, 8.0, 10.0),
            _row("metagrad_digits", 1, 9.0, 10.0),
            _row("metagrad_digits", 2, 6.0, 10.0),
        ]
    )
    out = pair_table(frame).set_index("run")
    assert out.loc["metagrad_digits", "vs base"] == "-1.33"  # 23/3 - 27/3
    assert out.loc["pl_mixup_digits", "result"] == "9.00 ± 3.61"  # std of 10, 12, 5 (ddof 1)
    assert out.loc["metagrad_digits", "seeds"] == 3
    assert out.loc["metagrad_digits", "better on"] == "2/3"  # seed 2: 6 > 5
    assert (
        out.loc["pl_mixup_digits", "better on"] == ""
        and out.loc["pl_mixup_digits", "vs base"] == ""
    )
    assert out.loc["metagrad_digits", "per seed"] == "8.00, 9.00, 6.00"


@pytest.mark.slow
def test_demo_smoke(tmp_path, monkeypatch):
    monkeypatch.setenv("RUNS_ROOT", str(tmp_path / "runs"))
    demo.main(["--scale", "smoke", "--steps", "4", "--out", str(tmp_path / "demo")])
    table = pd.read_csv(tmp_path / "demo" / "methods.csv")
    assert len(table) == len(demo.specs(4))
    assert set(table.base) == set(demo.PAIRS)
    assert (table[table.estimator == "-"]["cost vs base step"] == 1.0).all()
    assert (table["ms/step"] > 0).all() and "second half" in (
        tmp_path / "demo/methods.md"
    ).read_text()
    for name in ("methods.png", "methods.pdf", "estimators.csv", "estimators_k.png", "fd_r.png"):
        assert (tmp_path / "demo" / name).stat().st_size > 0


@pytest.mark.slow
def test_check_meta_smoke_trains_and_tabulates_every_pair(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RUNS_ROOT", str(tmp_path / "runs"))
    argv = ["--scale", "smoke", "--seeds", "0", "--face-seeds", "1", "--out", str(tmp_path)]
    meta_check.main(argv)
    frame = pd.read_csv(tmp_path / "meta_check.csv")
    assert sorted(frame.run) == sorted(s.name for s in meta_check.specs())
    faces = frame[frame.run.str.endswith("_synthfaces")]
    assert set(faces.seed) == {1} and set(frame.seed) == {0, 1}
    table = (tmp_path / "meta_check.md").read_text()
    assert table == capsys.readouterr().out.split("wrote ")[0]
    for base, metas in meta_check.pairs():
        for name in metas:
            assert f"| {name} " in table and f"| {base} " in table
