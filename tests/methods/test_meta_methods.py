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


def _adam_step_on_hand_hypergradient(model, net, inner, b):
    """Adam (1e-3) step of `net` on ∂ CE(f(x; θ − LR ∇_θ inner(θ, Θ)), y) / ∂Θ, Θ its parameters,
    unrolled with plain autograd."""
    theta = dict(net.named_parameters())
    params = dict(model.named_parameters())
    g = torch.autograd.grad(inner(model, theta), list(params.values()), create_graph=True)
    moved = {k: p - LR * gi for (k, p), gi in zip(params.items(), g, strict=True)}
    outer = F.cross_entropy(functional_call(model, moved, (b.x,)), b.y)
    grads = torch.autograd.grad(outer, list(theta.values()))
    adam = torch.optim.Adam(net.parameters(), lr=1e-3)
    for p, gr in zip(net.parameters(), grads, strict=True):
        p.grad = gr
    adam.step()


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
    method = _method(
        "meta_gradient", {}, model, estimator="fd", est_kw={"lookahead": False, "r": 0.01}
    )
    y_hat, _ = method.targets(b)

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
    cfg = {"eval_mode": False, "meta_scale": 0.5, "protocol": "toolkit"}
    method = _method("meta_gradient", cfg, model)
    y_hat, _ = method.targets(b)
    y_tilde = F.softmax(model(b.u[0]), 1).detach().requires_grad_()
    grad = _virtual_grad(
        model,
        lambda f, y: ((F.softmax(f(b.u[0]), 1) - y) ** 2).sum(1).mean(),
        lambda f: F.cross_entropy(f(b.x), b.y),
        y_tilde,
    )
    expected = renormalise(y_tilde.detach() - 0.5 * len(b.u[0]) * grad)
    assert torch.allclose(y_hat, expected, rtol=1e-10, atol=1e-13)


def test_meta_gradient_trains_its_base_loss_on_the_moved_labels():
    """alg1: one SGD step on CE(x, y) + w ‖softmax f(u) − ŷ‖² with the meta step's ŷ."""
    model, b = _model(), _batch()
    cfg = {"objective": "alg1", "weight": 3.0, "ramp": 0.0, "eval_mode": False}
    method = _method("meta_gradient", cfg, copy.deepcopy(model))
    y_hat, _ = method.targets(b)
    loss = (
        F.cross_entropy(model(b.x), b.y)
        + 3.0 * ((F.softmax(model(b.u[0]), 1) - y_hat) ** 2).sum(1).mean()
    )
    _assert_one_sgd_step(method, b, model, loss)


# -- Meta-Semi -------------------------------------------------------------------------------------
def _sign_test_by_hand(model, inputs, targets, x, x_targets):
    """w_j = 1[−LR ⟨∇G, ∇H_j⟩ ≤ 0] with per-sample gradients (Eq. 10, 38)."""
    params = list(model.parameters())
    g = torch.autograd.grad(-(x_targets * F.log_softmax(model(x), 1)).sum(1).mean(), params)
    scores = []
    for j in range(len(inputs)):
        hj = -(targets[j] * F.log_softmax(model(inputs[j : j + 1]), 1)[0]).sum()
        grad_j = torch.autograd.grad(hj, params)
        scores.append(-LR * sum((a * c).sum() for a, c in zip(g, grad_j, strict=True)))
    scores = torch.stack(scores)
    assert (scores > 0).any() and (scores < 0).any()  # the test sees both outcomes
    return (scores <= 0).to(DT)


def test_meta_semi_weights_the_mixed_samples_and_trains_on_l_meta_alone():
    """App. B: w_j on the samples of Ũ = MixUp(Concat(X, U)) from G on X̃ (Eq. 35-38); the step
    is on Σ w_j H_j / Σ w_j alone (Eq. 52)."""
    model, teacher, b = _model(), _model(seed=7), _batch(m=8)
    method = _method("meta_semi", {}, copy.deepcopy(model), teacher=teacher)
    torch.manual_seed(11)
    mixed = method.mixed(b)
    assert torch.allclose(mixed.pseudo, F.softmax(teacher(b.u[0]), 1))
    assert len(mixed.u) == len(b.x) + len(b.u[0]) and len(mixed.x) == len(b.x)
    keep, logs = method.weights(b, mixed)
    expected = _sign_test_by_hand(model, mixed.u, mixed.u_targets, mixed.x, mixed.x_targets)
    assert torch.equal(keep, expected)
    assert logs["kept"] == pytest.approx(float(expected.mean()))
    per = -(mixed.u_targets * F.log_softmax(model(mixed.u), 1)).sum(1)
    loss = (expected * per).sum() / expected.sum()
    torch.manual_seed(11)  # train_step draws the same mixed batch
    _assert_one_sgd_step(method, b, model, loss)


