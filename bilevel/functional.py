"""Evaluating a problem's losses at arbitrary parameters, without touching the model.

Every estimator works inside one `Evaluator` context, which fixes the rules of DESIGN.md:

* Parameters: the model's parameters are never written; virtual parameters are passed to
  `torch.func.functional_call`.
* BatchNorm: the model's current mode is used for every evaluation, inner and outer. In train
  mode BatchNorm normalises with batch statistics, in eval mode with running statistics; in
  both, running statistics and `num_batches_tracked` are frozen for the duration of the call
  (``track_running_stats`` is switched off and restored on exit). This is the one choice for
  all estimators. (Methods that want the Meta-Gradient authors' eval-mode meta step call
  `model.eval()` before the estimator.) Other modules that write buffers in `forward` are
  not supported.
* Data parallelism: with a `problem.shard` over several ranks, the parameters and the
  `replicated` hyperparameters enter the losses through `shard.use` (`bilevel.parallel`), so
  every gradient below is the global one.
* Precision: evaluations run under the caller's `torch.autocast` (bfloat16 for the exact
  reverse- and forward-mode estimators), except in an `Evaluator(problem, precise=True)`, which
  switches autocast off: `fd`'s differences, `implicit`'s conjugate gradients and `analytic`'s
  closed form need float32 (in bfloat16 their results lose their direction).
* Randomness: every loss evaluation starts from the random state at the time the context was
  entered, so perturbed evaluations (θ ± εv) and all estimators see the same dropout masks;
  the global random state is restored on exit.
"""

from __future__ import annotations

from contextlib import ExitStack, contextmanager
from typing import Self

import torch
from torch import Tensor, nn
from torch.func import functional_call

from .problem import BilevelProblem, ModelFn
from .sgd import Params


def norm_layers(model: nn.Module) -> list[nn.Module]:
    """The BatchNorm layers of `model` (1d, 2d, 3d, sync)."""
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@contextmanager
def frozen_norm_stats(model: nn.Module):
    """Switch off running-statistics updates of every BatchNorm layer; restore on exit."""
    layers = norm_layers(model)
    saved = [m.track_running_stats for m in layers]
    try:
        for m in layers:
            m.track_running_stats = False
        yield
    finally:
        for m, flag in zip(layers, saved, strict=True):
            m.track_running_stats = flag


