"""The networks of the papers, plus small ones for embedded data and closed-form checks.

cnn13     ConvLarge / CNN-13 (Meta-Gradient SSL Table 6): LeakyReLU 0.1, BatchNorm, dropout
wrn28     WRN-28-k (FixMatch/MixMatch style; k = 2 by default, 8 for CIFAR-100)
tcdcn     TCDCN as in the Learning-to-Impute authors' code (60×60 grayscale → 5 landmarks)
resnet18  torchvision's ResNet-18 with a 3×3 stem for 32×32 inputs
mlp       a small MLP;  linear: one nn.Linear (after Flatten), for the `analytic` estimator
"""

from __future__ import annotations

from collections.abc import Callable

import torch.nn.functional as F
import torchvision
from torch import Tensor, nn


def cnn13(
    num_classes: int = 10,
    in_channels: int = 3,
    width: int = 128,
    dropout: float = 0.5,
    bias: bool = False,
    channel_dropout: bool = True,
):
    """ConvLarge: 3×(3×3, w) → maxpool → drop → 3×(3×3, 2w) → maxpool → drop →
    3×3 4w (valid) → 1×1 2w → 1×1 w → global average pool → linear. `width` w = 128 in the paper.
    Every convolution is followed by BatchNorm and LeakyReLU(0.1). The defaults are the
    Meta-Gradient authors' `model.py`: convolutions without bias (BatchNorm's shift takes its
    place) and `Dropout2d` (whole channels) after both max-pools; `bias=true` and
    `channel_dropout=false` give the biased convolutions and elementwise dropout of other
    ConvLarge implementations."""
    w = width
    drop = nn.Dropout2d if channel_dropout else nn.Dropout

    def conv_bn(c_in: int, c_out: int, k: int, padding: int) -> list[nn.Module]:
        conv = nn.Conv2d(c_in, c_out, k, padding=padding, bias=bias)
        return [conv, nn.BatchNorm2d(c_out), nn.LeakyReLU(0.1)]

    layers = [
        *conv_bn(in_channels, w, 3, 1),
        *conv_bn(w, w, 3, 1),
        *conv_bn(w, w, 3, 1),
        nn.MaxPool2d(2),
        drop(dropout),
        *conv_bn(w, 2 * w, 3, 1),
        *conv_bn(2 * w, 2 * w, 3, 1),
        *conv_bn(2 * w, 2 * w, 3, 1),
        nn.MaxPool2d(2),
        drop(dropout),
        *conv_bn(2 * w, 4 * w, 3, 0),
        *conv_bn(4 * w, 2 * w, 1, 0),
        *conv_bn(2 * w, w, 1, 0),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(w, num_classes),
    ]
    return nn.Sequential(*layers)


class _WideBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, activate_before_residual: bool):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in, momentum=0.001)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out, momentum=0.001)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.shortcut = None if c_in == c_out else nn.Conv2d(c_in, c_out, 1, stride, bias=False)
        self.activate_before_residual = activate_before_residual

    def forward(self, x: Tensor) -> Tensor:
        out = F.leaky_relu(self.bn1(x), 0.1)
        if self.shortcut is not None and self.activate_before_residual:
            x = out
        out = self.conv2(F.leaky_relu(self.bn2(self.conv1(out)), 0.1))
        return out + (x if self.shortcut is None else self.shortcut(x))


def wrn28(num_classes: int = 10, widen: int = 2, in_channels: int = 3) -> nn.Module:
    """WRN-28-k: 3 groups of 4 pre-activation blocks, widths 16k, 32k, 64k."""
    widths = [16, 16 * widen, 32 * widen, 64 * widen]
    layers: list[nn.Module] = [nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)]
    for g, stride in enumerate((1, 2, 2)):
        for i in range(4):
            c_in = widths[g] if i == 0 else widths[g + 1]
            layers.append(
                _WideBlock(c_in, widths[g + 1], stride if i == 0 else 1, g == 0 and i == 0)
            )
    layers += [
        nn.BatchNorm2d(widths[3], momentum=0.001),
        nn.LeakyReLU(0.1),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(widths[3], num_classes),
    ]
    return nn.Sequential(*layers)


