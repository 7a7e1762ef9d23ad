"""Hypergradients under `torch.autocast` in bfloat16: every estimator keeps cosine ≥ 0.999 with
its float32 result on the test models and problems, and returns float32. (`fd`, `implicit` and
`analytic` evaluate in float32 inside autocast, so theirs are the float32 results.)"""

from __future__ import annotations

import pytest
import torch

from bilevel import ESTIMATORS as DECLARED
from bilevel import hypergradient
from bilevel.examples import BUILDERS

from .helpers import MODELS, batch, cnn_bn_conv, cosine, flat

ESTIMATORS = [n for n in DECLARED if n != "auto"]  # auto runs one of the others
# a convolution after BatchNorm in train and in eval mode (Meta-Gradient's eval-mode meta step)
AMP_MODELS = {
    **MODELS,
    "cnn_bn_conv": cnn_bn_conv,
    "cnn_bn_conv_eval": lambda: cnn_bn_conv().eval(),
}


def _batch32():
    b = batch()
    for field in ("x_lab", "x_unl", "x_out"):
        setattr(b, field, getattr(b, field).float())
    return b


@pytest.mark.parametrize("estimator", ESTIMATORS)
@pytest.mark.parametrize("kind", list(BUILDERS))
@pytest.mark.parametrize("model_name", list(AMP_MODELS))
def test_bfloat16_autocast_keeps_the_direction(model_name, kind, estimator):
    problem, hp = BUILDERS[kind](AMP_MODELS[model_name]().float(), _batch32(), lr=0.5)
    try:
        ref = hypergradient(problem, hp, estimator)
    except (ValueError, TypeError) as err:  # the estimator does not serve this problem
        pytest.skip(str(err).splitlines()[0])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = hypergradient(problem, hp, estimator)
    assert all(g.dtype == torch.float32 for g in got.values())
    if flat(ref).abs().max() == 0:  # a problem whose hypergradient is 0 for this estimator
        assert flat(got).abs().max() == 0
        return
    assert cosine(got, ref) >= 0.999


def test_the_exact_estimators_do_compute_in_bfloat16():
    """A test that can fail: under autocast `func` differs from float32 (it is not silently
    float32), while `fd` is float32 bit for bit."""
    problem, hp = BUILDERS["a_imputed_away"](MODELS["mlp"]().float(), _batch32(), lr=0.5)
    ref = {n: hypergradient(problem, hp, n) for n in ("func", "fd")}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = {n: hypergradient(problem, hp, n) for n in ("func", "fd")}
    assert not torch.equal(got["func"]["z"], ref["func"]["z"])
    assert torch.equal(got["fd"]["z"], ref["fd"]["z"])
