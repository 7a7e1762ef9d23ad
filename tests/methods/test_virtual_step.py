"""The papers' virtual step (`protocol=paper`) of Meta-Semi and Meta-T, over several training
steps of a real optimizer with Nesterov momentum and weight decay configured, against hand
computations of the papers' equations with plain autograd (no `bilevel` code):

- Meta-Semi, Eq. 10 / 38: g_j = −α ⟨∇_θ G(X̃; θ), ∇_θ H_j(θ)⟩ at the current θ and lr α (the plain
  SGD step at w = 0 leaves θ where it is); Eq. 9 w_j = 1[g_j ≤ 0]; Eq. 52 the step on
  Σ_j w_j H_j / Σ_j w_j.
- Meta-T, Eq. 15-17: ŵ(Θ) = w − α ∇_w L_train(w, Θ), Θ ← Adam(∂ CE(f(x; ŵ(Θ)), y)/∂Θ), then
  FixMatch's step with the mask 1[max p > τ(Θ)] (Eq. 3).

The real step is torch.optim.SGD with the same settings on a copy of the model; the lr changes
between steps (α is the current lr). Under `protocol=toolkit` the same tests fail (the virtual
step then carries momentum and weight decay): checked by the last test of each method.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from methods import METHODS, Batch, Task
from methods.meta_semi import rounding

DT = torch.float64
OPT = {"momentum": 0.9, "nesterov": True, "weight_decay": 0.05}
LRS = (0.3, 0.25, 0.2, 0.15)  # the lr of each step


def _model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).to(DT)


def _batch(step, n=5, m=8):
    g = torch.Generator().manual_seed(100 + step)
    x = torch.randn(n, 1, 2, 2, generator=g, dtype=DT)
    u = [torch.randn(m, 1, 2, 2, generator=g, dtype=DT) for _ in range(2)]
    return Batch(x, torch.randint(0, 3, (n,), generator=g), u, step, len(LRS))


def _method(name, model, protocol, estimator, teacher=None, **kw):
    opt = torch.optim.SGD(model.parameters(), lr=LRS[0], **OPT)
    cls = METHODS[name]
    cfg = cls.Config(protocol=protocol, **kw)
    method = cls(cfg, model, opt, Task(), teacher=teacher, estimator=estimator)
    seen = []
    original = method.hypergradient

    def spy(problem, hparams):  # record every hypergradient the meta step computes
        out = original(problem, hparams)
        seen.append({k: v.detach().clone() for k, v in out.items()})
        return out

    method.hypergradient = spy
    return method, seen


def _grads(loss, params):
    return torch.autograd.grad(loss, list(params.values()), create_graph=True)


def _flat(grads):
    return torch.cat([g.flatten() for g in grads])


def _close(a, b):
    torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


# -- Meta-Semi -------------------------------------------------------------------------------------
def _meta_semi_by_hand(model, mixed, lr):
    """(g, loss): Eq. 10/38 per sample of Ũ and Eq. 52's loss at the model's parameters."""
    params = dict(model.named_parameters())
    v = _flat(_grads(-(mixed.x_targets * F.log_softmax(model(mixed.x), 1)).sum(1).mean(), params))
    per = -(mixed.u_targets * F.log_softmax(model(mixed.u), 1)).sum(1)
    g = torch.stack([-lr * (_flat(_grads(h, params)) @ v) for h in per]).detach()
    w = (g <= rounding(g)).to(DT)
    return g, (w * per).sum() / w.sum().clamp_min(1.0)


def _run_meta_semi(protocol, estimator):
    teacher = _model(seed=7)
    method, seen = _method("meta_semi", _model(), protocol, estimator, teacher=teacher)
    hand = _model()
    hand_opt = torch.optim.SGD(hand.parameters(), lr=LRS[0], **OPT)
    for step, lr in enumerate(LRS):
        for o in (method.optimizer, hand_opt):
            o.param_groups[0]["lr"] = lr
        b = _batch(step)
        torch.manual_seed(step)
        mixed = method.mixed(b)  # the same mixup draws as the step below
        g, loss = _meta_semi_by_hand(hand, mixed, lr)
        torch.manual_seed(step)
        method.train_step(b)
        _close(seen[-1]["w"], g)
        hand_opt.zero_grad()
        loss.backward()
        hand_opt.step()
        for a, e in zip(method.model.parameters(), hand.parameters(), strict=True):
            _close(a, e)
    return seen


@pytest.mark.parametrize("estimator", ["func", "forward", "higher"])
def test_meta_semi_paper_step_is_eq_10_38_52_over_steps(estimator):
    seen = _run_meta_semi("paper", estimator)
    signs = torch.cat([s["w"] for s in seen])
    assert (signs > 0).any() and (signs < 0).any()  # both outcomes of the sign test occur


def test_meta_semi_toolkit_step_is_not_the_papers():
    with pytest.raises(AssertionError):
        _run_meta_semi("toolkit", "func")


# -- Meta-T ----------------------------------------------------------------------------------------
def _class_average(probs):
    """p̄ for each sample by a loop over classes (Eq. 5 over the batch)."""
    labels = probs.argmax(1)
    means = {c: probs[labels == c].mean(0) for c in labels.unique().tolist()}
    return torch.stack([means[c] for c in labels.tolist()])


def _meta_t_by_hand(model, tgn, tgn_opt, b, lr, beta):
    """One Meta-T iteration by hand: (dG/dΘ, the real step's loss)."""
    params, theta = dict(model.named_parameters()), dict(tgn.named_parameters())
    n, m = len(b.x), len(b.u[0])
    out = model(torch.cat([b.x, b.u[0], b.u[1]]))
    out_x, out_w, out_s = out[:n], out[n : n + m], out[n + m :]
    probs = out_w.detach().softmax(1)
    conf, labels = probs.max(1)
    feats = torch.cat([probs, _class_average(probs)], 1)
    tau = functional_call(tgn, theta, (feats,))[:, 0]
    gate = torch.sigmoid(beta * (conf - tau))
    inner = (gate * F.cross_entropy(model(b.u[1]), labels, reduction="none")).mean()  # Eq. 15
    moved = {k: p - lr * g for (k, p), g in zip(params.items(), _grads(inner, params), strict=True)}
    outer = F.cross_entropy(functional_call(model, moved, (b.x,)), b.y)  # Eq. 16
    grads = torch.autograd.grad(outer, list(theta.values()))  # Eq. 17
    tgn_opt.zero_grad()
    for p, g in zip(tgn.parameters(), grads, strict=True):
        p.grad = g
    tgn_opt.step()
    with torch.no_grad():
        mask = (conf > functional_call(tgn, dict(tgn.named_parameters()), (feats,))[:, 0]).to(DT)
    unsup = (F.cross_entropy(out_s, labels, reduction="none") * mask).mean()
    return dict(zip(theta, grads, strict=True)), F.cross_entropy(out_x, b.y) + unsup


def _run_meta_t(protocol, estimator):
    method, seen = _method(
        "meta_threshold", _model(), protocol, estimator, sharpness=10.0, threshold=0.0
    )
    hand, tgn = _model(), copy.deepcopy(method.tgn)
    hand_opt = torch.optim.SGD(hand.parameters(), lr=LRS[0], **OPT)
    tgn_opt = torch.optim.Adam(tgn.parameters(), lr=method.cfg.meta_lr)
    masked = 0.0
    for step, lr in enumerate(LRS):
        for o in (method.optimizer, hand_opt):
            o.param_groups[0]["lr"] = lr
        b = _batch(step)
        grads, loss = _meta_t_by_hand(hand, tgn, tgn_opt, b, lr, 10.0)
        masked += float(method.train_step(b)["mask_rate"])
        for k, g in grads.items():
            _close(seen[-1][k], g)
        hand_opt.zero_grad()
        loss.backward()
        hand_opt.step()
        for a, e in zip(method.model.parameters(), hand.parameters(), strict=True):
            _close(a, e)
        for a, e in zip(method.tgn.parameters(), tgn.parameters(), strict=True):
            _close(a, e)
    assert 0 < masked < len(LRS)  # thresholds that keep some pseudo labels and drop others


@pytest.mark.parametrize("estimator", ["func", "forward", "higher"])
def test_meta_t_paper_step_is_eq_15_17_over_steps(estimator):
    _run_meta_t("paper", estimator)


def test_meta_t_toolkit_step_is_not_the_papers():
    with pytest.raises(AssertionError):
        _run_meta_t("toolkit", "func")


def test_the_protocols_each_method_offers():
    """`protocol` takes the method's own choices; another method's is named in the error."""
    from methods.base import check_config

    for name, ok, bad in [
        ("meta_semi", "paper", "authors"),
        ("meta_threshold", "paper", "authors"),
        ("meta_gradient", "authors", "paper"),
        ("impute_mt", "authors", "paper"),
    ]:
        cls = METHODS[name].Config
        assert check_config(cls(protocol=ok)) == []
        assert check_config(cls(protocol=bad))[0][0] == "protocol"


@pytest.mark.parametrize("name", ["meta_gradient", "meta_semi", "meta_threshold"])
def test_a_zero_learning_rate_gives_a_zero_hypergradient(name):
    """At lr 0 (the Meta-Gradient authors' warm-up starts there) the virtual step is the
    identity, so dG/dλ = 0: the meta step runs and returns zeros instead of refusing lr 0."""
    protocol = "authors" if name == "meta_gradient" else "paper"
    method, seen = _method(name, _model(), protocol, "func", teacher=_model(seed=7))
    method.optimizer.param_groups[0]["lr"] = 0.0
    before = [p.detach().clone() for p in method.model.parameters()]
    torch.manual_seed(0)
    method.train_step(_batch(0))
    assert seen and all(torch.equal(g, torch.zeros_like(g)) for s in seen for g in s.values())
    for a, b in zip(method.model.parameters(), before, strict=True):
        assert torch.equal(a, b)  # lr 0: the real step does not move the model either
