"""Config errors name the key; the CLI reports them without a traceback."""

import pytest
import torch

from experiments import configs
from experiments.__main__ import main
from experiments.config import ConfigError, apply_overrides, smoke


@pytest.fixture
def cfg():
    return configs.get("fixmatch_digits")


def test_overrides_are_typed(cfg):
    out = apply_overrides(
        cfg,
        [
            "lr=0.01",
            "steps=7",
            "nesterov=false",
            "milestones=0.5,0.75",
            "method.threshold=0.8",
            "model.hidden=32",
            "estimator=fd",
        ],
    )
    assert (out.lr, out.steps, out.nesterov, out.milestones) == (0.01, 7, False, (0.5, 0.75))
    assert out.method_config().threshold == 0.8 and out.model_kw["hidden"] == 32
    assert out.estimator == "fd"


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("lrr=0.1", "unknown key 'lrr'; valid keys: amp, batch_size"),
        ("steps=ten", "steps='ten': expected int"),
        ("nesterov=maybe", "nesterov='maybe': expected bool"),
        (
            "method.treshold=0.9",
            "unknown key 'method.treshold' (method keys: temperature, threshold, weight)",
        ),
        ("method.threshold=high", "method.threshold='high': expected float"),
        (
            "estimator=exact",
            "estimator: unknown estimator 'exact'; valid: analytic, forward, func, higher",
        ),
        ("method=fixmatch2", "method: unknown method 'fixmatch2'; valid:"),
        (
            "schedule=linear",
            "schedule: schedule must be constant, step, cosine or cosine_annealing",
        ),
        ("lr", "override 'lr' is not of the form key=value"),
        ("imbalance=0.5", "imbalance: imbalance is a ratio γ >= 1 (0: balanced split)"),
        ("imbalance=10", "imbalance: an imbalanced split needs head_labeled > 0"),
    ],
)
def test_bad_overrides_name_the_key(cfg, item, message):
    with pytest.raises((ConfigError, KeyError)) as err:
        apply_overrides(cfg, [item])
    assert message in str(err.value)


def test_unknown_experiment_lists_available():
    with pytest.raises(
        ConfigError, match=r"unknown experiment 'fixmatch_digit'; available: .*fixmatch_digits"
    ):
        configs.get("fixmatch_digit")


def test_every_named_experiment_loads_and_validates():
    names = configs.names()
    assert {
        "supervised_digits",
        "mean_teacher_synthfaces",
        "supervised_aflw",
        "pseudo_label_cifar10",
    } <= set(names)
    for name in names:
        cfg = configs.get(name)
        apply_overrides(cfg, [])  # validates
        assert smoke(cfg).steps <= 30


