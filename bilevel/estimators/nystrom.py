"""`nystrom`: the implicit-function-theorem hypergradient with H⁻¹ from a rank-k Nyström
approximation (Hataya & Yamada, "Nyström method for accurate and scalable implicit
differentiation", AISTATS 2023).

As `implicit` (θ* = θ_K after the problem's K steps without a graph, K = 0: θ₀):

    dG(θ*)/dλ = −∂/∂λ ⟨∇_θ L_in(θ*, λ), q⟩,     H q = v = ∇_θ G(θ*),   H = ∇²_θ L_in(θ*, λ) + wd·I

with q from a Nyström approximation instead. I: k coordinates of the flattened θ (n of them),
drawn uniformly without replacement from `seed`; C = ∇²L_in[:, I] (n×k, k Hessian-vector
products with unit vectors), W = ∇²L_in[I, I] = C[I] (k×k), ∇²L_in ≈ C W⁺ Cᵀ. The weight
decay's wd·I is known exactly and kept (not approximated), so with μ = wd + ρ:

    μ > 0:  (C W⁺ Cᵀ + μI) q = v,  q = (1/μ) [v − C (μW + CᵀC)⁺ Cᵀ v]     (Woodbury)
    μ = 0:  q = (C W⁺ Cᵀ)⁺ v = U M⁺ Uᵀ v,  C = U S Vᵀ (thin SVD),  M = S Vᵀ W⁺ V S

With k = n (every column) C W⁺ Cᵀ = ∇²L_in, so ρ = 0 gives q = H⁻¹v exactly when H is
invertible. ρ > 0 damps (the paper's ρ); for μ > 0 the part of v outside the span of C is
scaled by 1/μ. A `rank` above n takes every column (clamped, not refused).

Cost: k HVPs in one `torch.func.vmap`ed forward-over-reverse pass (k times one HVP's
activations at once), O(nk) memory for C, O(nk²) for the SVD (μ = 0) or CᵀC (μ > 0) and a k×k
pseudo-inverse; no iterations. The columns come from a local generator, never the global one.
Exact only at a stationary point, and there only with k = n and ρ = 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..problem import BilevelProblem
from ..sgd import Params
from .base import COUNT, NON_NEGATIVE, Rule, option
from .implicit import HVP, AtStationaryPoint, implicit_with

SEED = Rule(lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0, "an int >= 0")


@dataclass(frozen=True)
class Nystrom(AtStationaryPoint):
    name = "nystrom"
    summary = "implicit function theorem at θ_K, H⁻¹ from k sampled columns of H (Nyström)"
    exact = False  # exact at a stationary point, with every column and rho = 0, only
    priority = 21
    steps = (0, None)
    compared = ()  # as `implicit`: another quantity than the unrolled one-step hypergradient
    rank: int = option(10, COUNT, "k: the rank, columns of H sampled (above n: all n)")
    rho: float = option(0.0, NON_NEGATIVE, "ρ: damping, C W⁺ Cᵀ + (wd + ρ)I is inverted")
    seed: int = option(0, SEED, "the seed of the columns' choice (a local generator)")

    def __call__(self, problem: BilevelProblem, hparams: dict[str, Tensor]) -> dict[str, Tensor]:
        return nystrom(problem, hparams, rank=self.rank, rho=self.rho, seed=self.seed)


def nystrom(
    problem: BilevelProblem,
    hparams: dict[str, Tensor],
    *,
    rank: int = 10,
    rho: float = 0.0,
    seed: int = 0,
) -> dict[str, Tensor]:
    """The implicit hypergradient with q from the rank-`rank` Nyström system (module doc)."""

    # data parallel: the Hessian-vector products sum over ranks inside autograd (`shard.use`),
    # which torch.func.vmap cannot batch; the k products then run one after another
    batched = not problem.shard.parallel

    def solve(hessian: HVP, wd: float, v: Params) -> Params:
        return nystrom_solve(hessian, v, rank, wd + rho, seed, batched)

    return implicit_with(problem, hparams, solve)


def column_indices(n: int, k: int, seed: int) -> Tensor:
    """min(k, n) coordinates of 0 … n−1, uniformly without replacement, sorted (CPU, int64)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=g)[: min(k, n)].sort().values


def nystrom_solve(
    hessian: HVP, v: Params, columns: int, mu: float, seed: int, batched: bool = True
) -> Params:
    """q with (C W⁺ Cᵀ + μI) q = v, C = A[:, I] and W = A[I, I] for A u = hessian(u) symmetric
    (μ = 0: q = (C W⁺ Cᵀ)⁺ v; module docstring). The k products A e_i in one vmap, or one by
    one (`batched=False`)."""
    names = list(v)
    flat_v = torch.cat([v[k].reshape(-1) for k in names])
    n = flat_v.numel()
    index = column_indices(n, columns, seed).to(flat_v.device)
    basis = torch.zeros(len(index), n, dtype=flat_v.dtype, device=flat_v.device)
    basis[torch.arange(len(index), device=flat_v.device), index] = 1.0
    units = unflatten(basis, v)
    if batched:
        hu = torch.func.vmap(hessian, randomness="same")(units)
    else:
        each = [hessian({k: t[i] for k, t in units.items()}) for i in range(len(index))]
        hu = {k: torch.stack([h[k] for h in each]) for k in names}
    c = torch.cat([hu[k].reshape(len(index), -1) for k in names], dim=1).T  # n×k, A e_i
    w = c[index]
    w = (w + w.T) / 2  # A[I, I], symmetric up to rounding
    if mu > 0:
        inner = torch.linalg.pinv(mu * w + c.T @ c, hermitian=True)
        q = (flat_v - c @ (inner @ (c.T @ flat_v))) / mu
    else:
        u, s, vh = torch.linalg.svd(c, full_matrices=False)
        keep = s > s[0] * max(c.shape) * torch.finfo(s.dtype).eps
        u, s, vh = u[:, keep], s[keep], vh[keep]
        m = s[:, None] * (vh @ torch.linalg.pinv(w, hermitian=True) @ vh.T) * s[None, :]
        q = u @ (torch.linalg.pinv((m + m.T) / 2, hermitian=True) @ (u.T @ flat_v))
    return unflatten(q, v)


def unflatten(flat: Tensor, like: Params) -> Params:
    """The last dimension of `flat` split into tensors shaped as `like`'s (leading dims kept)."""
    out, start = {}, 0
    lead = flat.shape[:-1]
    for k, t in like.items():
        out[k] = flat[..., start : start + t.numel()].reshape(*lead, *t.shape)
        start += t.numel()
    return out
