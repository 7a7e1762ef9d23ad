"""`make bench`: the cost of a meta step against its base's, at the papers' model sizes, with the
batch production included.

For each paper experiment (Meta-Gradient and Meta-Semi: CNN-13 on CIFAR-10 shapes, 128 + 128;
Meta-T and Green Meta-T (k = 2): WRN-28-2, 32 + 448 × 2 views; Impute V2: TCDCN on AFLW shapes,
128 + 128 + hold-out 128) it builds the real
run (`experiments.build`) and the same run with the base method, then times training steps the
way the training loop takes them: batches from `experiments.data.batches` with the default
workers, the step, a device synchronisation; the base and the meta variants take their steps in
turn, so that they share the machine's state. Columns:

    step_ms         median time of a training step (the meta experiment, or the base); Green
                    Meta-T: the median over cycles of k steps of their mean (one meta step each)
    ratio_vs_base   step_ms / the base's step_ms (the same batch sizes and model)
    data_ms         median time to build one batch on the host (`BatchMaker.host`)
    data_wait_share share of the loop's wall time spent waiting for the next batch
    hypergrad_ms    median time per step inside the meta method's hypergradient calls (0 for
                    a base); ratio_vs_base − hypergrad_ms / base_step_ms is the rest of the
                    iteration in base steps, so a meta step's floor with its estimator is
                    1 + hypergrad_ms / base_step_ms when that rest is one base step

Without the datasets under DATA_ROOT, stand-ins in the real on-disk formats are written to a
temporary folder (random CIFAR-10 images, synthetic faces in the AFLW format; the `data` column
says which). `--scale` (BENCH_SCALE; default 1 on CUDA, 1/8 on CPU) multiplies the batch sizes so
that a CPU finishes in minutes; the `batch` column gives the sizes used. Absolute times mean
something only on a GPU; on CPU, read the ratios.

    python -m analysis.bench [--scale 0.125] [--repeats 6] [--estimators func,forward]
                             [--docs docs/results]

`--docs DIR` also writes the documentation's table (`docs_table`) to DIR/bench.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
import torch

from bilevel import ESTIMATORS
from experiments import configs, sources, standins, synthfaces
from experiments.build import build, lr_factor
from experiments.cli import run_cli
from experiments.config import Config
from experiments.data import batches, default_workers
from experiments.run import Run
from methods import METHODS

from .output import command_line, save_docs

EXPERIMENTS = (
    "metagrad_cifar10",
    "metasemi_cifar10",
    "metathreshold_cifar10",
    "metathreshold_green_cifar10",
    "impute_v2_aflw",
)


def ensure_data(names: tuple[str, ...]) -> dict[str, str]:
    """The data each experiment reads: "real" if present under DATA_ROOT, else stand-ins are
    written to a temporary folder that becomes DATA_ROOT for this process."""
    wanted = {configs.get(n).dataset for n in names}
    present = {d: (sources.data_root() / d).is_dir() for d in wanted}
    if all(present.values()):
        return {d: "real" for d in wanted}
    root = Path(tempfile.mkdtemp(prefix="bench-data-"))
    for d, ok in present.items():
        if ok:
            (root / d).symlink_to((sources.data_root() / d).resolve())
        elif d == "cifar10":
            standins.write_cifar10(root, 2000, 1000)
        elif d == "aflw":
            synthfaces.write_aflw(root / "aflw", 1500, 300)
        else:
            raise ValueError(f"bench: no stand-in for {d}; put the data under DATA_ROOT")
    os.environ["DATA_ROOT"] = str(root)
    names = {"cifar10": "random images, CIFAR-10 format", "aflw": "synthetic faces, AFLW format"}
    return {d: "real" if ok else names[d] for d, ok in present.items()}


def scaled(cfg: Config, scale: float, device: str) -> Config:
    def size(n: int) -> int:
        return max(2, round(n * scale))

    return replace(
        cfg,
        batch_size=size(cfg.batch_size),
        unlabeled_batch=size(cfg.unlabeled_batch),
        holdout_batch=size(cfg.holdout_batch or cfg.batch_size),
        device=device,
        eval_every=10**9,
    )


def batch_text(cfg: Config) -> str:
    cls = METHODS[cfg.method]
    text = f"{cfg.batch_size}+{cfg.unlabeled_batch}×{len(cls.views)}"
    return text + (f"+{cfg.holdout_batch}" if cls.needs_holdout else "")


class Timer:
    """One run's training steps, taken as the loop takes them, one at a time (`step()`), so
    that the variants of an experiment can be interleaved and share the machine's state."""

    START = 100  # past the ramps' start

    def __init__(self, cfg: Config, steps: int) -> None:
        self.run = build(cfg, seed=0)
        # the learning rate of step START, where the batches start (a warm-up may start at 0)
        bases = self.run.scheduler.base_lrs
        for group, base in zip(self.run.optimizer.param_groups, bases, strict=True):
            group["lr"] = base * lr_factor(cfg, self.START)
        workers = cfg.workers if cfg.workers >= 0 else default_workers(self.run.device)
        self.stream = batches(self.run.batches, self.START, self.START + steps, workers)
        self.i, self.times, self.waits, self.totals = 0, [], 0.0, 0.0
        self.hyper, self.hyper_times = 0.0, []  # seconds in hypergradient calls: this step, all
        method = self.run.method
        if hasattr(method, "hypergradient"):  # a meta method: time its estimator calls
            method.hypergradient = self.timed(method.hypergradient)

    def sync(self) -> None:
        if self.run.device.type == "cuda":
            torch.cuda.synchronize()

    def timed(self, fn):
        def call(*args, **kwargs):
            self.sync()
            t0 = time.perf_counter()
            out = fn(*args, **kwargs)
            self.sync()
            self.hyper += time.perf_counter() - t0
            return out

        return call

    def step(self, measured: bool) -> None:
        t0 = time.perf_counter()
        batch = next(self.stream)
        t1 = time.perf_counter()
        torch.manual_seed(self.i)
        self.hyper = 0.0
        self.run.method.train_step(batch)
        self.sync()
        t2 = time.perf_counter()
        self.i += 1
        if measured:
            self.times.append(t2 - t1)
            self.hyper_times.append(self.hyper)
            self.waits, self.totals = self.waits + (t1 - t0), self.totals + (t2 - t0)

    def per_step(self, times: list[float]) -> float:
        """Median over cycles of the mean time per step, in ms. A cycle is `k` consecutive
        steps (Green Meta-T: one meta step every k; 1 for every other method), so that the
        steps with and without a meta step count in their proportion."""
        k = getattr(self.run.method.cfg, "k", 1)
        cycles = [times[i : i + k] for i in range(0, len(times) - k + 1, k)] or [times]
        return 1e3 * statistics.median(statistics.fmean(c) for c in cycles)

    def result(self) -> dict[str, float]:
        """step_ms, data_ms (building one batch on the host), data_wait_share, hypergrad_ms."""
        host = []
        for i in range(3):
            t0 = time.perf_counter()
            self.run.batches.host(self.START + i)
            host.append(time.perf_counter() - t0)
        return {
            "step_ms": self.per_step(self.times),
            "data_ms": 1e3 * statistics.median(host),
            "data_wait_share": self.waits / self.totals,
            "hypergrad_ms": self.per_step(self.hyper_times),
            "ran": ",".join(sorted(getattr(self.run.method, "estimators_run", ()))),
        }


