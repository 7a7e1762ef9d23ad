"""The meta methods: one step against a hand computation of the paper's formula, a smoke step
with every applicable estimator, and meta steps that leave BatchNorm statistics alone.

Hand computations unroll the virtual step with plain autograd on the module itself
(`torch.func.functional_call` with θ − lr·∇L), independent of `bilevel`'s estimators.
"""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from methods import METHODS, Batch, LandmarkTask, Task
from methods.meta import renormalise
from methods.meta_threshold import class_average_confidence

DT = torch.float64
LR = 0.2


def _model(bn=False, seed=0, out=3):
    torch.manual_seed(seed)
    layers = [nn.Flatten(), nn.Linear(4, 6)]
    layers += [nn.BatchNorm1d(6)] if bn else []
    return nn.Sequential(*layers, nn.Tanh(), nn.Linear(6, out)).to(DT)


def _batch(task="classification", n=5, m=6, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 2, 2, generator=g, dtype=DT)
    u = [torch.randn(m, 1, 2, 2, generator=g, dtype=DT) for _ in range(2)]
    hold = torch.randn(4, 1, 2, 2, generator=g, dtype=DT)
    if task == "classification":
        y, hy = torch.randint(0, 3, (n,), generator=g), torch.randint(0, 3, (4,), generator=g)
        return Batch(
            x, y, u, 3, 10, u_true=torch.randint(0, 3, (m,), generator=g), hold_x=hold, hold_y=hy
        )
    y, hy = torch.randn(n, 4, generator=g, dtype=DT), torch.randn(4, 4, generator=g, dtype=DT)
    offsets = [torch.randint(-3, 4, (m, 2), generator=g) for _ in range(2)]
    return Batch(x, y, u, 3, 10, u_offsets=offsets, hold_x=hold, hold_y=hy)


def _method(
    name, cfg_kw, model, task=None, teacher=None, estimator="func", est_kw=None, momentum=0.0
):
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=momentum)
    cls = METHODS[name]
    return cls(
        cls.Config(**cfg_kw),
        model,
        opt,
        task or Task(),
        teacher=teacher,
        estimator=estimator,
        estimator_kw=est_kw,
    )


def _virtual_grad(model, inner, outer, wrt):
    """∂ outer(θ − LR ∇_θ inner(θ, λ)) / ∂λ by plain autograd (create_graph)."""
    params = dict(model.named_parameters())
    g = torch.autograd.grad(
        inner(lambda x: model(x), wrt), list(params.values()), create_graph=True
    )
    moved = {k: p - LR * gi for (k, p), gi in zip(params.items(), g, strict=True)}
    return torch.autograd.grad(outer(lambda x: functional_call(model, moved, (x,))), wrt)[0]


def _assert_one_sgd_step(method, batch, model, hand_loss):
    """The method's train_step moves its copy of `model` by −LR ∇(hand_loss) (plain SGD)."""
    params = list(model.parameters())
    expected = [
        p - LR * g for p, g in zip(params, torch.autograd.grad(hand_loss, params), strict=True)
    ]
    method.train_step(batch)
    for a, e in zip(method.model.parameters(), expected, strict=True):
        assert torch.allclose(a, e.detach(), rtol=1e-10, atol=1e-13)


# -- Meta-Gradient ---------------------------------------------------------------------------------
def test_meta_gradient_fd_update_is_the_authors_formula():
    """ŷ = renormalise(ỹ − lr (softmax f(u; θ+εv) − softmax f(u; θ−εv)) / ε), v = ∇θ of the labeled
    loss at θ, ε = 0.01/‖v‖, all in eval mode (authors' code)."""
    model, b = _model(bn=True), _batch()
    model(torch.randn(8, 1, 2, 2, dtype=DT))  # non-trivial running statistics
    method = _method("meta_gradient", {}, model, estimator="fd", est_kw={"lookahead": False})
    y_hat, _ = method.meta_step(b)

    ref = copy.deepcopy(model).eval()
    params = dict(ref.named_parameters())
    y_tilde = F.softmax(ref(b.u[0]), 1).detach()
    v = torch.autograd.grad(F.cross_entropy(ref(b.x), b.y), list(params.values()))
    eps = 0.01 / torch.sqrt(sum((t * t).sum() for t in v))

    def probs(sign):
        moved = {
            k: p.detach() + sign * eps * t for (k, p), t in zip(params.items(), v, strict=True)
        }
        return F.softmax(functional_call(ref, moved, (b.u[0],)), 1)

    expected = renormalise(y_tilde - LR * (probs(1) - probs(-1)) / eps)
    assert torch.allclose(y_hat, expected, rtol=1e-9, atol=1e-12)
    assert model.training  # the model's mode is restored


