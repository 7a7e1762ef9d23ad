import math

import pandas as pd
import pytest
import torch

from analysis.assumption1 import second_moment_ratio
from analysis.meta_vs_base import error_at
from analysis.thresholds import class_average, pass_table


def test_second_moment_ratio_is_one_plus_relative_variance():
    """g_s = m ± e: mean ‖g_s‖² = ‖m‖² + ‖e‖², so the ratio is 1 + ‖e‖²/‖m‖²."""
    m, e = torch.tensor([3.0, 4.0]), torch.tensor([1.0, -2.0])
    assert second_moment_ratio([m + e, m - e], m) == pytest.approx(1 + 5 / 25)


def test_pass_table_by_hand():
    frame = pd.DataFrame(
        {"conf": [0.99, 0.5, 0.97, 0.96, 0.2], "pred": [0, 0, 1, 0, 1], "true": [0, 0, 1, 1, 1]}
    )
    table = pass_table(frame, 0.95).set_index("class")
    assert table.loc[0, "samples"] == 2
    assert table.loc[0, "pass %"] == 50.0
    assert table.loc[0, "right among passed %"] == 100.0
    assert table.loc[1, "pass %"] == pytest.approx(200 / 3)
    assert table.loc[1, "right among passed %"] == 50.0  # 0.97 right, 0.96 wrong
    per_sample = pass_table(frame, [1.0, 0.4, 1.0, 1.0, 0.1])  # per-sample thresholds
    assert per_sample.set_index("class").loc[1, "pass %"] == pytest.approx(100 / 3)


def test_class_average():
    frame = pd.DataFrame({"tau": [0.2, 0.4, 0.9], "pred": [1, 1, 0], "true": [1, 0, 0]})
    by_pred = class_average(frame).set_index("class").tau
    assert by_pred[0] == pytest.approx(0.9) and by_pred[1] == pytest.approx(0.3)
    by_true = class_average(frame, "true").set_index("class").tau
    assert by_true[0] == pytest.approx(0.65)


def test_error_at_budget():
    curve = pd.DataFrame({"step": [10, 20, 30], "value": [9.0, 7.0, 5.0]})
    times = pd.DataFrame({"step": [10, 20, 30], "value": [1.0, 2.0, 3.0]})
    assert error_at(curve, times, 2.5) == 7.0
    assert error_at(curve, times, 3.0) == 5.0
    assert math.isnan(error_at(curve, times, 0.5))
