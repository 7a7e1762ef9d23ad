"""`make check-meta`: each meta-learning method against the base it builds on, over seeds.

Every meta experiment on digits (50 labels, error %) and synthetic faces (1% labels, NME %)
against its base run, the named experiment that runs the meta method's `base` with the same
settings (`experiments.configs.pairs`, derived, so the two differ only in the meta step).
Reports mean ± std, each seed's value, the difference to the base, and on how many seeds the
meta method is below its base with the same seed (step costs: `make bench`, which times methods
side by side; whole-run wall times depend on what else the machine ran). Finished runs are
reused. Writes results/meta_check.csv and results/meta_check.md (with `--docs DIR`, as
`make check-meta` passes it, also DIR/meta_check.md, the table the documentation includes).
"""

from __future__ import annotations

import sys

import pandas as pd

from experiments import configs
from experiments.cli import run_cli

from .output import command_line, save_csv_md, save_docs
from .seeds import Spec, check_parser, collect_groups, per_seed, runs_of, table
from .sweep import run_missing

DATASETS = ("digits", "synthfaces")


def pairs(dataset: str | None = None) -> list[tuple[str, list[str]]]:
    """(base, metas) on `dataset` (None: every dataset of the check)."""
    wanted = DATASETS if dataset is None else (dataset,)
    return [(b, m) for b, m in configs.pairs() if configs.get(b).dataset in wanted]


def specs(dataset: str | None = None) -> list[Spec]:
    """Every base and meta run of the pairs on `dataset` ("digits", "synthfaces"; None: all)."""
    return [Spec(name) for base, metas in pairs(dataset) for name in (base, *metas)]


def _wins(frame: pd.DataFrame, name: str, base: str) -> str:
    """'k/n': seeds (run by both) on which `name` is below `base`."""
    values = frame.pivot_table(index="seed", columns="run", values="value")[[name, base]].dropna()
    return f"{int((values[name] < values[base]).sum())}/{len(values)}"


def pair_table(frame: pd.DataFrame) -> pd.DataFrame:
    summary = table(frame).set_index("run")
    rows = []
    for base, metas in pairs():
        if base not in summary.index:
            continue
        for name in (base, *metas):
            if name not in summary.index:
                continue
            row = summary.loc[name]
            rows.append(
                {
                    "run": name,
                    "base": base,
                    "metric": row.metric,
                    "result": row.result,
                    "per seed": per_seed(frame, name),
                    "seeds": int(row.seeds),
                    "vs base": ""
                    if name == base
                    else f"{row['mean'] - summary.loc[base, 'mean']:+.2f}",
                    "better on": "" if name == base else _wins(frame, name, base),
                }
            )
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> None:
    parser = check_parser(__doc__.split("\n")[0])
    parser.add_argument("--no-faces", action="store_true", help="digits only")
    args = parser.parse_args(argv)
    groups = [(specs("digits"), args.seeds)]
    if not args.no_faces:
        groups.append((specs("synthfaces"), args.face_seeds))
    run_missing(runs_of(groups, args.scale), args.executor, args.parallel)
    frame = collect_groups(groups, args.scale)
    text = pair_table(frame).to_markdown(index=False, disable_numparse=True)
    print(text)
    written = save_csv_md(frame, text, args.out, "meta_check")
    command = command_line("analysis.meta_check", argv)
    written += [save_docs(text, args.docs, "meta_check", command)] if args.docs else []
    print("wrote " + " and ".join(map(str, written)))


if __name__ == "__main__":
    sys.exit(run_cli(main))
