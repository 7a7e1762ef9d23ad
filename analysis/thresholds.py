"""Meta-Threshold (Wei et al.) figures: the learned thresholds and the pseudo labels they pass.

    Fig. 5a  histogram of the per-sample thresholds τ over the unlabeled set (end of training)
    Fig. 5b  thresholds per class on a class-imbalanced split (digits, ratio γ, Sec. 5.3), and
             per class the share of unlabeled samples that pass and how many of those are right,
             Meta-T (τ) against FixMatch (0.95): the paper's Fig. 6 question
    Fig. 5c  the class-average threshold over training against FixMatch's fixed 0.95
    Fig. 4   correct and wrong pseudo labels passing the threshold per batch, over training,
             Meta-T against FixMatch (from the training logs)

τ on the whole unlabeled set is recomputed from the runs' snapshots (`MetaThreshold.per_sample`:
unaugmented inputs, eval mode, class-average confidence over the whole set rather than one
batch).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from experiments.checkpoint import restore
from methods.base import training_mode

from .context import Context, Need, snapshots
from .output import save_figure, save_table
from .seeds import Spec

FIXMATCH_THRESHOLD = 0.95
BALANCED = (Spec("metathreshold_digits"), Spec("fixmatch_digits"))
IMBALANCED = (Spec("metathreshold_imbalanced_digits"), Spec("fixmatch_imbalanced_digits"))


def needs(ctx: Context) -> list[Need]:
    return [(s, seed) for s in BALANCED for seed in ctx.seeds] + [(s, 0) for s in IMBALANCED]


def unlabeled_scores(path, state_file=None) -> pd.DataFrame:
    """Per unlabeled sample: confidence, predicted and true class, and τ (Meta-T runs; NaN for
    other methods) of the run at `path` with the weights of `state_file` (default: final)."""
    _, run = restore(path, state_file)
    x = run.batches.normalise(run.data.unlabeled.x)
    if hasattr(run.method, "per_sample"):
        out = run.method.per_sample(x)
    else:
        with training_mode(run.model, False), torch.no_grad():
            probs = run.model(x).softmax(1)
        conf, pred = probs.max(1)
        out = {"tau": torch.full_like(conf, float("nan")), "conf": conf, "pred": pred}
    frame = pd.DataFrame({k: v.detach().cpu().double().numpy() for k, v in out.items()})
    frame["true"] = run.data.unlabeled.y.numpy()
    frame["pred"] = frame.pred.astype(int)
    return frame


def over_training(path) -> pd.DataFrame:
    """`unlabeled_scores` at every snapshot of the run, with a `step` column."""
    return pd.concat(
        [unlabeled_scores(path, file).assign(step=step) for step, file in snapshots(path)],
        ignore_index=True,
    )


def class_average(frame: pd.DataFrame, by: str = "pred") -> pd.DataFrame:
    """Mean τ per class (`by` the predicted or the true class) and step where present."""
    keys = ["step", by] if "step" in frame else [by]
    return frame.groupby(keys, as_index=False).tau.mean().rename(columns={by: "class"})


def pass_table(frame: pd.DataFrame, threshold: np.ndarray | float) -> pd.DataFrame:
    """Per true class: samples, share passing `threshold` (%), and accuracy of those (%)."""
    passed = frame.conf.to_numpy() >= threshold
    right = frame.pred.to_numpy() == frame.true.to_numpy()
    rows = []
    for c in sorted(frame.true.unique()):
        here = frame.true.to_numpy() == c
        n_pass = int((passed & here).sum())
        rows.append(
            {
                "class": int(c),
                "samples": int(here.sum()),
                "pass %": 100.0 * n_pass / max(1, int(here.sum())),
                "right among passed %": 100.0 * (passed & here & right).sum() / max(1, n_pass),
            }
        )
    return pd.DataFrame(rows)


def _fig4(ctx: Context) -> list:
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, metric in zip(axes, ("pl_correct", "pl_wrong"), strict=True):
        for spec, style in zip(BALANCED, ("-", "--"), strict=True):
            for seed in ctx.seeds:
                c = ctx.curve(spec, seed, "train", metric)
                ax.plot(c.step, c.value, style, label=f"{spec.name} seed {seed}")
        ax.set(xlabel="step", title=metric.replace("pl_", "") + " pseudo labels passing / batch")
    axes[0].set_ylabel("samples per unlabeled batch")
    axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1))  # off the lines
    return save_figure(fig, ctx.out, "metathreshold_fig4_pseudo_labels")


def build(ctx: Context) -> list:
    files = _fig4(ctx)
    meta, _ = BALANCED
    history = over_training(ctx.path(meta, ctx.seeds[0]))
    final = history[history.step == history.step.max()]  # the last snapshot is the final state
    fig, ax = plt.subplots(figsize=(5, 3.6))
    ax.hist(final.tau, bins=40)
    ax.axvline(FIXMATCH_THRESHOLD, color="k", ls=":", label="FixMatch 0.95")
    ax.set(xlabel="τ", ylabel="unlabeled samples", title="Meta-T thresholds (digits, end)")
    ax.legend()
    files += save_figure(fig, ctx.out, "metathreshold_fig5a_histogram")

    per_class = class_average(history)
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for c, part in per_class.groupby("class"):
        ax.plot(part.step, part.tau, lw=0.8, label=f"class {c}")
    mean = history.groupby("step", as_index=False).tau.mean()
    ax.plot(mean.step, mean.tau, "k", lw=2, label="all")
    ax.axhline(FIXMATCH_THRESHOLD, color="k", ls=":", label="FixMatch 0.95")
    ax.set(xlabel="step", ylabel="class-average τ", title="Meta-T threshold over training")
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.02, 1))  # off the lines
    files += save_figure(fig, ctx.out, "metathreshold_fig5c_over_training")

    meta_i, fix_i = IMBALANCED
    scores = unlabeled_scores(ctx.path(meta_i, 0))
    fix_scores = unlabeled_scores(ctx.path(fix_i, 0))
    table = pass_table(scores, scores.tau.to_numpy()).rename(
        columns={"pass %": "Meta-T pass %", "right among passed %": "Meta-T right %"}
    )
    table.insert(2, "mean tau (true class)", class_average(scores, "true").tau.to_numpy())
    fix = pass_table(fix_scores, FIXMATCH_THRESHOLD)
    table["FixMatch pass %"] = fix["pass %"].to_numpy()
    table["FixMatch right %"] = fix["right among passed %"].to_numpy()
    files += save_table(table, ctx.out, "metathreshold_fig5b_imbalanced", floatfmt=".3f")
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    ax1.bar(table["class"], table["mean tau (true class)"], color="C0")
    ax1.axhline(FIXMATCH_THRESHOLD, color="k", ls=":", label="FixMatch 0.95")
    ax1.set(xlabel="class (0: most samples)", ylabel="mean τ", title="Meta-T τ per class")
    ax1.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18))  # below the axes, off the bars
    width = 0.4
    ax2.bar(table["class"] - width / 2, table["Meta-T right %"], width, label="Meta-T")
    ax2.bar(table["class"] + width / 2, table["FixMatch right %"], width, label="FixMatch")
    ax2.set(xlabel="class", ylabel="right among passed (%)", title="pseudo-label accuracy")
    ax2.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2)
    files += save_figure(fig, ctx.out, "metathreshold_fig5b_imbalanced")
    return files
