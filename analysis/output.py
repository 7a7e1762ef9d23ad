"""Writing figures (PNG and PDF) and tables (CSV and Markdown), each file atomically."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd


def _replace(tmp: Path, path: Path) -> Path:
    os.replace(tmp, path)
    return path


def save_figure(fig: plt.Figure, out: Path, name: str) -> list[Path]:
    """`out/name.png` and `out/name.pdf`; closes the figure."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in ("png", "pdf"):
        tmp = out / f".{name}.tmp.{ext}"
        fig.savefig(tmp, dpi=130, bbox_inches="tight")
        paths.append(_replace(tmp, out / f"{name}.{ext}"))
    plt.close(fig)
    return paths


def save_table(frame: pd.DataFrame, out: Path, name: str, floatfmt: str = ".3g") -> list[Path]:
    """`out/name.csv` and `out/name.md`."""
    ints = {c: str for c in frame.columns if pd.api.types.is_integer_dtype(frame[c])}
    markdown = frame.astype(ints).to_markdown(index=False, floatfmt=floatfmt)
    return save_csv_md(frame, markdown, out, name)


def save_csv_md(frame: pd.DataFrame, markdown: str, out: Path, name: str) -> list[Path]:
    """`out/name.csv` (the frame) and `out/name.md` (`markdown`, a rendering of it)."""
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".{name}.tmp.csv"
    frame.to_csv(tmp, index=False)
    csv_path = _replace(tmp, out / f"{name}.csv")
    tmp = out / f".{name}.tmp.md"
    tmp.write_text(markdown + "\n")
    return [csv_path, _replace(tmp, out / f"{name}.md")]


def save_docs(markdown: str, docs: Path | None, name: str, command: str) -> Path | None:
    """`docs/name.md`: a measured table for the documentation site, which includes it from there
    (docs/results/, committed), marked with the `command` that wrote it; nothing if `docs` is
    None (the commands write it with `--docs DIR`, which the make targets pass)."""
    if docs is None:
        return None
    docs.mkdir(parents=True, exist_ok=True)
    tmp = docs / f".{name}.tmp.md"
    tmp.write_text(f"<!-- written by `{command}`; rerun it rather than editing -->\n\n{markdown}\n")
    return _replace(tmp, docs / f"{name}.md")


def command_line(module: str, argv: list[str] | None) -> str:
    """The command that ran `python -m module` with `argv` (None: this process's arguments)."""
    return shlex.join(["python", "-m", module, *(sys.argv[1:] if argv is None else argv)])
