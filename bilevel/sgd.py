"""A differentiable SGD step with exactly `torch.optim.SGD`'s arithmetic.

For each parameter p with gradient g (PyTorch's conventions, `maximize=False`):

    d = g + wd·p
    b = d                        on the first step (no buffer yet)
    b = μ·b + (1 − τ)·d          afterwards (τ = dampening)
    d = d + μ·b  if nesterov else b          (only when μ ≠ 0)
    p ← p − lr·d

Nothing here is in-place, so the step can be differentiated (reverse or forward mode).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import Tensor

Params = dict[str, Tensor]


@dataclass(frozen=True)
class SGDConfig:
    """Hyperparameters of the inner optimizer (the names and defaults of `torch.optim.SGD`)."""

    lr: float
    momentum: float = 0.0
    dampening: float = 0.0
    weight_decay: float = 0.0
    nesterov: bool = False

    def __post_init__(self) -> None:
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a finite number > 0, got {self.lr}")
        if self.momentum < 0:
            raise ValueError(f"momentum must be >= 0, got {self.momentum}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError("nesterov needs momentum > 0 and dampening = 0 (as torch.optim.SGD)")

    def first_step_scale(self, has_buffer: bool) -> float:
        """c such that θ₁ = θ₀ − c·lr·(∇L + wd·θ₀) + (terms independent of ∇L).

        One step is affine in the gradient; for the one-step estimators only the
        coefficient of ∇L matters: 1 without momentum; with momentum it is 1 (fresh buffer)
        or 1 − τ (existing buffer), plus μ times that under Nesterov.
        """
        if self.momentum == 0:
            return 1.0
        c = (1.0 - self.dampening) if has_buffer else 1.0
        return 1.0 + self.momentum * c if self.nesterov else c

    def step(
        self, params: Params, grads: Params, state: Params, scale: Params | None = None
    ) -> tuple[Params, Params]:
        """`sgd_step` with this config (`state`: the momentum buffers by name; `scale`: factors
        of lr by parameter name, see `sgd_step`)."""
        return sgd_step(params, grads, state, self, scale)

    def direction_scale(self, params: Params, grads: Params, state: Params) -> dict[str, float]:
        """The coefficient of the gradient in the first step, per parameter (see
        `first_step_scale`; the same interface as `AdamConfig.direction_scale`)."""
        return {n: self.first_step_scale(n in state) for n in params}


def sgd_step(
    params: Params, grads: Params, buffers: Params, cfg: SGDConfig, scale: Params | None = None
) -> tuple[Params, Params]:
    """One SGD step. Returns (new parameters, new momentum buffers); inputs are not modified.

    `buffers` maps a parameter name to its momentum buffer; a missing name means "first step".
    `scale` maps a parameter name to a factor of its learning rate, p ← p − lr·s·d (a learned
    per-layer learning rate; as a param group with lr·s in torch.optim.SGD); missing: 1.
    """
    new_params: Params = {}
    new_buffers: Params = dict(buffers)
    for name, p in params.items():
        d = grads[name]
        if cfg.weight_decay != 0:
            d = d + cfg.weight_decay * p
        if cfg.momentum != 0:
            old = buffers.get(name)
            b = d if old is None else cfg.momentum * old + (1.0 - cfg.dampening) * d
            new_buffers[name] = b
            d = d + cfg.momentum * b if cfg.nesterov else b
        lr = cfg.lr if scale is None or name not in scale else cfg.lr * scale[name]
        new_params[name] = p - lr * d
    return new_params, new_buffers
