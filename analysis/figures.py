"""`make figures`: every figure and table whose runs exist, under figures/ (PNG + PDF, CSV + MD).

For each figure it reads the run directories it needs; where some are missing it builds the
others, lists the missing runs with the command that makes each (or `make reproduce`), and
exits with status 1.

    python -m analysis.figures [--scale smoke] [--out figures] [--only NAME ...] [--docs DIR]

With `--docs DIR` (`make figures` passes docs/results/figures at full scale) each table it writes
is also written to DIR/NAME.md, marked with the command that rebuilds it: the documentation's
paper-check pages include them from there.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from experiments.cli import installed, run_cli, spelled
from experiments.run import unfinished

from . import assumption1, imputation, meta_vs_base, metagrad_theory, thresholds
from .context import Context, Need
from .output import save_docs
from .seeds import job_options, seed_list


@dataclass(frozen=True)
class Figure:
    name: str
    shows: str
    needs: Callable[[Context], list[Need]]
    build: Callable[[Context], list[Path]]


def _theory(ctx: Context) -> list[Path]:
    cfg = metagrad_theory.TheoryConfig(
        **({"steps": 20, "estimate_every": 10, "power_iters": 10} if ctx.smoke else {})
    )
    return metagrad_theory.build(ctx.out, cfg)


def _no_runs(ctx: Context) -> list[Need]:
    return []


FIGURES = [
    Figure("metagrad_theorem", "Meta-Gradient Theorems 1 and 2 (β sweep)", _no_runs, _theory),
    Figure(
        "metasemi_assumption1",
        "Meta-Semi Assumption-1 ratio per snapshot",
        assumption1.needs,
        assumption1.build,
    ),
    Figure(
        "metathreshold",
        "Meta-T thresholds (Fig. 4, 5a-c)",
        thresholds.needs,
        thresholds.build,
    ),
    Figure(
        "impute",
        "Impute hold-out loss and landmarks (Fig. 2, 3)",
        imputation.needs,
        imputation.build,
    ),
    Figure(
        "error_vs_labels",
        "error vs number of labels",
        meta_vs_base.labels_needs,
        meta_vs_base.build_labels,
    ),
    Figure(
        "estimators_matter",
        "error and time per estimator",
        meta_vs_base.estimators_needs,
        meta_vs_base.build_estimators,
    ),
    Figure(
        "equal_time",
        "meta vs base at equal wall time",
        meta_vs_base.equal_time_needs,
        meta_vs_base.build_equal_time,
    ),
]


def all_needs(ctx: Context, figures: list[Figure] | None = None) -> list[Need]:
    """Every run the figures read, once, in order."""
    return list(dict.fromkeys(n for f in figures or FIGURES for n in f.needs(ctx)))


def select(names: list[str] | None) -> list[Figure]:
    if not names:
        return FIGURES
    known = {f.name: f for f in FIGURES}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"unknown figure {unknown[0]!r}; valid: {', '.join(known)}")
    return [known[n] for n in names]


def build_all(ctx: Context, figures: list[Figure] | None = None) -> dict[str, list]:
    """Build what can be built; returns {figure: missing runs} for the others."""
    missing: dict[str, list] = {}
    for fig in figures or FIGURES:
        absent = [(spec, seed) for spec, seed in fig.needs(ctx) if not ctx.done(spec, seed)]
        if absent:
            missing[fig.name] = absent
            continue
        print(f"[{fig.name}] {fig.shows}", flush=True)
        written = fig.build(ctx)
        if ctx.docs is not None:  # the tables again, for the documentation
            command = f"python -m analysis.figures --only {fig.name} --docs {ctx.docs}"
            tables = [p for p in written if p.suffix == ".md"]
            written += [
                save_docs(t.read_text().rstrip(), ctx.docs, t.stem, command) for t in tables
            ]
        for path in written:
            print(f"  wrote {path}")
    return missing


def report_missing(ctx: Context, missing: dict[str, list]) -> None:
    for name, absent in missing.items():
        print(f"[{name}] not built: {len(absent)} run(s) missing:", file=sys.stderr)
        for spec, seed in absent:
            print(f"  {ctx.run(spec, seed).command()}", file=sys.stderr)
    scale = (" --scale smoke" if installed() else " SCALE=smoke") if ctx.smoke else ""
    print(
        f"{spelled('reproduce')}{scale} makes every missing run, then the figures", file=sys.stderr
    )


def parse(
    argv: list[str] | None, description: str
) -> tuple[Context, list[Figure], argparse.Namespace]:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--scale", choices=("full", "smoke"), default="full")
    parser.add_argument("--out", type=Path, default=None, help="default: figures[/smoke]")
    parser.add_argument(
        "--seeds", type=seed_list, default="0,1", help="seeds of figures that show spread"
    )
    parser.add_argument("--only", nargs="*", help="figure names")
    parser.add_argument(
        "--docs", type=Path, default=None, help="also write each table to DIR/NAME.md (the docs')"
    )
    job_options(parser)  # make reproduce
    args = parser.parse_args(argv)
    out = args.out or (Path("figures") / ("smoke" if args.scale == "smoke" else ""))
    if args.docs is not None and args.scale == "smoke":
        parser.error("--docs writes the documentation's measured tables: not at --scale smoke")
    ctx = Context(out=out, scale=args.scale, seeds=tuple(args.seeds), docs=args.docs)
    return ctx, select(args.only), args


def main(argv: list[str] | None = None) -> int:
    ctx, figures, _ = parse(argv, __doc__.split("\n")[0])
    unfinished(ctx.runs(all_needs(ctx, figures)))  # stale runs: one message
    missing = build_all(ctx, figures)
    if missing:
        report_missing(ctx, missing)
        return 1
    print(f"all figures under {ctx.out}/")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
