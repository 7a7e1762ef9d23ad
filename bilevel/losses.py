"""Structured inner losses: callables like any `inner_loss`, with a form the `analytic`
estimator can read.

`ImputedTargets` is the SSL inner loss with imputed targets z for unlabeled inputs
(pseudo labels, Learning-to-Impute's z, Meta-Gradient's ỹ):

    L_in(θ, λ) = mean_j ℓ(f(x_j), y_j)  +  w · mean_i ℓ(f(x_i), z_i),     z = λ[key]

(`reduction="sum"` sums instead of averaging; the labeled term is optional). Per-sample losses
ℓ(o, t), summed over output dimensions:

    mse          ‖o − t‖²
    bce          −[t log σ(o) + (1 − t) log(1 − σ(o))]        (binary, logits o)
    ce           −Σ_c t_c log softmax(o)_c                       (soft targets)
    softmax_mse  ‖softmax(o) − t‖²                               (Meta-Gradient's consistency)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch.nn.functional as F
from torch import Tensor

from .parallel import LOCAL, Shard
from .problem import ModelFn

LossKind = Literal["mse", "bce", "ce", "softmax_mse"]
LOSS_KINDS: tuple[str, ...] = ("mse", "bce", "ce", "softmax_mse")


def per_sample_loss(kind: str, out: Tensor, target: Tensor) -> Tensor:
    """ℓ(out_i, target_i) for each row i (see module docstring)."""
    if out.shape != target.shape:
        raise ValueError(f"{kind}: output shape {tuple(out.shape)} != target {tuple(target.shape)}")
    if kind == "mse":
        per = (out - target).pow(2)
    elif kind == "bce":
        per = F.binary_cross_entropy_with_logits(out, target, reduction="none")
    elif kind == "ce":
        per = -target * F.log_softmax(out, dim=1)
    elif kind == "softmax_mse":
        per = (F.softmax(out, dim=1) - target).pow(2)
    else:
        raise ValueError(f"unknown loss kind {kind!r}; valid: {', '.join(LOSS_KINDS)}")
    return per.reshape(per.shape[0], -1).sum(dim=1)


@dataclass
class ImputedTargets:
    """Inner loss with imputed targets `hparams[key]` for the unlabeled inputs `x`."""

    x: Tensor
    kind: LossKind
    key: str = "z"
    weight: float = 1.0
    reduction: Literal["mean", "sum"] = "mean"
    labeled: tuple[Tensor, Tensor] | None = None
    labeled_kind: LossKind | None = None  # loss of the labeled term (default: `kind`)
    shard: Shard = LOCAL  # data parallel: means are over the global batch (bilevel.parallel)

    def __post_init__(self) -> None:
        for kind in (self.kind, self.labeled_kind or self.kind):
            if kind not in LOSS_KINDS:
                raise ValueError(f"unknown loss kind {kind!r}; valid: {', '.join(LOSS_KINDS)}")
        if self.reduction not in ("mean", "sum"):
            raise ValueError(f"reduction must be 'mean' or 'sum', got {self.reduction!r}")

    @property
    def scale(self) -> float:
        """s in L_in = … + s·Σ_i ℓ(f(x_i), z_i)."""
        return self.weight / (len(self.x) * self.shard.world if self.reduction == "mean" else 1)

    def _reduce(self, per: Tensor) -> Tensor:
        return self.shard.mean(per) if self.reduction == "mean" else per.sum()

    def unlabeled(self, f: ModelFn, hparams: dict[str, Tensor]) -> Tensor:
        """The term with the imputed targets: use as the problem's `coupled_loss`."""
        if self.key not in hparams:
            raise KeyError(f"ImputedTargets needs hparams[{self.key!r}]; got {sorted(hparams)}")
        return self.weight * self._reduce(per_sample_loss(self.kind, f(self.x), hparams[self.key]))

    def __call__(self, f: ModelFn, hparams: dict[str, Tensor]) -> Tensor:
        loss = self.unlabeled(f, hparams)  # first: dropout masks as in `unlabeled` alone
        if self.labeled is not None:
            x_l, y_l = self.labeled
            kind = self.labeled_kind or self.kind
            loss = loss + self._reduce(per_sample_loss(kind, f(x_l), y_l))
        return loss
