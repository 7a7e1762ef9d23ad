"""`make baselines`: the harness check — each SSL baseline against `supervised`, over seeds.

Digits with 50 labels (classification error %, 3 seeds) and synthetic faces with 1% labels
(NME %, 2 seeds; supervised training on 100% of the labels as the reference, 1 seed).
Finished runs are reused.
Writes results/baselines.csv and results/baselines.md.
"""

from __future__ import annotations

import sys

from experiments.cli import run_cli

from .output import save_csv_md
from .seeds import Spec, check_parser, collect_groups, runs_of, table
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


def main(argv: list[str] | None = None) -> None:
    args = check_parser(__doc__.split("\n")[0]).parse_args(argv)
    runs = groups(args.seeds, args.face_seeds)
    run_missing(runs_of(runs, args.scale), args.executor, args.parallel)
    frame = collect_groups(runs, args.scale)
    shown = table(frame)[["run", "metric", "result", "seeds", "steps_per_s"]]
    text = shown.to_markdown(index=False, floatfmt=".1f")
    print(text)
    print("wrote " + " and ".join(map(str, save_csv_md(frame, text, args.out, "baselines"))))


if __name__ == "__main__":
    sys.exit(run_cli(main))
