"""experiments/ledger.py: every named paper-scale experiment equals the settings its paper and
the authors' code state (docs/settings/*.toml) except where a departure is marked and explained;
docs/paper_settings.md is current; the checker catches a difference, a stale departure, a
behaviour held by no test and an experiment the ledger omits."""

from __future__ import annotations

from dataclasses import replace

import pytest

from experiments import ledger
from experiments.configs import get
from experiments.ledger import Paper, Setting, check, render, resolve


def test_every_named_experiment_holds_to_the_ledger():
    assert check() == []


def test_the_settings_page_is_current():
    assert ledger.PAGE.read_text() == render(), "run `make ledger`"


def _paper(*settings):
    return Paper("test", "A paper", "", tuple(settings))


def _lr(paper=0.1, **kw):
    return Setting("test", ("metagrad_cifar10",), "lr", "Sec. 1", paper, **kw)


def test_a_difference_a_stale_departure_and_an_omission_are_each_named():
    everything = ledger.load()
    assert not [p for p in check([*everything, _paper(_lr())]) if "test.toml" in p]
    (wrong,) = [p for p in check([*everything, _paper(_lr(0.2))]) if "test.toml" in p]
    assert "metagrad_cifar10 has lr=0.1, the paper 0.2" in wrong
    (stale,) = [p for p in check([*everything, _paper(_lr(departure="x"))]) if "test.toml" in p]
    assert "remove the departure" in stale
    behaviour = Setting("test", ("metagrad_cifar10",), "", "s", statement="b", held_by="x")
    bare = Setting("test", ("metagrad_cifar10",), "", "s", statement="b")
    (unsaid,) = [p for p in check([*everything, _paper(bare)]) if "test.toml" in p]
    assert "needs held_by" in unsaid
    (unheld,) = [p for p in check([*everything, _paper(behaviour)]) if "test.toml" in p]
    assert "held_by names no test" in unheld
    without = [
        replace(p, settings=tuple(s for s in p.settings if "metagrad_svhn" not in s.experiments))
        for p in everything
    ]
    assert "metagrad_svhn: a paper-scale experiment that no ledger group lists" in check(without)


def test_keys_resolve_with_defaults_filled_in():
    cfg = get("metagrad_cifar10")
    assert resolve(cfg, "lr") == cfg.lr
    assert resolve(cfg, "method.protocol") == "authors"  # a method default
    assert resolve(cfg, "model.width") == 128  # a model default
    assert resolve(cfg, "estimator.fd.r") == 0.01
    with pytest.raises(ledger.ConfigError, match="no hyperparameter 'nope'"):
        resolve(cfg, "method.nope")