def test_meta_gradient_exact_update_is_beta_times_hypergradient():
    model, b = _model(), _batch()
    method = _method("meta_gradient", {"eval_meta": False, "meta_scale": 0.5}, model)
    y_hat, _ = method.meta_step(b)
    y_tilde = F.softmax(model(b.u[0]), 1).detach().requires_grad_()
    grad = _virtual_grad(
        model,
        lambda f, y: ((F.softmax(f(b.u[0]), 1) - y) ** 2).sum(1).mean(),
        lambda f: F.cross_entropy(f(b.x), b.y),
        y_tilde,
    )
    expected = renormalise(y_tilde.detach() - 0.5 * len(b.u[0]) * grad)
    assert torch.allclose(y_hat, expected, rtol=1e-10, atol=1e-13)


# -- Meta-Semi -------------------------------------------------------------------------------------
def test_meta_semi_weights_are_the_sign_test_of_eq10():
    model, teacher, b = _model(), _model(seed=7), _batch()
    method = _method("meta_semi", {}, model, teacher=teacher)
    pseudo, keep, logs = method.meta_step(b)
    assert torch.allclose(pseudo, F.softmax(teacher(b.u[0]), 1))
    params = list(model.parameters())
    grad_g = torch.autograd.grad(F.cross_entropy(model(b.x), b.y), params)
    scores = []
    for j in range(len(b.u[0])):
        lj = -(pseudo[j] * F.log_softmax(model(b.u[0][j : j + 1]), 1)[0]).sum()
        grad_j = torch.autograd.grad(lj, params)
        scores.append(-LR * sum((a * c).sum() for a, c in zip(grad_g, grad_j, strict=True)))
    scores = torch.stack(scores)
    assert (scores > 0).any() and (scores < 0).any()
    assert torch.equal(keep.bool(), scores <= 0)
    assert logs["kept"] == pytest.approx(float((scores <= 0).double().mean()))


# -- Meta-Threshold --------------------------------------------------------------------------------
def test_class_average_confidence_by_hand():
    p = torch.tensor([[0.7, 0.2, 0.1], [0.5, 0.4, 0.1], [0.1, 0.1, 0.8]], dtype=DT)
    out = class_average_confidence(p)
    assert torch.allclose(out[0], torch.tensor([0.6, 0.3, 0.1], dtype=DT))
    assert torch.allclose(out[1], out[0]) and torch.allclose(out[2], p[2])


def test_meta_threshold_meta_step_is_adam_on_the_hypergradient():
    model, b = _model(), _batch()
    method = _method("meta_threshold", {"sharpness": 10.0}, model)
    tgn = copy.deepcopy(method.tgn)
    probs = F.softmax(model(b.u[0]), 1).detach()
    method.meta_step(b, probs)

    conf, labels = probs.max(1)
    feats = torch.cat([probs, class_average_confidence(probs)], 1)
    theta = dict(tgn.named_parameters())

    def inner(f, th):
        tau = functional_call(tgn, th, (feats,))[:, 0]
        gate = torch.sigmoid(10.0 * (conf - tau))
        return (gate * F.cross_entropy(f(b.u[1]), labels, reduction="none")).mean()

    params = dict(model.named_parameters())
    g = torch.autograd.grad(inner(model, theta), list(params.values()), create_graph=True)
    moved = {k: p - LR * gi for (k, p), gi in zip(params.items(), g, strict=True)}
    outer = F.cross_entropy(functional_call(model, moved, (b.x,)), b.y)
    grads = torch.autograd.grad(outer, list(theta.values()))
    adam = torch.optim.Adam(tgn.parameters(), lr=1e-3)
    for p, gr in zip(tgn.parameters(), grads, strict=True):
        p.grad = gr
    adam.step()
    for a, c in zip(method.tgn.parameters(), tgn.parameters(), strict=True):
        assert torch.allclose(a, c, rtol=1e-10, atol=1e-14)


