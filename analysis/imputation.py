"""Learning to Impute (Li, Foo, Bilen) figures.

Fig. 2  top: hold-out loss C^H of the virtual model before and after the update of the
        imputed labels z, over training (logged by the method every `log_every` steps and
        averaged per evaluation interval); bottom: test error / NME of the base method and
        of Impute over training.
Fig. 3  landmarks on test faces: ground truth, the base method (Mean Teacher) and Impute V1.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch

from experiments import configs
from experiments.checkpoint import restore

from .context import Context, Need
from .output import save_figure
from .seeds import Spec

IMPUTE = {"digits": "impute_v1_digits", "synthfaces": "impute_v1_synthfaces"}
PAIRS = {  # dataset: (base, impute), the base run derived
    dataset: (Spec(configs.base_of(name)), Spec(name)) for dataset, name in IMPUTE.items()
}


def needs(ctx: Context) -> list[Need]:
    return [(s, 0) for pair in PAIRS.values() for s in pair]


def test_metric(ctx: Context, spec: Spec) -> str:
    s = ctx.summary(spec, 0)
    return s["primary"].split("/", 1)[1]


def figure2(ctx: Context) -> list:
    fig, axes = plt.subplots(2, len(PAIRS), figsize=(5 * len(PAIRS), 6), squeeze=False)
    for col, (base, ours) in enumerate(PAIRS.values()):
        ax = axes[0, col]
        for tag, style in (("before", "--"), ("after", "-")):
            c = ctx.curve(ours, 0, "train", f"holdout_{tag}")
            ax.plot(c.step, c.value, style, marker="o", ms=3, label=f"{tag} the z update")
        ax.set(title=f"{ours.name}: hold-out loss C^H", xlabel="step", ylabel="C^H", yscale="log")
        ax.legend()
        ax = axes[1, col]
        for spec in (base, ours):
            metric = test_metric(ctx, spec)
            c = ctx.curve(spec, 0, "test", metric)
            ax.plot(c.step, c.value, marker="o", ms=3, label=f"{spec.name} ({metric})")
        ax.set(xlabel="step", ylabel="test " + ("NME %" if "nme" in metric else "error %"))
        ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, ctx.out, "impute_fig2_holdout")


@torch.no_grad()
def landmarks(path, count: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(images, true landmarks, predicted landmarks) in pixels for the first test faces; the
    prediction of the model the run reports (EMA where `eval_ema`)."""
    cfg, run = restore(path)
    net = run.ema.module if cfg.eval_ema and run.ema is not None else run.model
    net.eval()
    test = run.data.test
    out = net(run.batches.normalise(test.x[:count])).cpu().double()
    pred = run.data.task.to_pixels(out).view(count, -1, 2)
    return test.x[:count, 0], test.y[:count].double().view(count, -1, 2), pred


def figure3(ctx: Context, count: int = 8) -> list:
    base, ours = PAIRS["synthfaces"]
    images, truth, base_pred = landmarks(ctx.path(base, 0), count)
    _, _, our_pred = landmarks(ctx.path(ours, 0), count)
    fig, axes = plt.subplots(2, count // 2, figsize=(2.2 * count // 2, 4.6))
    for i, ax in enumerate(axes.flat):
        ax.imshow(images[i], cmap="gray")
        for pts, marker, color, label in (
            (truth[i], "o", "lime", "ground truth"),
            (base_pred[i], "x", "red", base.name),
            (our_pred[i], "+", "deepskyblue", ours.name),
        ):
            ax.scatter(pts[:, 0], pts[:, 1], marker=marker, c=color, s=22, label=label)
        ax.axis("off")
    axes.flat[0].legend(fontsize=6, loc="lower left")
    fig.suptitle("test faces: ground truth, Mean Teacher, Impute V1 (MT)")
    return save_figure(fig, ctx.out, "impute_fig3_landmarks")


def build(ctx: Context) -> list:
    return figure2(ctx) + figure3(ctx)
