"""Tutorial: a weight-decay coefficient learned through K unrolled steps.

The textbook hyperparameter problem: the training loss carries a penalty ½ e^λ Σ‖θ‖², and λ is
learned by the hypergradient of the validation loss after K steps of SGD on it,

    θ_K(λ) = K SGD steps on  L_in(θ, λ) = CE(f(x_train), y_train) + ½ e^λ Σ ‖θ‖²
    λ ← λ − η · dG(θ_K(λ))/dλ,   G = CE(f(x_val), y_val)

on scikit-learn's bundled digits (8×8 images, no download) with a small MLP of your own. The
loss reads the parameters it is evaluated at from `f.params`, so it runs under every estimator.

    python docs/tutorials/weight_decay.py [--rounds 30] [--steps 5]

It first compares the estimators on one problem (float64: each against `func`), then learns λ
with the default estimator, one hypergradient per round of K training steps.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn

from bilevel import BilevelProblem, ModelFn, hypergradient


def digits(dtype: torch.dtype = torch.float32, n_train: int = 200, seed: int = 0):
    """(x_train, y_train, x_val, y_val): a small training set, a validation set of 500."""
    data = load_digits()
    x = torch.tensor(data.data, dtype=dtype) / 16.0
    y = torch.tensor(data.target)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    train, val = order[:n_train], order[n_train : n_train + 500]
    return x[train], y[train], x[val], y[val]


def mlp(dtype: torch.dtype = torch.float32, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 10)).to(dtype)


def problem(model: nn.Module, data, steps: int, lr: float = 0.5) -> BilevelProblem:
    x, y, xv, yv = data

    def inner(f: ModelFn, hp: dict) -> torch.Tensor:
        penalty = sum(p.pow(2).sum() for p in f.params.values())
        return F.cross_entropy(f(x), y) + 0.5 * hp["log_wd"].exp() * penalty

    def outer(f: ModelFn) -> torch.Tensor:
        return F.cross_entropy(f(xv), yv)

    return BilevelProblem(model, inner, outer, lr=lr, steps=steps, momentum=0.9)


def compare_estimators(steps: int) -> list[dict]:
    """Every estimator that serves K = `steps` (and K = 1 for the one-step ones), each against
    `func` on the same float64 problem: relative error and cosine."""
    data = digits(torch.float64)
    hp = {"log_wd": torch.tensor(-4.0, dtype=torch.float64)}
    rows = []
    for k, names in ((steps, ["higher", "auto"]), (1, ["forward", "fd", "auto"])):
        p = problem(mlp(torch.float64), data, k)
        ref = hypergradient(p, hp, "func")["log_wd"]
        for name in names:
            got = hypergradient(p, hp, name)["log_wd"]
            rel = float((got - ref).abs() / ref.abs())
            rows.append({"K": k, "estimator": name, "dG/dλ": float(got), "rel. error": rel})
        rows.append({"K": k, "estimator": "func", "dG/dλ": float(ref), "rel. error": 0.0})
    return rows


def learn(rounds: int, steps: int, estimator: str = "auto", meta_lr: float = 0.5) -> list[dict]:
    """Alternate: a hypergradient step on λ through K unrolled steps, then those K steps for
    real with the current λ (torch.optim.SGD on the same loss)."""
    data = digits()
    model = mlp()
    hp = {"log_wd": torch.tensor(-4.0)}
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    history = []
    for r in range(rounds):
        p = problem(model, data, steps)
        g = hypergradient(p, hp, estimator)["log_wd"]
        hp["log_wd"] = hp["log_wd"] - meta_lr * g.sign() * g.abs().clamp(max=1.0)
        for _ in range(steps):  # the real steps: the same loss at the module's own parameters
            opt.zero_grad()
            p.inner_loss(ModelFn.of(model), hp).backward()
            opt.step()
        with torch.no_grad():
            val = float(p.outer_loss(ModelFn.of(model)))
            acc = float((model(data[2]).argmax(1) == data[3]).float().mean())
        history.append({"round": r + 1, "log_wd": float(hp["log_wd"]), "val_loss": val, "acc": acc})
    return history


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--steps", type=int, default=5, help="K unrolled steps")
    args = parser.parse_args(argv)
    rows = compare_estimators(args.steps)
    print("estimators against func (float64):")
    for row in rows:
        print(f"  K={row['K']} {row['estimator']:8} {row['dG/dλ']:+.6e}  {row['rel. error']:.1e}")
    history = learn(args.rounds, args.steps)
    print("learning λ (one hypergradient per round of K steps):")
    for h in history[:: max(1, len(history) // 6)] + history[-1:]:
        print(f"  round {h['round']:3}  log_wd {h['log_wd']:+.3f}  val loss {h['val_loss']:.4f}")
    return {"estimators": rows, "history": history}


if __name__ == "__main__":
    main()
