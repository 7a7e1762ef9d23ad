"""`pip install .` into an environment gives packages whose imports are all installed: every
third-party module the packages import belongs to a distribution named in pyproject.toml."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bilevel", "methods", "experiments", "analysis")


def imported_modules() -> set[str]:
    """Top-level names of every module imported anywhere in the packages."""
    names = set()
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    names |= {a.name.split(".")[0] for a in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names.add(node.module.split(".")[0])
    return names


def declared() -> set[str]:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return {re.split(r"[<>=!~ \[]", d)[0].lower().replace("_", "-") for d in deps}


def test_every_third_party_import_is_a_declared_dependency():
    owners = packages_distributions()
    third_party = imported_modules() - set(sys.stdlib_module_names) - set(PACKAGES)
    assert third_party, "the scan found no imports"
    missing = {}
    for module in sorted(third_party):
        dists = {d.lower().replace("_", "-") for d in owners.get(module, [])}
        assert dists, f"{module} is imported but not installed"
        if not dists & declared():
            missing[module] = sorted(dists)
    assert not missing, f"imported but not in pyproject's dependencies: {missing}"


def test_requirements_pin_every_declared_dependency():
    pinned = {
        line.split("==")[0].lower()
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    assert declared() <= pinned, sorted(declared() - pinned)