def test_cli_reports_errors_without_traceback(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("RUNS_ROOT", str(tmp_path / "runs"))
    monkeypatch.setenv("DATA_ROOT", str(tmp_path / "data"))
    assert main(["supervised_digits", "lrr=1"]) == 2
    assert "error: unknown key 'lrr'" in capsys.readouterr().err
    for name in ("supervised_aflw", "impute_v2_aflw"):
        assert main([name, "--quiet"]) == 2
        err = capsys.readouterr().err
        assert "AFLW not found at" in err and str(tmp_path / "data" / "aflw") in err
        assert "aflw_train_keypoints.mat" in err and "python -m experiments.synthfaces" in err
        assert "make exp NAME=impute_v2_synthfaces" in err and "Traceback" not in err
    assert main([]) == 2 and "supervised_digits" in capsys.readouterr().out


def test_base_runs_are_derived_from_the_methods_base():
    """Every meta experiment of the CPU-scale check has exactly one base run, the experiment of
    its method's `base` with the same settings; they differ only in the meta step's settings."""
    from experiments import configs
    from methods import METHODS

    checked = [
        n
        for n in configs.names()
        if METHODS.base_of(configs.get(n).method)
        and configs.get(n).dataset in ("digits", "synthfaces")
    ]
    assert len(checked) >= 12
    for name in checked:
        base = configs.base_of(name)
        assert base is not None, name
        assert configs.get(base).method == METHODS.base_of(configs.get(name).method)
    assert configs.base_of("impute_v1_mt_digits") == "mean_teacher_digits"
    assert configs.base_of("impute_v1_digits") == "pseudo_label_soft_digits"
    assert configs.base_of("metagrad_digits") == "pl_mixup_digits"
    assert configs.base_of("mean_teacher_digits") is None
    pairs = dict(configs.pairs(["impute_v1_digits", "impute_v2_digits", "metasemi_digits"]))
    assert pairs == {
        "pseudo_label_soft_digits": ["impute_v1_digits", "impute_v2_digits"],
        "ema_mixup_digits": ["metasemi_digits"],
    }


@pytest.mark.parametrize(
    ("name", "item", "message"),
    [
        ("fixmatch_digits", "batch_size=0", "batch_size: batch_size must be > 0"),
        (
            "pseudo_label_digits",
            "unlabeled_batch=0",
            "unlabeled_batch: unlabeled_batch must be > 0",
        ),
        ("fixmatch_digits", "unlabeled_batch=0", "unlabeled_batch: unlabeled_batch must be > 0"),
        ("impute_v1_digits", "holdout_batch=-3", "holdout_batch: holdout_batch must be >= 0"),
        ("fixmatch_digits", "lr=inf", "lr: lr must be finite"),
        ("fixmatch_digits", "momentum=nan", "momentum: momentum must be finite"),
        ("fixmatch_digits", "momentum=-1", "momentum: momentum must be in [0, 1)"),
        ("fixmatch_digits", "weight_decay=-1", "weight_decay: weight_decay must be >= 0"),
        ("fixmatch_digits", "val_size=-1", "val_size: val_size must be >= 0"),
        ("fixmatch_digits", "num_labels=-5", "num_labels: num_labels must be >= 0"),
        ("fixmatch_digits", "nesterov=true momentum=0", "nesterov: nesterov=true needs momentum"),
        ("fixmatch_digits", "method.threshold=1.5", "method.threshold: must be a probability"),
        (
            "fixmatch_digits",
            "method.weight=nan",
            "method.weight: must be finite and within float32",
        ),
        (
            "fixmatch_digits",
            "method.weight=1e39",
            "method.weight: must be finite and within float32",
        ),
        ("fixmatch_digits", "lr=1e308", "lr: lr must be finite and within float32's range"),
        ("fixmatch_digits", "weight_decay=1e308", "weight_decay: weight_decay must be finite and"),
        (
            "fixmatch_digits",
            "batch_size=100000000000000000000",
            "batch_size must be at most 16777216",
        ),
        ("pseudo_label_digits", "method.ramp=2", "method.ramp: must be a fraction of training"),
        ("impute_v1_digits", "method.variant=v3", "method.variant: must be one of v1, v2"),
        ("impute_v1_digits", "method.protocol=paper", "method.protocol: must be one of toolkit"),
        ("metagrad_digits", "method.objective=kl", "method.objective: must be one of alg1"),
        ("metagrad_digits", "method.gamma=0", "method.gamma: must be > 0 (a Beta parameter)"),
        ("metasemi_digits", "method.weighting=soft", "method.weighting: must be one of mixed"),
        ("metathreshold_digits", "method.k=0", "method.k: must be >= 1, got 0"),
    ],
)
def test_out_of_range_settings_name_the_key(tmp_path, monkeypatch, capsys, name, item, message):
    with pytest.raises(ConfigError) as err:
        apply_overrides(configs.get(name), item.split())
    assert message in str(err.value)
    monkeypatch.setenv("RUNS_ROOT", str(tmp_path))  # and the same through make exp
    assert main([name, *item.split(), "--scale", "smoke", "--quiet"]) == 2
    assert capsys.readouterr().err == f"error: {err.value}\n"
    assert not any(tmp_path.iterdir())


def test_a_refused_setting_leaves_no_run_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RUNS_ROOT", str(tmp_path))
    assert main(["impute_v1_digits", "--scale", "smoke", "holdout_batch=-3"]) == 2
    assert "holdout_batch must be >= 0" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["fixmatch_digits", "model=tcdcn"], "model: tcdcn cannot take digits inputs of shape"),
        (["fixmatch_digits", "model.foo=1"], "model.foo: model mlp has no argument 'foo' (its"),
        (["fixmatch_digits", "model.hidden=-3"], "model.hidden: must be an integer >= 1, got -3"),
        (["fixmatch_digits", "model.hidden=0"], "model.hidden: must be an integer >= 1, got 0"),
        (["fixmatch_digits", "model.dropout=1"], "model.dropout: must be a probability in [0, 1)"),
        (["fixmatch_digits", "model.activation=foo"], "model.*: mlp(hidden=128, activation='foo'"),
        (["fixmatch_cifar10", "model.width=0"], "model.width: must be an integer >= 1, got 0"),
        (["fixmatch_digits", "dataset=foo"], "dataset: unknown dataset 'foo'; valid: digits"),
        (["fixmatch_digits", "device=foo"], "device: unknown device 'foo'"),
        (["metagrad_digits", "estimator=analytic"], "analytic covers one-layer models only"),
        (
            ["metasemi_digits", "optimizer=adam", "estimator=higher", "method.protocol=toolkit"],
            "another optimizer; use 'forward' or 'func'",
        ),
        (
            [
                "metasemi_digits",
                "optimizer=adamw",
                "weight_decay=0.01",
                "estimator=implicit",
                "method.protocol=toolkit",
            ],
            "implicit: AdamW's",
        ),
        (["pseudo_label_digits", "num_labels=3"], "num_labels: must be a positive multiple of 10"),
        (["pseudo_label_digits", "num_labels=100000"], "of at most 1040 (104 per class"),
        (["pseudo_label_digits", "val_size=100000"], "val_size: digits has 1297 training samples"),
        (["pseudo_label_digits", "val_size=0"], "val_size: training needs a validation set"),
        (["impute_v1_digits", "holdout=separate", "val_size=1"], "holdout: holdout=separate"),
        (
            ["pseudo_label_synthfaces", "label_fraction=0.002"],
            "label_fraction: 0.002 of the 1080 training faces of synthfaces is 2 labeled faces; "
            "the landmark targets are standardised with the labeled set's mean and std, which "
            "needs at least 10: set label_fraction >= 0.0088",
        ),
        (["pseudo_label_synthfaces", "label_fraction=1"], "label_fraction: every training sample"),
        (["metagrad_digits", "estimator.fd.r=-1"], "estimator.fd.r: estimator 'fd': option r must"),
        (["metagrad_digits", "estimator.implicit.iters=0"], "estimator.implicit.iters: estimator"),
        (
            ["fixmatch_digits", "estimator_options=3"],
            "model.<name>, estimator.<estimator>.<option>",
        ),
    ],
)
def test_setups_that_cannot_run_stop_before_the_run_directory(
    tmp_path, monkeypatch, capsys, args, message
):
    monkeypatch.setenv("RUNS_ROOT", str(tmp_path))
    assert main([*args, "--scale", "smoke", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert not any(tmp_path.iterdir())


def test_cuda_without_a_gpu_is_a_config_error():

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is visible")
    with pytest.raises(ConfigError, match="device=cuda but no CUDA device is visible"):
        apply_overrides(configs.get("fixmatch_digits"), ["device=cuda"])


@pytest.mark.parametrize(
    "args",
    [
        ["impute_v1_digits", "optimizer=adam", "lr=0.002", "method.protocol=authors"],
        ["metasemi_digits", "optimizer=adam", "lr=0.002"],  # an Adam virtual step
        ["metathreshold_digits", "optimizer=adamw", "lr=0.002", "estimator=forward"],
    ],
)
def test_adam_runs_with_meta_methods(tmp_path, monkeypatch, args):
    monkeypatch.setenv("RUNS_ROOT", str(tmp_path))
    assert main([*args, "--scale", "smoke", "--quiet"]) == 0


def test_garbage_config_json_and_unwritable_runs_root(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RUNS_ROOT", str(tmp_path / "runs"))
    run = tmp_path / "runs/mixup_digits+smoke/seed0"
    run.mkdir(parents=True)
    (run / "config.json").write_text("{not json")
    assert main(["mixup_digits", "--scale", "smoke", "--quiet"]) == 2
    assert f"{run / 'config.json'} is not a run's config" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("RUNS_ROOT", str(blocker))
    assert main(["mixup_digits", "--scale", "smoke", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(blocker) in err and "Traceback" not in err


def test_long_command_line_changes_get_a_short_directory_name(tmp_path, monkeypatch):
    from experiments.run import run_name

    long = ["method.threshold=0.9" + "0" * 300, "lr=0.05"]
    name = run_name("fixmatch_digits", long, "smoke")
    assert len(name.encode()) <= 255 and name.startswith("fixmatch_digits+changes-")
    assert name == run_name("fixmatch_digits", long[::-1], "smoke")  # order does not matter
    monkeypatch.setenv("RUNS_ROOT", str(tmp_path))
    assert main(["fixmatch_digits", *long, "--scale", "smoke", "--quiet", "steps=2"]) == 0


def test_ctrl_c_says_where_the_run_stopped_and_how_to_resume(tmp_path, monkeypatch, capsys):
    from methods.mixup import Mixup

    original = Mixup.train_step

    def ctrl_c_at_20(self, batch):
        if batch.step == 20:
            raise KeyboardInterrupt
        return original(self, batch)

    monkeypatch.setenv("RUNS_ROOT", str(tmp_path))
    monkeypatch.setattr(Mixup, "train_step", ctrl_c_at_20)
    assert main(["mixup_digits", "--scale", "smoke", "--quiet", "lr=0.04"]) == 130
    err = capsys.readouterr().err
    assert "interrupted at step 21" in err and "Traceback" not in err
    assert (
        '`make exp NAME=mixup_digits SEED=0 SCALE=smoke ARGS="lr=0.04"` resumes from step 15' in err
    )


def test_a_model_that_cannot_take_the_datasets_inputs_is_named():
    from dataclasses import replace

    from experiments import sources
    from experiments.build import _model

    cfg = replace(configs.get("fixmatch_digits"), model="tcdcn", model_kw={})
    src = sources.load("digits", size="smoke")
    with pytest.raises(
        ConfigError, match=r"model: tcdcn cannot take digits inputs of shape \(1, 8, 8\)"
    ):
        _model(cfg, src, torch.device("cpu"))


def test_estimator_options_of_every_type_parse_and_are_checked(cfg):
    out = apply_overrides(
        cfg, ["estimator.implicit.alpha=0.5", "estimator.fd.lookahead=false", "estimator.fd.r=0.1"]
    )
    assert out.estimator_options == {
        "implicit": {"alpha": 0.5},
        "fd": {"lookahead": False, "r": 0.1},
    }
    with pytest.raises(ConfigError, match=r"unknown key .estimator.fd.eps. .options of .fd.: r, l"):
        apply_overrides(cfg, ["estimator.fd.eps=0.1"])
    with pytest.raises(
        ConfigError, match=r"estimator.implicit.method: .* 'cg' or 'neumann', got 'lu'"
    ):
        apply_overrides(cfg, ["estimator.implicit.method=lu"])


def test_another_model_starts_from_its_own_arguments(cfg):
    assert cfg.model_kw == {"hidden": 128}
    assert apply_overrides(cfg, ["model=linear"]).model_kw == {}
    out = apply_overrides(cfg, ["model.dropout=0.1", "model=mlp"])  # same model: kept
    assert out.model_kw == {"hidden": 128, "dropout": 0.1}
    assert apply_overrides(cfg, ["model.width=8", "model=cnn13"]).model_kw == {"width": 8}


def test_each_gamma_is_checked_by_the_rule_declared_with_it():
    """`gamma` is the Beta shape of PL-Mixup's mixup in the method's Config and the step
    schedule's lr factor in the experiment's: each is checked where it is declared, not by name."""
    from dataclasses import dataclass

    from methods.base import PROBABILITY, check_config, hp

    metagrad = configs.get("metagrad_digits")
    with pytest.raises(ConfigError) as err:
        apply_overrides(metagrad, ["method.gamma=0"])
    assert str(err.value) == "method.gamma: must be > 0 (a Beta parameter), got 0.0"
    with pytest.raises(ConfigError) as err:
        apply_overrides(metagrad, ["gamma=0"])
    assert str(err.value) == "gamma: gamma (the step schedule's factor) must be > 0"
    assert apply_overrides(metagrad, ["gamma=2", "method.gamma=0.5"]).method_config().gamma == 0.5

    @dataclass
    class Decay:  # a `gamma` that is a probability, and a `beta` that declares no rule
        gamma: float = hp(0.5, PROBABILITY)
        beta: float = 0.0

    assert check_config(Decay(gamma=0.0, beta=-1.0)) == []
    assert check_config(Decay(gamma=2.0)) == [("gamma", "must be a probability in [0, 1], got 2.0")]


def test_every_method_hyperparameter_declares_what_it_must_be():
    """No rule by name covers a field a Config forgets: each non-bool field has its own."""
    from dataclasses import fields

    from methods import METHODS

    for name in METHODS:
        for f in fields(METHODS[name].Config):
            if f.type not in (bool, "bool"):
                assert f.metadata.get("rule") or f.metadata.get("choices"), f"{name}: {f.name}"


@pytest.mark.parametrize("key", ["optimizer", "schedule", "amp"])
def test_validate_offers_exactly_the_owners_choices(cfg, monkeypatch, key):
    """The optimizers and schedules are those `experiments.build` makes, the amp modes those
    `Method.autocast` implements: a name the owner adds is valid with no second list."""
    import re

    from experiments import build
    from methods import base

    owner = {"optimizer": build.OPTIMIZERS, "schedule": build.SCHEDULES, "amp": base.AMP}[key]
    with pytest.raises(ConfigError) as err:
        apply_overrides(cfg, [f"{key}=other"])
    listed = str(err.value).removeprefix(f"{key}: {key} must be ").split(" (")[0]
    assert re.split(r", | or ", listed) == list(owner)
    if key == "amp":
        monkeypatch.setattr(base, "AMP", (*base.AMP, "other"))
    else:
        monkeypatch.setitem(owner, "other", lambda *args: 0.25)
    assert getattr(apply_overrides(cfg, [f"{key}=other"]), key) == "other"
    if key == "schedule":  # and it is the schedule the run follows
        assert build.lr_factor(apply_overrides(cfg, ["schedule=other"]), 3) == 0.25
