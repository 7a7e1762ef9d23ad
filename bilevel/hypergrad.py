"""`hypergradient(problem, hparams, estimator=...)`: the one entry point to every estimator."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping

import torch
from torch import Tensor

from .estimators import check_options, check_serves, get
from .functional import scalar
from .losses import ImputedTargets
from .parallel import Shard
from .problem import BilevelProblem, ModelFn


class NonFiniteError(ValueError):
    """A hyperparameter or hypergradient with nan or inf values (in training: the model has
    diverged)."""


def hypergradient(
    problem: BilevelProblem,
    hparams: dict[str, Tensor],
    estimator: str = "auto",
    *,
    allow_unused: bool = False,
    check_finite: bool = True,
    **options,
) -> dict[str, Tensor]:
    """dG(θ_K(λ))/dλ for λ = `hparams`, by the named estimator (see `bilevel.ESTIMATORS`; the
    default `auto` picks the fastest exact one that serves the problem, `bilevel.choose`).

    Returns detached gradients, one per key of `hparams`, each shaped like its tensor. The
    model's parameters, buffers and the global random state are the same after the call as
    before. `options` go to the estimator (e.g. `r=` for `fd`, `method=` for `implicit`).

    Gradients are enabled inside the call, so it gives the same result under `torch.no_grad()`
    as outside (callers evaluate and log there); under `torch.inference_mode()` it refuses
    (inference tensors cannot enter autograd). Hyperparameters are taken in the precision of
    the model's parameters where that is higher (float16 λ on a float32 model: float32) and the
    result is returned in their own dtype.

    Refused with an error naming the key: an hparam with nan/inf values, a non-finite result
    (`NonFiniteError`; the losses or the model give nan/inf), a key the inner loss never
    reads (its hypergradient would be a silent 0) unless `allow_unused=True`, and a loss that is
    not a scalar or is detached from the graph (a `.detach()`, `.item()` or a loss computed
    from the module's own parameters instead of `f`: its hypergradient would be a silent 0).
    Inputs and result are checked for finiteness together, with one host synchronisation after the
    computation; `check_finite=False` leaves that to the caller (`finite_flags` gives the
    flags on the device, as a training loop that reads them at intervals does).
    """
    get(estimator)  # an unknown name first, listing the valid ones
    if not isinstance(problem, BilevelProblem):
        raise TypeError(f"problem must be a BilevelProblem, got {type(problem).__name__}")
    if torch.is_inference_mode_enabled():
        raise RuntimeError(
            "hypergradient was called inside torch.inference_mode(): it needs autograd, which "
            "inference tensors cannot enter; call it outside (torch.no_grad() is fine)"
        )
    fn = check_options(estimator, options)
    check_serves(fn, problem, hparams if isinstance(hparams, dict) else None)
    dtype = next(iter(problem.params().values())).dtype
    leaves = _as_leaves(hparams, dtype)
    used: set[str] = set()
    with torch.enable_grad():
        grads = fn(_recording(problem, used), leaves)
    out = {k: grads[k].detach().to(hparams[k].dtype) for k in hparams}
    if check_finite:
        _check_finite(leaves, out, problem.shard)
    unused = [k for k in hparams if k not in used]
    if unused and not allow_unused:
        raise ValueError(
            f"hparams key(s) {unused} are never read by the inner loss or lr_scale, so their "
            "hypergradient is 0; remove them, or pass allow_unused=True to accept that"
        )
    return out


def _as_leaves(hparams: dict[str, Tensor], dtype: torch.dtype) -> dict[str, Tensor]:
    """Leaves that require grad, in the higher precision of their own dtype and `dtype`."""
    if not isinstance(hparams, dict) or not hparams:
        raise TypeError("hparams must be a non-empty dict of tensors")
    leaves = {}
    for k, v in hparams.items():
        if not isinstance(v, Tensor) or not torch.is_floating_point(v):
            raise TypeError(
                f"hparams[{k!r}] must be a floating-point tensor, got {type(v).__name__}"
            )
        leaves[k] = v.detach().to(torch.promote_types(v.dtype, dtype)).requires_grad_(True)
    return leaves


def finite_flags(hparams: dict[str, Tensor], grads: dict[str, Tensor]) -> tuple[Tensor, list[str]]:
    """(flags, names): one device bool per hparam and per hypergradient, true where all its
    values are finite, and what each is called in `non_finite_message`. No synchronisation."""
    tensors = [*hparams.values(), *grads.values()]
    flags = torch.stack([torch.isfinite(t.detach()).all() for t in tensors])
    names = [*(f"hparams[{k!r}]" for k in hparams), *(f"the hypergradient of {k!r}" for k in grads)]
    return flags, names


def non_finite_message(name: str) -> str:
    why = "" if name.startswith("hparams") else " (the losses or the model give nan or inf)"
    return f"{name} has non-finite values (nan or inf){why}"


def _check_finite(hparams: dict[str, Tensor], grads: dict[str, Tensor], shard: Shard) -> None:
    """Raise NonFiniteError naming the first non-finite hparam, else the first non-finite
    gradient (one host synchronisation; data parallel: on every rank if on any)."""
    flags, names = finite_flags(hparams, grads)
    finite = shard.total((~flags).int()).cpu() == 0
    if bool(finite.all()):
        return
    raise NonFiniteError(non_finite_message(names[int((~finite).nonzero()[0])]))


# -- which λ keys the inner loss reads ----------------------------------------------------------
class _KeyRecorder(dict):
    """`hparams` as the losses see it (a dict, for `functional_call` and friends), noting each
    key read; iterating, `items()`, `values()` or copying read every key."""

    def __init__(self, data: Mapping[str, Tensor], used: set[str]) -> None:
        super().__init__(data)
        self._used = used

    def __getitem__(self, key: str) -> Tensor:
        self._used.add(key)
        return super().__getitem__(key)

    def get(self, key: str, default=None):
        if key in self:
            self._used.add(key)
        return super().get(key, default)

    def __iter__(self) -> Iterator[str]:  # also makes dict(x) and {**x} go through here
        self._used.update(super().keys())
        return super().__iter__()

    def keys(self):
        self._used.update(super().keys())
        return super().keys()

    def items(self):
        self._used.update(super().keys())
        return super().items()

    def values(self):
        self._used.update(super().keys())
        return super().values()


def _detached(value: Tensor) -> bool:
    """Whether a loss cannot carry a derivative: outside torch.func's transforms, a tensor that
    does not require grad while gradients are recorded; inside one, a tensor the transform did
    not wrap (it depends on none of the transformed inputs)."""
    if torch._C._functorch.peek_interpreter_stack() is not None:
        return not torch._C._functorch.is_functorch_wrapped_tensor(value)
    return torch.is_grad_enabled() and not value.requires_grad and not _has_tangent(value)


def _has_tangent(value: Tensor) -> bool:
    """Whether `value` is a forward-mode dual tensor (autograd's `fwAD`): it carries a
    derivative without requiring grad."""
    import torch.autograd.forward_ad as fwAD

    return fwAD.unpack_dual(value).tangent is not None


def _checked(name: str, value: Tensor) -> Tensor:
    """`value` if it is a scalar connected to the graph (while gradients are recorded)."""
    value = scalar(value, name)
    if _detached(value):
        raise ValueError(
            f"{name} is detached from the graph (a .detach(), .item(), torch.no_grad() or "
            "the module's own parameters instead of f.params): its hypergradient would be 0; "
            "compute it from f(x), f.params and the hparams"
        )
    return value


def reads_own_parameters(value: Tensor, f: ModelFn, own: set[int]) -> bool:
    """Whether the autograd graph of `value` reaches a parameter whose id is in `own` (the
    module's own trainable parameters) as a leaf, other than through `f.params`: the walk stops
    at the tensors `f` is evaluated at, so it covers the loss's own evaluation only. Inside
    torch.func's transforms (whose tensors hide their graph) it answers False."""
    if torch._C._functorch.is_functorch_wrapped_tensor(value) or value.grad_fn is None:
        return False
    seen = {p.grad_fn for p in f.params.values() if p.grad_fn is not None}
    stack = [value.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        leaf = getattr(node, "variable", None)  # AccumulateGrad: a leaf tensor
        if leaf is not None and id(leaf) in own:
            return True
        stack.extend(next_node for next_node, _ in node.next_functions)
    return False


class _Loss:
    """A problem's loss as the estimators call it: checked to be a scalar connected to the
    graph, the λ keys it reads noted in `used` (inner losses), and at its first evaluation
    outside torch.func's transforms, checked not to read the module's own parameters."""

    def __init__(self, loss, name: str, own: set[int], used: set[str] | None) -> None:
        self.loss, self.name, self.own, self.used = loss, name, own, used
        self.__wrapped__ = loss  # what error messages name
        self.unchecked = True

    def __call__(self, f: ModelFn, *hparams: dict[str, Tensor]) -> Tensor:
        if self.used is not None:
            hparams = (_KeyRecorder(hparams[0], self.used),)
        value = _checked(self.name, self.loss(f, *hparams))
        if self.unchecked and not torch._C._functorch.is_functorch_wrapped_tensor(value):
            self.unchecked = False
            if reads_own_parameters(value, f, self.own):
                raise ValueError(
                    f"{self.name} reads the module's own parameters (model.parameters(), or a "
                    "tensor computed from them with its graph), which no virtual step moves: "
                    "their share of the hypergradient would be 0. Read the parameters the loss "
                    "is evaluated at from f.params (by name), and detach tensors it only uses "
                    "as constants"
                )
        return value


def _recording(problem: BilevelProblem, used: set[str]) -> BilevelProblem:
    """A shallow copy of `problem` whose λ-dependent losses note the keys they read in `used`,
    and whose losses are checked to be scalars connected to the graph that do not read the
    module's own parameters."""
    out = copy.copy(problem)
    own = {id(p) for p in problem.model.parameters() if p.requires_grad}
    if isinstance(problem.inner_loss, ImputedTargets):  # `analytic` needs the object
        used.add(problem.inner_loss.key)  # it reads hparams[key], and θ only through f(x)
    else:
        out.inner_loss = _Loss(problem.inner_loss, "inner_loss", own, used)
    if problem.coupled_loss is not None:
        out.coupled_loss = _Loss(problem.coupled_loss, "coupled_loss", own, used)
    out.outer_loss = _Loss(problem.outer_loss, "outer_loss", own, None)
    if problem.lr_scale is not None:
        lr_scale = problem.lr_scale
        out.lr_scale = lambda hparams: lr_scale(_KeyRecorder(hparams, used))
    return out