def test_meta_semi_raw_weighting_is_the_sign_test_on_raw_samples():
    model, teacher, b = _model(), _model(seed=7), _batch()
    method = _method("meta_semi", {"weighting": "raw"}, model, teacher=teacher)
    pseudo = F.softmax(teacher(b.u[0]), 1).detach()
    onehot = F.one_hot(b.y, 3).to(DT)
    keep, _ = method.sign_test(b.u[0], pseudo, b.x, onehot)
    assert torch.equal(keep, _sign_test_by_hand(model, b.u[0], pseudo, b.x, onehot))
    assert "kept_correct" in method.train_step(b)


def test_ema_mixup_is_meta_semi_with_every_weight_one():
    model, teacher, b = _model(), _model(seed=7), _batch()
    method = _method("ema_mixup", {}, copy.deepcopy(model), teacher=teacher)
    torch.manual_seed(11)
    mixed = method.mixed(b)
    loss = -(mixed.u_targets * F.log_softmax(model(mixed.u), 1)).sum(1).mean()
    torch.manual_seed(11)
    _assert_one_sgd_step(method, b, model, loss)


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

    def inner(f, th):
        tau = functional_call(tgn, th, (feats,))[:, 0]
        gate = torch.sigmoid(10.0 * (conf - tau))
        return (gate * F.cross_entropy(f(b.u[1]), labels, reduction="none")).mean()

    _adam_step_on_hand_hypergradient(model, tgn, inner, b)
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
    """Toolkit protocol on the soft PL base: g by hand through the real optimizer's step on
    C^T + C^U (no λ); the base's step on ẑ = z − η_z B_u g with the base's loss and weight."""
    b = _batch(task_kind)
    out = 3 if task_kind == "classification" else 4
    model = _model(out=out)
    task = (
        Task()
        if task_kind == "classification"
        else LandmarkTask(torch.zeros(4, dtype=DT), torch.full((4,), 2.0, dtype=DT))
    )
    cfg = {"variant": "v1", "weight": 2.0, "ramp": 0.0, "meta_lr": 0.7}
    method = _method("impute_pl", cfg, copy.deepcopy(model), task)
    z, mask, _ = method.targets(b)
    assert torch.equal(mask, torch.ones_like(mask))
    g, _ = method.meta_step(b, z)

    pred = model(b.u[0]).detach()
    if task_kind == "classification":
        z_hand = F.softmax(pred, 1)
        unl = lambda o, t: ((F.softmax(o, 1) - t) ** 2).sum(1).mean()  # noqa: E731
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

    z_hat = z_hand - 0.7 * len(z_hand) * g_hand  # η_z B_u g
    z_hat = renormalise(z_hat) if task_kind == "classification" else z_hat
    loss = sup(model(b.x), b.y) + 2.0 * unl(model(b.u[1]), z_hat)
    _assert_one_sgd_step(method, b, model, loss)


def _softmax_mse(out, target):
    return ((F.softmax(out, 1) - target) ** 2).sum(1).mean()


def test_impute_v2_adds_the_gradient_through_the_imputing_function():
    b, model = _batch(), _model()
    cfg = {"variant": "v2", "weight": 2.0, "ramp": 0.0, "meta_lr": 0.7}
    method = _method("impute_pl", cfg, copy.deepcopy(model))
    g, _ = method.meta_step(b, method.targets(b)[0])
    z = F.softmax(model(b.u[0]), 1)
    loss = F.cross_entropy(model(b.x), b.y) + 2.0 * _softmax_mse(model(b.u[1]), z.detach())
    loss = loss + 0.7 * len(g) * (z * g).sum()  # η_z B_u ⟨g, ψ(θ)⟩: gradient η_z B_u gᵀ ∂ψ/∂θ
    _assert_one_sgd_step(method, b, model, loss)


@pytest.mark.parametrize("protocol", ["toolkit", "authors"])
def test_impute_logs_holdout_loss_before_and_after(protocol):
    cfg = {"log_every": 1, "meta_lr": 0.5, "protocol": protocol}
    logs = _method("impute_pl", cfg, _model()).train_step(_batch())
    assert logs["holdout_after"] < logs["holdout_before"]  # a small step along −g lowers C^H


