"""Mean Teacher (Tarvainen & Valpola, 2017), the base of Learning to Impute's MT variants.

    L = L_sup(x, y) + λ(t) · C(f_θ(u''), T(f_EMA(u')))

The teacher is the EMA of the student's weights (kept by the loop); C is the mean squared
error of softmax outputs (classes) or of standardised landmarks, the teacher's landmarks moved
into the student view's frame (T). λ(t) ramps linearly to `weight` over the first `ramp`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import Batch, Method, linear_ramp


@dataclass
class MeanTeacherConfig:
    weight: float = 1.0
    ramp: float = 0.4


class MeanTeacher(Method):
    name = "mean_teacher"
    Config = MeanTeacherConfig
    views = ("weak", "weak")
    needs_teacher = True

    @torch.no_grad()
    def teacher_targets(self, batch: Batch):
        pred = self.task.prediction(self.teacher(batch.u[0]))
        return batch.to_second_view(self.task, pred)

    def loss(self, batch: Batch):
        target = self.teacher_targets(batch)
        sup = self.task.supervised(self.model(batch.x), batch.y)
        cons = self.task.consistency(self.model(batch.u[1]), target)
        weight = self.cfg.weight * linear_ramp(batch.progress, self.cfg.ramp)
        return sup + weight * cons, {"sup": sup.item(), "unsup": cons.item()}
