"""The EMA teacher: `torch.optim.swa_utils.AveragedModel` with Mean Teacher's decay schedule,
updated without a host synchronisation, carrying the student's BatchNorm statistics.

    θ_EMA ← d_t θ_EMA + (1 − d_t) θ,    d_t = min(1 − 1/(t+1), d)    (t: updates so far)
    b_EMA ← b                            every buffer (BatchNorm running mean and variance,
                                         num_batches_tracked) copied from the student

Buffers are copied, not averaged, as the reference FixMatch/MixMatch implementations and the
Learning-to-Impute authors' classification scripts do (docs/paper_settings.md): the EMA model is
evaluated in eval mode, and with buffers left at their initial values (mean 0, variance 1) its
BatchNorm layers would normalise with the identity. The statistics the student's own forward
passes estimated are the best estimate available without extra passes; averaging them as well
(`AveragedModel(use_buffers=True)`) would lag behind the weights they normalise. The teacher's
training-time predictions (`Method.predict`) use batch statistics and never read these buffers.

`AveragedModel` with a per-parameter `avg_fn` reads its device counter twice per update and
`int(n)` once per parameter tensor (≈ 80 round trips a step for WRN-28-2). Here t is kept on the
host (read from the counter once, after construction or loading a checkpoint) and the update is
three foreach operations with the same elementwise arithmetic (d·avg, (1 − d)·θ, their sum), so
the parameters are bit-identical to the per-parameter version (tested).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from methods.base import ema_decay


class EMA(AveragedModel):
    def __init__(self, model: nn.Module, decay: float) -> None:
        super().__init__(model)
        self.decay = decay
        self.updates: int | None = None  # t on the host; None: read `n_averaged` once

    def update_parameters(self, model: nn.Module) -> None:
        if self.updates is None:
            self.updates = int(self.n_averaged)
        averaged = [p.detach() for p in self.module.parameters()]
        current = [
            p.detach().to(a.device) for p, a in zip(model.parameters(), averaged, strict=True)
        ]
        if self.updates == 0:
            torch._foreach_copy_(averaged, current)
        else:
            d = ema_decay(self.updates, self.decay)
            mixed = torch._foreach_add(
                torch._foreach_mul(averaged, d), torch._foreach_mul(current, 1.0 - d)
            )
            torch._foreach_copy_(averaged, mixed)
        buffers = list(self.module.buffers())
        if buffers:
            torch._foreach_copy_(buffers, list(model.buffers()))
        self.n_averaged += 1
        self.updates += 1

    def load_state_dict(self, state: dict[str, Any], *args, **kwargs):
        self.updates = None  # the loaded counter is read at the next update
        return super().load_state_dict(state, *args, **kwargs)
