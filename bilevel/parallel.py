"""Data parallelism: the hypergradient of a batch split over N processes, equal to one process's.

Each of N processes (ranks) holds an equal slice of the batch, and its losses are its *part* of
the global loss: L = Σ_r L_r, e.g. a mean over the global batch is Σ_{i ∈ rank} ℓ_i / (N·n).
Tensors every rank holds alike (θ, a hyperparameter network's Θ) are *replicated*. Two
operations connect the two kinds, each the other's derivative (Megatron-LM's f and g):

    use(t)   replicated → per-rank use:  forward identity,    backward Σ over ranks
    sum(t)   per-rank parts → replicated: forward Σ over ranks, backward identity

With every use of a replicated tensor inside the per-rank losses wrapped in `use`, the cotangent
of a replicated tensor is its full derivative on every rank, so every derivative of every order
(reverse mode, forward mode by `torch.func.jvp` or dual tensors, forward-over-reverse,
second-order unrolls) is that of the global loss: ∇_θ L (the virtual step's gradient),
v = ∇_θ G(θ₁) and Hessian-vector products are all-reduced where the chain rule needs them, and
nowhere else. Derivatives in per-sample
hyperparameters (pseudo labels, sample weights, imputed targets) stay with the rank that holds
those samples, exact without communication; derivatives in replicated ones come out summed.
`Evaluator` wraps the parameters and the problem's `replicated` hyperparameters; a one-process
`Shard` (`world == 1`) makes every operation the identity, so single-process numbers do not
change by a bit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor


class _Use(torch.autograd.Function):
    """Identity; the cotangent is summed over ranks (`_Sum`)."""

    @staticmethod
    def forward(x: Tensor, group: Any) -> Tensor:
        return x.view_as(x)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        ctx.group = inputs[1]

    @staticmethod
    def backward(ctx, grad: Tensor):
        return _Sum.apply(grad, ctx.group), None

    @staticmethod
    def jvp(ctx, tangent: Tensor, _) -> Tensor:
        return tangent.view_as(tangent)


class _Sum(torch.autograd.Function):
    """Σ over ranks; the cotangent passes unchanged (`_Use`)."""

    @staticmethod
    def forward(x: Tensor, group: Any) -> Tensor:
        out = x.clone()
        dist.all_reduce(out, group=group)
        return out

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        ctx.group = inputs[1]

    @staticmethod
    def backward(ctx, grad: Tensor):
        return _Use.apply(grad, ctx.group), None

    @staticmethod
    def jvp(ctx, tangent: Tensor, _) -> Tensor:
        out = tangent.clone()
        dist.all_reduce(out, group=ctx.group)
        return out


@dataclass(frozen=True)
class Shard:
    """This process's place among `world` data-parallel ranks (`group`: the process group,
    None for the default one). `Shard()` is one process: every operation is the identity."""

    world: int = 1
    rank: int = 0
    group: Any = None

    @classmethod
    def current(cls, group: Any = None) -> Shard:
        """The shard of this process in `torch.distributed`'s group (one process when none)."""
        if not (dist.is_available() and dist.is_initialized()):
            return cls()
        return cls(dist.get_world_size(group), dist.get_rank(group), group)

    @property
    def parallel(self) -> bool:
        return self.world > 1

    # -- differentiable: the two conjugate operations ---------------------------------------
    def use(self, t: Tensor) -> Tensor:
        """A replicated tensor used in this rank's part of a loss (see module docstring)."""
        return _Use.apply(t, self.group) if self.parallel else t

    def sum(self, t: Tensor) -> Tensor:
        """Σ over ranks of per-rank parts, differentiably (see module docstring)."""
        return _Sum.apply(t, self.group) if self.parallel else t

    # -- reductions of the global batch ------------------------------------------------------
    def mean(self, per_sample: Tensor) -> Tensor:
        """This rank's part of the mean over the global batch of `per_sample` (equal slices):
        Σ_rank ℓ_i / (N·n). One process: `per_sample.mean()`."""
        if not self.parallel:
            return per_sample.mean()
        return per_sample.sum() / (per_sample.numel() * self.world)

    def total(self, t: Tensor) -> Tensor:
        """Σ over ranks, not differentiated (counts, sums of statistics, logs)."""
        if not self.parallel:
            return t
        out = t.detach().clone()
        dist.all_reduce(out, group=self.group)
        return out

    def gather(self, t: Tensor) -> Tensor:
        """The global batch of a per-rank slice `t` (rank order along dim 0), not
        differentiated."""
        if not self.parallel:
            return t
        parts = [torch.empty_like(t) for _ in range(self.world)]
        dist.all_gather(parts, t.detach().contiguous(), group=self.group)
        return torch.cat(parts)

    def rows(self, n: int) -> slice:
        """This rank's rows of a global batch of `n` samples (`n` must split evenly)."""
        if n % self.world:
            raise ValueError(f"a batch of {n} samples does not split over {self.world} ranks")
        size = n // self.world
        return slice(self.rank * size, (self.rank + 1) * size)

    def part(self, t: Tensor) -> Tensor:
        """This rank's rows of a global-batch tensor `t`."""
        return t[self.rows(len(t))] if self.parallel else t


LOCAL = Shard()
