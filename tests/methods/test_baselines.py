"""Each baseline's step on a tiny batch against a hand computation of its loss.

The model is one linear layer in float64; a plain SGD step with lr = η moves θ to
θ − η ∇L_hand(θ), where L_hand is written out here from the method's formula. Randomness
(Beta draws, permutations) is replayed by seeding before both computations in the same order.
"""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from methods import METHODS, Batch, LandmarkTask, Task

DT = torch.float64
LR = 0.1


def _model(out=3, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(4, out)).to(DT)


def _batch(task="classification", n=5, m=6, step=3, total=10, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 2, 2, generator=g, dtype=DT)
    u = [torch.randn(m, 1, 2, 2, generator=g, dtype=DT) for _ in range(2)]
    if task == "classification":
        y = torch.randint(0, 3, (n,), generator=g)
        return Batch(x, y, u, step, total, u_true=torch.randint(0, 3, (m,), generator=g))
    y = torch.randn(n, 4, generator=g, dtype=DT)
    offsets = [torch.randint(-3, 4, (m, 2), generator=g) for _ in range(2)]
    return Batch(x, y, u, step, total, u_offsets=offsets)


def _step(name, cfg_kw, batch, task, teacher=None):
    """Run the method's train_step; return (new params, model before)."""
    model = _model(out=batch.y.shape[1] if task.kind == "landmarks" else 3)
    before = copy.deepcopy(model)
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    cls = METHODS[name]
    method = cls(cls.Config(**cfg_kw), model, opt, task, teacher=teacher)
    torch.manual_seed(42)
    logs = method.train_step(batch)
    return [p.detach() for p in model.parameters()], before, logs


def _expected(before, hand_loss):
    params = list(before.parameters())
    torch.manual_seed(42)
    grads = torch.autograd.grad(hand_loss(before), params)
    return [p.detach() - LR * g for p, g in zip(params, grads, strict=True)]


def _close(got, want):
    assert all(torch.allclose(a, b, rtol=1e-12, atol=1e-14) for a, b in zip(got, want, strict=True))


def test_supervised():
    b = _batch()
    got, before, _ = _step("supervised", {}, b, Task())
    _close(got, _expected(before, lambda f: F.cross_entropy(f(b.x), b.y)))


def test_pseudo_label_classification():
    b = _batch()  # progress 0.3, ramp 0.6 → λ = 2.0 · 0.5
    cfg = {"weight": 2.0, "ramp": 0.6, "threshold": 0.4}
    got, before, logs = _step("pseudo_label", cfg, b, Task())

    def hand(f):
        p = F.softmax(f(b.u[0]), 1).detach()
        conf, lab = p.max(1)
        mask = (conf >= 0.4).to(DT)
        ce = -F.log_softmax(f(b.u[1]), 1)[torch.arange(len(lab)), lab]
        return F.cross_entropy(f(b.x), b.y) + 1.0 * (mask * ce).mean()

    _close(got, _expected(before, hand))
    assert 0 < logs["mask_rate"] < 1  # the threshold matters in this batch


def test_pseudo_label_landmarks_shifts_the_target_into_the_other_view():
    b = _batch("landmarks")
    std = torch.tensor([2.0, 4.0, 2.0, 4.0], dtype=DT)
    task = LandmarkTask(torch.zeros(4, dtype=DT), std)
    got, before, _ = _step("pseudo_label", {"weight": 1.0, "ramp": 0.0}, b, task)

    def hand(f):
        shift = (b.u_offsets[1] - b.u_offsets[0]).to(DT).repeat(1, 2) / std  # (dx, dy, dx, dy)
        target = f(b.u[0]).detach() + shift
        return F.mse_loss(f(b.x), b.y) + ((f(b.u[1]) - target) ** 2).mean()

    _close(got, _expected(before, hand))


@pytest.mark.parametrize("kind", ["classification", "landmarks"])
def test_mean_teacher(kind):
    b = _batch(kind)
    task = (
        Task()
        if kind == "classification"
        else LandmarkTask(torch.zeros(4, dtype=DT), torch.ones(4, dtype=DT))
    )
    teacher = _model(out=3 if kind == "classification" else 4, seed=5)
    got, before, _ = _step("mean_teacher", {"weight": 3.0, "ramp": 0.0}, b, task, teacher)

    def hand(f):
        if kind == "classification":
            t = F.softmax(teacher(b.u[0]), 1).detach()
            cons = ((F.softmax(f(b.u[1]), 1) - t) ** 2).sum(1).mean()
            return F.cross_entropy(f(b.x), b.y) + 3.0 * cons
        t = teacher(b.u[0]).detach() + (b.u_offsets[1] - b.u_offsets[0]).to(DT).repeat(1, 2)
        return F.mse_loss(f(b.x), b.y) + 3.0 * ((f(b.u[1]) - t) ** 2).mean()

    _close(got, _expected(before, hand))


