"""Forward mode's one-time setup without torch's TorchScript deprecation warning."""

from __future__ import annotations

import functools
import warnings

import torch.autograd.forward_ad as fwAD


@functools.cache
def load_jvp_decompositions() -> None:
    """What torch's first forward-mode call (`make_dual`, `torch.func.jvp`) does, once, with one
    warning of torch's own silenced; call it before forward mode (`forward`, the
    forward-over-reverse Hessian-vector products of `implicit`/`nystrom`, Adam's D). It
    imports `torch._decomp.decompositions_for_jvp`, whose import compiles its decompositions
    with `torch.jit.script`, which torch 2.14 deprecates with a FutureWarning ("`torch.jit.script`
    is deprecated") raised from torch.jit._script. The toolkit calls no TorchScript; left alone,
    the warning lands in the first meta step's progress bar or a command's output. Other
    warnings pass."""
    load = getattr(fwAD, "_maybe_load_decompositions", None)  # absent: nothing to preload
    if load is None:
        return
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore",
            message=r"`torch\.jit\.script` is (deprecated|not supported)",
            category=FutureWarning,
            module=r"torch\.jit\._script",
        )
        load()
