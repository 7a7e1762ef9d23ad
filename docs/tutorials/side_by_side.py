"""The weight-decay hypergradient of `weight_decay.py` written three ways: with this toolkit, with
higher, and with TorchOpt, side by side; their lines of code and time per hypergradient measured
on this machine, and their agreement checked.

    python docs/tutorials/side_by_side.py [--steps 5] [--repeats 20] [--out table.md]

Each version computes dG(θ_K(λ))/dλ for the same MLP, data and K SGD steps (momentum 0.9) from
the model's current weights, leaving the model unchanged. Times are medians over `--repeats`
calls after two warm-up calls, on one CPU thread.
"""

from __future__ import annotations

import argparse
import copy
import inspect
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from weight_decay import digits, mlp

LR, MOMENTUM = 0.5, 0.9


def with_toolkit(model, data, log_wd, steps):
    from bilevel import BilevelProblem, hypergradient

    x, y, xv, yv = data

    def inner(f, hp):
        penalty = sum(p.pow(2).sum() for p in f.params.values())
        return F.cross_entropy(f(x), y) + 0.5 * hp["log_wd"].exp() * penalty

    def outer(f):
        return F.cross_entropy(f(xv), yv)

    problem = BilevelProblem(model, inner, outer, lr=LR, momentum=MOMENTUM, steps=steps)
    return hypergradient(problem, {"log_wd": log_wd}, "func")["log_wd"]


def with_higher(model, data, log_wd, steps):
    import higher

    x, y, xv, yv = data
    log_wd = log_wd.detach().requires_grad_()
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    with higher.innerloop_ctx(model, opt, copy_initial_weights=True) as (fmodel, diffopt):
        for _ in range(steps):
            penalty = sum(p.pow(2).sum() for p in fmodel.parameters())
            loss = F.cross_entropy(fmodel(x), y) + 0.5 * log_wd.exp() * penalty
            diffopt.step(loss)
        outer = F.cross_entropy(fmodel(xv), yv)
        return torch.autograd.grad(outer, log_wd)[0]


def with_torchopt(model, data, log_wd, steps):
    import torchopt

    x, y, xv, yv = data
    log_wd = log_wd.detach().requires_grad_()
    model = copy.deepcopy(model)  # MetaSGD updates the module's parameters in place
    opt = torchopt.MetaSGD(model, lr=LR, momentum=MOMENTUM)
    for _ in range(steps):
        penalty = sum(p.pow(2).sum() for p in model.parameters())
        loss = F.cross_entropy(model(x), y) + 0.5 * log_wd.exp() * penalty
        opt.step(loss)
    outer = F.cross_entropy(model(xv), yv)
    return torch.autograd.grad(outer, log_wd)[0]


VERSIONS = {"bilevel-ssl (func)": with_toolkit, "higher": with_higher, "TorchOpt": with_torchopt}


def lines_of_code(fn) -> int:
    """Non-blank lines of the function's body (its signature and docstring left out)."""
    body = inspect.getsource(fn).splitlines()[1:]
    return sum(1 for line in body if line.strip())


def measure(steps: int, repeats: int) -> list[dict]:
    torch.set_num_threads(1)
    data = digits()
    model = mlp()
    log_wd = torch.tensor(-4.0)
    ref = None
    rows = []
    for name, fn in VERSIONS.items():
        for _ in range(2):  # warm-up: imports, allocator, first-call costs
            fn(model, data, log_wd, steps)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            grad = fn(model, data, log_wd, steps)
            times.append(time.perf_counter() - start)
        ref = grad if ref is None else ref
        rows.append(
            {
                "library": name,
                "lines": lines_of_code(fn),
                "ms per hypergradient": 1e3 * statistics.median(times),
                "dG/dλ": float(grad),
                "rel. diff": float((grad - ref).abs() / ref.abs()),
            }
        )
    return rows


def table(rows: list[dict], steps: int) -> str:
    head = "| library | lines | ms per hypergradient | dG/dλ | rel. diff to bilevel-ssl |\n"
    head += "|---|---|---|---|---|\n"
    body = "".join(
        f"| {r['library']} | {r['lines']} | {r['ms per hypergradient']:.1f} | "
        f"{r['dG/dλ']:+.6e} | {r['rel. diff']:.1e} |\n"
        for r in rows
    )
    note = f"\nK = {steps} SGD steps (momentum {MOMENTUM}), float32, one CPU thread.\n"
    return head + body + note


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", type=Path, default=None, help="write the table (Markdown)")
    args = parser.parse_args(argv)
    rows = measure(args.steps, args.repeats)
    text = table(rows, args.steps)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    return rows


if __name__ == "__main__":
    main()
