"""Mean Teacher (Tarvainen & Valpola, 2017), the base of Learning to Impute's MT variants.

    L = L_sup(x, y) + λ(t) · C(f_θ(u''), T(f_EMA(u')))

The teacher is the EMA of the student's weights (kept by the loop); C is the squared error of
softmax outputs summed over classes (classes) or the mean squared error of standardised
landmarks, averaged over samples, the teacher's landmarks moved into the student view's frame
(T). λ(t) ramps linearly to `weight` over the first `ramp`. It shares Pseudo-Label's loss with
`soft` targets; only the imputing network ψ differs (the teacher instead of the model).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import FRACTION, NON_NEGATIVE, hp
from .pseudo_label import PseudoLabel


@dataclass
class MeanTeacherConfig:
    weight: float = hp(1.0, NON_NEGATIVE)
    ramp: float = hp(0.4, FRACTION)


class MeanTeacher(PseudoLabel):
    name = "mean_teacher"
    Config = MeanTeacherConfig
    needs_teacher = True

    def hard(self) -> bool:
        return False

    def imputer(self) -> torch.nn.Module:
        return self.teacher
