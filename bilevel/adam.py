"""A differentiable Adam / AdamW step with exactly `torch.optim.Adam`'s and `AdamW`'s arithmetic.

For each parameter p with gradient g, state (t, m, v) (zeros and t = 0 before the first step):

    t ← t + 1
    d = g + wd·p                 (Adam; AdamW instead shrinks p ← p·(1 − lr·wd))
    m ← m + (1 − β₁)(d − m)      (torch.lerp, as torch)
    v ← β₂·v + (1 − β₂)·d²
    p ← p − lr/(1 − β₁ᵗ) · m / (√v / √(1 − β₂ᵗ) + ε)

Nothing here is in-place, so the step can be differentiated in reverse or forward mode; √v is
taken with a zero derivative where v = 0 (a parameter whose gradient has always been 0), where
the plain square root's derivative is infinite and would turn the hypergradient into nan.

The one-step estimators (`forward`, `fd`, `analytic`) need θ₁'s derivative in the gradient:
the update u(d) (θ₁ = θ₀ − lr·u) is elementwise in d, so ∂θ₁/∂g = −lr·diag(D), D = ∂u/∂d, which
`direction_scale` evaluates exactly by one forward-mode pass along a tangent of ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .forward_ad import load_jvp_decompositions

Params = dict[str, Tensor]
AdamState = dict[str, dict[str, Tensor]]  # name -> {"step", "exp_avg", "exp_avg_sq"}


@dataclass(frozen=True)
class AdamConfig:
    """Hyperparameters of an Adam (or, `decoupled=True`, AdamW) inner step (torch's names)."""

    lr: float
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    decoupled: bool = False  # AdamW

    def __post_init__(self) -> None:
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a finite number > 0, got {self.lr}")
        if not all(0 <= b < 1 for b in self.betas) or len(self.betas) != 2:
            raise ValueError(f"betas must be two numbers in [0, 1), got {self.betas}")
        if not self.eps >= 0:
            raise ValueError(f"eps must be >= 0, got {self.eps}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")

    def _direction(
        self, d: Tensor, state: dict[str, Tensor] | None
    ) -> tuple[Tensor, float, dict[str, Tensor]]:
        """(m/(√v̂ + ε), 1 − β₁ᵗ, new state): θ ← θ − lr/(1 − β₁ᵗ)·m/(√v̂ + ε) in torch's order."""
        beta1, beta2 = self.betas
        t = _next_step(state)
        if state:
            m0, v0 = state["exp_avg"], state["exp_avg_sq"]
        else:
            m0, v0 = torch.zeros_like(d), torch.zeros_like(d)
        m = torch.lerp(m0, d, 1 - beta1)
        v = v0 * beta2 + (1 - beta2) * d * d
        positive = v > 0
        root = torch.where(positive, torch.where(positive, v, 1.0).sqrt(), 0.0)
        ratio = m / (root / (1 - beta2**t) ** 0.5 + self.eps)
        new = {"step": torch.tensor(t, dtype=torch.float32), "exp_avg": m, "exp_avg_sq": v}
        return ratio, 1 - beta1**t, new

    def step(
        self, params: Params, grads: Params, state: AdamState, scale: Params | None = None
    ) -> tuple[Params, AdamState]:
        """One step from `state` (a missing name: the parameter's first step); inputs unchanged.
        `scale`: factors of lr by parameter name (a param group with lr·s in torch's Adam)."""
        new_params: Params = {}
        new_state: AdamState = dict(state)
        for name, p in params.items():
            d = grads[name]
            if self.weight_decay and not self.decoupled:
                d = d + self.weight_decay * p
            ratio, bc1, new_state[name] = self._direction(d, state.get(name))
            lr = self.lr if scale is None or name not in scale else self.lr * scale[name]
            if self.weight_decay and self.decoupled:
                p = p * (1 - lr * self.weight_decay)
            new_params[name] = p - (lr / bc1) * ratio
        return new_params, new_state

    def direction_scale(self, params: Params, grads: Params, state: AdamState) -> Params:
        """D = ∂u/∂d elementwise at the first step's gradient (see the module docstring)."""
        out = {}
        load_jvp_decompositions()
        for name, p in params.items():
            d = grads[name].detach()
            if self.weight_decay and not self.decoupled:
                d = d + self.weight_decay * p.detach()
            s = state.get(name)
            _, tangent = torch.func.jvp(
                lambda x, s=s: self._direction(x, s)[0], (d,), (torch.ones_like(d),)
            )
            out[name] = tangent / (1 - self.betas[0] ** _next_step(s))
        return out


def _next_step(state: dict[str, Tensor] | None) -> float:
    """t of the step about to be taken from `state` (1 from an empty state)."""
    return float(state["step"]) + 1 if state else 1.0
