"""The measured tables of the documentation site: the commands that measure them write them into
docs/results/ (`--docs`), in the tables' own layout, and every one the pages include is there."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from analysis import baselines, bench, compare, compare_sweeps, seeds
from analysis.output import command_line, save_docs

ROOT = Path(__file__).resolve().parents[2]


def _rows(text: str) -> list[list[str]]:
    """The cells of a Markdown table's body rows."""
    lines = [line for line in text.splitlines() if line.startswith("|")][2:]
    return [[c.strip() for c in line.strip("|").split("|")] for line in lines]


def test_save_docs_writes_the_table_marked_with_its_command(tmp_path):
    assert save_docs("| a |\n|---|\n| 1 |", None, "t", "python -m x") is None
    path = save_docs("| a |\n|---|\n| 1 |", tmp_path / "docs", "t", "python -m x --docs d")
    text = path.read_text()
    assert path == tmp_path / "docs" / "t.md" and "`python -m x --docs d`" in text
    assert text.splitlines()[0].startswith("<!--") and text.endswith("| 1 |\n")
    assert [p.name for p in (tmp_path / "docs").iterdir()] == ["t.md"]  # no temp file left
    assert command_line("analysis.bench", ["--docs", "a b"]) == (
        "python -m analysis.bench --docs 'a b'"
    )


def test_bench_docs_table_gives_each_step_in_base_steps_with_the_hypergradient_share():
    def row(name, method, estimator, step, hyper, batch="4+24×2", model="wrn28"):
        return {
            "experiment": name,
            "method": method,
            "estimator": estimator,
            "batch": batch,
            "model": model,
            "step_ms": step,
            "base_step_ms": 100.0,
            "ratio_vs_base": step / 100.0,
            "hypergrad_ms": hyper,
        }

    frame = pd.DataFrame(
        [
            row("metagrad_cifar10", "pl_mixup", "-", 100.0, 0.0, "16+16×1", "cnn13"),
            row(
                "metagrad_cifar10", "meta_gradient", "fd (default)", 161.0, 66.0, "16+16×1", "cnn13"
            ),
            row("metagrad_cifar10", "meta_gradient", "func", 237.0, 141.0, "16+16×1", "cnn13"),
            row("metathreshold_cifar10", "fixmatch", "-", 100.0, 0.0),
            row("metathreshold_cifar10", "meta_threshold", "auto → forward (default)", 202, 104),
            row("metathreshold_cifar10", "meta_threshold", "func", 225.0, 132.0),
            row("metathreshold_cifar10", "meta_threshold", "fd", 182.0, 87.0),
        ]
    )
    text = bench.docs_table(frame)
    assert text.splitlines()[0] == (
        "| experiment | base step | meta step, default estimator | `func` | `fd` |"
    )
    assert _rows(text) == [
        [
            "Meta-Gradient, CNN-13, 16+16",
            "100 ms",
            "1.61× [0.66] (`fd`)",
            "2.37× [1.41]",
            "1.61× [0.66]",
        ],
        [
            "Meta-T, WRN-28-2, 4+24×2",
            "100 ms",
            "2.02× [1.04] (`auto` → `forward`)",
            "2.25× [1.32]",
            "1.82× [0.87]",
        ],
    ]


def test_compare_docs_table_is_time_in_plain_steps_on_the_paper_size_problems():
    rows = []
    for problem in ("cnn13-w128/a", "linear/a"):
        for dtype, scale in (("float32", 1.0), ("float64", 10.0)):
            for estimator, ms in (
                ("plain_step", 10.0),
                ("forward", 19.4),
                ("fd lookahead=False", 8.2),
            ):
                rows.append(
                    {"problem": problem, "estimator": estimator, "dtype": dtype, "ms": ms * scale}
                )
    text = compare.docs_table(pd.DataFrame(rows))
    header = text.splitlines()[0]
    assert header.startswith("| problem | `virtual_step` | `floor` | `forward` |")
    assert "| `fd` | `fd lookahead=False` |" in header
    # float32 only, the one-layer model left out; columns not measured stay empty
    names = [c.strip() for c in header.strip("|").split("|")]
    (row,) = _rows(text)
    cells = dict(zip(names, row, strict=True))
    assert cells.pop("problem") == "CNN-13 (a)"
    assert cells.pop("`forward`") == "1.94" and cells.pop("`fd lookahead=False`") == "0.82"
    assert set(cells.values()) == {""}


def test_k_sweep_docs_table_gives_time_and_memory_to_three_digits():
    swept = pd.DataFrame(
        [
            {"problem": "cnn13-w128", "estimator": name, "K": k, "ms": ms * k, "peak_mb": mb * k}
            for k in (1, 10)
            for name, ms, mb in (
                ("func", 1583.4, 700.2),
                ("func_checkpoint", 2604.9, 680.0),
                ("higher", 1690.0, 709.4),
            )
        ]
    )
    text = compare_sweeps.docs_table(swept)
    assert "| K | `func` ms | `func checkpoint=True` ms | `higher` ms | `func` MB |" in text
    assert _rows(text) == [
        ["1", "1580", "2600", "1690", "700", "680", "709"],
        ["10", "15800", "26000", "16900", "7000", "6800", "7090"],
    ]


def test_baselines_docs_table_gives_the_result_and_each_seed():
    frame = pd.DataFrame(
        [
            {"run": run, "seed": seed, "metric": "test/error", "value": v, "steps_per_s": 9.0}
            for run, values in (("supervised_digits", (19.6, 19.0, 13.6)), ("ref", (6.03,)))
            for seed, v in enumerate(values)
        ]
    )
    assert _rows(baselines.docs_table(frame)) == [
        ["supervised_digits", "test/error", "17.40 ± 3.30", "3", "19.60, 19.00, 13.60"],
        ["ref", "test/error", "6.03", "1", "6.03"],
    ]


def test_the_check_commands_take_docs():
    parser = seeds.check_parser("make baselines, make check-meta")
    assert parser.parse_args(["--docs", "docs/results"]).docs == Path("docs/results")
    assert parser.parse_args([]).docs is None


def test_every_table_the_pages_include_is_committed_and_every_committed_one_is_shown():
    pages = "\n".join(p.read_text() for p in (ROOT / "docs").rglob("*.md"))
    included = set(re.findall(r'--8<-- "(docs/results/[^"]+\.md)"', pages))
    assert {"docs/results/bench.md", "docs/results/meta_check.md"} <= included
    for name in included:
        assert (ROOT / name).is_file(), name
    results = ROOT / "docs" / "results"
    committed = {f"docs/results/{p.relative_to(results)}" for p in results.rglob("*.md")}
    assert committed <= included, committed - included
