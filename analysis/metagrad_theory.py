"""Meta-Gradient SSL (Xiao et al.), Theorems 1 and 2, on a small smooth model in float64.

Alg. 1 as the theorems state it (Sec. 3.4): each step uses all N_l labeled samples, the MSE
consistency loss on the softmax output p, and plain SGD on the consistency loss alone:

    ỹ = p(x_u; θ_t)                                          pseudo labels at the prediction
    θ̃(y) = θ_t − α ∇_θ (1/B_u) Σ_i ‖p(x_u_i; θ) − y_i‖²       (θ̃(ỹ) = θ_t)
    ŷ = ỹ − β ∇_ỹ G(θ̃(ỹ))                                    meta step (bilevel.hypergradient)
    θ_{t+1} = θ̃(ŷ),      G(θ) = (1/N_l) Σ_k CE(f(x_k; θ), y_k)

Theorem 1: if α²β < 1/(4 M² L0), with M ≥ ‖J_θ p(x_u_i; θ)‖ for every unlabeled sample and L0
the Lipschitz constant of ∇G, then G(θ_{t+1}) ≤ G(θ_t) at every step. We estimate M (largest
spectral norm of the per-sample Jacobians over the whole unlabeled pool) and L0 (largest
|eigenvalue| of ∇²G, power iteration on Hessian-vector products) at points of the trajectory;
these are local estimates of constants the theorem needs globally. β is swept in multiples of
β* = 1/(4 α² M² L0) at θ_0, and each run reports the condition with the constants of its own
trajectory.
Theorem 2: min_{t≤T} ‖∇G(θ_t)‖² ≤ C/√T; the labeled inputs join the unlabeled pool
(D_l ⊆ D_u, the paper's remark iii).

    python -m analysis.metagrad_theory [--steps 300] [--out figures]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, grad, jacrev, jvp, vmap

from bilevel import BilevelProblem, hypergradient
from bilevel.forward_ad import load_jvp_decompositions
from experiments.cli import run_cli
from experiments.data import make_splits
from experiments.models import mlp
from experiments.sources import load_digits

from .output import save_figure, save_table


def power_iteration(
    matvec: Callable[[Tensor], Tensor], v0: Tensor, iters: int = 100, tol: float = 1e-9
) -> float:
    """The eigenvalue of largest magnitude of a symmetric operator (Rayleigh quotient)."""
    v = v0 / v0.norm()
    value = 0.0
    for _ in range(iters):
        w = matvec(v)
        new = float(v @ w)
        norm = w.norm()
        if norm == 0:
            return 0.0
        v = w / norm
        if abs(new - value) <= tol * abs(new):
            return new
        value = new
    return value


def hessian_norm(
    loss: Callable[[dict[str, Tensor]], Tensor],
    params: dict[str, Tensor],
    iters: int = 100,
    seed: int = 0,
) -> float:
    """max |eigenvalue| of ∇²loss at `params` (power iteration on Hessian-vector products)."""
    names = list(params)
    shapes = [params[n].shape for n in names]
    sizes = [params[n].numel() for n in names]

    def unflatten(v: Tensor) -> dict[str, Tensor]:
        return {n: c.view(s) for n, c, s in zip(names, v.split(sizes), shapes, strict=True)}

    def hvp(v: Tensor) -> Tensor:
        out = jvp(grad(loss), (params,), (unflatten(v),))[1]
        return torch.cat([out[n].flatten() for n in names])

    load_jvp_decompositions()
    first = params[names[0]]
    g = torch.Generator(device="cpu").manual_seed(seed)
    v0 = torch.randn(sum(sizes), generator=g, dtype=first.dtype).to(first.device)
    return abs(power_iteration(hvp, v0, iters))


def max_jacobian_norm(
    model: nn.Module, params: dict[str, Tensor], x: Tensor, chunk: int = 256
) -> float:
    """max_i ‖J_θ p(x_i; θ)‖₂ over the rows of `x`, p = softmax of the model's output."""

    def prob(p: dict[str, Tensor], xi: Tensor) -> Tensor:
        return functional_call(model, p, (xi[None],))[0].softmax(-1)

    best = 0.0
    for i in range(0, len(x), chunk):
        jac = vmap(jacrev(prob), in_dims=(None, 0))(params, x[i : i + chunk])
        full = torch.cat([j.flatten(2) for j in jac.values()], 2)  # (n, C, P)
        best = max(best, float(torch.linalg.matrix_norm(full, ord=2).max()))
    return best


