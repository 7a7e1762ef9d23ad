"""The T sweep of `truncated` and the rank sweep of `nystrom` (`analysis.compare_sweeps`) at toy
size: their columns, and the errors at the ends (T = K is `func`; every column is the dense
solve). No timing assertions."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pandas as pd
import torch

from analysis import compare_sweeps
from tests.bilevel.helpers import batch, mlp

CPU = torch.device("cpu")


def test_the_t_sweep_has_a_row_per_t_and_is_func_at_t_equal_k(tmp_path):
    setup = SimpleNamespace(name="mlp", model=mlp(dropout=0.5), batch=batch())
    swept = compare_sweeps.t_sweep(setup, "a_imputed_away", CPU, 1, steps=3, lasts=(1, 2, 3, 5))
    assert list(swept.columns) == [
        "problem",
        "estimator",
        "K",
        "T",
        "ms",
        "peak_mb",
        "rel_error",
        "cosine",
    ]
    assert list(swept["T"]) == [1, 2, 3] and set(swept.K) == {3}  # T above K left out
    by_t = swept.set_index("T")
    assert by_t.rel_error[3] == 0.0 and by_t.cosine[3] == 1.0
    assert by_t.rel_error[1] > 0.0
    assert (swept.ms > 0).all()
    assert all(math.isnan(m) or m >= 0 for m in swept.peak_mb)
    table = compare_sweeps.docs_table_t(swept)
    assert table.splitlines()[0].startswith("| T (of K = 3) | `truncated` ms")
    assert len(table.splitlines()) == 2 + 3


def test_t_report_writes_its_files(tmp_path):
    setup = SimpleNamespace(name="mlp", model=mlp(), batch=batch())
    docs = tmp_path / "docs"
    written = compare_sweeps.t_report(setup, "a_imputed_away", CPU, 1, tmp_path, docs, "cmd")
    assert written == docs / "estimators_t.md" and "written by `cmd`" in written.read_text()
    frame = pd.read_csv(tmp_path / "estimators_t.csv")
    assert list(frame["T"]) == list(compare_sweeps.LASTS) and set(frame.K) == {10}
    assert (tmp_path / "estimators_t.md").exists()
    assert (tmp_path / "estimators_t.png").stat().st_size > 10_000


def test_the_rank_sweep_reaches_the_dense_solve_with_every_column():
    name, problem, hp = compare_sweeps.tiny_problem(4, CPU, steps=100)
    n = sum(p.numel() for p in problem.params().values())
    swept = compare_sweeps.rank_sweep(problem, hp, name, CPU, 1, ranks=(1, 64), rhos=(0.0,))
    assert list(swept.columns) == [
        "problem",
        "estimator",
        "rank",
        "rho",
        "rel_error",
        "cosine",
        "rel_error_func",
        "ms",
    ]
    assert list(swept.estimator) == ["nystrom"] * 3 + ["implicit", "dense_solve"]
    nystrom = swept[swept.estimator == "nystrom"].set_index("rank")
    assert list(nystrom.index) == [1, 64, n]
    assert nystrom.rel_error[n] <= 1e-8 < nystrom.rel_error[1]
    assert swept[swept.estimator == "dense_solve"].rel_error.iloc[0] == 0.0
    assert (swept.ms > 0).all()
    table = compare_sweeps.docs_table_rank(swept)
    assert len(table.splitlines()) == 2 + len(swept) and "| `implicit` |  |  |" in table


def test_the_tiny_problem_is_one_layer_problem_a_in_float64():
    name, problem, hp = compare_sweeps.tiny_problem(2, CPU)
    assert name == "linear-tiny" and set(hp) == {"z"} and hp["z"].dtype == torch.float64
    assert problem.steps == compare_sweeps.RANK_STEPS
    assert sum(p.numel() for p in problem.params().values()) == 490
