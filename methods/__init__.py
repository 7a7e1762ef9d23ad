"""SSL methods, registered by name (unknown or duplicate names raise)."""

from .base import Batch, Method, Registry, linear_ramp
from .fixmatch import FixMatch
from .impute import Impute
from .mean_teacher import MeanTeacher
from .meta_gradient import MetaGradient
from .meta_semi import MetaSemi
from .meta_threshold import MetaThreshold
from .mixmatch import MixMatch
from .mixup import Mixup
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
    MixMatch,  # baselines
    MetaGradient,
    MetaSemi,
    MetaThreshold,
    Impute,  # meta-learning methods
):
    METHODS.add(_cls)

__all__ = ["METHODS", "Batch", "LandmarkTask", "Method", "Registry", "Task", "linear_ramp"]
