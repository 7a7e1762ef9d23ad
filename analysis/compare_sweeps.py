"""The two sweeps of `make compare`: memory and time against the number of unrolled steps K
(`func`, `func` with `checkpoint=True`, `higher`), and `fd`'s error against its step r (every
problem, in each dtype).

Writes `results/estimators_k.{csv,md}` (problem, estimator, K, ms, peak_mb) and
`results/fd_r.{csv,md}` (problem, dtype, r, rel_error, cosine against `func` in that dtype).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
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


def k_sweep(
    setup, kind: str, ks: tuple[int, ...], device: torch.device, repeats: int = 3
) -> pd.DataFrame:
    """Peak extra memory of one call and median time of `repeats` calls after one warm-up
    call, of each unrolled estimator for K = `ks`."""
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
                    "ms": median_ms(call, repeats, device, warmup=1),
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


def plot_k(swept: pd.DataFrame, path: Path) -> None:
    """Time and peak extra memory of each unrolled estimator against K (one line each)."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, (value, label) in zip(
        axes, (("ms", "ms per hypergradient"), ("peak_mb", "peak extra memory (MB)")), strict=True
    ):
        for name, rows in swept.groupby("estimator", sort=False):
            ax.plot(rows.K, rows[value], marker="o", label=name)
        ax.set_xlabel("unrolled steps K")
        ax.set_ylabel(label)
        ax.set_xticks(sorted(set(swept.K)))
    problem = swept.problem.iloc[0]
    fig.suptitle(f"{problem}/a, float32: cost against K")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), bbox_to_anchor=(0.5, -0.02))
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_r(radii: pd.DataFrame, path: Path) -> None:
    """`fd`'s relative error against r, one line per problem, solid float32, dashed float64."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    problems = list(dict.fromkeys(radii.problem))
    for (problem, dtype), rows in radii.groupby(["problem", "dtype"], sort=False):
        ax.loglog(
            rows.r,
            rows.rel_error.clip(lower=1e-17),
            marker="o" if dtype == "float64" else "x",
            ls="--" if dtype == "float64" else "-",
            color=f"C{problems.index(problem)}",
            label=f"{problem} ({dtype})",
        )
    ax.set_xlabel("fd's r (ε = r/‖w‖)")
    ax.set_ylabel("relative error against func")
    ax.set_title("fd's error against its step r: dashed o float64, solid x float32")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# the docs' table of the K sweep: its columns, (row name, quantity, header)
K_COLUMNS = [
    (name, value, f"`{title}` {unit}")
    for value, unit in (("ms", "ms"), ("peak_mb", "MB"))
    for name, title in (
        ("func", "func"),
        ("func_checkpoint", "func checkpoint=True"),
        ("higher", "higher"),
    )
]


def docs_table(swept: pd.DataFrame) -> str:
    """The documentation's table of the K sweep: time and peak extra memory of each unrolled
    estimator against K, to three significant digits."""
    lines = [
        "| K | " + " | ".join(h for _, _, h in K_COLUMNS) + " |",
        "|--:|" + "--:|" * len(K_COLUMNS),
    ]
    for k, rows in swept.groupby("K", sort=True):
        by_name = rows.set_index("estimator")
        cells = [f"{float(f'{by_name.loc[n, v]:.3g}'):.0f}" for n, v, _ in K_COLUMNS]
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
