"""Seed tables: runs are made once and reused; mean ± std is computed per run."""

import pandas as pd
import pytest

from analysis.seeds import Spec, collect, table


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
