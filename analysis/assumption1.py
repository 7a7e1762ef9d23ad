"""Meta-Semi (Wang et al.) Assumption 1, as its Fig. 2 checks it:

    E_{X,U} ‖∇_θ L_meta(X, U; θ_t)‖²  ≤  σ ‖∇_θ E_X G(X, θ_t)‖²       for all t

At every snapshot of a Meta-Semi run, S training mini-batch pairs (X, U) are drawn by the run's
own batch maker (augmentation included) and

    ratio = mean_s ‖∇ L_meta(X_s, U_s)‖² / ‖mean_s ∇ G(X_s)‖²

with L_meta the method's normalised weighted loss over Ũ (the loss it steps on) and
G(X) = Σ_{i∈X} CE(f(x_i), y_i) (the paper's sum over the mini-batch, Eq. 15). ∇E_X G is the
Monte-Carlo mean over the same S draws: its squared norm is biased upwards by tr Cov/S, which
lowers the ratio slightly for small S (the paper uses S = 500; the CPU default here is 100).
One curve per label count; the paper shows one point per epoch, we show one per snapshot.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import matplotlib.pyplot as plt
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor

from bilevel import frozen_norm_stats
from experiments.build import Parts
from experiments.checkpoint import restore
from experiments.data import mix_seed

from .context import Context, Need, snapshots
from .meta_vs_base import LABELS, label_spec
from .output import save_figure, save_table
from .seeds import Spec


def spec(labels: int) -> Spec:
    return dataclasses.replace(label_spec("metasemi_digits", labels), label=f"{labels} labels")


def needs(ctx: Context) -> list[Need]:
    return [(spec(n), 0) for n in LABELS]


def second_moment_ratio(sample_grads: Iterable[Tensor], mean_grad: Tensor) -> float:
    """mean_s ‖g_s‖² / ‖ḡ‖²."""
    norms = [float((g**2).sum()) for g in sample_grads]
    return sum(norms) / len(norms) / float((mean_grad**2).sum())


def _flat_grad(loss: Tensor, params: list[Tensor]) -> Tensor:
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return torch.cat(
        [
            (g if g is not None else torch.zeros_like(p)).flatten()
            for g, p in zip(grads, params, strict=True)
        ]
    )


def ratio_at(run: Parts, step: int, samples: int, seed: int = 0) -> dict[str, float]:
    """The Assumption-1 ratio of the run's current weights (`step` sets ramps)."""
    model, method = run.model, run.method
    params = [p for p in model.parameters() if p.requires_grad]
    meta_grads, sup_grads = [], []
    model.train()
    with frozen_norm_stats(model), torch.random.fork_rng(devices=[]):
        for s in range(samples):
            torch.manual_seed(mix_seed(seed, step, s))
            batch = dataclasses.replace(run.batches(10**7 + s), step=step)
            meta_loss, _ = method.loss(batch)  # L_meta (App. B: the loss Meta-Semi steps on)
            meta_grads.append(_flat_grad(meta_loss, params))
            sup = F.cross_entropy(model(batch.x), batch.y, reduction="sum")
            sup_grads.append(_flat_grad(sup, params))
    mean = torch.stack(sup_grads).mean(0)
    return {
        "ratio": second_moment_ratio(meta_grads, mean),
        "meta_grad_sq": sum(float((g**2).sum()) for g in meta_grads) / samples,
        "sup_grad_sq": float((mean**2).sum()),
    }


def ratios(path, samples: int) -> pd.DataFrame:
    """The ratio at every snapshot of the Meta-Semi run at `path`."""
    rows = []
    for step, file in snapshots(path):
        _, run = restore(path, file)
        rows.append({"step": step, **ratio_at(run, step, samples)})
    return pd.DataFrame(rows)


def build(ctx: Context, samples: int | None = None) -> list:
    samples = samples or (4 if ctx.smoke else 100)
    frames = [ratios(ctx.path(spec(n), 0), samples).assign(labels=n) for n in LABELS]
    frame = pd.concat(frames, ignore_index=True)
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for n, part in frame.groupby("labels"):
        ax.plot(part.step, part.ratio, marker="o", label=f"{n} labels")
    ax.set(
        xlabel="step",
        ylabel="E‖∇L_meta‖² / ‖∇E G‖²",
        yscale="log",
        title=f"Meta-Semi Assumption 1 (digits, {samples} draws)",
    )
    ax.legend()
    return save_figure(fig, ctx.out, "metasemi_assumption1") + save_table(
        frame, ctx.out, "metasemi_assumption1"
    )
