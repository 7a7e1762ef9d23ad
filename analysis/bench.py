"""`make bench`: the cost of one training step of each meta method relative to its base.

Builds each named experiment's model, optimizer and method (the real ones, `experiments.train.
build`) and times `train_step` on the same batches, interleaving the methods of a pair in one
process so that they share the machine's state. Median over `--repeats` steps after a warm-up.
Writes results/bench.csv, results/bench.md and results/bench.png.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
import torch

from bilevel import GENERAL
from experiments import configs
from experiments.cli import run_cli
from experiments.config import apply_overrides
from experiments.train import build

ESTIMATORS = list(GENERAL)


def pairs() -> list[tuple[str, list[str]]]:
    """Every meta experiment on balanced digits with its base run (derived)."""
    return [
        (base, metas)
        for base, metas in configs.pairs()
        if configs.get(base).dataset == "digits" and not configs.get(base).imbalance
    ]


def _timer(name: str, overrides: list[str]):
    cfg = apply_overrides(configs.get(name), overrides)
    run = build(cfg, seed=0)
    step = 100  # past the ramps' start

    def one() -> float:
        nonlocal step
        batch = run.batches(step)
        start = time.perf_counter()
        run.method.train_step(batch)
        if run.device.type == "cuda":
            torch.cuda.synchronize()
        step += 1
        return time.perf_counter() - start

    return one


def bench(repeats: int, warmup: int, device: str) -> pd.DataFrame:
    rows = []
    for base, metas in pairs():
        variants = [(base, "-")] + [(m, e) for m in metas for e in ESTIMATORS]
        timers = {
            v: _timer(v[0], [f"device={device}"] + ([f"estimator={v[1]}"] if v[1] != "-" else []))
            for v in variants
        }
        times: dict[tuple[str, str], list[float]] = {v: [] for v in variants}
        for i in range(warmup + repeats):
            for v, fn in timers.items():  # interleaved: the same conditions for all
                t = fn()
                if i >= warmup:
                    times[v].append(t)
        base_ms = 1e3 * statistics.median(times[(base, "-")])
        for (name, est), ts in times.items():
            ms = 1e3 * statistics.median(ts)
            rows.append(
                {
                    "base": base,
                    "method": name,
                    "estimator": est,
                    "ms_per_step": ms,
                    "x_base": ms / base_ms,
                    "device": device,
                }
            )
        print(f"  {base}: done")
    return pd.DataFrame(rows)


def plot(frame: pd.DataFrame, path: Path) -> None:
    metas = frame[frame.estimator != "-"]
    labels = list(dict.fromkeys(metas.method))
    fig, ax = plt.subplots(figsize=(10, 4))
    width = 0.8 / len(ESTIMATORS)
    for i, est in enumerate(ESTIMATORS):
        sub = metas[metas.estimator == est].set_index("method")
        ax.bar(
            [j + i * width for j in range(len(labels))],
            [sub.x_base[m] for m in labels],
            width,
            label=est,
        )
    ax.axhline(1.0, color="k", ls="--", lw=1)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(labels))], labels, rotation=15)
    ax.set_ylabel("time per training step / base method's")
    ax.set_title(f"Cost of a meta-learning step ({frame.device.iloc[0]}; dashed: the base)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, default=Path("results"))
    args = parser.parse_args(argv)
    frame = bench(args.repeats, args.warmup, args.device)
    args.out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(args.out / "bench.csv", index=False)
    text = frame.to_markdown(index=False, floatfmt=".2f")
    (args.out / "bench.md").write_text(text + "\n")
    plot(frame, args.out / "bench.png")
    print(text)
    print(f"wrote {args.out}/bench.{{csv,md,png}}")


if __name__ == "__main__":
    sys.exit(run_cli(main))
