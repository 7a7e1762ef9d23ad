"""Named experiments: one module per experiment, each defining `CONFIG` (a `Config`)."""

from __future__ import annotations

import importlib
import pkgutil

from ..config import Config, ConfigError


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