def test_green_meta_threshold_skips_meta_steps():
    model, b = _model(), _batch()
    method = _method("meta_threshold", {"k": 4}, model)
    before = copy.deepcopy(method.tgn.state_dict())
    b.step = 3  # 3 % 4 != 0: no meta step
    assert method.train_step(b)["meta"] == 0.0
    assert all(torch.equal(before[k], v) for k, v in method.tgn.state_dict().items())
    b.step = 4
    assert method.train_step(b)["meta"] == 1.0
    assert any(not torch.equal(before[k], v) for k, v in method.tgn.state_dict().items())


# -- Learning to Impute ----------------------------------------------------------------------------
@pytest.mark.parametrize("task_kind", ["classification", "landmarks"])
def test_impute_v1_z_update_is_the_exact_hypergradient_step(task_kind):
    b = _batch(task_kind)
    out = 3 if task_kind == "classification" else 4
    model = _model(out=out)
    task = (
        Task()
        if task_kind == "classification"
        else LandmarkTask(torch.zeros(4, dtype=DT), torch.full((4,), 2.0, dtype=DT))
    )
    cfg = {"variant": "v1", "weight": 2.0, "ramp": 0.0, "meta_lr": 0.7}
    method = _method("impute", cfg, copy.deepcopy(model), task)
    z, g, _ = method.meta_step(b)

    pred = model(b.u[0]).detach()
    if task_kind == "classification":
        z_hand = F.softmax(pred, 1)
        unl = lambda o, t: -(t * F.log_softmax(o, 1)).sum(1).mean()  # noqa: E731
        sup = F.cross_entropy
    else:
        shift = (b.u_offsets[1] - b.u_offsets[0]).to(DT).repeat(1, 2) / 2.0
        z_hand = pred + shift
        unl = lambda o, t: ((o - t) ** 2).mean()  # noqa: E731
        sup = lambda o, t: ((o - t) ** 2).mean()  # noqa: E731
    assert torch.allclose(z, z_hand)
    zr = z_hand.clone().requires_grad_()
    g_hand = _virtual_grad(
        model,
        lambda f, t: sup(f(b.x), b.y) + unl(f(b.u[1]), t),  # virtual step: no λ
        lambda f: sup(f(b.hold_x), b.hold_y),
        zr,
    )
    assert torch.allclose(g, g_hand, rtol=1e-10, atol=1e-14)

    # the real step trains on ẑ = z − η_z g (renormalised for soft labels)
    z_hat = z_hand - 0.7 * len(z_hand) * g_hand  # η_z B_u g
    z_hat = renormalise(z_hat) if task_kind == "classification" else z_hat
    loss = sup(model(b.x), b.y) + 2.0 * unl(model(b.u[1]), z_hat)
    _assert_one_sgd_step(method, b, model, loss)


def test_impute_v2_adds_the_gradient_through_the_imputing_function():
    b, model = _batch(), _model()
    cfg = {"variant": "v2", "weight": 2.0, "ramp": 0.0, "meta_lr": 0.7}
    method = _method("impute", cfg, copy.deepcopy(model))
    _, g, _ = method.meta_step(b)
    z = F.softmax(model(b.u[0]), 1)
    loss = (
        F.cross_entropy(model(b.x), b.y)
        - 2.0 * (z.detach() * F.log_softmax(model(b.u[1]), 1)).sum(1).mean()
    )
    loss = loss + 0.7 * len(g) * (z * g).sum()  # η_z B_u ⟨g, ψ(θ)⟩: gradient η_z B_u gᵀ ∂ψ/∂θ
    _assert_one_sgd_step(method, b, model, loss)


def test_impute_logs_holdout_loss_before_and_after():
    method = _method("impute", {"log_every": 1, "meta_lr": 0.5}, _model())
    logs = method.train_step(_batch())
    assert logs["holdout_after"] < logs["holdout_before"]  # a small step along −g lowers C^H


# -- every estimator, and BatchNorm untouched ---------------------------------------------------
META = {
    "meta_gradient": ({}, None),
    "meta_semi": ({}, "teacher"),
    "meta_threshold": ({}, None),
    "impute": ({"variant": "v1"}, None),
}


def _meta_step(method, b):
    if method.name == "meta_threshold":
        return method.meta_step(b, method.predict(method.model, b.u[0]))  # BN-neutral forward
    return method.meta_step(b)