@dataclass
class TheoryConfig:
    steps: int = 300
    alpha: float = 0.5  # α, the regular learning rate
    multiples: tuple[float, ...] = (0.25, 0.9, 10.0, 100.0, 1000.0, 10000.0)  # β / β*
    unlabeled_batch: int = 64
    num_labels: int = 50
    hidden: int = 32
    estimate_every: int = 50  # steps between estimates of M and L0
    power_iters: int = 60
    seed: int = 0


@dataclass
class Problem:
    model: nn.Module
    x_l: Tensor
    y_l: Tensor
    x_u: Tensor  # the unlabeled pool, labeled inputs included (D_l ⊆ D_u)


def digits_problem(cfg: TheoryConfig) -> Problem:
    """Digits, `num_labels` labels, inputs standardised, a tanh MLP in float64."""
    data = make_splits(load_digits(), cfg.seed, num_labels=cfg.num_labels)

    def flat(x: Tensor) -> Tensor:
        return x.double().flatten(1) / 255

    x_l, x_u = flat(data.labeled.x), torch.cat([flat(data.unlabeled.x), flat(data.labeled.x)])
    mean, std = x_u.mean(0), x_u.std(0).clamp_min(1e-3)
    torch.manual_seed(cfg.seed)
    model = mlp(64, 10, hidden=cfg.hidden, activation="tanh").double()
    return Problem(model, (x_l - mean) / std, data.labeled.y, (x_u - mean) / std)


def labeled_loss(problem: Problem) -> Callable[[dict[str, Tensor]], Tensor]:
    """G as a function of the parameters."""

    def loss(params: dict[str, Tensor]) -> Tensor:
        return F.cross_entropy(functional_call(problem.model, params, (problem.x_l,)), problem.y_l)

    return loss


def constants(problem: Problem, iters: int) -> tuple[float, float]:
    """(M, L0) estimated at the model's current parameters."""
    params = {k: v.detach() for k, v in problem.model.named_parameters()}
    return (
        max_jacobian_norm(problem.model, params, problem.x_u),
        hessian_norm(labeled_loss(problem), params, iters),
    )


def alg1_step(problem: Problem, x_u: Tensor, alpha: float, beta: float) -> None:
    """One step of Alg. 1 in the theorems' form (see the module docstring), in place."""
    model = problem.model
    with torch.no_grad():
        y_tilde = model(x_u).softmax(1)

    def inner(f, hp):
        return ((f(x_u).softmax(1) - hp["y"]) ** 2).sum(1).mean()

    def outer(f):
        return F.cross_entropy(f(problem.x_l), problem.y_l)

    g = hypergradient(BilevelProblem(model, inner, outer, lr=alpha), {"y": y_tilde}, "func")["y"]
    y_hat = y_tilde - beta * g
    params = list(model.parameters())
    grads = torch.autograd.grad(inner(model, {"y": y_hat}), params)
    with torch.no_grad():
        for p, d in zip(params, grads, strict=True):
            p.sub_(alpha * d)


def trajectory(problem: Problem, cfg: TheoryConfig, beta: float) -> pd.DataFrame:
    """Run Alg. 1 for `cfg.steps` from the model's current state; rows per step t with G(θ_t),
    ‖∇G(θ_t)‖² and (every `estimate_every` steps) the estimates M and L0."""
    loss = labeled_loss(problem)
    g = torch.Generator().manual_seed(cfg.seed + 1)
    rows = []
    for t in range(cfg.steps + 1):
        params = {k: v.detach() for k, v in problem.model.named_parameters()}
        grads, value = torch.func.grad_and_value(loss)(params)
        row = {
            "t": t,
            "G": float(value),
            "grad_norm2": float(sum((d**2).sum() for d in grads.values())),
        }
        if t % cfg.estimate_every == 0 or t == cfg.steps:
            row["M"], row["L0"] = constants(problem, cfg.power_iters)
        rows.append(row)
        if t < cfg.steps:
            idx = torch.randperm(len(problem.x_u), generator=g)[: cfg.unlabeled_batch]
            alg1_step(problem, problem.x_u[idx], cfg.alpha, beta)
    return pd.DataFrame(rows)


