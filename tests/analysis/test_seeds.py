"""Seed tables: runs are made once and reused; mean ± std is computed per run."""

import pandas as pd
import pytest

from analysis.seeds import Spec, collect, table
from experiments.config import ConfigError


def test_collect_reuses_finished_runs_and_tabulates(tmp_path):
    specs = [Spec("supervised_digits"), Spec("supervised_digits", ("lr=0.01",), "low lr")]
    frame = collect(specs, [0, 1], scale="smoke", root=tmp_path)
    assert list(frame.run) == ["supervised_digits"] * 2 + ["low lr"] * 2
    assert (tmp_path / "supervised_digits+lr=0.01+smoke" / "seed1" / "summary.json").is_file()
    summary = tmp_path / "supervised_digits+smoke" / "seed0" / "summary.json"
    stamp = summary.stat().st_mtime_ns
    again = collect(specs[:1], [0], scale="smoke", root=tmp_path)
    assert summary.stat().st_mtime_ns == stamp  # not retrained
    assert again.value.iloc[0] == frame.value.iloc[0]
    out = table(frame)
    row = out[out.run == "low lr"].iloc[0]
    values = frame[frame.run == "low lr"].value
    assert row["mean"] == pytest.approx(values.mean()) and row["std"] == pytest.approx(values.std())
    assert row["result"] == f"{values.mean():.2f} ± {values.std():.2f}"


def test_table_of_one_seed_has_zero_std():
    frame = pd.DataFrame(
        [
            {
                "run": "a",
                "experiment": "a",
                "seed": 0,
                "metric": "test/error",
                "value": 3.0,
                "wall_time_s": 1.0,
                "steps_per_s": 2.0,
            }
        ]
    )
    assert table(frame).iloc[0]["std"] == 0.0


def test_one_seed_shows_its_value_without_a_spread():
    import pandas as pd

    from analysis.seeds import table

    frame = pd.DataFrame(
        [{"run": "a", "seed": 0, "metric": "test/nme", "value": 11.38, "steps_per_s": 1.0}]
    )
    assert table(frame).loc[0, "result"] == "11.38"


def _set_config(run, **changes):
    import json

    path = run / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def test_a_finished_run_of_another_config_is_stale_not_reused(tmp_path, monkeypatch):
    """A run trained before a default changed (here: the estimator of a meta method) is never
    read as the current experiment's result; the check names the setting and the directory."""
    from analysis.sweep import run_missing
    from experiments.run import StaleRun

    spec = Spec("metathreshold_digits")
    collect([spec], [0], scale="smoke", root=tmp_path)
    run = tmp_path / "metathreshold_digits+smoke" / "seed0"
    assert spec.run(0, "smoke", tmp_path).status() == "done"
    _set_config(run, estimator="func")  # as trained under the old default
    assert spec.run(0, "smoke", tmp_path).status() == "stale"
    stale = r"1 finished run\(s\) of another config .*seed0 \(differs in \['estimator'\]\)"
    with pytest.raises(StaleRun, match=stale):
        spec.run(0, "smoke", tmp_path).is_done()
    with pytest.raises(StaleRun):
        collect([spec], [0], scale="smoke", root=tmp_path)
    other = Spec("metasemi_digits")
    collect([other], [0], scale="smoke", root=tmp_path)
    _set_config(tmp_path / "metasemi_digits+smoke" / "seed0", estimator="higher")
    monkeypatch.setenv("RUNS_ROOT", str(tmp_path))
    runs = [s.run(0, "smoke") for s in (Spec("supervised_digits"), spec, other)]
    with pytest.raises(StaleRun, match=r"^2 finished run\(s\)") as err:  # all named at once
        run_missing(runs, None)  # the check commands look before training
    assert [path.parent.name for path, _ in err.value.stale] == [
        "metathreshold_digits+smoke",
        "metasemi_digits+smoke",
    ]
    assert not (tmp_path / "supervised_digits+smoke").exists()
    from analysis import figures, reproduce

    for main in (figures.main, reproduce.main):  # both read these runs: stop before any work
        with pytest.raises(StaleRun, match=r"^2 finished run\(s\)"):
            main(["--scale", "smoke", "--only", "estimators_matter", "--out", str(tmp_path)])
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "metasemi_digits+smoke",
        "metathreshold_digits+smoke",
    ]


def test_a_base_run_is_the_same_run_under_any_estimator(tmp_path):
    """A base method has no meta step: its finished run stays valid when the estimator
    setting changes, and resumes into the same directory."""
    spec = Spec("fixmatch_digits")
    collect([spec], [0], scale="smoke", root=tmp_path)
    run = tmp_path / "fixmatch_digits+smoke" / "seed0"
    _set_config(run, estimator="func", estimator_options={"fd": {"r": 0.5}})
    assert spec.run(0, "smoke", tmp_path).is_done()
    _set_config(run, lr=0.5)  # a setting it reads is still a different run
    with pytest.raises(ConfigError, match=r"differs in \['lr'\]"):
        spec.run(0, "smoke", tmp_path).is_done()
