"""MixMatch (Berthelot et al., 2019).

Guess q = Sharpen(mean_k softmax f(u^(k)), T) over K weak views (no gradient); shuffle
W = [x; u^(1..K)] with targets [onehot y; q…]; mix each with W (μ ~ Beta(α, α), μ ← max(μ, 1−μ));

    L = CE(f(x̃), ỹ) + λ(t) · mean ‖softmax f(ũ) − q̃‖²  (mean over samples and classes)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import BETA_SHAPE, FRACTION, NON_NEGATIVE, POSITIVE, Batch, Method, hp, linear_ramp
from .task import one_hot, soft_cross_entropy


@dataclass
class MixMatchConfig:
    weight: float = hp(75.0, NON_NEGATIVE)
    ramp: float = hp(0.016, FRACTION)  # 16k of 1M steps in the paper
    temperature: float = hp(0.5, POSITIVE)
    alpha: float = hp(0.75, BETA_SHAPE)  # Beta(α, α) of the mixup


def sharpen(p: torch.Tensor, temperature: float) -> torch.Tensor:
    p = p.pow(1.0 / temperature)
    return p / p.sum(1, keepdim=True)


class MixMatch(Method):
    name = "mixmatch"
    data_parallel = False  # its mixup pairs samples across the global batch
    Config = MixMatchConfig
    views = ("weak", "weak")  # K = 2
    tasks = ("classification",)

    def loss(self, batch: Batch):
        n = len(batch.x)
        with torch.no_grad():
            guess = torch.stack([self.model(u).softmax(1) for u in batch.u]).mean(0)
            q = sharpen(guess, self.cfg.temperature)
        inputs = torch.cat([batch.x, *batch.u])
        targets = torch.cat([one_hot(batch.y, q.shape[1], q), *[q] * len(batch.u)])
        mu = float(torch.distributions.Beta(self.cfg.alpha, self.cfg.alpha).sample())
        mu = max(mu, 1 - mu)
        perm = torch.randperm(len(inputs))
        out = self.model(mu * inputs + (1 - mu) * inputs[perm])
        mixed = mu * targets + (1 - mu) * targets[perm]
        sup = soft_cross_entropy(out[:n], mixed[:n]).mean()
        unsup = (out[n:].softmax(1) - mixed[n:]).pow(2).mean()
        weight = self.cfg.weight * linear_ramp(batch.progress, self.cfg.ramp)
        return sup + weight * unsup, {"sup": sup.detach(), "unsup": unsup.detach(), "mix": mu}