def bench(
    names: tuple[str, ...],
    scale: float,
    repeats: int,
    warmup: int,
    device: str,
    estimators: list[str] | None = None,
    overrides: tuple[str, ...] = (),
) -> pd.DataFrame:
    data = ensure_data(names)
    rows = []
    for name in names:
        meta = scaled(Run(name, overrides=overrides).config, scale, device)
        base = configs.base_config(meta)
        variants = [meta.estimator] + [e for e in estimators or [] if e != meta.estimator]
        runs = [(base, "-")] + [(replace(meta, estimator=e), e) for e in variants]
        timers = [Timer(cfg, warmup + repeats) for cfg, _ in runs]
        for i in range(warmup + repeats):  # interleaved: the variants see the same conditions
            for timer in timers:
                timer.step(measured=i >= warmup)
        results = [timer.result() for timer in timers]
        base_row = results[0]
        for (method_cfg, est), row in zip(runs, results, strict=True):
            rows.append(
                {
                    "experiment": name,
                    "method": method_cfg.method,
                    "estimator": est
                    + (f" → {row['ran']}" if est == "auto" else "")
                    + (" (default)" if est == meta.estimator else ""),
                    "device": device,
                    "batch": batch_text(method_cfg),
                    "model": meta.model,
                    "step_ms": row["step_ms"],
                    "base_step_ms": base_row["step_ms"],
                    "ratio_vs_base": row["step_ms"] / base_row["step_ms"],
                    "data_ms": row["data_ms"],
                    "data_wait_share": row["data_wait_share"],
                    "hypergrad_ms": row["hypergrad_ms"],
                    "data": data[meta.dataset],
                }
            )
        print(f"  {name}: done", flush=True)
    return pd.DataFrame(rows)


