"""A new meta method, file 2 of 2: its experiment, the estimators compared on its meta step, and
training runs against its base.

    python docs/tutorials/new_method/meta_uweight_digits.py [--steps 3000] [--seeds 0,1,2]

The method (`meta_uweight.py`, beside this file) is registered by name; the experiment is the
base's digits experiment (`pseudo_label_digits`) with the method changed, so the pair differs
only in the meta step. Runs go to a temporary folder (`--runs DIR` keeps them).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))  # the method file beside this one
from meta_uweight import MetaUWeight

from experiments import configs
from experiments.build import build
from experiments.train import train
from methods import METHODS
from methods.pseudo_label import PseudoLabel

if MetaUWeight.name not in METHODS:
    METHODS.add(MetaUWeight)

BASE = configs.get("pseudo_label_digits")
CONFIG = replace(BASE, name="meta_uweight_digits", method="meta_uweight")


def compare_estimators(
    estimators=("func", "higher", "forward", "fd", "auto"), warmup: int = 300
) -> list[dict]:
    """The meta step's dL_sup/da under each estimator, against `func` (float32, the
    experiment's precision), on batch `warmup` of seed 0 from a model trained `warmup` steps
    by the base (so that some pseudo labels pass the confidence threshold)."""
    base = build(BASE, seed=0)
    for step in range(warmup):
        base.method.train_step(base.batches(step))
    rows, ref = [], None
    for name in estimators:
        parts = build(replace(CONFIG, estimator=name), seed=0)
        parts.model.load_state_dict(base.model.state_dict())
        batch = parts.batches(warmup)
        target, mask, _ = PseudoLabel.targets(parts.method, batch)  # the base's targets
        grad = float(parts.method.meta_gradient(batch, target, mask))
        ref = grad if ref is None else ref
        rows.append({"estimator": name, "dL/da": grad, "rel. diff": abs(grad - ref) / abs(ref)})
    return rows


def run(steps: int, seeds: list[int], root: Path) -> list[dict]:
    """Test error of the base and the meta method after `steps` steps, per seed."""
    rows = []
    for cfg in (BASE, CONFIG):
        cfg = replace(cfg, steps=steps, eval_every=min(steps, cfg.eval_every))
        for seed in seeds:
            summary = train(cfg, seed, root=root, progress=False)
            rows.append({"run": cfg.name, "seed": seed, "error": summary["final"]["test/error"]})
    return rows


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=BASE.steps)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--runs", type=Path, default=None, help="keep the runs here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rows = compare_estimators()
    print("the meta step's hypergradient on one batch, against func (float32):")
    for row in rows:
        print(f"  {row['estimator']:8} {row['dL/da']:+.6e}  rel. diff {row['rel. diff']:.1e}")
    seeds = [int(s) for s in args.seeds.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        results = run(args.steps, seeds, args.runs or Path(tmp))
    print(f"test error (%) after {args.steps} steps:")
    for name in (BASE.name, CONFIG.name):
        errors = [r["error"] for r in results if r["run"] == name]
        print(f"  {name:22} " + "  ".join(f"{e:.2f}" for e in errors))
    return {"estimators": rows, "runs": results}


if __name__ == "__main__":
    main()
