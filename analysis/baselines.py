"""`make baselines`: the harness check — each SSL baseline against `supervised`, over seeds.

Digits with 50 labels (classification error %, 3 seeds) and synthetic faces with 1% labels
(NME %, 2 seeds; supervised training on 100% of the labels as the reference, 1 seed).
Finished runs are reused.
Writes results/baselines.csv and results/baselines.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from .seeds import Spec, collect, table

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
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="0,1,2", help="digits seeds")
    parser.add_argument("--face-seeds", default="0,1", help="synthetic-faces seeds")
    parser.add_argument("--scale", choices=("full", "smoke"), default="full")
    parser.add_argument("--out", type=Path, default=Path("results"))
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    face_seeds = [int(s) for s in args.face_seeds.split(",")]
    frame = pd.concat(
        [collect(specs, ss, args.scale) for specs, ss in groups(seeds, face_seeds)],
        ignore_index=True,
    )
    args.out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(args.out / "baselines.csv", index=False)
    shown = table(frame)[["run", "metric", "result", "seeds", "steps_per_s"]]
    text = shown.to_markdown(index=False, floatfmt=".1f")
    (args.out / "baselines.md").write_text(text + "\n")
    print(text)
    print(f"wrote {args.out / 'baselines.csv'} and {args.out / 'baselines.md'}")


if __name__ == "__main__":
    main()
