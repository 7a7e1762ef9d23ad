"""`make demo`: the newcomer's tour, a few minutes on a laptop CPU.

1. On digits (50 labels), each meta-learning method beside the base it builds on, in short runs
   (`steps=STEPS`), each meta method with two hypergradient estimators;
2. the estimator comparison at toy width.
Writes results/demo/methods.{csv,md,png} and results/demo/estimators.{csv,md,png}.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from experiments import configs
from experiments.cli import run_cli

from . import compare
from .measure import machine_load
from .seeds import Spec, collect

STEPS = 400
# the meta methods shown, each with the estimators to show; bases are derived
SHOWN = {
    "metagrad_digits": ["fd", "forward"],
    "metasemi_digits": ["func", "fd"],
    "metathreshold_digits": ["func", "forward"],
    "impute_v1_digits": ["func", "fd"],
    "impute_v2_digits": ["func"],
}
PAIRS = {base: {m: SHOWN[m] for m in metas} for base, metas in configs.pairs(list(SHOWN))}


def specs(steps: int) -> list[Spec]:
    # two evaluations: the time per step is measured over the second half (after warm-up)
    short = (f"steps={steps}", f"eval_every={max(1, steps // 2)}")
    out = []
    for base, metas in PAIRS.items():
        out.append(Spec(base, short, f"{base} (base)", {"base": base, "estimator": "-"}))
        for meta, estimators in metas.items():
            for est in estimators:
                extra = {"base": base, "estimator": est}
                out.append(Spec(meta, (*short, f"estimator={est}"), f"{meta} [{est}]", extra))
    return out


def ms_per_step(metrics: pd.DataFrame) -> float:
    """Training time per step over the second half of a run (from its two `wall_time_s` rows,
    which leave evaluation out): the first half absorbs the one-off costs of a first call."""
    wall = metrics[(metrics.split == "time") & (metrics.metric == "wall_time_s")]
    (s0, t0), (s1, t1) = wall[["step", "value"]].tail(2).itertuples(index=False)
    return 1e3 * (t1 - t0) / (s1 - s0)


def method_table(
    frame: pd.DataFrame, all_specs: list[Spec], scale: str = "full", seed: int = 0
) -> pd.DataFrame:
    info = {s.title: s for s in all_specs}
    ms = {t: ms_per_step(s.run(seed, scale).metrics()) for t, s in info.items()}
    rows = []
    for run, sub in frame.groupby("run", sort=False):
        base = info[run].extra["base"]
        rows.append(
            {
                "run": run,
                "base": base,
                "estimator": info[run].extra["estimator"],
                "test error %": sub.value.mean(),
                "ms/step": ms[run],
                "cost vs base step": ms[run] / ms[f"{base} (base)"],
            }
        )
    return pd.DataFrame(rows)


def plot(table: pd.DataFrame, path: Path) -> None:
    fig, (ax_e, ax_c) = plt.subplots(1, 2, figsize=(13, 4.5), sharey=True)
    colours = [f"C{list(PAIRS).index(b)}" for b in table.base]
    ys = range(len(table))
    ax_e.barh(ys, table["test error %"], color=colours)
    ax_e.set_yticks(ys, table.run, fontsize=8)
    ax_e.invert_yaxis()
    ax_e.set_xlabel("test error % (digits, 50 labels, short run)")
    ax_c.barh(ys, table["cost vs base step"], color=colours)
    ax_c.axvline(1.0, color="k", ls="--", lw=1)
    ax_c.set_xlabel("time per step / base method's (second half of each run)")
    fig.suptitle("Meta-learning methods beside their bases")
    pairs = [plt.Rectangle((0, 0), 1, 1, color=f"C{i}") for i in range(len(PAIRS))]
    fig.legend(pairs, [f"{b} and its meta methods" for b in PAIRS], loc="lower center", ncol=3)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    fig.savefig(path, dpi=110)
    fig.savefig(path.with_suffix(".pdf"))
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--out", type=Path, default=Path("results/demo"))
    parser.add_argument("--scale", choices=("full", "smoke"), default="full")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    all_specs = specs(args.steps)
    print(f"1/2 methods on digits: {len(all_specs)} short runs (finished runs are reused)")
    before = machine_load()
    print(f"machine: {before}", flush=True)
    table = method_table(collect(all_specs, [0], args.scale), all_specs, args.scale)
    table.to_csv(args.out / "methods.csv", index=False)
    text = table.to_markdown(index=False, floatfmt=".2f")
    note = (
        f"Time per step over each run's second half; machine before the runs: {before}; "
        f"after: {machine_load()}."
    )
    (args.out / "methods.md").write_text(f"{text}\n\n{note}\n")
    print(note)
    plot(table, args.out / "methods.png")
    print(text)
    print("\n2/2 estimator comparison (CNN-13 at width 16, TCDCN, one-layer)")
    width = (
        ["--width", "16", "--width64", "8"]
        if args.scale == "full"
        else ["--width", "4", "--width64", "2"]
    )
    compare.main(["--out", str(args.out), *width, "--batch", "8", "--repeats", "3"])
    print(
        f"\nwrote {args.out}/methods.{{csv,md,png,pdf}}, {args.out}/estimators.{{csv,md,png}}, "
        f"{args.out}/estimators_k.{{csv,md,png}} and {args.out}/fd_r.{{csv,md,png}}"
    )


if __name__ == "__main__":
    sys.exit(run_cli(main))
