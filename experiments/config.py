"""Experiment configuration: one typed dataclass, `key=value` overrides, the smoke scale.

Unknown keys and ill-typed values raise `ConfigError` naming the key. Method hyperparameters are
set as `method.<field>=value` and checked against the method's own config dataclass; model
arguments as `model.<arg>=value`. Fractions of training (`milestones`, `warmup`, a method's
`ramp`) are fractions of `steps`, so a shorter run keeps the same shape.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Iterable
from dataclasses import dataclass, field, fields, replace
from typing import Any

from bilevel import extras
from methods import METHODS
from methods.base import FLOAT32_MAX, check_config

from .errors import ConfigError


@dataclass(frozen=True)
class Config:
    name: str
    dataset: str
    method: str
    model: str
    steps: int
    lr: float
    model_kw: dict[str, Any] = field(default_factory=dict)
    method_kw: dict[str, Any] = field(default_factory=dict)
    estimator: str = "auto"  # hypergradient estimator of meta methods (`bilevel.choose`)
    # options per estimator name, used when that estimator is selected: {"fd": {"r": 0.01}}
    estimator_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    # data
    num_labels: int = 0  # classification: total labeled samples, class-balanced
    # landmarks: share of the training set that is labeled; classification (ImageNet): share of
    # each class (num_labels is then not used)
    label_fraction: float = 0.0
    image_size: int = 224  # ImageNet: the crop side
    val_size: int = 0  # classification: validation samples held out from train
    holdout: str = "labeled"  # hold-out batches: "labeled" set or a "separate" split from val
    # class-imbalanced split (Meta-T Sec. 5.3): class c keeps N_1·γ^(−c/(C−1)) labeled and
    # M_1·γ^(−c/(C−1)) unlabeled samples, c = 0…C−1; γ = `imbalance` (0: balanced split)
    imbalance: float = 0.0
    head_labeled: int = 0  # N_1
    head_unlabeled: int = 0  # M_1
    batch_size: int = 64
    unlabeled_batch: int = 64
    holdout_batch: int = 0
    download: bool = False
    # optimisation
    optimizer: str = "sgd"  # sgd | adam | adamw
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    schedule: str = "constant"  # constant | step | cosine | cosine_annealing
    milestones: tuple[float, ...] = ()  # step schedule, as fractions of `steps`
    gamma: float = 0.1
    warmup: float = 0.0  # linear warm-up, fraction of `steps`
    warmup_offset: int = 1  # warm-up factor (t + offset)/w: 1 from lr/w, 0 from lr 0
    ema_decay: float = 0.0  # 0: no EMA; else teacher decay min(1 − 1/(t+1), ema_decay)
    # data parallel: each rank's own meta step on its slice (the Meta-Gradient authors' ImageNet
    # code) instead of the global batch's hypergradient
    rank_local: bool = False
    eval_ema: bool = False  # report the EMA model as the primary result (where the paper does)
    # bookkeeping
    eval_every: int = 500
    eval_limit: int = 0  # evaluate on at most this many samples per split (0: all)
    snapshots: bool = False  # keep model, EMA and method state of every evaluation (analysis)
    device: str = "auto"
    workers: int = -1  # batch-building processes (-1: none on CPU, cores − 1 up to 8 on CUDA)
    # TensorBoard event files in <run>/tb/ at each evaluation; on by default where the
    # tensorboard package is installed (the `tensorboard` extra), refused without it
    tensorboard: bool = extras.installed("tensorboard")
    # "bf16": the training losses and the meta step's evaluations under bfloat16 autocast
    # (evaluation stays float32; `fd`, `implicit` and `analytic` evaluate in float32)
    amp: str = "none"
    channels_last: bool = False  # images and convolution weights in NHWC memory order
    # CUDA: cudnn.benchmark and TF32 matrix multiplies / convolutions (no effect on CPU)
    cuda_fast: bool = True
    # torch.compile the model for the real step (the meta step's estimators evaluate the
    # uncompiled module: they call it at virtual parameters, which a compiled graph cannot)
    compile: bool = False

    def estimator_kw(self) -> dict[str, Any]:
        """Options for the selected estimator (those set for other estimators are ignored)."""
        return dict(self.estimator_options.get(self.estimator, {}))

    def method_config(self) -> Any:
        """The method's own hyperparameter dataclass, from `method_kw` (range-checked)."""
        cls = METHODS[self.method].Config
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(self.method_kw) - names)
        if unknown:
            raise ConfigError(
                f"unknown key 'method.{unknown[0]}' for method {self.method!r} "
                f"(its keys: {', '.join(sorted(names)) or 'none'})"
            )
        out = cls(**self.method_kw)
        for key, message in check_config(out):
            raise ConfigError(f"method.{key}: {message}")
        return out


