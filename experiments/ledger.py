"""The settings ledger: what each paper and its authors' code state, held against the named
experiments.

`docs/settings/<paper>.toml` lists, per group of named experiments, every setting that the paper
or the authors' script states, with its source:

    paper = "citation"
    code = "owner/repo at commit <sha>"          # "" where no code is public
    [[group]]
    experiments = ["metagrad_cifar10", "pl_mixup_cifar10"]
    settings = [
      { key = "lr", paper = 0.1, source = "train_meta.py:41; Sec. 5.1" },
      { key = "model.dropout", paper = 0.5, stated = "after both max-pools", source = "…" },
      { key = "", statement = "warm-up lr·t/T_w", source = "…", held_by = "tests/…::test_…" },
      { key = "nesterov", paper = true, source = "…", departure = "why it differs" },
    ]

`key` is a `Config` field, `method.<field>` (the method's hyperparameter, defaults filled in),
`model.<arg>` (the model factory's argument, defaults filled in) or
`estimator.<name>.<option>`; `""` for a behaviour that no setting holds (`statement`). A setting
holds when every experiment of its group resolves to the paper's value; a `departure` says why an
experiment deliberately differs (and then it must differ). A behaviour names the test that holds
it (`held_by`) or is a departure. `check()` lists every violation; `render()` writes
docs/paper_settings.md (`make ledger`), which a test keeps current.
"""

from __future__ import annotations

import inspect
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import Config, ConfigError

ROOT = Path(__file__).resolve().parent.parent
LEDGER = ROOT / "docs" / "settings"
PAGE = ROOT / "docs" / "paper_settings.md"
# datasets of the papers: an experiment on one of them is a paper-scale experiment, which the
# ledger must cover (digits and synthfaces are the toolkit's embedded stand-ins)
PAPER_DATASETS = ("cifar10", "cifar100", "svhn", "imagenet", "aflw")
_FIELDS = {"key", "paper", "stated", "source", "statement", "held_by", "departure", "note"}


@dataclass(frozen=True)
class Setting:
    paper_file: str  # the ledger file's stem
    experiments: tuple[str, ...]
    key: str
    source: str
    paper: Any = None
    stated: str = ""
    statement: str = ""
    held_by: str = ""
    departure: str = ""
    note: str = ""

    @property
    def where(self) -> str:
        return f"docs/settings/{self.paper_file}.toml [{self.key or self.statement[:40]}]"


@dataclass(frozen=True)
class Paper:
    stem: str
    paper: str
    code: str
    settings: tuple[Setting, ...]


def load(folder: Path = LEDGER) -> list[Paper]:
    """Every ledger file, checked for form (unknown fields, missing sources) as it is read."""
    papers = []
    for path in sorted(folder.glob("*.toml")):
        data = tomllib.loads(path.read_text())
        unknown = sorted(set(data) - {"paper", "code", "group"})
        if unknown or "paper" not in data:
            raise ConfigError(f"{path}: needs `paper`; unknown top-level keys {unknown}")
        settings = []
        for i, group in enumerate(data.get("group", [])):
            names = tuple(group.get("experiments", ()))
            if not names or set(group) - {"experiments", "settings", "note"}:
                raise ConfigError(f"{path}: group {i + 1} needs `experiments` and `settings` only")
            for row in group.get("settings", []):
                bad = sorted(set(row) - _FIELDS)
                if bad or "key" not in row or not row.get("source"):
                    raise ConfigError(
                        f"{path}: group {i + 1}: {row}: needs key and source; unknown {bad}"
                    )
                if not row["key"] and not row.get("statement"):
                    raise ConfigError(
                        f"{path}: group {i + 1}: a behaviour (key = '') needs statement"
                    )
                if row["key"] and "paper" not in row:
                    raise ConfigError(f"{path}: group {i + 1}: {row['key']} needs its paper value")
                settings.append(Setting(path.stem, names, **row))
        papers.append(Paper(path.stem, data["paper"], data.get("code", ""), tuple(settings)))
    return papers


def _model_default(cfg: Config, arg: str) -> Any:
    from .models import MODELS

    params = inspect.signature(MODELS[cfg.model]).parameters
    if arg in cfg.model_kw:
        return cfg.model_kw[arg]
    if arg not in params or params[arg].default is inspect.Parameter.empty:
        raise ConfigError(f"model {cfg.model!r} has no argument {arg!r} with a default")
    return params[arg].default


def applies(cfg: Config, key: str) -> bool:
    """A setting applies to every experiment of its group, except a meta method's own
    hyperparameter (`method.<field>`) in the group's base runs, whose method has no such field."""
    from dataclasses import fields

    from methods import METHODS

    head, _, rest = key.partition(".")
    if head != "method" or METHODS.base_of(cfg.method) is not None:
        return True
    return rest in {f.name for f in fields(METHODS[cfg.method].Config)}


def resolve(cfg: Config, key: str) -> Any:
    """The value of ledger `key` in the resolved experiment `cfg` (defaults filled in)."""
    from bilevel import options_of

    head, _, rest = key.partition(".")
    if head == "method" and rest:
        method = cfg.method_config()
        if not hasattr(method, rest):
            raise ConfigError(f"method {cfg.method!r} has no hyperparameter {rest!r}")
        return getattr(method, rest)
    if head == "model" and rest:
        return _model_default(cfg, rest)
    if head == "estimator" and rest:
        name, _, option = rest.partition(".")
        return cfg.estimator_options.get(name, {}).get(option, options_of(name)[option])
    if not hasattr(cfg, key):
        raise ConfigError(f"Config has no setting {key!r}")
    return getattr(cfg, key)


