"""The authors' protocol equals the authors' code: float64, tiny model, two iterations.

Each `authors_*` function below is an independent port of one iteration of the authors' public
scripts (docs/authors_code.md), written with plain autograd on a copy of the model; it does not
call the project's methods. The project's `train_step` under `protocol=authors` must give the
same parameters (and pseudo labels) to ≤ 1e-10 relative error.
"""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from methods import METHODS, Batch, LandmarkTask, Task

DT = torch.float64
TOL = 1e-10


def _mlp(out, seed, dropout=False):
    torch.manual_seed(seed)
    layers = [nn.Flatten(), nn.Linear(4, 6), nn.Tanh()]
    layers += [nn.Dropout(0.3)] if dropout else []
    return nn.Sequential(*layers, nn.Linear(6, out)).to(DT)


def _rel(a, b):
    return float((a - b).norm() / b.norm())


def _assert_same_params(model, ref):
    for (name, p), q in zip(model.named_parameters(), ref.parameters(), strict=True):
        assert _rel(p.detach(), q.detach()) <= TOL, name


def _data(n=4, classes=3, landmarks=False, seed=2):
    g = torch.Generator().manual_seed(seed)
    img = lambda: torch.randn(n, 1, 2, 2, generator=g, dtype=DT)  # noqa: E731
    x, u2, u1, hx = img(), img(), img(), img()
    if landmarks:
        y, hy = (torch.randn(n, 10, generator=g, dtype=DT) for _ in range(2))
        offsets = [torch.randint(-4, 5, (n, 2), generator=g) for _ in range(2)]  # (x, y) px
    else:
        y, hy = (torch.randint(0, classes, (n,), generator=g) for _ in range(2))
        offsets = None
    return x, y, u2, u1, hx, hy, offsets


def _method(name, cfg, model, opt, task, teacher=None, decay=0.0, **kw):
    cls = METHODS[name]
    return cls(cls.Config(**cfg), model, opt, task, teacher=teacher, teacher_decay=decay, **kw)


# ----- Meta-Gradient (Sakura03/SemiMeta, train_meta.py) -------------------------------------


def authors_meta_gradient_labels(model, x, y, u, lr, epsilon=0.01):
    """The pseudo labels after the meta step (eval mode, finite difference along ∇G(θ))."""
    model.eval()
    params = list(model.parameters())
    dtheta = torch.autograd.grad(F.cross_entropy(model(x), y), params)
    with torch.no_grad():
        pseudo = F.softmax(model(u), dim=1)
        eps = epsilon / torch.cat([d.view(-1) for d in dtheta]).norm()
        for p, d in zip(params, dtheta, strict=True):
            p.add_(d, alpha=eps)
        pos = model(u)
        for p, d in zip(params, dtheta, strict=True):
            p.sub_(d, alpha=2 * eps)
        neg = model(u)
        for p, d in zip(params, dtheta, strict=True):
            p.add_(d, alpha=eps)
        pseudo = pseudo - lr * (F.softmax(pos, 1) - F.softmax(neg, 1)) / eps
        pseudo = torch.relu(pseudo)
        sums = pseudo.sum(1, keepdim=True)
        pseudo = pseudo / torch.where(sums == 0, torch.ones_like(sums), sums)
    model.train()
    return pseudo


def authors_meta_gradient_step(model, opt, x, y, u, pseudo, weight, gamma, classes):
    """The training step: per-sample mixup of (x_i, u_i), KL + weight · ‖softmax f(u) − ŷ‖²."""
    alpha = torch.distributions.Beta(torch.tensor([gamma]), torch.tensor([gamma]))
    alpha = alpha.sample((len(x),)).to(DT)
    a4 = alpha.view(-1, 1, 1, 1)
    interp = x * a4 + u * (1 - a4)
    target = F.one_hot(y, classes).to(DT) * alpha + pseudo * (1 - alpha)
    interp_loss = F.kl_div(F.log_softmax(model(interp), 1), target, reduction="batchmean")
    unlabel = (F.softmax(model(u), 1) - pseudo).norm(p=2, dim=1).pow(2).mean()
    loss = interp_loss + weight * unlabel
    opt.zero_grad()
    loss.backward()
    opt.step()


def _meta_gradient(cfg, model, opt):
    """Meta-Gradient with the paper's approximation (the experiments' default estimator)."""
    fd = {"lookahead": False, "r": 0.01}
    return _method("meta_gradient", cfg, model, opt, Task(), estimator="fd", estimator_kw=fd)