@pytest.mark.parametrize("estimator", ["higher", "func", "forward", "fd", "implicit"])
@pytest.mark.parametrize("name", list(META))
def test_smoke_step_with_every_estimator(name, estimator):
    cfg, teacher = META[name]
    model = _model(bn=True)
    method = _method(
        name,
        cfg,
        model,
        teacher=_model(bn=True, seed=3) if teacher else None,
        estimator=estimator,
        momentum=0.9,
    )
    before = [p.detach().clone() for p in model.parameters()]
    logs = method.train_step(_batch())
    assert all(torch.isfinite(torch.tensor(v)) for v in logs.values())
    assert any(not torch.equal(a, p) for a, p in zip(before, model.parameters(), strict=True))


@pytest.mark.parametrize("name", ["meta_gradient", "impute"])
def test_analytic_serves_one_layer_models(name):
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3)).to(DT)
    exact = _method(name, {}, copy.deepcopy(model), estimator="func")
    closed = _method(name, {}, copy.deepcopy(model), estimator="analytic")
    b = _batch()
    a, c = _meta_step(exact, b), _meta_step(closed, b)
    assert torch.allclose(a[0], c[0], rtol=1e-10, atol=1e-13)
    with pytest.raises(ValueError, match="one-layer models only"):
        _meta_step(_method(name, {}, _model(), estimator="analytic"), b)


@pytest.mark.parametrize("name", list(META))
def test_meta_step_leaves_batchnorm_statistics_alone(name):
    cfg, teacher = META[name]
    model = _model(bn=True)
    model(torch.randn(8, 1, 2, 2, dtype=DT))
    teacher_net = _model(bn=True, seed=3) if teacher else None
    method = _method(name, cfg, model, teacher=teacher_net, momentum=0.9)
    nets = [model] + ([teacher_net] if teacher_net else [])
    before = [copy.deepcopy(n.state_dict()) for n in nets]
    _meta_step(method, _batch())
    for net, state in zip(nets, before, strict=True):
        for k, v in net.state_dict().items():
            assert torch.equal(v, state[k]), k


@pytest.mark.parametrize("decay, factor", [(0.5, 0.5), (0.99, 0.25)])
def test_impute_v2_mean_teacher_scales_the_teacher_gradient_by_the_ema_step(decay, factor):
    """ψ = teacher; θ_EMA ← d_t θ_EMA + (1 − d_t) θ with d_t = min(1 − 1/(t+1), d) at step t = 3,
    so the student gets (1 − d_t) = max(1/4, 1 − d) times the teacher's ψ-gradient."""
    b, model, teacher = _batch(), _model(), _model(seed=5)
    cfg = {"variant": "v2", "base": "mean_teacher", "weight": 2.0, "ramp": 0.0, "meta_lr": 0.7}
    student = copy.deepcopy(model)
    opt = torch.optim.SGD(student.parameters(), lr=LR)
    cls = METHODS["impute"]
    method = cls(cls.Config(**cfg), student, opt, Task(), teacher=teacher, teacher_decay=decay)
    _, g, _ = method.meta_step(b)
    z = F.softmax(teacher(b.u[0]), 1)
    loss = (
        F.cross_entropy(model(b.x), b.y)
        - 2.0 * (z.detach() * F.log_softmax(model(b.u[1]), 1)).sum(1).mean()
    )
    extra = torch.autograd.grad(0.7 * len(g) * factor * (z * g).sum(), list(teacher.parameters()))
    grads = torch.autograd.grad(loss, list(model.parameters()))
    expected = [p - LR * (d + e) for p, d, e in zip(model.parameters(), grads, extra, strict=True)]
    method.train_step(b)
    for p, want in zip(method.model.parameters(), expected, strict=True):
        assert torch.allclose(p, want, rtol=1e-10, atol=1e-12)


def test_meta_threshold_per_sample_thresholds():
    """τ for every input, with p̄ over all of them, in eval mode; the model's mode is kept."""
    from methods.meta_threshold import tgn_inputs

    model = _model(bn=True)
    method = _method("meta_threshold", {}, model)
    x = _batch(m=7).u[0]
    model.train()
    out = method.per_sample(x, chunk=3)
    assert model.training
    model.eval()
    probs = F.softmax(model(x), 1)
    assert torch.equal(out["pred"], probs.argmax(1))
    assert torch.allclose(out["conf"], probs.max(1).values)
    assert torch.allclose(out["tau"], method.thresholds(tgn_inputs(probs)).detach())
    logs = method.train_step(_batch())
    assert logs["tau_q10"] <= logs["tau_q50"] <= logs["tau_q90"]
