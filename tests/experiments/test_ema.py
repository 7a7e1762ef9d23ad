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


def _bn_model():
    torch.manual_seed(1)
    return torch.nn.Sequential(
        torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3), torch.nn.ReLU(), torch.nn.Linear(3, 2)
    )


def _train(model, ema, steps):
    """SGD on random batches (the student's BatchNorm statistics move), EMA after each step."""
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    g = torch.Generator().manual_seed(3)
    for _ in range(steps):
        x = torch.randn(16, 4, generator=g) * 3 + torch.tensor([1.0, -2.0, 0.5, 4.0])
        opt.zero_grad()
        model(x).square().mean().backward()
        opt.step()
        ema.update_parameters(model)


def test_the_ema_model_carries_the_students_batchnorm_statistics():
    """The EMA's eval-mode output equals a hand-built model: the averaged weights from the
    recursion θ_EMA ← d_t θ_EMA + (1 − d_t)θ, and the student's running statistics."""
    model = _bn_model()
    ema = EMA(model, 0.9)
    expected = None
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    g = torch.Generator().manual_seed(3)
    for t in range(30):
        x = torch.randn(16, 4, generator=g) * 3 + torch.tensor([1.0, -2.0, 0.5, 4.0])
        opt.zero_grad()
        model(x).square().mean().backward()
        opt.step()
        ema.update_parameters(model)
        now = {k: p.detach().clone() for k, p in model.named_parameters()}
        if expected is None:
            expected = now
        else:
            d = min(1 - 1 / (t + 1), 0.9)
            expected = {k: d * expected[k] + (1 - d) * now[k] for k in now}
    student_mean = model[1].running_mean.clone()
    assert student_mean.abs().max() > 0.1  # the statistics moved away from 0
    hand = copy.deepcopy(model).eval()
    with torch.no_grad():
        for k, p in hand.named_parameters():
            p.copy_(expected[k])
    x = torch.randn(8, 4, generator=g) * 3
    ema.module.eval()
    torch.testing.assert_close(ema.module(x), hand(x), rtol=1e-6, atol=1e-6)
    for ours, theirs in zip(ema.module.buffers(), model.buffers(), strict=True):
        assert torch.equal(ours, theirs)


def test_buffers_resume_with_the_checkpoint():
    """A run cut after 10 updates and resumed from the EMA's state_dict ends equal, buffers
    included, to 20 updates in one go."""
    whole, cut = _bn_model(), _bn_model()
    ema_whole, ema_cut = EMA(whole, 0.9), EMA(cut, 0.9)
    _train(whole, ema_whole, 10)
    _train(cut, ema_cut, 10)
    state = copy.deepcopy(ema_cut.state_dict())
    resumed = EMA(_bn_model(), 0.9)
    resumed.load_state_dict(state)
    assert torch.equal(resumed.module[1].running_var, cut[1].running_var)
    _train(whole, ema_whole, 5)
    _train(cut, resumed, 5)
    for a, b in zip(ema_whole.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)
