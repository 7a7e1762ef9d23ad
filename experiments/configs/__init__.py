"""Named experiments: one module per experiment, each defining `CONFIG` (a `Config`)."""

from __future__ import annotations

import importlib
import pkgutil

from methods import METHODS

from ..config import Config, ConfigError, as_dict


def names() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def get(name: str) -> Config:
    if name not in names():
        raise ConfigError(f"unknown experiment {name!r}; available: {', '.join(names())}")
    module = importlib.import_module(f"{__name__}.{name}")
    cfg = getattr(module, "CONFIG", None)
    if not isinstance(cfg, Config) or cfg.name != name:
        raise ConfigError(f"{module.__file__} must define CONFIG, a Config named {name!r}")
    return cfg


# settings that do not change what a base run trains (a meta run's extras and bookkeeping)
_NOT_COMPARED = (
    "name",
    "method",
    "method_kw",
    "estimator",
    "estimator_options",
    "holdout",
    "holdout_batch",
    "snapshots",
    "eval_ema",  # which model is reported, not what is trained
    "eval_every",
    "eval_limit",
    "device",
    "workers",
)


def _base_key(cfg: Config, base: str) -> tuple:
    """What a run of method `base` with `cfg`'s settings trains: every compared setting and the
    base's own hyperparameters (defaults filled in)."""
    defaults = as_dict(METHODS[base].Config())
    method_kw = {k: cfg.method_kw.get(k, v) for k, v in defaults.items()}
    settings = {k: v for k, v in as_dict(cfg).items() if k not in _NOT_COMPARED}
    return repr(sorted(settings.items())), repr(sorted(method_kw.items()))


def base_of(name: str) -> str | None:
    """The named experiment that runs experiment `name`'s base method with the same settings
    (None for a base method, or when no experiment file does). Derived from the method's `base`,
    so a meta run and its base run differ only in the meta step."""
    cfg = get(name)
    base = METHODS.base_of(cfg.method)
    if base is None:
        return None
    key = _base_key(cfg, base)
    found = [n for n in names() if get(n).method == base and _base_key(get(n), base) == key]
    if len(found) > 1:
        raise ConfigError(f"{name}: several experiments are its base run: {', '.join(found)}")
    return found[0] if found else None


def base_config(cfg: Config) -> Config:
    """`cfg` with its meta method replaced by the base method (the base's own hyperparameters
    taken from `cfg.method_kw`): the run a meta run is compared with, whether or not an
    experiment file names it."""
    from dataclasses import fields, replace

    base = METHODS.base_of(cfg.method)
    if base is None:
        raise ConfigError(f"{cfg.name}: method {cfg.method!r} is not a meta method")
    known = {f.name for f in fields(METHODS[base].Config)}
    kw = {k: v for k, v in cfg.method_kw.items() if k in known}
    return replace(cfg, name=f"{cfg.name}:{base}", method=base, method_kw=kw)


def pairs(metas: list[str] | None = None) -> list[tuple[str, list[str]]]:
    """(base experiment, its meta experiments) for `metas` (default: every meta experiment that
    has a base run), bases in order of first appearance."""
    grouped: dict[str, list[str]] = {}
    for name in names() if metas is None else metas:
        base = base_of(name)
        if base is not None:
            grouped.setdefault(base, []).append(name)
        elif metas is not None:
            raise ConfigError(f"{name}: no experiment runs its base method with its settings")
    return list(grouped.items())
