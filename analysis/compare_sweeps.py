"""The sweeps of `make compare`: memory and time against the number of unrolled steps K
(`func`, `func` with `checkpoint=True`, `higher`), against the differentiated steps T of
`truncated` at K = 10, `fd`'s error against its step r (every problem, in each dtype), and
`nystrom`'s error against its number of columns k on a tiny one-layer model (where a
dense H⁻¹ is cheap).

Writes `results/estimators_k.{csv,md}` (problem, estimator, K, ms, peak_mb),
`results/estimators_t.{csv,md}` (problem, estimator, K, T, ms, peak_mb, rel_error and cosine
against `func`), `results/fd_r.{csv,md}` (problem, dtype, r, rel_error, cosine against `func`
in that dtype) and `results/nystrom_rank.{csv,md}` (problem, estimator, rank, rho, rel_error
against the exact implicit hypergradient, rel_error_func against `func`, ms).
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
import torch

from bilevel import hypergradient
from bilevel.estimators.implicit import HVP, implicit_with
from bilevel.estimators.nystrom import unflatten
from bilevel.examples import BUILDERS, Batch
from bilevel.sgd import Params

from .measure import agreement, median_ms, peak_mb
from .output import save_docs

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


# -- truncated back-propagation: cost and error against T at a fixed K -----------------------
T_STEPS = 10  # K of the T sweep (the largest K of the K sweep)
LASTS = (1, 2, 5, 10)  # the T it measures


def t_sweep(
    setup,
    kind: str,
    device: torch.device,
    repeats: int = 3,
    steps: int = T_STEPS,
    lasts: tuple[int, ...] = LASTS,
) -> pd.DataFrame:
    """Peak extra memory of one call, median time of `repeats` calls after one warm-up call,
    and the relative error and cosine against `func`, of `truncated` with last = T for each T
    of `lasts` (at most `steps`), at K = `steps`, on the K sweep's problem."""
    problem, hp = BUILDERS[kind](
        setup.model, setup.batch, lr=0.1, momentum=0.9, weight_decay=5e-4, steps=steps
    )
    ref = hypergradient(problem, hp, "func")
    rows = []
    for t in (t for t in lasts if t <= steps):

        def call(t=t):
            return hypergradient(problem, hp, "truncated", last=t)

        rel, cos = agreement(call(), ref)
        rows.append(
            {
                "problem": setup.name,
                "estimator": "truncated",
                "K": steps,
                "T": t,
                "ms": median_ms(call, repeats, device, warmup=1),
                "peak_mb": peak_mb(call, device),
                "rel_error": rel,
                "cosine": cos,
            }
        )
    return pd.DataFrame(rows)


def plot_t(swept: pd.DataFrame, path: Path) -> None:
    """Time, peak extra memory and relative error against `func` of `truncated` against T."""
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    panels = (
        ("ms", "ms per hypergradient"),
        ("peak_mb", "peak extra memory (MB)"),
        ("rel_error", "relative error against func (0 at 1e-17)"),
    )
    for ax, (value, label) in zip(axes, panels, strict=True):
        ys = swept[value].clip(lower=1e-17) if value == "rel_error" else swept[value]
        ax.plot(swept["T"], ys, marker="o", label="truncated")
        if value == "rel_error":
            ax.set_yscale("log")
        ax.set_xlabel("differentiated steps T (of K)")
        ax.set_ylabel(label)
        ax.set_xticks(sorted(set(swept["T"])))
    k, problem = int(swept.K.iloc[0]), swept.problem.iloc[0]
    fig.suptitle(f"{problem}/a, float32: truncated back-propagation at K = {k}, against T")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def docs_table_t(swept: pd.DataFrame) -> str:
    """The documentation's table of the T sweep: time, peak extra memory and relative error
    against `func` of `truncated` for each T (three significant digits)."""
    k = int(swept.K.iloc[0])
    lines = [
        f"| T (of K = {k}) | `truncated` ms | `truncated` MB | rel. error vs `func` |",
        "|--:|--:|--:|--:|",
    ]
    for row in swept.sort_values("T").itertuples():
        ms, mb = (f"{float(f'{x:.3g}'):.0f}" for x in (row.ms, row.peak_mb))
        lines.append(f"| {row.T} | {ms} | {mb} | {row.rel_error:.3g} |")
    return "\n".join(lines)


def t_report(
    setup, kind: str, device: torch.device, repeats: int, out: Path, docs: Path | None, command
) -> Path | None:
    """The T sweep, written as `out`/estimators_t.{csv,md,png} and, with `docs`,
    `docs`/estimators_t.md (returned)."""
    swept = t_sweep(setup, kind, device, repeats)
    plot_t(swept, out / "estimators_t.png")
    print(f"\n{setup.name}/a, float32, truncated against T at K = {T_STEPS}:\n")
    print(save(swept, out, "estimators_t", ("T", "estimator", ["ms", "peak_mb", "rel_error"])))
    return save_docs(docs_table_t(swept), docs, "estimators_t", command)


# -- Nyström: error against the number of columns on a tiny one-layer model ------------------
RANKS = (1, 4, 16, 64, 128, 256)  # and every column (n)
RHOS = (0.0, 0.1)
RANK_STEPS = 300  # inner steps before θ* = θ_K: close to the stationary point (see tiny_problem)


