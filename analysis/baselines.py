"""`make baselines`: the harness check — each SSL baseline against `supervised`, over seeds.

Digits with 50 labels (classification error %, 3 seeds) and synthetic faces with 1% labels
(NME %, 2 seeds; supervised training on 100% of the labels as the reference, 1 seed).
Finished runs are reused.
Writes results/baselines.csv and results/baselines.md (with `--docs DIR`, as `make baselines`
passes it, also DIR/baselines.md, the documentation's table: `docs_table`).
"""

from __future__ import annotations

import sys

import pandas as pd

from experiments.cli import run_cli

from .output import command_line, save_csv_md, save_docs
from .seeds import Spec, check_parser, collect_groups, per_seed, runs_of, table
from .sweep import run_missing

DIGITS = ["supervised", "pseudo_label", "mean_teacher", "mixup", "fixmatch", "mixmatch"]
FACES = ["supervised", "pseudo_label", "mean_teacher"]


def groups(digit_seeds: list[int], face_seeds: list[int]) -> list[tuple[list[Spec], list[int]]]:
    """(specs, seeds) per group; the 100%-labels reference runs on the first face seed only."""
    reference = Spec(
        "supervised_synthfaces", ("label_fraction=1.0",), "supervised_synthfaces (100% labels)"
    )
    return [
        ([Spec(f"{m}_digits") for m in DIGITS], digit_seeds),
        ([Spec(f"{m}_synthfaces") for m in FACES], face_seeds),
        ([reference], face_seeds[:1]),
    ]


def docs_table(frame: pd.DataFrame) -> str:
    """The documentation's table: each run's result over seeds and its value on each seed."""
    shown = table(frame)[["run", "metric", "result", "seeds"]]
    shown["per seed"] = [per_seed(frame, run) for run in shown.run]
    return shown.to_markdown(index=False, disable_numparse=True)


def main(argv: list[str] | None = None) -> None:
    args = check_parser(__doc__.split("\n")[0]).parse_args(argv)
    runs = groups(args.seeds, args.face_seeds)
    run_missing(runs_of(runs, args.scale), args.executor, args.parallel)
    frame = collect_groups(runs, args.scale)
    shown = table(frame)[["run", "metric", "result", "seeds", "steps_per_s"]]
    text = shown.to_markdown(index=False, floatfmt=".1f")
    print(text)
    written = save_csv_md(frame, text, args.out, "baselines")
    command = command_line("analysis.baselines", argv)
    written += [save_docs(docs_table(frame), args.docs, "baselines", command)] if args.docs else []
    print("wrote " + " and ".join(map(str, written)))


if __name__ == "__main__":
    sys.exit(run_cli(main))
