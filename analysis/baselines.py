"""`make baselines`: the harness check — each SSL baseline against `supervised`, over seeds.

Digits with 50 labels (classification error %) and synthetic faces with 1% labels (NME %, with
supervised training on 100% of the labels as the reference). Finished runs are reused.
Writes results/baselines.csv and results/baselines.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .seeds import Spec, collect, table

DIGITS = ["supervised", "pseudo_label", "mean_teacher", "mixup", "fixmatch", "mixmatch"]
FACES = ["supervised", "pseudo_label", "mean_teacher"]


def specs() -> list[Spec]:
    out = [Spec(f"{m}_digits") for m in DIGITS]
    out += [Spec(f"{m}_synthfaces") for m in FACES]
    out.append(
        Spec(
            "supervised_synthfaces", ("label_fraction=1.0",), "supervised_synthfaces (100% labels)"
        )
    )
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--scale", choices=("full", "smoke"), default="full")
    parser.add_argument("--out", type=Path, default=Path("results"))
    args = parser.parse_args(argv)
    frame = collect(specs(), [int(s) for s in args.seeds.split(",")], args.scale)
    args.out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(args.out / "baselines.csv", index=False)
    shown = table(frame)[["run", "metric", "result", "seeds", "steps_per_s"]]
    text = shown.to_markdown(index=False, floatfmt=".1f")
    (args.out / "baselines.md").write_text(text + "\n")
    print(text)
    print(f"wrote {args.out / 'baselines.csv'} and {args.out / 'baselines.md'}")


if __name__ == "__main__":
    main()
