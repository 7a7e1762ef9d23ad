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
    short = (f"steps={steps}", f"eval_every={steps}")
    out = []
    for base, metas in PAIRS.items():
        out.append(Spec(base, short, f"{base} (base)", {"base": base, "estimator": "-"}))
        for meta, estimators in metas.items():
            for est in estimators:
                extra = {"base": base, "estimator": est}
                out.append(Spec(meta, (*short, f"estimator={est}"), f"{meta} [{est}]", extra))
    return out


def method_table(frame: pd.DataFrame, all_specs: list[Spec]) -> pd.DataFrame:
    info = {s.title: s.extra for s in all_specs}
    rows = []
    speed = frame.groupby("run", sort=False).steps_per_s.mean()
    for run, sub in frame.groupby("run", sort=False):
        base = info[run]["base"]
        rows.append(
            {
                "run": run,
                "base": base,
                "estimator": info[run]["estimator"],
                "test error %": sub.value.mean(),
                "steps/s": speed[run],
                "cost vs base step": speed[f"{base} (base)"] / speed[run],
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
    ax_c.set_xlabel("time per step / base method's")
    fig.suptitle("Meta-learning methods beside their bases (colour = pair)")
    fig.tight_layout()
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
    table = method_table(collect(all_specs, [0], args.scale), all_specs)
    table.to_csv(args.out / "methods.csv", index=False)
    text = table.to_markdown(index=False, floatfmt=".2f")
    (args.out / "methods.md").write_text(text + "\n")
    plot(table, args.out / "methods.png")
    print(text)
    print("\n2/2 estimator comparison (CNN-13 at width 16, TCDCN, one-layer)")
    width = (
        ["--width", "16", "--width64", "8"]
        if args.scale == "full"
        else ["--width", "4", "--width64", "2"]
    )
    compare.main(["--out", str(args.out), *width, "--batch", "8", "--repeats", "2"])
    print(f"\nwrote {args.out}/methods.{{csv,md,png,pdf}} and {args.out}/estimators.{{csv,md,png}}")


if __name__ == "__main__":
    sys.exit(run_cli(main))
