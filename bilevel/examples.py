"""Canonical bilevel problems, one per kind of hyperparameter, for tests and benchmarks.

Each builder takes a model and a labeled / unlabeled / outer batch and returns
`(problem, hparams)`. Targets that the methods compute from the model (pseudo labels, the
meta-network's input features) are computed once here, at θ₀, and held fixed.

    (a) imputed_targets    λ = {"z": targets of the unlabeled batch}  (Meta-Gradient, L2I)
    (b) sample_weights     λ = {"w": per-sample weights of pseudo-labeled losses, at 0} (Meta-Semi)
    (c) weighting_network  λ = parameters of a small MLP that scales per-sample losses (Meta-T)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from .losses import ImputedTargets, per_sample_loss
from .problem import BilevelProblem, ModelFn


@dataclass
class Batch:
    """Inputs for one meta step. `y_*` are class indices (classification) or float targets."""

    x_lab: Tensor
    y_lab: Tensor
    x_unl: Tensor
    x_out: Tensor
    y_out: Tensor
    task: str = "classification"  # or "regression"

    @property
    def kind(self) -> str:
        """Per-sample loss used for soft targets: soft cross-entropy or squared error."""
        return "ce" if self.task == "classification" else "mse"

    def targets(self, y: Tensor, like: Tensor) -> Tensor:
        """Class indices → one-hot rows like the model output; regression targets unchanged."""
        if self.task == "classification":
            return F.one_hot(y, like.shape[1]).to(like.dtype)
        return y


def outer_loss(batch: Batch):
    """G: mean supervised loss on the outer batch."""

    def G(f: ModelFn) -> Tensor:
        out = f(batch.x_out)
        return per_sample_loss(batch.kind, out, batch.targets(batch.y_out, out)).mean()

    return G


@torch.no_grad()
def _predictions(model: nn.Module, batch: Batch) -> Tensor:
    """The model's prediction for the unlabeled batch at θ₀ (softmax or raw output)."""
    out = model(batch.x_unl)
    return out.softmax(1) if batch.task == "classification" else out


@torch.no_grad()
def _teacher(model: nn.Module, batch: Batch, seed: int = 0, sharpen: float = 0.5) -> Tensor:
    """Pseudo labels as SSL methods make them: the θ₀ model on a second (noisy) view of the
    unlabeled batch, sharpened (temperature `sharpen`) for classification. (Targets equal to
    the model's own softmax would make the soft cross-entropy's gradient vanish.)"""
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(batch.x_unl.shape, generator=g, dtype=batch.x_unl.dtype)
    out = model(batch.x_unl + 0.5 * noise.to(batch.x_unl.device))
    return (out / sharpen).softmax(1) if batch.task == "classification" else out


def imputed_targets(
    model: nn.Module,
    batch: Batch,
    *,
    at_predictions: bool = True,
    with_labeled: bool = True,
    seed: int = 0,
    **problem_kw,
) -> tuple[BilevelProblem, dict[str, Tensor]]:
    """(a) z at the model's predictions, or a random point away from them."""
    z = _predictions(model, batch)
    if not at_predictions:
        g = torch.Generator().manual_seed(seed)
        noise = torch.randn(z.shape, generator=g, dtype=z.dtype).to(z.device)
        z = (z.log() + 2 * noise).softmax(1) if batch.task == "classification" else z + noise
    labeled = (batch.x_lab, batch.targets(batch.y_lab, z)) if with_labeled else None
    inner = ImputedTargets(batch.x_unl, batch.kind, labeled=labeled)
    problem = BilevelProblem(
        model, inner, outer_loss(batch), coupled_loss=inner.unlabeled, **problem_kw
    )
    return problem, {"z": z}


def sample_weights(
    model: nn.Module, batch: Batch, **problem_kw
) -> tuple[BilevelProblem, dict[str, Tensor]]:
    """(b) L_in = Σ_j w_j ℓ(f(u_j), ŷ_j) at w = 0 with fixed soft pseudo labels ŷ (Meta-Semi)."""
    pseudo = _teacher(model, batch)

    def inner(f: ModelFn, hp: dict[str, Tensor]) -> Tensor:
        return (hp["w"] * per_sample_loss(batch.kind, f(batch.x_unl), pseudo)).sum()

    w = torch.zeros(len(batch.x_unl), dtype=pseudo.dtype, device=pseudo.device)
    return BilevelProblem(model, inner, outer_loss(batch), **problem_kw), {"w": w}


def weighting_network(
    model: nn.Module, batch: Batch, hidden: int = 8, seed: int = 0, **problem_kw
) -> tuple[BilevelProblem, dict[str, Tensor]]:
    """(c) per-sample weights σ(g_φ(p_j)) from an MLP g_φ on the θ₀ prediction; λ = φ.

    L_in = mean_j ℓ(f(x_j), y_j) + mean_j σ(g_φ(p_j)) ℓ(f(u_j), ŷ_j).
    """
    pseudo = _teacher(model, batch)
    feats = pseudo
    with torch.random.fork_rng(devices=[]):  # seeded init without touching the global state
        torch.manual_seed(seed)
        net = nn.Sequential(nn.Linear(feats.shape[1], hidden), nn.Tanh(), nn.Linear(hidden, 1))
    net = net.to(dtype=feats.dtype, device=feats.device)
    phi = {k: v.detach() for k, v in net.named_parameters()}

    def unlabeled(f: ModelFn, hp: dict[str, Tensor]) -> Tensor:
        weights = torch.sigmoid(functional_call(net, hp, (feats,))).squeeze(1)
        return (weights * per_sample_loss(batch.kind, f(batch.x_unl), pseudo)).mean()

    def inner(f: ModelFn, hp: dict[str, Tensor]) -> Tensor:
        unl = unlabeled(f, hp)  # first, so that `unlabeled` alone draws the same dropout masks
        out = f(batch.x_lab)
        return per_sample_loss(batch.kind, out, batch.targets(batch.y_lab, out)).mean() + unl

    problem = BilevelProblem(model, inner, outer_loss(batch), coupled_loss=unlabeled, **problem_kw)
    return problem, phi


BUILDERS = {
    "a_imputed_at_pred": lambda m, b, **kw: imputed_targets(m, b, at_predictions=True, **kw),
    "a_imputed_away": lambda m, b, **kw: imputed_targets(m, b, at_predictions=False, **kw),
    "b_sample_weights": sample_weights,
    "c_weighting_net": weighting_network,
}
