"""The optional dependencies of the `bilevel-ssl` distribution, each installed by an extra:

    pip install 'bilevel-ssl[higher]'        the `higher` estimator
    pip install 'bilevel-ssl[torchopt]'      TorchOpt, the outside reference of `make compare`
    pip install 'bilevel-ssl[cluster]'       submitit: `make sweep` and EXECUTOR= on the checks
    pip install 'bilevel-ssl[tensorboard]'   TensorBoard event files of a run (`tensorboard=true`)
    pip install 'bilevel-ssl[all]'           all of them

The core (`bilevel`, `methods`, `experiments`) imports none of them at import time; a feature
that needs one imports it through `require`, which names the extra when it is missing.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

# top-level module -> (distribution, extra that installs it)
EXTRAS = {
    "higher": ("higher", "higher"),
    "torchopt": ("torchopt", "torchopt"),
    "submitit": ("submitit", "cluster"),
    "tensorboard": ("tensorboard", "tensorboard"),
}


class MissingExtra(ImportError):
    """An optional dependency is not installed; the message says which extra installs it."""


def installed(module: str) -> bool:
    """Whether `module` is installed (found by the import system; it is not imported)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a finder that refuses it; a module without a spec
        return False


def message(module: str, what: str) -> str:
    """One line: `what` needs `module`, and the pip command that installs it."""
    dist, extra = EXTRAS[module]
    return f"{what} needs the {dist} package: pip install 'bilevel-ssl[{extra}]'"


def require(module: str, what: str, name: str | None = None) -> ModuleType:
    """Import and return `name` (default: `module`, a key of EXTRAS); raise MissingExtra with
    `message(module, what)` when it cannot be imported."""
    try:
        return importlib.import_module(name or module)
    except ImportError as err:
        missing = isinstance(err, ModuleNotFoundError) and err.name == module
        reason = "" if missing else f" (importing it failed: {err})"
        raise MissingExtra(message(module, what) + reason) from err