class Evaluator:
    """Losses and gradients of a `BilevelProblem` at given parameters (see module docstring)."""

    def __init__(self, problem: BilevelProblem, precise: bool = False) -> None:
        self.problem = problem
        self.precise = precise
        self.model = problem.model
        self.device = next(iter(problem.params().values())).device
        self._stack = ExitStack()
        self._first: tuple[dict[str, Tensor], Params] | None = None  # (λ, ∇_θ L_in(θ₀, λ))

    def __enter__(self) -> Self:
        devices = [self.device] if self.device.type == "cuda" else []
        self._stack.enter_context(torch.random.fork_rng(devices=devices))
        self._stack.enter_context(frozen_norm_stats(self.model))
        if self.precise:  # float32 whatever autocast the caller set
            self._stack.enter_context(torch.autocast(self.device.type, enabled=False))
        self._cpu_state = torch.get_rng_state()
        self._cuda_state = torch.cuda.get_rng_state(self.device) if devices else None
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()

    def replay_rng(self) -> None:
        """Reset the random state to the one at entry (same dropout masks every evaluation)."""
        torch.set_rng_state(self._cpu_state)
        if self._cuda_state is not None:
            torch.cuda.set_rng_state(self._cuda_state, self.device)

    # -- the model function and the two losses -------------------------------------------------
    def f(self, params: Params) -> ModelFn:
        """The model evaluated at `params` (trainable parameters; the rest come from the model)."""
        shard = self.problem.shard
        if shard.parallel:
            params = {k: shard.use(v) for k, v in params.items()}
        return ModelFn(lambda x: functional_call(self.model, params, (x,)), params)

    def hp(self, hparams: dict[str, Tensor]) -> dict[str, Tensor]:
        """`hparams` as the losses see them: replicated ones through `shard.use`."""
        shard, shared = self.problem.shard, self.problem.replicated
        if not shard.parallel or not shared:
            return hparams
        return {k: shard.use(v) if k in shared else v for k, v in hparams.items()}

    def inner(self, params: Params, hparams: dict[str, Tensor]) -> Tensor:
        self.replay_rng()
        return scalar(self.problem.inner_loss(self.f(params), self.hp(hparams)), "inner_loss")

    def coupled(self, params: Params, hparams: dict[str, Tensor]) -> Tensor:
        """The λ-dependent part of the inner loss (the whole inner loss unless the problem
        names a `coupled_loss`)."""
        loss = self.problem.coupled_loss or self.problem.inner_loss
        self.replay_rng()
        return scalar(loss(self.f(params), self.hp(hparams)), "coupled_loss")

    def outer(self, params: Params) -> Tensor:
        self.replay_rng()
        return scalar(self.problem.outer_loss(self.f(params)), "outer_loss")

    # -- gradients (graph-free unless asked) ---------------------------------------------------
    def inner_grad(self, params: Params, hparams: dict[str, Tensor]) -> Params:
        """∇_θ L_in(θ, λ) at `params`, with λ treated as a constant."""
        leaves = leaves_of(params)
        const = {k: v.detach() for k, v in hparams.items()}
        return grad_dict(self.inner(leaves, const), leaves)

    def outer_grad(self, params: Params) -> Params:
        """v = ∇_θ G(θ) at `params`."""
        leaves = leaves_of(params)
        return grad_dict(self.outer(leaves), leaves)

    def hparam_grad(self, params: Params, hparams: dict[str, Tensor]) -> dict[str, Tensor]:
        """∇_λ L_in(θ, λ) at fixed θ = `params` (no graph through the network's weights)."""
        return grad_dict(self.coupled(_detached(params), hparams), hparams)

    def step(
        self, params: Params, grads: Params, state: dict, hparams: dict[str, Tensor] | None = None
    ) -> tuple[Params, dict]:
        """One step of the problem's inner optimizer (SGD, Adam or AdamW) from `state`; with
        `hparams`, at the learning rates of the problem's `lr_scale` (if any)."""
        lr_scale = self.problem.lr_scale
        scale = None if lr_scale is None or hparams is None else lr_scale(self.hp(hparams))
        unknown = sorted(set(scale or {}) - set(params))
        if unknown:
            raise KeyError(f"lr_scale gives factors for names that are not trainable: {unknown}")
        return self.problem.optim.step(params, grads, state, scale)

    def first_grads(self, hparams: dict[str, Tensor]) -> Params:
        """∇_θ L_in(θ₀, λ), computed once per context and λ (the same tensors), or the
        problem's `first_inner_grad` when it gives it."""
        if self.problem.first_inner_grad is not None:
            return self.problem.first_inner_grad
        cached = self._first
        if (
            cached is None
            or cached[0].keys() != hparams.keys()
            or any(cached[0][k] is not v for k, v in hparams.items())
        ):
            self._first = (dict(hparams), self.inner_grad(self.problem.params(), hparams))
        return self._first[1]

    def first_step(self, hparams: dict[str, Tensor]) -> Params:
        """θ₁ = one real optimizer step from θ₀ on L_in (no graph)."""
        theta0 = self.problem.params()
        theta1, _ = self.step(theta0, self.first_grads(hparams), self.problem.initial_state())
        return {k: v.detach() for k, v in theta1.items()}

    def step_direction(self, v: Params, hparams: dict[str, Tensor]) -> Params:
        """w with ∂θ₁/∂λ·v = −lr·∂/∂λ⟨∇_θ L_in, w⟩: v scaled by the derivative of the first
        step's update in the gradient (SGD: per parameter, from momentum, nesterov, dampening
        and buffers; Adam: per element, at the first step's gradient)."""
        problem = self.problem
        scale = problem.optim.direction_scale(
            problem.params(),
            self.first_grads(hparams) if problem.optimizer != "sgd" else {},
            problem.initial_state(),
        )
        return {n: scale[n] * t for n, t in v.items()}


# -- small helpers on dicts of tensors ------------------------------------------------------------
def grad_dict(
    loss: Tensor, wrt: dict[str, Tensor], create_graph: bool = False
) -> dict[str, Tensor]:
    """∂loss/∂wrt as a dict; entries the loss does not depend on are zeros (never None)."""
    if not loss.requires_grad:
        return {k: torch.zeros_like(v) for k, v in wrt.items()}
    grads = torch.autograd.grad(
        loss, list(wrt.values()), create_graph=create_graph, allow_unused=True
    )
    return {
        k: torch.zeros_like(v) if g is None else g
        for (k, v), g in zip(wrt.items(), grads, strict=True)
    }


def dot(a: Params, b: Params) -> Tensor:
    return sum((a[k] * b[k]).sum() for k in a)


def norm(a: Params) -> Tensor:
    return dot(a, a).sqrt()


def axpy(x: Params, alpha: float, y: Params) -> Params:
    """x + α·y."""
    return {k: x[k] + alpha * y[k] for k in x}


def leaves_of(params: Params) -> Params:
    """Detached copies of `params` that require grad (fresh leaves of a new graph)."""
    return {k: v.detach().requires_grad_(True) for k, v in params.items()}


def _detached(params: Params) -> Params:
    return {k: v.detach() for k, v in params.items()}


def scalar(value: Tensor, what: str) -> Tensor:
    """`value` as a 0-d tensor; a loss with more than one element is refused, naming `what`."""
    if not isinstance(value, Tensor) or value.numel() != 1:
        shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
        raise ValueError(f"{what} must return a scalar tensor, got {shape}")
    return value.reshape(())
