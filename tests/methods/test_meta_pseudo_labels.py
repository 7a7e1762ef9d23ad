"""Meta Pseudo Labels: the teacher's hypergradient by every exact estimator against a brute-force
difference, the paper's estimate against it (measured), one full step against an explicit
formula on a linear student and teacher, the checkpointed state, and the experiment config."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from analysis import meta_check, meta_vs_base
from bilevel import frozen_norm_stats, hypergradient, serving
from experiments import configs
from experiments.config import ConfigError, apply_overrides
from methods import METHODS, Batch, LandmarkTask, Task
from tests.bilevel.helpers import brute_force, cosine, rel_error

DT = torch.float64
LR = 0.2
NAME = "meta_pseudo_labels"


def _mlp(seed=0, bn=False):
    torch.manual_seed(seed)
    layers = [nn.Flatten(), nn.Linear(4, 6)] + ([nn.BatchNorm1d(6)] if bn else [])
    return nn.Sequential(*layers, nn.Tanh(), nn.Linear(6, 3)).to(DT)


def _linear(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(4, 3)).to(DT)


def _batch(n=5, m=6, seed=1, step=3):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 2, 2, generator=g, dtype=DT)
    u = [torch.randn(m, 1, 2, 2, generator=g, dtype=DT) for _ in range(2)]
    return Batch(x, torch.randint(0, 3, (n,), generator=g), u, step, 10)


def _method(model, cfg=None, estimator="func", momentum=0.0, nesterov=False, wd=0.0):
    opt = torch.optim.SGD(
        model.parameters(), lr=LR, momentum=momentum, nesterov=nesterov, weight_decay=wd
    )
    cls = METHODS[NAME]
    cfg = {"weight": 2.0, "ramp": 0.0} | (cfg or {})
    return cls(cls.Config(**cfg), model, opt, Task(), estimator=estimator)


# -- (a) the exact hypergradient ----------------------------------------------------------------
def test_every_exact_estimator_gives_the_brute_force_hypergradient():
    """dG/dΘ on one batch in float64, the virtual step SGD with Nesterov momentum (a buffer from
    one real step) and weight decay: every exact estimator serving the problem agrees with the
    others to 1e-8 and with a central difference of G after one real torch SGD step to 1e-6."""
    method = _method(_mlp(), momentum=0.9, nesterov=True, wd=5e-4)
    method.train_step(_batch(seed=7))  # momentum buffers, and a teacher that has moved
    b = _batch()
    problem, theta = method.teacher_problem(b)
    names = serving(problem, theta, exact=True)
    assert {"func", "forward"} <= set(names)
    with frozen_norm_stats(method.teacher_net):
        grads = {n: hypergradient(problem, theta, n) for n in names}
        reference = brute_force(problem, theta)
    first = grads[names[0]]
    for name, g in grads.items():
        assert rel_error(g, first) < 1e-8, name
        assert rel_error(g, reference) < 1e-6, name


# -- (b) the paper's estimate, measured -------------------------------------------------------
def _paper_estimates(method, b, samples):
    """The paper's estimates of dG/dΘ on `b` for `samples` draws of ŷ (teacher unchanged)."""
    probs = method.task.prediction(method.teacher_net(b.u[0])).detach()
    return [method.paper_gradient(b, probs)[0] for _ in range(samples)]


def _mean(grads):
    return {k: torch.stack([g[k] for g in grads]).mean(0) for k in grads[0]}


def test_paper_estimate_against_the_exact_hypergradient(capsys):
    """Measured, not asserted beyond what is robust: the cosine and relative error of the paper's
    estimate h · ∇CE(ŷ, T) against dG/dΘ (one sampled ŷ, the arg-max, and the mean over many
    draws, which in expectation and to first order in the lr is dG/dΘ / n)."""
    method = _method(_mlp(), {"approximation": "paper"})
    b = _batch()
    n = len(b.u[1])
    with frozen_norm_stats(method.teacher_net):
        exact = hypergradient(*method.teacher_problem(b), "func")
    one = _paper_estimates(method, b, 1)[0]
    draws = _paper_estimates(method, b, 4000)
    mean = _mean(draws)
    scaled = {k: n * v for k, v in mean.items()}
    method.cfg.paper_labels = "argmax"
    argmax = _paper_estimates(method, b, 1)[0]
    rows = {"one draw": one, "argmax": argmax, "mean of 4000 draws": mean, "n x mean": scaled}
    with capsys.disabled():
        for label, g in rows.items():
            print(
                f"\npaper estimate, {label}: cosine {cosine(g, exact):+.4f}, "
                f"rel error {rel_error(g, exact):.4f}"
            )
    for g in rows.values():
        assert all(torch.isfinite(v).all() for v in g.values())
    # robust: many draws point the way of the exact hypergradient, with about 1/n of its size
    assert cosine(mean, exact) > 0.5
    assert (
        0.5
        < float(torch.cat([v.flatten() for v in scaled.values()]).norm())
        / float(torch.cat([v.flatten() for v in exact.values()]).norm())
        < 2.0
    )


