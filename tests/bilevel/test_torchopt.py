"""An outside oracle: TorchOpt's differentiable optimizers (`MetaSGD`, `MetaAdam`, `MetaAdamW`)
unroll the same virtual steps on a copy of the model, and autograd through them gives
dG(θ_K(λ))/dλ. The core's exact estimators must equal it to float64 rounding."""

import pytest
import torch

from analysis.oracles import torchopt_hypergradient
from bilevel import hypergradient
from bilevel.examples import BUILDERS

from .helpers import MODELS, batch, rel_error

# float64, the same arithmetic in another order. Adam's first step is ill-conditioned: its
# update ĝ/(|ĝ| + ε) has the derivative ε/(|ĝ| + ε)² in g, large where a gradient element is
# near 0, so rounding shows at 1e-10 (`func` and `forward` differ from each other by as much)
ORACLE_TOL = {"sgd": 1e-13, "adam": 1e-9, "adamw": 1e-9}

OPTIMIZERS = {
    "sgd": {},
    "sgd_nesterov_wd": {"momentum": 0.9, "nesterov": True, "weight_decay": 5e-2},
    # betas whose powers float32 holds exactly: TorchOpt computes the bias corrections 1 − βᵗ
    # in float32 (its step count is a float32 tensor), which torch.optim.Adam does in float64
    "adam_wd": {"optimizer": "adam", "weight_decay": 1e-2, "betas": (0.5, 0.75)},
    "adamw_wd": {"optimizer": "adamw", "weight_decay": 1e-2, "betas": (0.5, 0.75)},
}


@pytest.mark.parametrize("steps", [1, 3])
@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
@pytest.mark.parametrize("kind", ["a_imputed_away", "c_weighting_net"])
@pytest.mark.parametrize("model_name", ["mlp", "cnn_bn"])
def test_exact_estimators_equal_torchopt(model_name, kind, optimizer, steps):
    lr = 0.3 if optimizer.startswith("sgd") else 0.01
    problem, hp = BUILDERS[kind](
        MODELS[model_name](), batch(), lr=lr, steps=steps, **OPTIMIZERS[optimizer]
    )
    oracle = torchopt_hypergradient(problem, hp)
    names = ["func", "auto"] + (["forward"] if steps == 1 else [])
    names += ["higher"] if optimizer.startswith("sgd") else []
    for name in names:
        error = rel_error(hypergradient(problem, hp, name), oracle)
        assert error <= ORACLE_TOL[problem.optimizer], (name, error)


def test_the_oracle_sees_the_estimators_dropout_masks_and_leaves_the_random_state():
    """With dropout, every evaluation starts from the random state at the call (the core's
    rule), so the oracle and the estimators use the same masks; the state is left as found."""
    problem, hp = BUILDERS["a_imputed_away"](MODELS["mlp"](dropout=0.3), batch(), lr=0.3, steps=3)
    before = torch.get_rng_state()
    oracle = torchopt_hypergradient(problem, hp)
    assert torch.equal(torch.get_rng_state(), before)
    assert rel_error(hypergradient(problem, hp, "func"), oracle) <= ORACLE_TOL["sgd"]


def test_torchopt_adam_rounds_its_bias_correction_in_float32():
    """Why the Adam cases use β = (0.5, 0.75): with torch's default β₂ = 0.999, TorchOpt's
    MetaAdam is itself 1e-5 away from torch.optim.Adam's float64 step (1 − 0.999 in float32),
    while the core matches torch.optim.Adam (tests/bilevel/test_adam.py)."""
    problem, hp = BUILDERS["a_imputed_away"](
        MODELS["mlp"](), batch(), lr=0.01, optimizer="adam", betas=(0.9, 0.999)
    )
    error = rel_error(hypergradient(problem, hp, "func"), torchopt_hypergradient(problem, hp))
    assert 1e-7 < error < 1e-3