def test_mixup_ict():
    b = _batch()
    teacher = _model(seed=5)
    got, before, logs = _step(
        "mixup", {"weight": 2.0, "ramp": 0.0, "alpha": 1.0}, b, Task(), teacher
    )

    def hand(f):
        mu = float(torch.distributions.Beta(1.0, 1.0).sample())
        perm = torch.randperm(len(b.u[0]))
        p = F.softmax(teacher(b.u[0]), 1).detach()
        mixed = mu * b.u[0] + (1 - mu) * b.u[0][perm]
        cons = ((F.softmax(f(mixed), 1) - (mu * p + (1 - mu) * p[perm])) ** 2).sum(1).mean()
        return F.cross_entropy(f(b.x), b.y) + 2.0 * cons

    _close(got, _expected(before, hand))
    assert 0 < logs["mix"] < 1


def test_fixmatch_and_its_pseudo_label_counts():
    b = _batch()
    got, before, logs = _step("fixmatch", {"threshold": 0.4, "weight": 1.5}, b, Task())

    def hand(f):
        p = F.softmax(f(b.u[0]), 1).detach()
        conf, lab = p.max(1)
        mask = (conf >= 0.4).to(DT)
        ce = F.cross_entropy(f(b.u[1]), lab, reduction="none")
        return F.cross_entropy(f(b.x), b.y) + 1.5 * (mask * ce).mean()

    _close(got, _expected(before, hand))
    with torch.no_grad():
        conf, lab = F.softmax(before(b.u[0]), 1).max(1)
    passed = conf >= 0.4
    assert logs["pl_correct"] == float((passed & (lab == b.u_true)).sum())
    assert logs["pl_wrong"] == float((passed & (lab != b.u_true)).sum())
    assert logs["mask_rate"] == pytest.approx(float(passed.double().mean()))


def test_mixmatch():
    b = _batch()
    cfg = {"weight": 10.0, "ramp": 0.6, "temperature": 0.5, "alpha": 0.75}
    got, before, _ = _step("mixmatch", cfg, b, Task())

    def hand(f):
        q = (F.softmax(f(b.u[0]), 1) + F.softmax(f(b.u[1]), 1)).detach() / 2
        q = q**2 / (q**2).sum(1, keepdim=True)  # sharpen with T = 0.5
        xs = torch.cat([b.x, b.u[0], b.u[1]])
        ys = torch.cat([F.one_hot(b.y, 3).to(DT), q, q])
        mu = float(torch.distributions.Beta(0.75, 0.75).sample())
        mu = max(mu, 1 - mu)
        perm = torch.randperm(len(xs))
        out = f(mu * xs + (1 - mu) * xs[perm])
        target = mu * ys + (1 - mu) * ys[perm]
        n = len(b.x)
        sup = -(target[:n] * F.log_softmax(out[:n], 1)).sum(1).mean()
        unsup = ((F.softmax(out[n:], 1) - target[n:]) ** 2).mean()
        return sup + 10.0 * 0.5 * unsup  # ramp: progress 0.3 of 0.6

    _close(got, _expected(before, hand))


def test_registry_errors():
    with pytest.raises(KeyError, match=r"unknown method 'fixmach'; valid: .*fixmatch"):
        METHODS["fixmach"]
    with pytest.raises(ValueError, match="duplicate method name 'fixmatch'"):
        METHODS.add(METHODS["fixmatch"])
    with pytest.raises(ValueError, match="supports tasks"):
        METHODS["fixmatch"](None, _model(), None, LandmarkTask(torch.zeros(4), torch.ones(4)))
    with pytest.raises(ValueError, match="needs an EMA teacher"):
        METHODS["mean_teacher"](None, _model(), None, Task())
    cls = METHODS["pseudo_label"]  # built directly, the hyperparameters are checked too
    with pytest.raises(ValueError, match=r"pseudo_label: threshold must be a probability"):
        cls(cls.Config(threshold=2.0), _model(), None, Task())


def test_every_meta_method_subclasses_its_base():
    """A meta method is its base plus a meta step: it subclasses the base and its Config."""
    metas = [n for n in METHODS if METHODS.base_of(n)]
    assert sorted(metas) == [
        "impute_mt",
        "impute_pl",
        "meta_gradient",
        "meta_pseudo_labels",
        "meta_semi",
        "meta_threshold",
        "meta_weight",
    ]
    for name in metas:
        base = METHODS[METHODS.base_of(name)]
        assert issubclass(METHODS[name], base) and issubclass(METHODS[name].Config, base.Config)