def test_impute_needs_soft_class_targets():
    with pytest.raises(ValueError, match="soft=true"):
        _method("impute_pl", {"soft": False}, _model())


# -- Meta-Weight -----------------------------------------------------------------------------------
def test_meta_weight_step_is_adam_on_the_hypergradient_then_reweights():
    """V_Θ(ℓ_j) on Pseudo-Label's per-sample losses: Adam step of Θ on the hand-unrolled
    hypergradient, then the base's step with mask m_j · V_Θnew(ℓ_j)."""
    torch.manual_seed(0)
    model, b = _model(), _batch()
    cfg = {"threshold": 0.0, "weight": 2.0, "ramp": 0.0, "meta_weight_decay": 0.0}
    method = _method("meta_weight", cfg, copy.deepcopy(model))
    vnet = copy.deepcopy(method.vnet)
    with torch.no_grad():
        labels = F.softmax(model(b.u[0]), 1).argmax(1)
        losses = F.cross_entropy(model(b.u[1]), labels, reduction="none")

    def inner(f, th):
        v = functional_call(vnet, th, (losses[:, None],))[:, 0]
        return (v * F.cross_entropy(f(b.u[1]), labels, reduction="none")).mean()

    _adam_step_on_hand_hypergradient(model, vnet, inner, b)
    v_new = vnet(losses[:, None])[:, 0].detach()
    loss = (
        F.cross_entropy(model(b.x), b.y)
        + 2.0 * (v_new * F.cross_entropy(model(b.u[1]), labels, reduction="none")).mean()
    )
    _assert_one_sgd_step(method, b, model, loss)
    for a, c in zip(method.vnet.parameters(), vnet.parameters(), strict=True):
        assert torch.allclose(a, c, rtol=1e-10, atol=1e-14)


# -- every estimator, and BatchNorm untouched ---------------------------------------------------
META = {
    "meta_gradient": ({}, None),
    "meta_semi": ({}, "teacher"),
    "meta_threshold": ({}, None),
    "impute_pl": ({"variant": "v1"}, None),
    "impute_mt": ({"variant": "v2"}, "teacher"),
    "meta_weight": ({"threshold": 0.0}, None),
}


def _meta_step(method, b):
    """The meta step alone (the hook a meta method adds to its base), BN-neutral inputs."""
    if method.name == "meta_gradient":
        return method.targets(b)
    if method.name == "meta_semi":
        return method.weights(b, method.mixed(b))
    if method.name == "meta_threshold":
        return method.meta_step(b, method.predict(method.model, b.u[0]))
    probs = method.predict(method.model, b.u[0])
    if method.name == "meta_weight":
        return method.reweight(b, probs.argmax(1), torch.ones(len(probs), dtype=DT))
    return method.meta_step(b, probs)  # impute


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
    assert all(torch.isfinite(torch.as_tensor(v)).all() for v in logs.values())
    assert any(not torch.equal(a, p) for a, p in zip(before, model.parameters(), strict=True))


@pytest.mark.parametrize("name", ["meta_gradient", "impute_pl"])
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
    if name == "impute_mt":  # V2's ψ-gradient through the teacher
        method.psi_gradient(_batch(), torch.ones(6, 3, dtype=DT))
    for net, state in zip(nets, before, strict=True):
        for k, v in net.state_dict().items():
            assert torch.equal(v, state[k]), k


@pytest.mark.parametrize("decay, factor", [(0.5, 0.5), (0.99, 0.25)])
def test_impute_v2_mean_teacher_scales_the_teacher_gradient_by_the_ema_step(decay, factor):
    """ψ = teacher; θ_EMA ← d_t θ_EMA + (1 − d_t) θ with d_t = min(1 − 1/(t+1), d) at step t = 3,
    so the student gets (1 − d_t) = max(1/4, 1 − d) times the teacher's ψ-gradient."""
    b, model, teacher = _batch(), _model(), _model(seed=5)
    cfg = {"variant": "v2", "weight": 2.0, "ramp": 0.0, "meta_lr": 0.7}
    student = copy.deepcopy(model)
    opt = torch.optim.SGD(student.parameters(), lr=LR)
    cls = METHODS["impute_mt"]
    method = cls(cls.Config(**cfg), student, opt, Task(), teacher=teacher, teacher_decay=decay)
    z = F.softmax(teacher(b.u[0]), 1)
    g, _ = method.meta_step(b, z.detach())
    loss = F.cross_entropy(model(b.x), b.y) + 2.0 * _softmax_mse(model(b.u[1]), z.detach())
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