def tcdcn(num_outputs: int = 10) -> nn.Module:
    """TCDCN (authors' code): conv5×5→20, pool, conv5×5→48, pool, conv3×3→64, pool, conv3×3→80,
    hardtanh after each conv, no padding, no BatchNorm; 720 → 256 (no activation) → 10.
    Output order interleaved (x1, y1, …, x5, y5)."""
    return nn.Sequential(
        nn.Conv2d(1, 20, 5),
        nn.Hardtanh(),
        nn.MaxPool2d(2),
        nn.Conv2d(20, 48, 5),
        nn.Hardtanh(),
        nn.MaxPool2d(2),
        nn.Conv2d(48, 64, 3),
        nn.Hardtanh(),
        nn.MaxPool2d(2),
        nn.Conv2d(64, 80, 3),
        nn.Hardtanh(),
        nn.Flatten(),
        nn.Linear(80 * 3 * 3, 256),
        nn.Linear(256, num_outputs),
    )


def resnet18(num_classes: int = 10, in_channels: int = 3, stem: str = "cifar") -> nn.Module:
    """torchvision ResNet-18 (random init); `stem="cifar"`: 3×3 conv, no max-pool (32×32
    inputs), `stem="imagenet"`: torchvision's own 7×7 stride-2 conv and max-pool."""
    if stem not in ("cifar", "imagenet"):
        raise ValueError(f"resnet18: stem must be cifar or imagenet, not {stem!r}")
    net = torchvision.models.resnet18(weights=None, num_classes=num_classes)
    if stem == "cifar":
        net.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
        net.maxpool = nn.Identity()
    elif in_channels != 3:
        net.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
    return net


_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "softplus": nn.Softplus}


def mlp(
    in_features: int,
    num_outputs: int,
    hidden: int = 128,
    dropout: float = 0.0,
    activation: str = "relu",
    batchnorm: bool = False,
) -> nn.Module:
    """Two hidden layers; `activation` relu, or tanh/softplus where a smooth model is needed
    (the Hessian-based checks of analysis.metagrad_theory); `batchnorm`: BatchNorm1d after each
    hidden linear layer (a CPU-sized model with batch statistics)."""
    if activation not in _ACTIVATIONS:
        raise ValueError(
            f"mlp: activation must be one of {sorted(_ACTIVATIONS)}, not {activation!r}"
        )
    act = _ACTIVATIONS[activation]

    def norm() -> list[nn.Module]:
        return [nn.BatchNorm1d(hidden)] if batchnorm else []

    layers: list[nn.Module] = [nn.Flatten(), nn.Linear(in_features, hidden), *norm(), act()]
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers += [nn.Linear(hidden, hidden), *norm(), act()]
    return nn.Sequential(*layers, nn.Linear(hidden, num_outputs))


def linear(in_features: int, num_outputs: int) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(in_features, num_outputs))


def _size(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


# Model arguments checked by name before a model is built (`check_args`); the models check
# their choices (`activation`, `stem`) themselves.
ARG_RULES: dict[str, tuple[Callable[[object], bool], str]] = {
    **{
        k: (_size, "an integer >= 1")
        for k in ("width", "widen", "hidden", "num_classes", "num_outputs", "in_channels")
    },
    "in_features": (_size, "an integer >= 1"),
    "dropout": (
        lambda v: isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v < 1,
        "a probability in [0, 1)",
    ),
    **{
        k: (lambda v: isinstance(v, bool), "true or false")
        for k in ("batchnorm", "bias", "channel_dropout")
    },
}


def check_args(kw: dict[str, object]) -> list[tuple[str, str]]:
    """(argument, what it must be) for each model argument in `kw` out of its range."""
    return [
        (k, f"must be {ARG_RULES[k][1]}, got {v!r}")
        for k, v in kw.items()
        if k in ARG_RULES and not ARG_RULES[k][0](v)
    ]


MODELS: dict[str, Callable[..., nn.Module]] = {
    "cnn13": cnn13,
    "wrn28": wrn28,
    "tcdcn": tcdcn,
    "resnet18": resnet18,
    "mlp": mlp,
    "linear": linear,
}
