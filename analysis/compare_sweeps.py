"""The two sweeps of `make compare`: memory and time against the number of unrolled steps K
(`func`, `func` with `checkpoint=True`, `higher`), and `fd`'s error against its step r (every
problem, in each dtype).

Writes `results/estimators_k.{csv,md}` (problem, estimator, K, ms, peak_mb) and
`results/fd_r.{csv,md}` (problem, dtype, r, rel_error, cosine against `func` in that dtype).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from bilevel import hypergradient
from bilevel.examples import BUILDERS

from .measure import agreement, median_ms, peak_mb

# (row name, estimator, options)
UNROLLED = (
    ("func", "func", {}),
    ("func_checkpoint", "func", {"checkpoint": True}),
    ("higher", "higher", {}),
)
RADII = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)


def k_sweep(setup, kind: str, ks: tuple[int, ...], device: torch.device) -> pd.DataFrame:
    """Peak extra memory and time of one call of each unrolled estimator for K = `ks`."""
    rows = []
    for k in ks:
        problem, hp = BUILDERS[kind](
            setup.model, setup.batch, lr=0.1, momentum=0.9, weight_decay=5e-4, steps=k
        )
        for name, estimator, options in UNROLLED:

            def call(problem=problem, hp=hp, estimator=estimator, options=options):
                return hypergradient(problem, hp, estimator, **options)

            rows.append(
                {
                    "problem": setup.name,
                    "estimator": name,
                    "K": k,
                    "ms": median_ms(call, 1, device, warmup=0),
                    "peak_mb": peak_mb(call, device),
                }
            )
    return pd.DataFrame(rows)


def r_sweep(setups, kinds: dict[str, str], radii=RADII) -> pd.DataFrame:
    """`fd`'s error against `func` for each r, on every problem of `setups` (their dtype)."""
    rows = []
    for setup in setups:
        for short in setup.kinds:
            problem, hp = BUILDERS[kinds[short]](
                setup.model, setup.batch, lr=0.1, momentum=0.9, weight_decay=5e-4
            )
            ref = hypergradient(problem, hp, "func")
            for r in radii:
                rel, cos = agreement(hypergradient(problem, hp, "fd", r=r), ref)
                rows.append(
                    {
                        "problem": f"{setup.name}/{short}",
                        "dtype": str(setup.batch.x_lab.dtype).removeprefix("torch."),
                        "r": r,
                        "rel_error": rel,
                        "cosine": cos,
                    }
                )
    return pd.DataFrame(rows)


def save(frame: pd.DataFrame, out: Path, stem: str, pivot: tuple) -> str:
    """CSV of `frame`, Markdown of its pivot (index, columns, values); returns the Markdown."""
    out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out / f"{stem}.csv", index=False)
    index, columns, values = pivot
    text = frame.pivot_table(index=index, columns=columns, values=values).to_markdown(
        floatfmt=".3g"
    )
    (out / f"{stem}.md").write_text(text + "\n")
    return text