@pytest.mark.parametrize("nesterov", [False, True])
def test_authors_meta_gradient_meta_step(nesterov):
    """ŷ equals the authors' under plain momentum and under Nesterov (no (1 + μ) factor)."""
    x, y, _, u, *_ = _data(n=5)
    model = _mlp(3, 0, dropout=True)
    opt = torch.optim.SGD(
        model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4, nesterov=nesterov
    )
    F.cross_entropy(model(x), y).backward()
    opt.step()  # momentum buffers exist: the authors' update must not depend on them
    cfg = {"objective": "mixup", "protocol": "authors"}
    method = _meta_gradient(cfg, model, opt)
    batch = Batch(x, y, [u], 3, 10)
    y_hat, _ = method.targets(batch)
    ref = authors_meta_gradient_labels(copy.deepcopy(model), x, y, u, lr=0.1)
    assert _rel(y_hat, ref) <= TOL
    toolkit = copy.copy(method)
    toolkit.cfg = type(method.cfg)(**{**cfg, "protocol": "toolkit"})
    y_toolkit, _ = toolkit.targets(batch)
    differs = (y_toolkit - y_hat).abs().max() > 1e-6  # the real optimizer's virtual step:
    assert differs == nesterov  # (1 + μ) × the authors' under Nesterov, equal otherwise


def test_authors_meta_gradient_training_step():
    """Two iterations (meta step + mixup step) with SGD momentum 0.9, weight decay 1e-4."""
    x, y, _, u, *_ = _data(n=5)
    model, weight, gamma = _mlp(3, 0, dropout=True), 2.0, 0.7
    ref = copy.deepcopy(model)
    sgd = dict(lr=0.1, momentum=0.9, weight_decay=1e-4)
    opt, ref_opt = (
        torch.optim.SGD(model.parameters(), **sgd),
        torch.optim.SGD(ref.parameters(), **sgd),
    )
    cfg = {
        "objective": "mixup",
        "protocol": "authors",
        "weight": weight,
        "ramp": 0.5,
        "gamma": gamma,
    }
    method = _meta_gradient(cfg, model, opt)
    for step in (3, 4):
        torch.manual_seed(step)
        method.train_step(Batch(x, y, [u], step, 10))
        torch.manual_seed(step)
        pseudo = authors_meta_gradient_labels(ref, x, y, u, lr=0.1)
        w = weight * step / 5  # compute_weight(weight, step, rampup = 0.5 · 10 steps)
        authors_meta_gradient_step(ref, ref_opt, x, y, u, pseudo, w, gamma, 3)
    _assert_same_params(model, ref)


# ----- Learning to Impute (WeiHongLee/Learning-to-impute) ------------------------------------


def _virtual(model, loss, lr):
    """Parameters after θ − lr ∇loss, differentiable (create_graph), as the authors' scripts."""
    names = [n for n, _ in model.named_parameters()]
    grads = torch.autograd.grad(loss, list(model.parameters()), create_graph=True)
    return {
        n: p.detach() - lr * g for n, p, g in zip(names, model.parameters(), grads, strict=True)
    }


def authors_l2i_classification(model, teacher, opt, data, w, lr0, variant, inner_scale, classes=3):
    """Classification/train-L2I-{L,O}.py: MT step, then the imputation step; Adam; the EMA
    helper's weight decay θ ← θ(1 − 0.02 lr)."""
    x, y, u2, u, hx, hy, _ = data
    onehot = F.one_hot(y, classes).to(DT)
    with torch.no_grad():
        t = F.softmax(teacher(u2), 1)
    lx = -(F.log_softmax(model(x), 1) * onehot).sum(1).mean()
    lu = ((F.softmax(model(u), 1) - t) ** 2).mean()
    opt.zero_grad()
    (lx + w * lu).backward()
    opt.step()
    opt.zero_grad()
    tmp = copy.deepcopy(model)
    hold = F.one_hot(hy, classes).to(DT)
    probs_u = F.softmax(model(u), 1)
    if variant == "v1":
        p = tmp(u2).detach().requires_grad_(True)
        lu_tmp = ((probs_u - F.softmax(p, 1)) ** 2).sum()
    else:
        lu_tmp = ((probs_u - F.softmax(tmp(u2), 1)) ** 2).sum()
    adapted = _virtual(model, lu_tmp, inner_scale * lr0)
    val = -(F.log_softmax(functional_call(model, adapted, (hx,)), 1) * hold).sum(1).mean()
    if variant == "v1":
        p_grad = torch.autograd.grad(val, p, retain_graph=True)[0]
        target = F.softmax(p.detach() - p_grad, 1)
        ((probs_u - target) ** 2).mean().backward()
    else:
        meta = torch.autograd.grad(val, list(tmp.parameters()))
        for q, g in zip(model.parameters(), meta, strict=True):
            q.grad = g.detach()
    opt.step()
    with torch.no_grad():
        for q in model.parameters():
            q.mul_(1 - 0.02 * lr0)


def _shift(p, src, dst, std):
    """Standardised landmarks predicted on one crop moved into another's frame (x, y pairs)."""
    d = (dst - src).to(DT)
    return p + torch.stack([d[:, 0], d[:, 1]], 1).repeat(1, 5) / std


