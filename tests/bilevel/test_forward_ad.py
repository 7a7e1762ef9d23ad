"""Forward mode's first use in a process prints no torch warning: torch 2.14 scripts its jvp
decompositions with the deprecated `torch.jit.script` on the first forward-mode call, which
`load_jvp_decompositions` does with that one FutureWarning silenced. Each entry point that
reaches forward mode first is run in a fresh process with FutureWarning as an error."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROBLEM = """
import dataclasses, torch
from torch import nn
from bilevel import hypergradient
from bilevel.examples import BUILDERS, Batch
torch.manual_seed(0)
model = nn.Linear(4, 3)
x = lambda n: torch.randn(n, 4)
y = lambda n: torch.randint(0, 3, (n,))
problem, hp = BUILDERS["b_sample_weights"](model, Batch(x(5), y(5), x(6), x(5), y(5)))
"""
FIRST_CALLS = {
    "forward": 'hypergradient(problem, hp, "forward")',
    "implicit": 'hypergradient(problem, hp, "implicit")',
    "nystrom": 'hypergradient(problem, hp, "nystrom")',
    "fd with Adam's D": 'hypergradient(dataclasses.replace(problem, optimizer="adam"), hp, "fd")',
    "Theorem 1's Hessian norm": (
        "from analysis.metagrad_theory import hessian_norm\n"
        "hessian_norm(lambda p: (p['w'] ** 4).sum(), {'w': torch.ones(3)}, iters=2)"
    ),
}


@pytest.mark.parametrize("call", FIRST_CALLS.values(), ids=list(FIRST_CALLS))
def test_the_first_forward_mode_call_warns_nothing(call):
    code = textwrap.dedent(PROBLEM) + call + "\nprint('done')\n"
    done = subprocess.run(
        [sys.executable, "-W", "error::FutureWarning", "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0 and done.stdout == "done\n", done.stderr
