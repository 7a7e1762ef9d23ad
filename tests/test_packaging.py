"""`pip install .` into an environment gives packages whose imports are all installed: every
third-party module the packages import belongs to a distribution named in pyproject.toml, as a
dependency or in an extra; the optional ones (`bilevel.extras`) are imported only by the
features that need them, which name the extra when it is missing. The distribution's metadata
files (LICENSE, CHANGELOG, CITATION.cff, py.typed) agree with `bilevel.__version__`."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import textwrap
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

from bilevel import __version__
from bilevel.extras import EXTRAS

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bilevel", "methods", "experiments", "analysis")
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


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


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ \[;]", requirement)[0].lower().replace("_", "-")


def declared(extras: bool = True) -> set[str]:
    """The distributions pyproject names: the dependencies and (`extras`) those of every extra,
    the project itself (`all` = bilevel-ssl[…]) left out."""
    deps = list(PROJECT["dependencies"])
    if extras:
        deps += [d for group in PROJECT["optional-dependencies"].values() for d in group]
    return {_name(d) for d in deps} - {PROJECT["name"]}


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
    assert not missing, f"imported but not in pyproject's dependencies or extras: {missing}"


def test_optional_dependencies_are_extras_and_the_rest_are_dependencies():
    groups = PROJECT["optional-dependencies"]
    for module, (dist, extra) in EXTRAS.items():
        assert dist in {_name(d) for d in groups[extra]}, (module, extra)
        assert dist not in declared(extras=False), f"{dist} is optional, not a dependency"
    (everything,) = groups["all"]  # bilevel-ssl[every extra of EXTRAS]
    assert everything.startswith("bilevel-ssl[") and everything.endswith("]")
    assert set(everything[12:-1].split(",")) == {extra for _, extra in EXTRAS.values()}
    torch = [d for d in PROJECT["dependencies"] if _name(d) in ("torch", "torchvision")]
    assert sorted(torch) == ["torch>=2.14,<2.15", "torchvision>=0.29,<0.30"]  # the tested pair


def test_the_core_imports_without_the_optional_dependencies(tmp_path):
    """With higher, torchopt, submitit and tensorboard uninstallable (None in sys.modules, as
    for a missing package), every module of the four packages imports, `make exp` trains a run
    (TensorBoard off by default), and each feature that needs one ends in one line naming the
    extra: the higher estimator, tensorboard=true, estimator=higher, TorchOpt, make sweep and
    make compare."""
    code = textwrap.dedent(
        """
        import importlib, pkgutil, sys
        for m in ("higher", "torchopt", "submitit", "tensorboard"):
            sys.modules[m] = None  # what `import m` meets when m is not installed
        import bilevel, methods, experiments, analysis
        for pkg in (bilevel, methods, experiments, analysis):
            for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
                importlib.import_module(info.name)
        import torch
        from bilevel import BilevelProblem, hypergradient
        from bilevel.extras import MissingExtra
        model = torch.nn.Linear(3, 1)
        x = torch.randn(4, 3)
        problem = BilevelProblem(
            model, lambda f, hp: (f(x) - hp["t"]).pow(2).mean(), lambda f: f(x).mean(), lr=0.1
        )
        try:
            hypergradient(problem, {"t": torch.zeros(4, 1)}, "higher")
        except MissingExtra as err:
            print("HIGHER", err)
        from analysis.oracles import torchopt_hypergradient
        try:
            torchopt_hypergradient(problem, {"t": torch.zeros(4, 1)})
        except ImportError as err:
            print("TORCHOPT", err)
        from experiments.config import Config
        print("TB_DEFAULT", Config.__dataclass_fields__["tensorboard"].default)
        from analysis.commands import main
        common = ["metasemi_digits", "--scale", "smoke", "--quiet", "steps=2", "eval_every=2"]
        print("EXP", main(["exp", *common]))
        print("TB", main(["exp", *common, "tensorboard=true"]))
        print("EST", main(["exp", *common, "estimator=higher"]))
        print("SWEEP", main(["sweep", *common[:3], "steps=2"]))
        print("COMPARE", main(["compare"]))
        """
    )
    env = {**os.environ, "RUNS_ROOT": str(tmp_path / "runs"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    out, err = done.stdout, done.stderr
    assert "HIGHER the 'higher' estimator needs the higher package: pip install " in out
    assert "'bilevel-ssl[higher]'" in out
    assert "TORCHOPT torchopt_hypergradient (the outside reference) needs the torchopt " in out
    assert "TB_DEFAULT False" in out and "EXP 0" in out
    assert not (
        tmp_path / "runs" / "metasemi_digits+eval_every=2+steps=2+smoke" / "seed0" / "tb"
    ).exists()
    for line, status in (("TB", 2), ("EST", 2), ("SWEEP", 2), ("COMPARE", 2)):
        assert f"{line} {status}" in out, out
    assert (
        "error: tensorboard: tensorboard=true (TensorBoard event files) needs the tensorboard "
        "package: pip install 'bilevel-ssl[tensorboard]', or pass tensorboard=false\n"
    ) in err
    assert "error: estimator: the 'higher' estimator needs the higher package" in err
    assert "needs the submitit package: pip install 'bilevel-ssl[cluster]'" in err
    assert "error: bilevel-ssl compare (its higher row) needs the higher package" in err
    assert "Traceback" not in err


def test_no_module_imports_an_optional_dependency_at_import_time():
    """The optional packages are imported through `bilevel.extras.require` inside the feature,
    never by a module's top-level import statements (which the import test above would only
    catch for the modules it reaches)."""
    optional = set(EXTRAS) | {"torch.utils.tensorboard"}
    found = []
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.parse(path.read_text()).body:
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                for name in names:
                    if name in optional or name.split(".")[0] in optional:
                        found.append(f"{path.relative_to(ROOT)}:{node.lineno} {name}")
    assert not found, found


def test_requirements_pin_every_declared_dependency():
    """requirements.txt (what `make setup` installs and the tests run on) pins every dependency
    and every extra's distribution, each within pyproject's range."""
    pinned = {
        _name(line.split("==")[0]): line.split("==")[1].strip()
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    assert declared() <= set(pinned), sorted(declared() - set(pinned))
    assert pinned["torch"].startswith("2.14.") and pinned["torchvision"].startswith("0.29.")


def test_license_version_changelog_citation_and_typing_files():
    assert PROJECT["license"] == "MIT" and PROJECT["license-files"] == ["LICENSE"]
    assert (ROOT / "LICENSE").read_text().startswith("MIT License\n")
    assert PROJECT["dynamic"] == ["version"] and "version" not in PROJECT
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    setuptools = pyproject["tool"]["setuptools"]
    assert setuptools["dynamic"]["version"] == {"attr": "bilevel.__version__"}
    assert setuptools["package-data"] == {"*": ["py.typed"]}
    assert re.fullmatch(r"\d+\.\d+\.\d+", __version__)
    assert f"## [{__version__}]" in (ROOT / "CHANGELOG.md").read_text()
    citation = (ROOT / "CITATION.cff").read_text()
    assert f"\nversion: {__version__}\n" in citation and "\nlicense: MIT\n" in citation
    for package in PACKAGES:
        assert (ROOT / package / "py.typed").is_file(), package
    assert PROJECT["scripts"] == {"bilevel-ssl": "analysis.commands:main"}
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert {"build/", "dist/"} <= set(ignored)  # what `pip install .` and a build leave