def authors_l2i_regression(model, teacher, opt, data, w, std, variant, inner_scale):
    """Regression/train-L2I-{L,O}.py: MT step, then the imputation step; SGD."""
    x, y, u2, u, hx, hy, (off2, off1) = data
    with torch.no_grad():
        t = _shift(teacher(u2), off2, off1, std)
    loss = F.mse_loss(model(x), y) + w * ((model(u) - t) ** 2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    logits_u, p = model(u), model(u2)
    target = _shift(p, off2, off1, std)
    if variant == "v1":
        lu_tmp = ((logits_u - target) ** 2).mean()
    else:
        lu_tmp = ((torch.tanh(logits_u) - torch.tanh(target)) ** 2).mean()
    lr = opt.param_groups[0]["lr"]
    l_grad = torch.autograd.grad(lu_tmp, logits_u, create_graph=True)[0]
    grads = torch.autograd.grad(logits_u, list(model.parameters()), l_grad, create_graph=True)
    names = [n for n, _ in model.named_parameters()]
    adapted = {
        n: q.detach() - inner_scale * lr * g
        for n, q, g in zip(names, model.parameters(), grads, strict=True)
    }
    val = ((functional_call(model, adapted, (hx,)) - hy) ** 2).mean()
    p_grad = torch.autograd.grad(val, p, retain_graph=True)[0]
    opt.zero_grad()
    if variant == "v1":
        target = _shift(p.detach() - p_grad, off2, off1, std)
        ((logits_u - target) ** 2).mean().backward()
    else:
        meta = torch.autograd.grad(p, list(model.parameters()), p_grad)
        for q, g in zip(model.parameters(), meta, strict=True):
            q.grad = g.detach()
    opt.step()


@pytest.mark.parametrize("variant", ["v1", "v2"])
def test_authors_l2i_classification(variant):
    """train-L2I-L.py (V1, 100× lr) / train-L2I-O.py (V2, 50× lr): λ_u = 50 on the mean over
    classes (weight 50/C here), Adam 0.002, weights × (1 − 0.02 lr) after each iteration."""
    data = _data()
    x, y, u2, u, hx, hy, _ = data
    model, teacher = _mlp(3, 0), _mlp(3, 1)
    ref = copy.deepcopy(model)
    opt, ref_opt = (
        torch.optim.Adam(model.parameters(), 0.002),
        torch.optim.Adam(ref.parameters(), 0.002),
    )
    scale = 100.0 if variant == "v1" else 50.0
    cfg = {
        "variant": variant,
        "protocol": "authors",
        "weight": 50.0 / 3,
        "ramp": 0.5,
        "inner_lr_scale": scale,
        "meta_lr": 1.0,
        "post_decay": 0.02,
    }
    method = _method("impute_mt", cfg, model, opt, Task(), teacher=teacher)
    for step in (3, 4):
        method.train_step(Batch(x, y, [u2, u], step, 10, hold_x=hx, hold_y=hy))
        authors_l2i_classification(
            ref, teacher, ref_opt, data, 50.0 * step / 5, 0.002, variant, scale
        )
    _assert_same_params(model, ref)


@pytest.mark.parametrize("variant", ["v1", "v2"])
def test_authors_l2i_regression(variant):
    """train-L2I-L.py (V1, 1× lr) / train-L2I-O.py (V2, 10× lr, tanh): SGD momentum 0.9, weight
    decay 5e-4, η = 1 on the mean hold-out loss, pseudo landmarks shifted between crops."""
    data = _data(landmarks=True)
    x, y, u2, u, hx, hy, offsets = data
    g = torch.Generator().manual_seed(5)
    std = torch.rand(10, generator=g, dtype=DT) + 0.5
    task = LandmarkTask(torch.zeros(10, dtype=DT), std)
    model, teacher = _mlp(10, 0), _mlp(10, 1)
    ref = copy.deepcopy(model)
    sgd = dict(lr=0.03, momentum=0.9, weight_decay=5e-4)
    opt, ref_opt = (
        torch.optim.SGD(model.parameters(), **sgd),
        torch.optim.SGD(ref.parameters(), **sgd),
    )
    scale = 1.0 if variant == "v1" else 10.0
    cfg = {
        "variant": variant,
        "protocol": "authors",
        "weight": 2.0,
        "ramp": 0.5,
        "inner_lr_scale": scale,
        "meta_lr": 1.0,
    }
    method = _method("impute_mt", cfg, model, opt, task, teacher=teacher)
    for step in (3, 4):
        method.train_step(Batch(x, y, [u2, u], step, 10, u_offsets=offsets, hold_x=hx, hold_y=hy))
        authors_l2i_regression(ref, teacher, ref_opt, data, 2.0 * step / 5, std, variant, scale)
    _assert_same_params(model, ref)
