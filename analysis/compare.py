"""`make compare`: every estimator on the same problems — accuracy against `func` and cost.

Problems: the three kinds of hyperparameter of `bilevel.examples` — (a) imputed targets,
(b) per-sample weights at 0, (c) a loss-weighting network — on the CIFAR-shaped CNN-13
(3×32×32, BatchNorm, dropout, train mode) and on TCDCN (1×60×60 landmark regression), plus
(a) on a one-layer model so that `analytic` has a row. float32 runs CNN-13 at the paper's
width 128; float64 (the precision check) at width 32, since float64 convolutions on CPU are
several times slower. The width is part of the problem name (cnn13-w128/a). The virtual
step is SGD with momentum 0.9 and weight decay 5e-4 (fresh buffer), as in the papers' training.

Also the sweeps of `analysis.compare_sweeps`: memory against K; `truncated`'s memory, time and
error against T at K = 10; `nystrom`'s error against its number of columns k; `fd`'s error
against r.

Writes `results/estimators.csv` (problem, estimator, dtype, rel_error, cosine, ms, peak_mb;
rel_error and cosine against `func` in the same dtype; ms the median and peak_mb the peak extra
memory of one call), `results/estimators.md` and `results/estimators.png`. `plain_step` is one
ordinary training step (forward, backward, SGD step) on the same labeled + unlabeled batch;
`virtual_step` is θ₁ and ∇G(θ₁) alone, the floor of every exact one-step estimator; `floor` adds
one jvp of the coupled loss along the step direction, the floor of `forward` (the `x_floor`
column of the Markdown divides by it); `torchopt` is the same hypergradient by TorchOpt's
`MetaSGD` (`analysis.oracles`), the outside reference. With `--docs DIR` (as `make compare`
passes it) also the documentation's tables, DIR/estimators.md (`docs_table`: time in plain
steps, float32, CNN-13 and TCDCN) and DIR/estimators_k.md (`compare_sweeps.docs_table`).
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
import torch
from tqdm import tqdm

from bilevel import ESTIMATORS, Evaluator, hypergradient, per_sample_loss
from bilevel.estimators.forward import directional
from bilevel.examples import BUILDERS, Batch
from bilevel.extras import require
from experiments.cli import run_cli, spelled
from experiments.models import cnn13, linear, tcdcn

from . import compare_sweeps
from .measure import agreement, fast_allocator, machine_load, median_ms, peak_mb
from .oracles import torchopt_hypergradient
from .output import command_line, save_docs

KINDS = {"a": "a_imputed_away", "b": "b_sample_weights", "c": "c_weighting_net"}


def row_name(estimator: str, options: dict) -> str:
    """How a row names an estimator with options: "fd", "fd lookahead=False"."""
    return " ".join([estimator, *(f"{k}={v}" for k, v in options.items())])


# (row name, estimator, options): every option set each estimator declares in `compared`
# (`bilevel.estimators.base.Estimator`); a row is timed on the problems the estimator serves
ESTIMATOR_ROWS = [
    (row_name(name, options), name, options)
    for name, cls in ESTIMATORS.items()
    for options in cls.compared
]


@dataclass
class Setup:
    name: str
    model: torch.nn.Module
    batch: Batch
    kinds: tuple[str, ...]


def _setups(width: int, n: int, dtype: torch.dtype, device: torch.device) -> list[Setup]:
    """The models and batches in `dtype` (same data for every dtype)."""
    g = torch.Generator().manual_seed(0)

    def x(shape):
        return torch.rand(n, *shape, generator=g).to(device, dtype)

    def classes():
        return torch.randint(0, 10, (n,), generator=g).to(device)

    def marks():
        return torch.randn(n, 10, generator=g).to(device, dtype)

    cifar = Batch(x((3, 32, 32)), classes(), x((3, 32, 32)), x((3, 32, 32)), classes())
    faces = Batch(x((1, 60, 60)), marks(), x((1, 60, 60)), x((1, 60, 60)), marks(), "regression")
    torch.manual_seed(0)
    nets = [cnn13(width=width), tcdcn(), linear(3 * 32 * 32, 10)]
    nets = [m.to(device, dtype).train() for m in nets]
    return [
        Setup(f"cnn13-w{width}", nets[0], cifar, ("a", "b", "c")),
        Setup("tcdcn", nets[1], faces, ("a", "b", "c")),
        Setup("linear", nets[2], cifar, ("a",)),
    ]


def _plain_step(model: torch.nn.Module, batch: Batch):
    """One ordinary SSL training step: supervised + unsupervised loss, backward, SGD step."""
    model = copy.deepcopy(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    with torch.no_grad():
        target = model(batch.x_unl)
        target = target.softmax(1) if batch.task == "classification" else target

    def step():
        opt.zero_grad(set_to_none=True)
        out = model(batch.x_lab)
        loss = per_sample_loss(batch.kind, out, batch.targets(batch.y_lab, out)).mean()
        loss = loss + per_sample_loss(batch.kind, model(batch.x_unl), target).mean()
        loss.backward()
        opt.step()

    return step


def _virtual_step(problem, hp):
    """θ₁ and v = ∇_θ G(θ₁): the part every exact one-step estimator pays before any λ work."""

    def step():
        with Evaluator(problem) as ev:
            return ev.outer_grad(ev.first_step(hp))

    return step


def _forward_floor(problem, hp):
    """The virtual step and one directional (jvp) pass of the coupled loss along w = c·∇G(θ₁),
    without the λ-gradient: the floor of `forward`, which adds only reverse mode over λ."""

    def step():
        with Evaluator(problem) as ev:
            w = ev.step_direction(ev.outer_grad(ev.first_step(hp)), hp)
            const = {k: v.detach() for k, v in hp.items()}
            return directional(lambda p: ev.coupled(p, const), problem.params(), w, problem.model)

    return step


def select(setups: list[Setup], only: set[str] | None) -> list[Setup]:
    """The setups restricted to the problems named in `only` ("cnn13-w128/a", …; None: all)."""
    if only is None:
        return setups
    known = {f"{s.name}/{k}" for s in setups for k in s.kinds}
    if not only & known:
        raise SystemExit(f"--only names none of the problems: {', '.join(sorted(known))}")
    picked = [
        replace(s, kinds=tuple(k for k in s.kinds if f"{s.name}/{k}" in only)) for s in setups
    ]
    return [s for s in picked if s.kinds]


def run(
    out: Path,
    widths: dict[str, int],
    batch: int,
    repeats: int,
    device: str,
    only: set[str] | None = None,
) -> pd.DataFrame:
    """`widths` maps each dtype to run ("float32", "float64") to its CNN-13 width; `only`
    restricts the problems."""
    dev = torch.device(device)
    rows = []
    jobs = [
        (dt, s, k)
        for dt, width in widths.items()
        for s in select(_setups(width, batch, getattr(torch, dt), dev), only)
        for k in s.kinds
    ]
    for dtype, setup, kind in tqdm(jobs, desc="compare", unit="problem"):
        problem_name = f"{setup.name}/{kind}"
        problem, hp = BUILDERS[KINDS[kind]](
            setup.model, setup.batch, lr=0.1, momentum=0.9, weight_decay=5e-4
        )
        plain = _plain_step(setup.model, setup.batch)
        rows.append(
            _row(problem_name, "plain_step", dtype, math.nan, math.nan, plain, repeats, dev)
        )
        for row_name, make in (("virtual_step", _virtual_step), ("floor", _forward_floor)):
            rows.append(
                _row(
                    problem_name,
                    row_name,
                    dtype,
                    math.nan,
                    math.nan,
                    make(problem, hp),
                    repeats,
                    dev,
                )
            )
        ref = hypergradient(problem, hp, "func")
        for name, estimator, options in ESTIMATOR_ROWS:
            if ESTIMATORS[estimator](**options).refusal(problem, hp) is not None:
                continue

            def call(problem=problem, hp=hp, estimator=estimator, options=options):
                return hypergradient(problem, hp, estimator, **options)

            rel, cos = agreement(call(), ref)
            rows.append(_row(problem_name, name, dtype, rel, cos, call, repeats, dev))

        def oracle(problem=problem, hp=hp):  # the same hypergradient by another library
            return torchopt_hypergradient(problem, hp)

        rel, cos = agreement(oracle(), ref)
        rows.append(_row(problem_name, "torchopt", dtype, rel, cos, oracle, repeats, dev))
    frame = pd.DataFrame(rows)
    out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out / "estimators.csv", index=False)
    (out / "estimators.md").write_text(_markdown(frame))
    _plot(frame, out / "estimators.png")
    return frame


def _row(problem, estimator, dtype, rel, cos, fn, repeats, dev) -> dict:
    return {
        "problem": problem,
        "estimator": estimator,
        "dtype": dtype,
        "rel_error": rel,
        "cosine": cos,
        "ms": median_ms(fn, repeats, dev),
        "peak_mb": peak_mb(fn, dev),
    }


def speed_ratios(frame: pd.DataFrame, dtype: str = "float32") -> dict:
    """The speed goals of the bilevel-core issue (CNN-13, problem (a)), as measured ratios."""
    problem = next(p for p in frame[frame.dtype == dtype].problem if p.startswith("cnn13"))
    t = frame[(frame.problem == problem) & (frame.dtype == dtype)].set_index("estimator").ms
    fastest_exact = min(t["func"], t["forward"])
    return {
        "func / higher": t["func"] / t["higher"],
        "forward / floor (virtual step + one jvp of the coupled loss)": t["forward"] / t["floor"],
        "fd / plain_step": t["fd"] / t["plain_step"],
        "fd lookahead=False / plain_step": t["fd lookahead=False"] / t["plain_step"],
        "forward / plain_step": t["forward"] / t["plain_step"],
        "higher / fastest exact (func, forward)": t["higher"] / fastest_exact,
        "torchopt / fastest exact (func, forward)": t["torchopt"] / fastest_exact,
        "virtual_step / plain_step (floor of exact one-step estimators)": t["virtual_step"]
        / t["plain_step"],
    }


def _markdown(frame: pd.DataFrame) -> str:
    shown = frame.copy()
    plain = shown[shown.estimator == "plain_step"].set_index(["problem", "dtype"]).ms
    floor = shown[shown.estimator == "floor"].set_index(["problem", "dtype"]).ms
    shown["x_plain"] = [r.ms / plain[(r.problem, r.dtype)] for r in shown.itertuples()]
    shown["x_floor"] = [r.ms / floor[(r.problem, r.dtype)] for r in shown.itertuples()]
    text = shown.to_markdown(index=False, floatfmt=".3g") + "\n"
    cnn = [p for p in frame[frame.dtype == "float32"].problem if p.startswith("cnn13")]
    if cnn:
        problem = cnn[0]
        text += f"\nSpeed goals on {problem} (float32):\n\n"
        text += "".join(f"- {k}: {v:.2f}\n" for k, v in speed_ratios(frame).items())
    return text


# the docs' table: time in plain steps on the paper-size problems (CNN-13, TCDCN), float32
# (every estimator row but the one-layer model's closed form, and TorchOpt's)
DOCS_COLUMNS = {
    row: f"`{row}`"
    for row in ("virtual_step", "floor", *(r for r, e, _ in ESTIMATOR_ROWS if e != "analytic"))
}
MODEL_TITLES = {"cnn13": "CNN-13", "tcdcn": "TCDCN"}


def docs_table(frame: pd.DataFrame, dtype: str = "float32") -> str:
    """The documentation's table of `frame` (estimators.csv): each paper-size problem's
    estimators in `dtype`, time divided by the plain step on the same problem."""
    timing = frame[frame.dtype == dtype]
    plain = timing[timing.estimator == "plain_step"].set_index("problem").ms
    lines = [
        "| problem | " + " | ".join(DOCS_COLUMNS.values()) + " |",
        "|---|" + "--:|" * len(DOCS_COLUMNS),
    ]
    for problem in dict.fromkeys(timing.problem):
        model, kind = problem.split("/")
        title = MODEL_TITLES.get(model.split("-")[0])
        if title is None:  # the one-layer model: per-call overhead, not a paper size
            continue
        ms = timing[timing.problem == problem].set_index("estimator").ms
        cells = [f"{ms[e] / plain[problem]:.2f}" if e in ms else "" for e in DOCS_COLUMNS]
        lines.append(f"| {title} ({kind}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _plot(frame: pd.DataFrame, path: Path) -> None:
    """Left: cost relative to a plain step. Right: relative error against `func` (log scale);
    one colour per estimator, o = float64, x = float32 (problem names carry the CNN width)."""
    dtype = "float32" if "float32" in set(frame.dtype) else frame.dtype.iloc[0]
    timing = frame[frame.dtype == dtype]
    plain = timing[timing.estimator == "plain_step"].set_index("problem").ms
    problems = list(dict.fromkeys(timing.problem))
    names = [n for n in dict.fromkeys(frame.estimator) if n != "plain_step"]
    colour = {n: f"C{i}" for i, n in enumerate(names)}
    fig, (ax_t, ax_e) = plt.subplots(1, 2, figsize=(14, 4.8))
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        sub = timing[timing.estimator == name].set_index("problem")
        xs = [j + i * width for j, p in enumerate(problems) if p in sub.index]
        ys = [sub.ms[p] / plain[p] for p in problems if p in sub.index]
        ax_t.bar(xs, ys, width, label=name, color=colour[name])
    ax_t.axhline(1.0, color="k", lw=1, ls="--")
    ax_t.set_xticks([j + 0.4 - width / 2 for j in range(len(problems))], problems, rotation=30)
    ax_t.set_ylabel(f"time / plain training step ({dtype})")
    ax_t.set_title("Cost of one hypergradient (dashed: one plain step)")

    acc = frame[~frame.estimator.isin(["plain_step", "virtual_step", "floor", "func"])]
    all_problems = list(dict.fromkeys(acc.problem))
    for (name, dt), sub in acc.groupby(["estimator", "dtype"], sort=False):
        xs = [all_problems.index(p) for p in sub.problem]
        ax_e.scatter(
            xs,
            sub.rel_error.clip(lower=1e-17),
            color=colour[name],
            marker="o" if dt == "float64" else "x",
            label=name if dt == dtype else None,
        )
    ax_e.set_yscale("log")
    ax_e.set_xticks(range(len(all_problems)), all_problems, rotation=30, fontsize=8)
    ax_e.set_ylabel("relative error vs func (0 shown at 1e-17)")
    ax_e.set_title("Accuracy: o float64, x float32")
    # one legend for both panels (the colours are the estimators'), below them, off the data
    handles, labels = ax_t.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 7), fontsize=8)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("results"))
    parser.add_argument("--width", type=int, default=128, help="CNN-13 width in float32 (paper)")
    parser.add_argument("--width64", type=int, default=32, help="CNN-13 width in float64")
    parser.add_argument("--batch", type=int, default=16, help="labeled = unlabeled = outer batch")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dtypes", default="float64,float32")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--ks", default="1,3,10", help="unrolled steps of the memory sweep")
    parser.add_argument("--only", default="", help="problems, e.g. cnn13-w128/a,tcdcn/a")
    parser.add_argument(
        "--docs", type=Path, default=None, help="also write the docs' tables to DOCS/*.md"
    )
    args = parser.parse_args(argv)
    for module in ("higher", "torchopt"):  # rows of the table; checked before any work
        require(module, f"{spelled('compare')} (its {module} row)")
    only = set(args.only.split(",")) if args.only else None
    fast_allocator()
    torch.manual_seed(0)
    before = machine_load()
    print(f"machine: {before}", flush=True)
    width = {"float32": args.width, "float64": args.width64}
    widths = {dt: width[dt] for dt in args.dtypes.split(",")}
    frame = run(args.out, widths, args.batch, args.repeats, args.device, only)
    print((args.out / "estimators.md").read_text())
    command = command_line("analysis.compare", argv)
    written = []  # the docs' tables (with --docs): time in plain steps in float32, then K
    if "float32" in widths:
        written.append(save_docs(docs_table(frame), args.docs, "estimators", command))
    dev = torch.device(args.device)
    cnn = _setups(args.width, args.batch, torch.float32, dev)[0]
    ks = tuple(int(k) for k in args.ks.split(","))
    swept = compare_sweeps.k_sweep(cnn, KINDS["a"], ks, dev, args.repeats)
    compare_sweeps.plot_k(swept, args.out / "estimators_k.png")
    print(f"\n{cnn.name}/a, float32, against K:\n")
    print(
        compare_sweeps.save(swept, args.out, "estimators_k", ("K", "estimator", ["ms", "peak_mb"]))
    )
    written.append(save_docs(compare_sweeps.docs_table(swept), args.docs, "estimators_k", command))
    sweep_args = (dev, args.repeats, args.out, args.docs, command)  # T at K = 10; Nyström's k
    # a K = 10 call at the paper's width takes tens of seconds on a CPU: two timed calls per T
    t_args = (dev, min(args.repeats, 2), *sweep_args[2:])
    written.append(compare_sweeps.t_report(cnn, KINDS["a"], *t_args))
    written.append(compare_sweeps.rank_report(args.batch, *sweep_args))
    radii = pd.concat(
        compare_sweeps.r_sweep(select(_setups(w, args.batch, getattr(torch, dt), dev), only), KINDS)
        for dt, w in widths.items()
    )
    compare_sweeps.plot_r(radii, args.out / "fd_r.png")
    print("\nfd's relative error against r:\n")
    print(compare_sweeps.save(radii, args.out, "fd_r", (["dtype", "problem"], "r", "rel_error")))
    after = machine_load()
    measured = (
        f"\nMeasured after one warm-up call per row; machine at the start: {before}; "
        f"at the end: {after}.\n"
    )
    for stem in ("estimators", "estimators_k", "estimators_t"):
        with open(args.out / f"{stem}.md", "a") as fh:
            fh.write(measured)
    print(measured)
    stems = ("estimators", "estimators_k", "estimators_t", "fd_r")
    print("wrote " + ", ".join(str(args.out / f"{s}.csv") for s in stems) + " (+ .md, .png)")
    if args.docs is not None:
        print("wrote " + " and ".join(map(str, written)))


if __name__ == "__main__":
    sys.exit(run_cli(main))