# -- (c) one full step by hand -----------------------------------------------------------------
def _softmax_jacobian(p):
    """J = diag(p) − p pᵀ per row of p (n × C → n × C × C), the Jacobian of softmax."""
    return torch.diag_embed(p) - p[:, :, None] * p[:, None, :]


def _hand_step(student, teacher, b, weight, teacher_lr, approximation="exact"):
    """The new (W, b) of student and (V, c) of teacher after one MPL step, from explicit formulas
    for linear models z = W x + b, softmax-MSE on soft labels and plain SGD at LR."""
    W, bs = student[1].weight.detach().clone(), student[1].bias.detach().clone()
    V, c = teacher[1].weight.detach().clone(), teacher[1].bias.detach().clone()
    x, y = b.x.flatten(1), b.y
    u0, u1 = b.u[0].flatten(1), b.u[1].flatten(1)
    n, classes = len(u1), W.shape[0]
    ey = F.one_hot(y, classes).to(DT)
    t = torch.softmax(u0 @ V.T + c, 1)  # the teacher's soft labels (before its step)
    s = torch.softmax(u1 @ W.T + bs, 1)
    js = _softmax_jacobian(s)

    def unlabeled_grads(targets):
        """∇_W, ∇_b of mean_j ‖softmax(W u_j + b) − t_j‖²."""
        r = 2 * torch.einsum("jab,jb->ja", js, s - targets) / n
        return r.T @ u1, r.sum(0)

    def ce_grads(weight_, bias_, inputs, onehot):
        """∇_W, ∇_b of mean_i CE(W x_i + b, y_i)."""
        r = (torch.softmax(inputs @ weight_.T + bias_, 1) - onehot) / len(inputs)
        return r.T @ inputs, r.sum(0)

    def labeled_loss(weight_, bias_):
        return F.cross_entropy(x @ weight_.T + bias_, y)

    gw, gb = unlabeled_grads(t)
    W_hat, b_hat = W - LR * gw, bs - LR * gb  # the virtual step
    if approximation == "exact":
        gW_G, gb_G = ce_grads(W_hat, b_hat, x, ey)  # ∇G at θ̂
        dG_dt = (2 * LR / n) * torch.einsum("jab,jb->ja", js, u1 @ gW_G.T + gb_G)
        k = torch.einsum("jab,jb->ja", _softmax_jacobian(t), dG_dt)
        meta_V, meta_c = k.T @ u0, k.sum(0)
    else:  # the paper's estimate with the arg-max labels
        labels = F.one_hot(t.argmax(1), classes).to(DT)
        hw, hb = unlabeled_grads(labels)
        h = labeled_loss(W, bs) - labeled_loss(W - LR * hw, bs - LR * hb)
        ce_V, ce_c = ce_grads(V, c, u0, labels)
        meta_V, meta_c = h * ce_V, h * ce_c
    sup_V, sup_c = ce_grads(V, c, x, ey)
    lr_t = teacher_lr * LR
    teacher_new = (V - lr_t * (meta_V + sup_V), c - lr_t * (meta_c + sup_c))
    sw, sb = ce_grads(W, bs, x, ey)
    student_new = (W - LR * (sw + weight * gw), bs - LR * (sb + weight * gb))
    return student_new, teacher_new


@pytest.mark.parametrize("approximation", ["exact", "paper"])
def test_one_step_by_hand_on_linear_models(approximation):
    """Teacher: one SGD step on dG/dΘ (exact; or h·∇CE(ŷ, T) with the arg-max ŷ) plus its
    supervised gradient at 0.5 × the student's lr; student: the base's step with λ = 2 on the
    teacher's soft labels from before the teacher's step."""
    cfg = {"teacher_lr": 0.5, "approximation": approximation, "paper_labels": "argmax"}
    method = _method(_linear(), cfg)
    b = _batch()
    student, teacher = copy.deepcopy(method.model), copy.deepcopy(method.teacher_net)
    assert not torch.equal(student[1].weight, teacher[1].weight)  # initialised apart
    (W, bs), (V, c) = _hand_step(student, teacher, b, 2.0, 0.5, approximation)
    logs = method.train_step(b)
    assert ("mpl_h" in logs) == (approximation == "paper")
    for got, want in (
        (method.model[1].weight, W),
        (method.model[1].bias, bs),
        (method.teacher_net[1].weight, V),
        (method.teacher_net[1].bias, c),
    ):
        assert torch.allclose(got, want, rtol=1e-10, atol=1e-13)


def test_sampled_labels_follow_the_teacher_distribution():
    method = _method(_linear(), {"approximation": "paper"})
    probs = torch.tensor([[0.2, 0.5, 0.3]], dtype=DT).expand(20000, 3)
    counts = torch.bincount(method.pseudo_labels(probs), minlength=3).to(DT) / 20000
    assert torch.allclose(counts, probs[0], atol=0.015)