def check_theorem1(cfg: TheoryConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-step frame over all β, one summary row per β) for the β sweep."""
    problem = digits_problem(cfg)
    start = {k: v.detach().clone() for k, v in problem.model.state_dict().items()}
    m0, l0 = constants(problem, cfg.power_iters)
    bound = 1.0 / (4 * cfg.alpha**2 * m0**2 * l0)
    frames, summary = [], []
    for multiple in cfg.multiples:
        problem.model.load_state_dict(start)
        beta = multiple * bound
        frame = trajectory(problem, cfg, beta).assign(multiple=multiple, beta=beta)
        frames.append(frame)
        g = frame.G.to_numpy()
        m, lip = frame.M.max(), frame.L0.max()
        summary.append(
            {
                "beta / beta*": multiple,
                "beta": beta,
                "alpha^2 beta 4 M^2 L0 (own run)": 4 * cfg.alpha**2 * beta * m**2 * lip,
                "steps with G(t+1) <= G(t) %": 100.0 * float(np.mean(np.diff(g) <= 0)),
                "G start": g[0],
                "G end": g[-1],
                "largest increase": float(max(0.0, np.diff(g).max())),
            }
        )
    return pd.concat(frames, ignore_index=True), pd.DataFrame(summary)


def running_min_rate(grad_norm2: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(T, min_{t≤T} ‖∇G(θ_t)‖², C) with C the smallest constant such that min ≤ C/√T for all
    T ≥ 1 (Theorem 2's bound fitted to the observed curve)."""
    mins = np.minimum.accumulate(grad_norm2)[1:]
    steps = np.arange(1, len(grad_norm2))
    return steps, mins, float((mins * np.sqrt(steps)).max())


def plot_theorem1(frame: pd.DataFrame, out: Path) -> list[Path]:
    fig, ax = plt.subplots(figsize=(6, 4))
    for multiple, part in frame.groupby("multiple"):
        ax.plot(part.t, part.G, label=f"β = {multiple:g} β*")
    ax.set(
        xlabel="step t",
        ylabel="G(θ_t), labeled loss",
        yscale="log",
        title="Meta-Gradient Theorem 1 (β* = 1/(4α²M²L0) at θ_0)",
    )
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1))  # off the curves
    return save_figure(fig, out, "metagrad_theorem1")


def plot_theorem2(frame: pd.DataFrame, out: Path) -> list[Path]:
    fig, ax = plt.subplots(figsize=(6, 4))
    for multiple, part in frame.groupby("multiple"):
        steps, mins, c = running_min_rate(part.sort_values("t").grad_norm2.to_numpy())
        (line,) = ax.loglog(steps, mins, label=f"β = {multiple:g} β*")
        ax.loglog(steps, c / np.sqrt(steps), ls=":", color=line.get_color())
    ax.set(
        xlabel="T",
        ylabel="min_{t≤T} ‖∇G(θ_t)‖²",
        title="Meta-Gradient Theorem 2 (dotted: C/√T)",
    )
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1))  # off the curves
    return save_figure(fig, out, "metagrad_theorem2")


def build(out: Path, cfg: TheoryConfig | None = None) -> list[Path]:
    """Both figures and the summary table under `out`."""
    cfg = cfg or TheoryConfig()
    frame, summary = check_theorem1(cfg)
    files = plot_theorem1(frame, out) + plot_theorem2(frame, out)
    files += save_table(summary, out, "metagrad_theorem1")
    rate = []
    for multiple, part in frame.groupby("multiple"):
        steps, mins, c = running_min_rate(part.sort_values("t").grad_norm2.to_numpy())
        slope = np.polyfit(np.log(steps[len(steps) // 10 :]), np.log(mins[len(steps) // 10 :]), 1)
        rate.append({"beta / beta*": multiple, "C": c, "log-log slope": slope[0]})
    files += save_table(pd.DataFrame(rate), out, "metagrad_theorem2")
    print(summary.to_markdown(index=False, floatfmt=".4g"))
    print(f"settings: {asdict(cfg)}")
    return files


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=TheoryConfig.steps)
    parser.add_argument("--out", type=Path, default=Path("figures"))
    args = parser.parse_args(argv)
    for path in build(args.out, TheoryConfig(steps=args.steps)):
        print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(run_cli(main))
