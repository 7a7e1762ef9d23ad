"""Data-parallel hypergradients (bilevel.parallel): a batch split over 2 gloo processes gives
the hypergradient of one process on the whole batch, for every estimator, to 1e-10 in float64:
per-sample hyperparameters by rank, replicated ones (a weighting network, a weight-decay
coefficient on the parameters the losses read from f.params) summed."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from bilevel import BilevelProblem, ImputedTargets, Shard, hypergradient
from bilevel.functional import Evaluator
from tests.bilevel.helpers import DT, batch, linear, mlp
from tests.distributed import run_ranks

N = 8  # global batch per role; 4 per rank on 2 ranks
CASES = [
    ("func", "sgd", 2, {}),
    ("func", "adam", 1, {}),
    ("higher", "sgd", 2, {}),
    ("forward", "sgd", 1, {}),
    ("forward", "adam", 1, {}),
    ("fd", "sgd", 1, {"r": 1e-4}),
    ("implicit", "sgd", 1, {"method": "cg", "iters": 5}),
    ("implicit", "sgd", 0, {"method": "neumann", "iters": 4}),
    ("analytic", "sgd", 1, {}),
]


def _setting(optimizer: str, model) -> dict:
    """A virtual step that continues a real one: momentum buffers or Adam's state."""
    g = torch.Generator().manual_seed(5)
    named = dict(model.named_parameters())
    if optimizer == "sgd":
        buffers = {k: torch.randn(p.shape, generator=g, dtype=DT) for k, p in named.items()}
        return dict(momentum=0.9, nesterov=True, weight_decay=1e-3, momentum_buffers=buffers)
    state = {
        k: {
            "step": torch.tensor(3.0),
            "exp_avg": 0.1 * torch.randn(p.shape, generator=g, dtype=DT),
            "exp_avg_sq": 0.01 * torch.rand(p.shape, generator=g, dtype=DT),
        }
        for k, p in named.items()
    }
    return dict(optimizer="adam", weight_decay=1e-3, adam_state=state)


def _problems(shard: Shard, estimator: str, optimizer: str, steps: int):
    """(problem, hparams, replicated keys) for per-sample targets z and for a weighting
    network's replicated weights, on this rank's slice of the global batch."""
    b = batch(seed=3, n_lab=N, n_unl=N, n_out=N)
    part = shard.part
    model = linear() if estimator == "analytic" else mlp()
    z = torch.softmax(torch.randn(N, 3, generator=torch.Generator().manual_seed(4), dtype=DT), 1)
    y_soft = F.one_hot(b.y_lab, 3).to(DT)
    inner = ImputedTargets(
        part(b.x_unl),
        "softmax_mse",
        key="z",
        weight=0.7,
        labeled=(part(b.x_lab), part(y_soft)),
        labeled_kind="ce",
        shard=shard,
    )

    def outer(f):
        return shard.mean(F.cross_entropy(f(part(b.x_out)), part(b.y_out), reduction="none"))

    kw = dict(lr=0.3, steps=steps, shard=shard, **_setting(optimizer, model))
    out = [(BilevelProblem(model, inner, outer, **kw), {"z": part(z)}, ())]
    if estimator in ("analytic",):
        return out
    net = torch.nn.Linear(3, 1).to(DT)
    theta = {f"net.{k}": v.detach() for k, v in net.named_parameters()}

    def weighted(f, hp):
        weights = torch.sigmoid(
            torch.func.functional_call(net, {k[4:]: v for k, v in hp.items()}, (part(z),))
        )[:, 0]
        per = (torch.softmax(f(part(b.x_unl)), 1) - part(z)).pow(2).sum(1)
        return shard.mean(weights * per)

    problem = BilevelProblem(model, weighted, outer, replicated=tuple(theta), **kw)
    out.append((problem, theta, tuple(theta)))

    def decayed(f, hp):  # a learned weight decay read from f.params, added once over the ranks
        penalty = sum(p.pow(2).sum() for p in f.params.values()) / shard.world
        fit = shard.mean(F.cross_entropy(f(part(b.x_lab)), part(b.y_lab), reduction="none"))
        return fit + 0.5 * hp["log_wd"].exp() * penalty

    log_wd = {"log_wd": torch.tensor(-2.0, dtype=DT)}
    problem = BilevelProblem(model, decayed, outer, replicated=("log_wd",), **kw)
    return [*out, (problem, log_wd, ("log_wd",))]


def _hypergradients(estimator, optimizer, steps, options):
    """On each rank: the per-sample hypergradients gathered over ranks, the replicated ones."""
    shard = Shard.current()
    out = []
    for problem, hparams, replicated in _problems(shard, estimator, optimizer, steps):
        grads = hypergradient(problem, hparams, estimator, **options)
        out.append({k: g if k in replicated else shard.gather(g) for k, g in grads.items()})
    return out


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp_min(1e-300))


def _all_cases():
    return [_hypergradients(*case) for case in CASES]


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    return run_ranks(_all_cases, 2, tmp_path_factory.mktemp("ranks"))


@pytest.mark.parametrize("i", range(len(CASES)), ids=[f"{c[0]}-{c[1]}-K{c[2]}" for c in CASES])
def test_two_ranks_give_the_one_process_hypergradient(two_ranks, i):
    single = _hypergradients(*CASES[i])
    for rank in two_ranks:
        for got, want in zip(rank[i], single, strict=True):
            assert got.keys() == want.keys()
            for k in want:
                assert want[k].abs().max() > 1e-8, k  # a test that can fail
                assert _relative(got[k], want[k]) <= 1e-10, (k, _relative(got[k], want[k]))


def test_one_process_shard_changes_nothing():
    """`Shard()` is the identity: the same bits as a problem without one."""
    problem, hparams, _ = _problems(Shard(), "func", "sgd", 1)[0]
    plain = BilevelProblem(
        problem.model,
        problem.inner_loss,
        problem.outer_loss,
        lr=0.3,
        momentum=0.9,
        nesterov=True,
        weight_decay=1e-3,
        momentum_buffers=problem.momentum_buffers,
    )
    a = hypergradient(problem, hparams, "func")["z"]
    b = hypergradient(plain, hparams, "func")["z"]
    assert torch.equal(a, b)
    with Evaluator(problem) as ev:
        assert ev.hp(hparams) is hparams