# -- every estimator, BatchNorm, refusals --------------------------------------------------------
@pytest.mark.parametrize("estimator", ["higher", "func", "forward", "fd", "implicit"])
def test_smoke_step_with_every_estimator(estimator):
    method = _method(_mlp(bn=True), estimator=estimator, momentum=0.9)
    teacher = [p.detach().clone() for p in method.teacher_net.parameters()]
    logs = method.train_step(_batch())
    assert all(torch.isfinite(torch.as_tensor(v)).all() for v in logs.values())
    assert all(
        not torch.equal(a, p) for a, p in zip(teacher, method.teacher_net.parameters(), strict=True)
    )
    assert method.non_finite() is None


@pytest.mark.parametrize("approximation", ["exact", "paper"])
def test_meta_step_leaves_batchnorm_statistics_alone(approximation):
    method = _method(_mlp(bn=True), {"approximation": approximation}, momentum=0.9)
    nets = [method.model, method.teacher_net]
    before = [copy.deepcopy(n.state_dict()) for n in nets]
    b = _batch()
    probs = method.predict(method.teacher_net, b.u[0])
    if approximation == "exact":
        method.exact_gradient(b)
    else:
        method.paper_gradient(b, probs)
    for net, state in zip(nets, before, strict=True):
        for k, v in net.state_dict().items():
            assert torch.equal(v, state[k]), k


def test_refuses_hard_targets_and_landmarks():
    with pytest.raises(ValueError, match="soft=true"):
        _method(_mlp(), {"soft": False})
    cls, model = METHODS[NAME], _mlp()
    task = LandmarkTask(torch.zeros(3), torch.ones(3))
    with pytest.raises(ValueError, match="supports tasks"):
        cls(cls.Config(), model, torch.optim.SGD(model.parameters(), lr=LR), task)


@pytest.mark.parametrize("kind", [torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW])
def test_teacher_optimizer_has_the_students_class_and_settings(kind):
    model = _mlp()
    opt = kind(model.parameters(), lr=0.01, weight_decay=1e-3)
    cls = METHODS[NAME]
    method = cls(cls.Config(teacher_lr=3.0), model, opt, Task())
    assert type(method.teacher_opt) is kind and method.teacher_opt.defaults == opt.defaults
    method.train_step(_batch())
    assert method.teacher_opt.param_groups[0]["lr"] == pytest.approx(0.03)


# -- (d) the checkpointed state ---------------------------------------------------------------
@pytest.mark.parametrize("approximation", ["exact", "paper"])
def test_state_round_trip_resumes_exactly(approximation):
    """Two steps in one go, or one step, a save, a fresh method loading model, optimizer and
    method state, and the second step: the same student, teacher and teacher optimizer (and,
    sampling ŷ, the same draws)."""
    cfg = {"approximation": approximation}
    whole = _method(_mlp(), cfg, momentum=0.9)
    whole.train_step(_batch(seed=1))
    saved = (
        copy.deepcopy(whole.model.state_dict()),
        copy.deepcopy(whole.optimizer.state_dict()),
        copy.deepcopy(whole.state_dict()),
    )
    assert {"teacher", "teacher_opt", "sampler"} <= set(saved[2])
    whole.train_step(_batch(seed=2))

    resumed = _method(_mlp(seed=9), cfg, momentum=0.9)
    resumed.model.load_state_dict(saved[0])
    resumed.optimizer.load_state_dict(saved[1])
    resumed.load_state_dict(saved[2])
    resumed.train_step(_batch(seed=2))
    for a, c in zip(
        [*whole.model.parameters(), *whole.teacher_net.parameters()],
        [*resumed.model.parameters(), *resumed.teacher_net.parameters()],
        strict=True,
    ):
        assert torch.equal(a, c)
    for a, c in zip(
        whole.teacher_opt.state.values(), resumed.teacher_opt.state.values(), strict=True
    ):
        assert torch.equal(a["momentum_buffer"], c["momentum_buffer"])
    assert torch.equal(whole.sampler.get_state(), resumed.sampler.get_state())


# -- (e) the experiment --------------------------------------------------------------------------
def test_experiment_resolves_validates_and_pairs_with_its_base():
    cfg = configs.get("mpl_digits")
    assert cfg.method == NAME and cfg.dataset == "digits" and cfg.num_labels == 50
    apply_overrides(cfg, [])  # validates
    assert apply_overrides(cfg, ["method.approximation=paper"]).method_kw["approximation"] == (
        "paper"
    )
    with pytest.raises(ConfigError, match="approximation"):
        apply_overrides(cfg, ["method.approximation=taylor"])
    assert configs.base_of("mpl_digits") == "pseudo_label_soft_digits"
    assert "mpl_digits" in dict(meta_check.pairs("digits"))["pseudo_label_soft_digits"]
    assert "mpl_digits" in meta_vs_base.METAS
    study = meta_vs_base.ESTIMATORS["mpl_digits"]
    assert "method.approximation=paper" in study
    spec = meta_vs_base.estimator_spec("mpl_digits", "method.approximation=paper")
    assert spec.overrides == ("method.approximation=paper",)
