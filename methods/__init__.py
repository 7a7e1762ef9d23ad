"""SSL methods, registered by name (unknown or duplicate names raise)."""

from .base import Batch, Method, Registry, Step, linear_ramp
from .ema_mixup import EmaMixup
from .fixmatch import FixMatch
from .impute import ImputeMT, ImputePL
from .mean_teacher import MeanTeacher
from .meta_gradient import MetaGradient
from .meta_pseudo_labels import MetaPseudoLabels
from .meta_semi import MetaSemi
from .meta_threshold import MetaThreshold
from .meta_weight import MetaWeight
from .mixmatch import MixMatch
from .mixup import Mixup
from .pl_mixup import PLMixup
from .pseudo_label import PseudoLabel
from .supervised import Supervised
from .task import LandmarkTask, Task

METHODS = Registry()
for _cls in (
    Supervised,
    PseudoLabel,
    MeanTeacher,
    Mixup,
    FixMatch,
    MixMatch,
    PLMixup,
    EmaMixup,  # baselines
    MetaGradient,
    MetaSemi,
    MetaThreshold,
    ImputePL,
    ImputeMT,
    MetaWeight,
    MetaPseudoLabels,  # meta-learning methods: each names its `base`
):
    METHODS.add(_cls)
for _name in METHODS:  # a meta method is its base plus a meta step
    _base = METHODS.base_of(_name)
    if _base is not None and not (
        issubclass(METHODS[_name], METHODS[_base])
        and issubclass(METHODS[_name].Config, METHODS[_base].Config)
    ):
        raise TypeError(f"method {_name!r} must subclass its base {_base!r} and its Config")

__all__ = ["METHODS", "Batch", "LandmarkTask", "Method", "Registry", "Step", "Task", "linear_ramp"]