def plot(frame: pd.DataFrame, path: Path) -> None:
    metas = frame[frame.estimator != "-"]
    labels = [f"{r.experiment}\n{r.estimator}" for r in metas.itertuples()]
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(labels)), 4))
    ax.bar(range(len(labels)), metas.ratio_vs_base, color="tab:blue", label="meta step")
    ax.bar(
        range(len(labels)),
        metas.hypergrad_ms / metas.base_step_ms,
        color="tab:green",
        label="of which the hypergradient",
    )
    ax.bar(
        range(len(labels)),
        metas.ratio_vs_base * metas.data_wait_share,
        color="tab:orange",
        label="of which waiting for data",
    )
    ax.axhline(1.0, color="k", ls="--", lw=1)
    ax.axhline(2.0, color="tab:red", ls=":", lw=1, label="2× the base")
    ax.set_xticks(range(len(labels)), labels, fontsize=8)
    ax.set_ylabel("time per training step / base method's")
    ax.set_title(f"Cost of a meta step at paper model sizes ({frame.device.iloc[0]})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# how the docs table names experiments and models
TITLES = {
    "metagrad_cifar10": "Meta-Gradient",
    "metasemi_cifar10": "Meta-Semi",
    "metathreshold_cifar10": "Meta-T",
    "metathreshold_green_cifar10": "Green Meta-T (k = 2)",
    "impute_v2_aflw": "Impute V2 (authors' protocol)",
}
MODELS = {"cnn13": "CNN-13", "wrn28": "WRN-28-2", "tcdcn": "TCDCN", "resnet18": "ResNet-18"}


def docs_table(frame: pd.DataFrame) -> str:
    """The documentation's table of `frame` (bench.csv): one row per experiment, its base step,
    and each meta step in base steps with, in brackets, the part of it in the hypergradient
    (hypergrad_ms / base_step_ms); one column for the default estimator and one per estimator
    timed (the default's column repeats it)."""

    def cell(row) -> str:
        return f"{row.ratio_vs_base:.2f}× [{row.hypergrad_ms / row.base_step_ms:.2f}]"

    metas = frame[frame.estimator != "-"]
    named = metas.estimator.str.removesuffix(" (default)").str.split(" → ").str[0]
    timed = set(named) - {"auto"}
    columns = [e for e in ESTIMATORS if e in timed] + sorted(timed - set(ESTIMATORS))
    header = ["experiment", "base step", "meta step, default estimator"]
    header += [f"`{e}`" for e in columns]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "--:|" * (len(header) - 1)]
    for name, rows in metas.groupby("experiment", sort=False):
        default = rows[rows.estimator.str.endswith(" (default)")].iloc[0]
        ran = default.estimator.removesuffix(" (default)")
        batch = default.batch.removesuffix("×1")
        title = f"{TITLES.get(name, name)}, {MODELS.get(default.model, default.model)}, {batch}"
        by_name = dict(zip(named[rows.index], rows.itertuples(), strict=True))
        cells = [title, f"{default.base_step_ms:.0f} ms", f"{cell(default)} (`{ran}`)"]
        cells += [cell(by_name[e]) if e in by_name else "" for e in columns]
        lines.append("| " + " | ".join(cells).replace("`auto → ", "`auto` → `") + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    cuda = torch.cuda.is_available()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="*", default=list(EXPERIMENTS), help="experiments")
    parser.add_argument("--scale", type=float, default=None, help="batch-size factor")
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="cuda" if cuda else "cpu")
    parser.add_argument("--estimators", default="", help="more estimators, comma-separated")
    parser.add_argument("--set", nargs="*", default=[], help="key=value for every run")
    parser.add_argument("--out", type=Path, default=Path("results"))
    parser.add_argument(
        "--docs", type=Path, default=None, help="also write the docs' table to DOCS/bench.md"
    )
    args = parser.parse_args(argv)
    scale = args.scale or float(os.environ.get("BENCH_SCALE") or (1.0 if cuda else 0.125))
    extra = [e for e in args.estimators.split(",") if e]
    frame = bench(
        tuple(args.only), scale, args.repeats, args.warmup, args.device, extra, tuple(args.set)
    )
    args.out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(args.out / "bench.csv", index=False)
    text = frame.to_markdown(index=False, floatfmt=".2f")
    (args.out / "bench.md").write_text(f"batch scale {scale:g}\n\n{text}\n")
    plot(frame, args.out / "bench.png")
    command = command_line("analysis.bench", argv)
    docs = save_docs(
        f"batch scale {scale:g}, {args.device}\n\n{docs_table(frame)}", args.docs, "bench", command
    )
    print(text)
    print(f"wrote {args.out}/bench.{{csv,md,png}}" + (f" and {docs}" if docs else ""))


if __name__ == "__main__":
    sys.exit(run_cli(main))