def same(a: Any, b: Any) -> bool:
    """Equal values, floats to 1e-9 relative, lists and tuples alike."""
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=0.0)
    return a == b


def _test_exists(node: str) -> bool:
    path, _, name = node.partition("::")
    file = ROOT / path
    return bool(name) and file.is_file() and f"def {name}(" in file.read_text()


def check(papers: list[Paper] | None = None) -> list[str]:
    """Every difference between the ledger and the named experiments that the ledger does not
    mark as a departure, every stale departure, and every paper-scale experiment it omits."""
    from .configs import get, names

    papers = load() if papers is None else papers
    problems, covered, known = [], set(), set(names())
    for s in (s for p in papers for s in p.settings):
        for name in s.experiments:
            if name not in known:
                problems.append(f"{s.where}: no experiment named {name!r}")
                continue
            covered.add(name)
            cfg = get(name)
            if not s.key or not applies(cfg, s.key):
                continue
            try:
                value = resolve(cfg, s.key)
            except ConfigError as err:
                problems.append(f"{s.where}: {name}: {err}")
                continue
            if s.departure and same(value, s.paper):
                problems.append(f"{s.where}: {name} equals the paper; remove the departure")
            elif not s.departure and not same(value, s.paper):
                problems.append(
                    f"{s.where}: {name} has {s.key}={value!r}, the paper {s.paper!r} "
                    "(change the experiment, or mark and explain a departure)"
                )
        if s.key:
            continue
        if s.held_by and not _test_exists(s.held_by):
            problems.append(f"{s.where}: held_by names no test: {s.held_by!r}")
        elif not (s.held_by or s.departure or s.note):
            problems.append(f"{s.where}: a behaviour needs held_by (a test), departure or note")
    for name in sorted(known):
        if get(name).dataset in PAPER_DATASETS and name not in covered:
            problems.append(f"{name}: a paper-scale experiment that no ledger group lists")
    return problems


def _text(v: Any) -> str:
    return str(v).replace("|", "\\|").replace("\n", " ")


def _cell(v: Any) -> str:
    """A value as the TOML writes it: strings quoted, booleans lower case."""
    return _text(
        "true" if v is True else "false" if v is False else repr(v) if isinstance(v, str) else v
    )


def render(papers: list[Paper] | None = None) -> str:
    """docs/paper_settings.md: per paper and group, each setting, its source and its status."""
    from .configs import get

    papers = load() if papers is None else papers
    out = [
        "# Paper settings, held against the named experiments",
        "",
        "Generated by `make ledger` from `docs/settings/*.toml` (one file per paper: every",
        "setting that the paper or the authors' script states, with its source).",
        "`tests/experiments/test_ledger.py` fails when a named experiment differs from a",
        "setting here without a marked departure, and when this page is out of date.",
        "",
        "Status: ✓ the experiment has the paper's value (a behaviour: the test that holds it);",
        "≠ a deliberate departure, explained; otherwise a note on what the paper leaves open.",
        "Keys: `Config` fields, `method.<hyperparameter>`, `model.<argument>`,",
        "`estimator.<name>.<option>`, with defaults filled in; `n/a`: a meta method's own",
        "hyperparameter in its base run.",
        "",
    ]
    for p in papers:
        out += [f"## {p.paper}", "", f"Code read: {p.code or 'none public'}.", ""]
        groups: dict[tuple[str, ...], list[Setting]] = {}
        for s in p.settings:
            groups.setdefault(s.experiments, []).append(s)
        for names, rows in groups.items():
            out += [f"### {', '.join(f'`{n}`' for n in names)}", ""]
            out += [
                "| setting | paper / authors | experiment | source | status |",
                "|---|---|---|---|---|",
            ]
            for s in rows:
                if s.key:
                    values = {
                        n: resolve(get(n), s.key) if applies(get(n), s.key) else "n/a"
                        for n in names
                    }
                    shown = {_cell(v) for v in values.values()}
                    exp = (
                        shown.pop()
                        if len(shown) == 1
                        else "; ".join(f"{n}: {_cell(v)}" for n, v in values.items())
                    )
                    paper = _cell(s.paper) + (f" ({s.stated})" if s.stated else "")
                    setting = f"`{s.key}`"
                else:
                    exp, paper, setting = "—", _text(s.statement), "behaviour"
                if s.departure:
                    status = f"≠ {_text(s.departure)}"
                elif s.key:
                    status = "✓"
                elif s.held_by:
                    status = f"✓ `{s.held_by}`"
                else:
                    status = ""
                if s.note:
                    status += f" ({_text(s.note)})" if status else _text(s.note)
                out.append(f"| {setting} | {paper} | {exp} | {_text(s.source)} | {status} |")
            out.append("")
    return "\n".join(out)


def main() -> int:
    if not LEDGER.is_dir():  # an installed package: the ledger is part of the repository
        raise ConfigError(
            f"the ledger reads docs/settings/*.toml of a clone of the repository, not found at "
            f"{LEDGER}; run make ledger in the clone"
        )
    problems = check()
    PAGE.write_text(render())
    print(f"wrote {PAGE.relative_to(ROOT)}")
    for line in problems:
        print(f"ledger: {line}")
    return 1 if problems else 0


if __name__ == "__main__":
    import sys

    from .cli import run_cli

    sys.exit(run_cli(main))
