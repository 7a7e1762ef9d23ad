"""experiments/ema.py: the EMA teacher equals AveragedModel with the per-parameter decay
function bit for bit, reads no device value after its first update, and resumes its counter from
a checkpoint."""

from __future__ import annotations

import copy

import torch
from torch.optim.swa_utils import AveragedModel

from experiments.ema import EMA
from methods.base import ema_decay


def _reference(model, decay):
    def avg(avg_p, p, n):
        d = ema_decay(int(n), decay)
        return d * avg_p + (1.0 - d) * p

    return AveragedModel(model, avg_fn=avg)


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 2))


def _drift(model, step):
    g = torch.Generator().manual_seed(step)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.1)


def test_equal_to_the_per_parameter_update_bit_for_bit():
    model = _model()
    ours, ref = EMA(model, 0.99), _reference(model, 0.99)
    for step in range(12):
        _drift(model, step)
        ours.update_parameters(model)
        ref.update_parameters(model)
        for a, b in zip(ours.module.parameters(), ref.module.parameters(), strict=True):
            assert torch.equal(a, b), step
    assert int(ours.n_averaged) == int(ref.n_averaged) == 12


def test_no_device_value_is_read_after_the_first_update(monkeypatch):
    model = _model()
    ema = EMA(model, 0.9)
    ema.update_parameters(model)
    reads = []
    for name in ("__int__", "__bool__", "__float__", "item", "tolist", "cpu"):
        original = getattr(torch.Tensor, name)

        def spy(self, *args, _name=name, _original=original, **kwargs):
            reads.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, spy)
    for step in range(3):
        _drift(model, step)
        ema.update_parameters(model)
    monkeypatch.undo()
    assert reads == []
    assert int(ema.n_averaged) == 4


def test_a_loaded_state_continues_its_counter():
    model = _model()
    ema = EMA(model, 0.99)
    for step in range(5):
        _drift(model, step)
        ema.update_parameters(model)
    state = copy.deepcopy(ema.state_dict())
    fresh = EMA(_model(), 0.99)
    fresh.update_parameters(model)  # its own counter: 1
    fresh.load_state_dict(state)
    ref = _reference(_model(), 0.99)
    ref.load_state_dict(state)
    _drift(model, 99)
    fresh.update_parameters(model)
    ref.update_parameters(model)  # d_5, not d_1
    for a, b in zip(fresh.module.parameters(), ref.module.parameters(), strict=True):
        assert torch.equal(a, b)
