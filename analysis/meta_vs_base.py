"""Comparisons across runs: each meta method against its base.

labels      error against the number of labels (Meta-Gradient Fig. 2), meta vs base
estimators  final error and wall time per hypergradient estimator, from runs that differ only
            in `estimator=` (none of the papers shows this), and with a paper's own estimate
            of the hypergradient (`APPROXIMATIONS`: MPL's `method.approximation=paper`)
equal_time  error of meta method and base at the same wall-clock budgets (Meta-Semi Table 5,
            Meta-T Table 5), from each run's `time,wall_time_s` rows; a run that has not
            reached its first evaluation within a budget has no entry there
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import NullFormatter

from experiments import configs

from .context import Context, Need
from .output import save_figure, save_table
from .seeds import Spec

# the meta experiments these studies show (digits, 50 labels); each is paired with its base run
METAS = ["metagrad_digits", "metasemi_digits", "metathreshold_digits"]
METAS += ["impute_v1_digits", "impute_v2_digits", "mpl_digits"]
PAIRS = [(base, meta) for base, metas in configs.pairs(METAS) for meta in metas]
LABELS = (20, 50, 100)
# estimators of the estimator study: the exact ones that serve a one-step virtual step on a deep
# model (`higher` and `truncated` give `func`'s numbers there), and the first-order
# approximations; `implicit` and `nystrom` assume a stationary inner problem, which one step from
# the current weights is not
STUDIED = ("func", "fd", "forward", "sama")
# a paper's own estimate of the hypergradient, run beside the estimators (a `key=value` setting,
# with the config's estimator): does the approximation change the result?
APPROXIMATIONS = {"mpl_digits": ("method.approximation=paper",)}
# estimators each meta method is run with (its config's default first), then its approximations
ESTIMATORS = {
    name: (
        *dict.fromkeys((configs.get(name).estimator, *STUDIED)),
        *APPROXIMATIONS.get(name, ()),
    )
    for name in METAS
}
BUDGETS = (0.25, 0.5, 1.0)  # fractions of the base run's wall time


def _names() -> list[str]:
    return list(dict.fromkeys(n for pair in PAIRS for n in pair))


def label_spec(name: str, labels: int) -> Spec:
    return Spec(name, () if labels == 50 else (f"num_labels={labels}",))


def estimator_spec(name: str, estimator: str) -> Spec:
    """The run of `name` with `estimator`, or with an approximation (a `key=value` setting)."""
    if "=" in estimator:
        return Spec(name, (estimator,))
    default = ESTIMATORS[name][0]
    return Spec(name, () if estimator == default else (f"estimator={estimator}",))


def labels_needs(ctx: Context) -> list[Need]:
    return [(label_spec(n, k), 0) for n in _names() for k in LABELS]


def estimators_needs(ctx: Context) -> list[Need]:
    return [(estimator_spec(n, e), 0) for n, es in ESTIMATORS.items() for e in es]


def equal_time_needs(ctx: Context) -> list[Need]:
    return [(Spec(n), seed) for n in _names() for seed in ctx.seeds]


def build_labels(ctx: Context) -> list:
    rows = [
        {"method": n, "labels": k, "error %": ctx.final(label_spec(n, k), 0)}
        for n in _names()
        for k in LABELS
    ]
    frame = pd.DataFrame(rows)
    wide = frame.pivot(index="method", columns="labels", values="error %").loc[_names()]
    fig, axes = plt.subplots(1, len(PAIRS), figsize=(3.2 * len(PAIRS), 3.4), sharey=True)
    for ax, (base, meta) in zip(axes, PAIRS, strict=True):
        for name, style in ((base, "--"), (meta, "-")):
            ax.plot(LABELS, wide.loc[name].to_numpy(), style, marker="o", label=name)
        ax.set(xscale="log", xticks=LABELS, xticklabels=[str(k) for k in LABELS], xlabel="labels")
        ax.minorticks_off()  # the log axis' minor labels (3×10¹ …) would overlap 50
        ax.legend(fontsize=7)
    axes[0].set_ylabel("test error % (seed 0)")
    fig.tight_layout()
    table = wide.reset_index()
    table.columns = ["method", *[f"{k} labels" for k in LABELS]]
    return save_figure(fig, ctx.out, "error_vs_labels") + save_table(
        table, ctx.out, "error_vs_labels", floatfmt=".1f"
    )


def build_estimators(ctx: Context) -> list:
    rows = []
    for name, estimators in ESTIMATORS.items():
        for e in estimators:
            s = ctx.summary(estimator_spec(name, e), 0)
            rows.append(
                {
                    "method": name,
                    "estimator": e + (" (default)" if e == estimators[0] else ""),
                    "error %": s["final"][s["primary"]],
                    "wall time s": s["wall_time_s"],
                    "steps/s": s["steps_per_s"],
                }
            )
    frame = pd.DataFrame(rows)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.6))
    names = list(ESTIMATORS)
    shown = list(dict.fromkeys(e for es in ESTIMATORS.values() for e in es))  # one colour each
    width = 0.8 / max(len(v) for v in ESTIMATORS.values())
    for i, name in enumerate(names):
        part = frame[frame.method == name].reset_index(drop=True)
        for j, row in part.iterrows():
            x = i + (j - (len(part) - 1) / 2) * width
            color = f"C{shown.index(row.estimator.split()[0])}"
            ax1.bar(x, row["error %"], width, color=color)
            ax2.bar(x, row["wall time s"], width, color=color)
    for ax, label in ((ax1, "test error %"), (ax2, "wall time s")):
        short = [n.removesuffix("_digits") for n in names]
        ax.set_xticks(range(len(names)), short, fontsize=8, rotation=20)
        ax.set_ylabel(label)
    handles = [plt.Rectangle((0, 0), 1, 1, color=f"C{i}") for i in range(len(shown))]
    # below the axes, off the bars
    fig.legend(handles, shown, fontsize=8, loc="lower center", ncol=len(shown), frameon=False)
    fig.suptitle("Does the estimator matter? (digits, 50 labels, seed 0)")
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return save_figure(fig, ctx.out, "estimators_matter") + save_table(
        frame, ctx.out, "estimators_matter", floatfmt=".2f"
    )


def error_at(curve: pd.DataFrame, times: pd.DataFrame, budget: float) -> float:
    """The test metric of the last evaluation finished within `budget` seconds (NaN if none)."""
    joined = curve.merge(times, on="step", suffixes=("", "_time"))
    within = joined[joined.value_time <= budget]
    return float(within.value.iloc[-1]) if len(within) else float("nan")


def build_equal_time(ctx: Context) -> list:
    rows = []
    fig, axes = plt.subplots(1, len(PAIRS), figsize=(3.2 * len(PAIRS), 3.4), sharey=True)
    for ax, (base, meta) in zip(axes, PAIRS, strict=True):
        for seed in ctx.seeds:
            base_total = ctx.summary(Spec(base), seed)["wall_time_s"]
            for name, style in ((base, "--"), (meta, "-")):
                curve = ctx.curve(Spec(name), seed, "test", "error")
                times = ctx.curve(Spec(name), seed, "time", "wall_time_s")
                ax.plot(times.value, curve.value, style, marker="o", ms=3, label=f"{name} s{seed}")
                for b in BUDGETS:
                    rows.append(
                        {
                            "pair": f"{meta} vs {base}",
                            "method": name,
                            "seed": seed,
                            "budget (x base time)": b,
                            "error %": error_at(curve, times, b * base_total),
                        }
                    )
        ax.set(xlabel="wall time s", xscale="log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels (2×10⁰ …) would overlap
        ax.legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)
    axes[0].set_ylabel("test error %")
    fig.tight_layout()
    frame = pd.DataFrame(rows)
    table = (
        frame.groupby(["pair", "method", "budget (x base time)"], sort=False)["error %"]
        .agg(lambda v: np.nan if v.isna().all() else float(np.nanmean(v)))
        .unstack("budget (x base time)")
        .reset_index()
    )
    table.columns = [
        c if isinstance(c, str) else f"error % at {c:g}x base time" for c in table.columns
    ]
    return save_figure(fig, ctx.out, "equal_time") + save_table(
        table, ctx.out, "equal_time", floatfmt=".2f"
    )
