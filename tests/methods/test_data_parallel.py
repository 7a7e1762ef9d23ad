"""Data-parallel training steps (bilevel.parallel, methods' shards, BatchMaker slices): 3 steps
of every meta method (and base) under every estimator it accepts, on 2 gloo processes, give the
parameters, meta parameters, EMA and logged values of 1 process on the whole batch, to 1e-10 in
float64. The labeled and unlabeled batches differ in size (6 and 10), so the mixups pair samples
held by different ranks."""

from __future__ import annotations

import pytest
import torch

import bilevel
from bilevel import Shard
from experiments import configs, distributed
from experiments.build import build
from experiments.config import ConfigError, apply_overrides, smoke
from experiments.data import mix_seed
from tests.distributed import run_ranks

META = [
    "metagrad_digits",
    "metasemi_digits",
    "metathreshold_digits",
    "metaweight_digits",
    "impute_v1_digits",
    "impute_v1_mt_digits",
    "impute_v2_digits",
    "impute_v2_mt_digits",
]
BASES = ["pl_mixup_digits", "ema_mixup_digits", "fixmatch_digits", "pseudo_label_digits"]
BASES += ["mean_teacher_digits", "supervised_digits"]
# every estimator but auto (it runs one of these) and analytic (one-layer models: its own case)
ESTIMATORS = [n for n in bilevel.ESTIMATORS if n not in ("auto", "analytic")]
CASES = [(n, e) for n in META for e in ESTIMATORS] + [(n, None) for n in BASES]
CASES += [("impute_v1_digits", "analytic"), ("metagrad_digits", "toolkit")]
BN = [("metagrad_digits", "batchnorm"), ("metathreshold_digits", "batchnorm")]
SIZES = ["batch_size=6", "unlabeled_batch=10", "holdout_batch=4", "steps=3"]
STEPS = 3


def _overrides(name: str, estimator: str | None) -> list[str]:
    if estimator == "analytic":
        return [*SIZES, "estimator=analytic", "model=linear"]
    if estimator == "toolkit":  # the real optimizer's virtual step (Nesterov momentum)
        return [*SIZES, "method.protocol=toolkit"]
    if estimator == "batchnorm":
        return [*SIZES, "model.batchnorm=true"]
    if estimator == "implicit":  # 100 CG steps on an indefinite Hessian amplify rounding
        return [*SIZES, "estimator=implicit", "estimator.implicit.iters=5"]
    if estimator == "nystrom":  # the smoke model's Hessian is indefinite: damp the solve
        return [*SIZES, "estimator=nystrom", "estimator.nystrom.rho=1.0"]
    return SIZES + ([f"estimator={estimator}"] if estimator else [])


def _double_batch(b):
    return b.map(lambda t: t.double() if t.is_floating_point() else t)


def _steps(name: str, estimator: str | None):
    """3 training steps on this process's shard: (state tensors, per-step logs), or None when
    the method refuses the estimator."""
    cfg = apply_overrides(smoke(configs.get(name)), _overrides(name, estimator))
    try:
        run = build(cfg, 0, "smoke", Shard.current())
    except ConfigError:
        return None
    run.model.double()
    if run.ema is not None:
        run.ema.double()
    for net in ("tgn", "vnet"):
        if hasattr(run.method, net):
            getattr(run.method, net).double()
    logs = []
    for step in range(STEPS):
        torch.manual_seed(mix_seed(0, step, 0))
        out = run.method.train_step(_double_batch(run.batches(step)))
        run.scheduler.step()
        distributed.sync_buffers(run.model, run.method.shard)
        if run.ema is not None:
            run.ema.update_parameters(run.model)
        logs.append({k: float(v) for k, v in out.items()})
    state = {f"model.{k}": v for k, v in run.model.state_dict().items()}
    if run.ema is not None:
        state |= {f"ema.{k}": v for k, v in run.ema.module.state_dict().items()}
    for net in ("tgn", "vnet"):
        if hasattr(run.method, net):
            state |= {f"{net}.{k}": v for k, v in getattr(run.method, net).state_dict().items()}
    return state, logs


def _rank_local_targets():
    """Meta-Gradient's first pseudo labels under rank_local=true, on this rank's slice."""
    cfg = apply_overrides(smoke(configs.get("metagrad_digits")), [*SIZES, "rank_local=true"])
    run = build(cfg, 0, "smoke", Shard.current())
    torch.manual_seed(mix_seed(0, 0, 0))
    return run.method.targets(run.batches(0))[0]


def _all():
    return [_steps(*case) for case in CASES + BN], _rank_local_targets()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    return run_ranks(_all, 2, tmp_path_factory.mktemp("ranks"))


@pytest.fixture(scope="module")
def two_ranks(ranks):
    return [steps for steps, _ in ranks]


@pytest.mark.parametrize("i", range(len(CASES)), ids=[f"{n}-{e}" for n, e in CASES])
def test_two_processes_train_as_one(two_ranks, i):
    single = _steps(*CASES[i])
    if single is None:  # the method refuses this estimator: so must the ranks
        assert all(rank[i] is None for rank in two_ranks)
        pytest.skip(f"{CASES[i][0]} does not take estimator {CASES[i][1]}")
    state, logs = single
    for rank in two_ranks:
        got_state, _ = rank[i]
        assert got_state.keys() == state.keys()
        for k, want in state.items():
            if not want.is_floating_point():
                assert torch.equal(got_state[k], want), k
                continue
            err = float((got_state[k] - want).norm() / want.norm().clamp_min(1e-300))
            assert err <= 1e-10, (k, err)
    # each rank logs its share: the sum over ranks is the one-process log
    for step in range(STEPS):
        for k, want in logs[step].items():
            got = sum(rank[i][1][step][k] for rank in two_ranks)
            assert abs(got - want) <= 1e-10 * max(1.0, abs(want)), (step, k, got, want)


@pytest.mark.parametrize("i", range(len(BN)), ids=[n for n, _ in BN])
def test_batchnorm_normalises_per_rank_and_keeps_the_copies_equal(two_ranks, i):
    """BatchNorm in train mode normalises each rank's slice with its own statistics (as
    DistributedDataParallel without SyncBatchNorm), so 2 processes are not 1 process on the
    whole batch; the copies stay equal: gradients are summed and rank 0's running statistics
    are broadcast after every step."""
    (a, _), (b, _) = (rank[len(CASES) + i] for rank in two_ranks)
    assert a.keys() == b.keys() and any("running_mean" in k for k in a)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    single, _ = _steps(*BN[i])
    weight = "model.1.weight"
    err = float((a[weight] - single[weight]).norm() / single[weight].norm())
    assert err > 1e-8, "per-rank statistics should differ from the whole batch's"


def test_rank_local_meta_steps_are_each_ranks_own(ranks):
    """rank_local=true (the Meta-Gradient authors' ImageNet code): each rank's pseudo labels are
    those one process computes from that rank's slice alone; without it they are the global
    batch's (differ)."""
    cfg = apply_overrides(smoke(configs.get("metagrad_digits")), SIZES)
    run = build(cfg, 0, "smoke", Shard())
    whole = run.batches(0)
    torch.manual_seed(mix_seed(0, 0, 0))
    global_labels = run.method.targets(whole)[0]
    for rank, (_, got) in enumerate(ranks):
        mine = whole.part(Shard(2, rank))
        torch.manual_seed(mix_seed(0, 0, 0))
        want = run.method.targets(mine)[0]
        assert torch.allclose(got, want, rtol=1e-5, atol=1e-7)
        assert not torch.allclose(got, global_labels[Shard(2, rank).rows(len(global_labels))])
