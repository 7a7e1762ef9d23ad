"""experiments/build.py: the learning-rate schedules against their formulas."""

from __future__ import annotations

import math

import pytest

from experiments import configs
from experiments.build import lr_factor
from experiments.config import apply_overrides


def test_cosine_annealing_is_warm_up_then_half_cosine_to_zero():
    """The Meta-Gradient authors' ImageNet schedule (CosAnnealingLR): linear warm-up over W
    steps, then ½(1 + cos(π(t − W)/(T − W)))."""
    cfg = apply_overrides(
        configs.get("metagrad_imagenet"), ["steps=1000", "warmup=0.1", "schedule=cosine_annealing"]
    )
    assert lr_factor(cfg, 0) == pytest.approx(1 / 100)
    assert lr_factor(cfg, 49) == pytest.approx(50 / 100)
    for t in (100, 250, 550, 999):
        assert lr_factor(cfg, t) == pytest.approx(0.5 * (1 + math.cos(math.pi * (t - 100) / 900)))
    assert lr_factor(cfg, 100) == pytest.approx(1.0) and lr_factor(cfg, 999) < 1e-4


def test_fixmatch_cosine_and_step_schedules():
    cfg = apply_overrides(configs.get("fixmatch_digits"), ["steps=1600", "warmup=0"])
    assert lr_factor(cfg, 800) == pytest.approx(math.cos(7 * math.pi * 800 / (16 * 1600)))
    step = apply_overrides(
        configs.get("supervised_digits"),
        ["steps=100", "warmup=0", "schedule=step", "milestones=0.5,0.75", "gamma=0.1"],
    )
    assert [lr_factor(step, t) for t in (49, 50, 75)] == pytest.approx([1.0, 0.1, 0.01])


def test_lr_factor_follows_the_authors_warm_up_and_milestones():
    """metagrad_cifar10 as the authors' train_meta.py: lr·t/4000 for t < 4000 (0 at step 0),
    lr × 0.1 for steps > 300,000 and × 0.01 for steps > 350,000; the AFLW experiments' drop from
    step 14,850 ((epoch + 1) % 100 at 150 iterations an epoch)."""
    cfg = configs.get("metagrad_cifar10")
    assert [lr_factor(cfg, t) for t in (0, 1, 2000, 3999, 4000)] == pytest.approx(
        [0.0, 1 / 4000, 0.5, 3999 / 4000, 1.0]
    )
    factors = [lr_factor(cfg, t) for t in (300_000, 300_001, 350_000, 350_001, 399_999)]
    assert factors == pytest.approx([1.0, 0.1, 0.1, 0.01, 0.01])
    aflw = configs.get("impute_v2_aflw")
    assert [lr_factor(aflw, t) for t in (14_849, 14_850, 22_499)] == pytest.approx([1, 0.1, 0.1])
    offset = apply_overrides(cfg, ["warmup_offset=1"])  # the toolkit's (t + 1)/T_w
    assert lr_factor(offset, 0) == pytest.approx(1 / 4000)