def tiny_problem(n: int, device: torch.device, steps: int = RANK_STEPS):
    """(name, problem (a), hparams): a one-layer model 48 → 10 (490 parameters) on 3×4×4
    inputs, float64, `n` examples per batch, K = `steps` of SGD (lr 0.3, momentum 0.9, weight
    decay 1e-2). The inner loss is then strictly convex and θ_K close to its minimiser, where
    the implicit hypergradient is the unrolled one (at `make compare`'s lr 0.1 and weight decay
    5e-4 it is not reached in 300 steps), and a dense H⁻¹ is cheap."""
    g = torch.Generator().manual_seed(0)

    def x():
        return torch.rand(n, 3, 4, 4, generator=g, dtype=torch.float64).to(device)

    def classes():
        return torch.randint(0, 10, (n,), generator=g).to(device)

    batch = Batch(x(), classes(), x(), x(), classes())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 10))
    model = model.to(device, torch.float64)
    problem, hp = BUILDERS["a_imputed_away"](
        model, batch, lr=0.3, momentum=0.9, weight_decay=1e-2, steps=steps
    )
    return "linear-tiny", problem, hp


def dense_solve(hessian: HVP, wd: float, v: Params) -> Params:
    """q = (∇²L_in + wd·I)⁻¹ v by a dense solve, the Hessian from n HVPs with unit vectors."""
    flat = torch.cat([t.reshape(-1) for t in v.values()])
    eye = torch.eye(flat.numel(), dtype=flat.dtype, device=flat.device)
    columns = torch.func.vmap(hessian, randomness="same")(unflatten(eye, v))
    h = torch.cat([columns[k].reshape(flat.numel(), -1) for k in v], dim=1)
    return unflatten(torch.linalg.solve((h + h.T) / 2 + wd * eye, flat), v)


def rank_sweep(
    problem,
    hp: dict[str, torch.Tensor],
    name: str,
    device: torch.device,
    repeats: int = 3,
    ranks: tuple[int, ...] = RANKS,
    rhos: tuple[float, ...] = RHOS,
) -> pd.DataFrame:
    """`nystrom`'s relative error against the exact implicit hypergradient (a dense solve at
    θ_K) and against `func`, and its median time, for each number of columns in `ranks` (and
    all n) and each ρ in `rhos`; rows for `implicit` (CG, its defaults) and the dense solve."""
    n = sum(p.numel() for p in problem.params().values())
    func = hypergradient(problem, hp, "func")

    def dense():
        with torch.enable_grad():
            return implicit_with(
                problem, {k: v.detach().requires_grad_(True) for k, v in hp.items()}, dense_solve
            )

    exact = dense()
    rows = []

    def row(estimator, rank, rho, call):
        got = call()
        rel, cos = agreement(got, exact)
        rows.append(
            {
                "problem": name,
                "estimator": estimator,
                "rank": rank,
                "rho": rho,
                "rel_error": rel,
                "cosine": cos,
                "rel_error_func": agreement(got, func)[0],
                "ms": median_ms(call, repeats, device, warmup=1),
            }
        )

    for rho in rhos:
        for k in sorted({min(k, n) for k in ranks} | {n}):
            row(
                "nystrom",
                k,
                rho,
                lambda k=k, rho=rho: hypergradient(problem, hp, "nystrom", rank=k, rho=rho),
            )
    row("implicit", math.nan, math.nan, lambda: hypergradient(problem, hp, "implicit"))
    row("dense_solve", n, 0.0, dense)
    return pd.DataFrame(rows)


def docs_table_rank(swept: pd.DataFrame) -> str:
    """The documentation's table of the rank sweep: for each number of columns k and ρ, the
    relative error against the exact implicit hypergradient and against `func`, and ms."""
    lines = [
        "| estimator | k | ρ | rel. error vs exact implicit | rel. error vs `func` | ms |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    for r in swept.itertuples():
        k = "" if math.isnan(r.rank) else f"{int(r.rank)}"
        rho = "" if math.isnan(r.rho) else f"{r.rho:g}"
        lines.append(
            f"| `{r.estimator}` | {k} | {rho} | {r.rel_error:.3g} | {r.rel_error_func:.3g} "
            f"| {r.ms:.3g} |"
        )
    return "\n".join(lines)


def rank_report(
    n: int, device: torch.device, repeats: int, out: Path, docs: Path | None, command
) -> Path | None:
    """The rank sweep on `tiny_problem(n)`, written as `out`/nystrom_rank.{csv,md} and, with
    `docs`, `docs`/nystrom_rank.md (returned)."""
    name, problem, hp = tiny_problem(n, device)
    swept = rank_sweep(problem, hp, name, device, repeats)
    out.mkdir(parents=True, exist_ok=True)
    swept.to_csv(out / "nystrom_rank.csv", index=False)
    text = docs_table_rank(swept)
    (out / "nystrom_rank.md").write_text(text + "\n")
    print(f"\n{name}/a, float64, K = {RANK_STEPS}: nystrom against its columns k:\n\n{text}")
    return save_docs(text, docs, "nystrom_rank", command)