_TOP = {f.name: f for f in fields(Config)}
# settings that do not change a run's numbers: a resumed run may change them
RUNTIME = ("workers", "tensorboard")
# settings a base method never reads (it has no meta step)
META_ONLY = ("estimator", "estimator_options")


def differing(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The settings in which two stored configs give different runs: RUNTIME settings never
    count, nor the estimator of a base method (its runs are the same under any estimator)."""
    ignored = set(RUNTIME)
    method = new.get("method", old.get("method"))
    if method in METHODS.methods and METHODS.base_of(method) is None:
        ignored |= set(META_ONLY)
    keys = set(old) | set(new)
    return sorted(k for k in keys if k not in ignored and old.get(k) != new.get(k))


_NOT_FLAT = ("name", "model_kw", "method_kw", "estimator_options")


def _estimator_option(key: str, name: str, option: str) -> Any:
    """The default of an estimator's keyword option (it types the value)."""
    from bilevel import ESTIMATORS, options_of

    if name not in ESTIMATORS:
        raise ConfigError(f"{key}: unknown estimator {name!r}; valid: {', '.join(ESTIMATORS)}")
    defaults = options_of(name)
    if option not in defaults:
        valid = ", ".join(defaults) or "none"
        raise ConfigError(f"unknown key {key!r} (options of {name!r}: {valid})")
    return defaults[option]


def _parse(key: str, text: str, kind: Any) -> Any:
    origin = typing.get_origin(kind)
    try:
        if kind is bool:
            low = text.lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if kind is int:
            return int(text)
        if kind is float:
            return float(text)
        if kind is str:
            return text
        if origin is tuple:
            inner = typing.get_args(kind)[0]
            return tuple(_parse(key, t, inner) for t in text.split(",") if t)
    except ValueError:
        name = getattr(kind, "__name__", str(kind))
        raise ConfigError(f"{key}={text!r}: expected {name}") from None
    raise ConfigError(f"{key} cannot be set from the command line")


def _parse_literal(key: str, text: str, default: Any) -> Any:
    """Model arguments: typed like the default when there is one, else int/float/bool/str."""
    if default is not None:
        return _parse(key, text, type(default))
    for kind in (int, float, bool):
        try:
            return _parse(key, text, kind)
        except ConfigError:
            continue
    return text


def apply_overrides(cfg: Config, items: list[str]) -> Config:
    """`key=value` strings applied to `cfg`; errors name the key (also one given twice)."""
    check_repeats(items, "override")
    hints = typing.get_type_hints(Config)
    changes: dict[str, Any] = {}
    # the experiment's model arguments belong to its model: another model starts from its own
    # defaults (`model.<name>=` items still apply)
    new_model = [i.partition("=")[2] for i in items if i.partition("=")[0] == "model"]
    switched = bool(new_model) and new_model[-1] != cfg.model
    method_kw, model_kw = dict(cfg.method_kw), {} if switched else dict(cfg.model_kw)
    estimator_options = cfg.estimator_options
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        if key.startswith("method."):
            sub = key.removeprefix("method.")
            method_cls = METHODS[changes.get("method", cfg.method)].Config
            known = {f.name: f for f in fields(method_cls)}
            if sub not in known:
                valid = ", ".join(sorted(known)) or "none"
                raise ConfigError(f"unknown key {key!r} (method keys: {valid})")
            method_kw[sub] = _parse(key, text, typing.get_type_hints(method_cls)[sub])
        elif key.startswith("estimator."):
            name, _, opt = key.removeprefix("estimator.").partition(".")
            default = _estimator_option(key, name, opt)
            options = {k: dict(v) for k, v in estimator_options.items()}
            options.setdefault(name, {})[opt] = _parse_literal(key, text, default)
            estimator_options = options
        elif key.startswith("model."):
            sub = key.removeprefix("model.")
            model_kw[sub] = _parse_literal(key, text, model_kw.get(sub))
        elif key in _TOP and key not in _NOT_FLAT:
            changes[key] = _parse(key, text, hints[key])
        else:
            valid = sorted(k for k in _TOP if k not in _NOT_FLAT)
            raise ConfigError(
                f"unknown key {key!r}; valid keys: {', '.join(valid)}, method.<name>, "
                "model.<name>, estimator.<estimator>.<option>"
            )
    out = replace(
        cfg, **changes, method_kw=method_kw, model_kw=model_kw, estimator_options=estimator_options
    )
    validate(out)
    return out


def check_repeats(items: list[str] | tuple[str, ...], what: str) -> None:
    """Refuse a key given twice (`lr=0.1 lr=0.2`): the last one would win silently."""
    seen: dict[str, str] = {}
    for item in items:
        key = item.partition("=")[0]
        if key in seen:
            raise ConfigError(f"{what}: {key} is given twice ({seen[key]!r} and {item!r})")
        seen[key] = item


BATCH_MAX = 2**24  # a batch is drawn as indices on the host: larger ones would not finish
SEED_MAX = 2**63 - 1  # seeds are mixed into 64-bit generator seeds (`experiments.data.mix_seed`)


def check_seed(seed: int) -> None:
    if not 0 <= seed <= SEED_MAX:
        raise ConfigError(f"seed: must be an integer in [0, 2^63 - 1], got {seed}")


def check_run_args(seed: int, nproc: int) -> None:
    """The command line's seed and process count, before any work."""
    check_seed(seed)
    if nproc < 1:
        raise ConfigError(f"nproc: must be >= 1 (processes of the run), got {nproc}")


def smoke(cfg: Config) -> Config:
    """The same experiment shrunk to well under a minute on CPU (same code path)."""
    return replace(
        cfg,
        steps=min(cfg.steps, 30),
        batch_size=min(cfg.batch_size, 16),
        unlabeled_batch=min(cfg.unlabeled_batch, 16),
        holdout_batch=min(cfg.holdout_batch, 16),
        val_size=min(cfg.val_size, 100),
        eval_every=15,
        eval_limit=200,
        model_kw={**cfg.model_kw, **({"width": 8} if cfg.model == "cnn13" else {})},
    )


def _either(names: Iterable[str]) -> str:
    """The names of a choice as a message lists them: "a, b or c"."""
    *rest, last = names
    return f"{', '.join(rest)} or {last}" if rest else last


def validate(cfg: Config) -> None:
    # each choice is offered by its owner: the schedules and optimizers by what builds them,
    # the amp modes by the methods' autocast
    from bilevel import ESTIMATORS
    from methods.base import AMP

    from .build import OPTIMIZERS, SCHEDULES
    from .models import MODELS, check_args
    from .sources import DATASETS

    checks = [
        (
            cfg.dataset in DATASETS,
            "dataset",
            f"unknown dataset {cfg.dataset!r}; valid: {', '.join(DATASETS)}",
        ),
        (
            cfg.method in METHODS,
            "method",
            f"unknown method {cfg.method!r}; valid: {', '.join(METHODS)}",
        ),
        (cfg.model in MODELS, "model", f"unknown model {cfg.model!r}; valid: {', '.join(MODELS)}"),
        (
            cfg.estimator in ESTIMATORS,
            "estimator",
            f"unknown estimator {cfg.estimator!r}; valid: {', '.join(ESTIMATORS)}",
        ),
        (cfg.steps > 0, "steps", "steps must be > 0"),
        (cfg.lr > 0, "lr", "lr must be > 0"),
        (cfg.optimizer in OPTIMIZERS, "optimizer", f"optimizer must be {_either(OPTIMIZERS)}"),
        (cfg.schedule in SCHEDULES, "schedule", f"schedule must be {_either(SCHEDULES)}"),
        (
            all(0 < m < 1 for m in cfg.milestones),
            "milestones",
            "milestones are fractions in (0, 1)",
        ),
        (0 <= cfg.warmup < 1, "warmup", "warmup is a fraction in [0, 1)"),
        (cfg.warmup_offset in (0, 1), "warmup_offset", "warmup_offset is 0 or 1"),
        (0 <= cfg.ema_decay < 1, "ema_decay", "ema_decay must be in [0, 1)"),
        (cfg.holdout in ("labeled", "separate"), "holdout", "holdout must be labeled or separate"),
        (cfg.eval_every > 0, "eval_every", "eval_every must be > 0"),
        (0 <= cfg.label_fraction <= 1, "label_fraction", "label_fraction must be in [0, 1]"),
        (
            cfg.imbalance == 0 or cfg.imbalance >= 1,
            "imbalance",
            "imbalance is a ratio γ >= 1 (0: balanced split)",
        ),
        (
            cfg.imbalance == 0 or (cfg.head_labeled > 0 and cfg.head_unlabeled > 0),
            "imbalance",
            "an imbalanced split needs head_labeled > 0 and head_unlabeled > 0",
        ),
        (
            cfg.imbalance == 0 or cfg.num_labels == 0,
            "num_labels",
            "set num_labels=0 with an imbalanced split (head_labeled sets its size)",
        ),
    ]
    checks += [
        (
            math.isfinite(getattr(cfg, f.name)) and abs(getattr(cfg, f.name)) <= FLOAT32_MAX,
            f.name,
            f"{f.name} must be finite and within float32's range (|x| <= 3.4e38): it reaches "
            "float32 tensors",
        )
        for f in fields(Config)
        if isinstance(getattr(cfg, f.name), float)
    ]
    checks += [
        (getattr(cfg, k) <= BATCH_MAX, k, f"{k} must be at most {BATCH_MAX} samples a step")
        for k in ("batch_size", "unlabeled_batch", "holdout_batch")
    ]
    checks += [
        (cfg.batch_size > 0, "batch_size", "batch_size must be > 0"),
        (
            cfg.unlabeled_batch > 0 or not METHODS[cfg.method].views,
            "unlabeled_batch",
            f"unlabeled_batch must be > 0 for {cfg.method} (it trains on unlabeled data)",
        ),
        (cfg.holdout_batch >= 0, "holdout_batch", "holdout_batch must be >= 0 (0: batch_size)"),
        (cfg.val_size >= 0, "val_size", "val_size must be >= 0"),
        (cfg.num_labels >= 0, "num_labels", "num_labels must be >= 0"),
        (cfg.eval_limit >= 0, "eval_limit", "eval_limit must be >= 0 (0: all)"),
        (cfg.workers >= -1, "workers", "workers must be >= 0, or -1 for the default"),
        (cfg.image_size >= 1, "image_size", "image_size must be >= 1"),
        (
            cfg.amp in AMP,
            "amp",
            f"amp must be {_either(AMP)} (fp16 would need a gradient scaler, not supported)",
        ),
        (0 <= cfg.momentum < 1, "momentum", "momentum must be in [0, 1)"),
        (cfg.weight_decay >= 0, "weight_decay", "weight_decay must be >= 0"),
        (cfg.gamma > 0, "gamma", "gamma (the step schedule's factor) must be > 0"),
        (
            not cfg.nesterov or cfg.momentum > 0,
            "nesterov",
            "nesterov=true needs momentum > 0",
        ),
    ]
    checks += [(False, f"model.{k}", m) for k, m in check_args(cfg.model_kw)]
    for ok, key, message in checks:
        if not ok:
            raise ConfigError(f"{key}: {message}")
    _check_extras(cfg)
    _check_device(cfg.device)
    _check_estimator_options(cfg.estimator_options)
    cfg.method_config()


def _check_extras(cfg: Config) -> None:
    """Settings that need an optional dependency (`bilevel.extras`), refused without it."""
    if cfg.tensorboard and not extras.installed("tensorboard"):
        needs = extras.message("tensorboard", "tensorboard=true (TensorBoard event files)")
        raise ConfigError(f"tensorboard: {needs}, or pass tensorboard=false")
    meta = METHODS.base_of(cfg.method) is not None
    if meta and cfg.estimator == "higher" and not extras.installed("higher"):
        needs = extras.message("higher", "the 'higher' estimator")
        raise ConfigError(f"estimator: {needs}, or pass estimator=func (exact too)")


def _check_estimator_options(options: dict[str, dict[str, Any]]) -> None:
    """Every estimator's options (also of estimators not selected: a typo is still a typo)."""
    from bilevel import check_options

    for name, opts in options.items():
        # the name alone first, then each option, so that the error names the bad key
        checks = [(f"estimator.{name}", {})]
        checks += [(f"estimator.{name}.{k}", {k: v}) for k, v in opts.items()]
        for key, one in checks:
            try:
                check_options(name, one)
            except (TypeError, ValueError) as err:
                raise ConfigError(f"{key}: {err}") from None


def _check_device(name: str) -> None:
    import torch

    if name == "auto":
        return
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device: unknown device {name!r}; use auto, cpu or cuda[:N]") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device: device={name} but no CUDA device is visible; use auto or cpu")


def as_dict(cfg: Config) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def config_defaults() -> dict[str, Any]:
    """The default of every Config field that has one."""
    out = {}
    for f in fields(Config):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out
