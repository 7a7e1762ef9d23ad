"""Learning to Impute V2 on a Mean-Teacher base, synthetic faces, 1% labels, with the authors'
protocol (Regression/train-L2I-O.py: tanh inner loss, η_z = 1 on the mean hold-out loss) and a
1× virtual step instead of the script's 10×. Base: mean_teacher_synthfaces.

With 10× the run diverges within 50 steps here (also with the authors' batch of 128): ‖∂C^H/∂p‖
grows from 0.003 to 20 between steps 20 and 40, then NaN. Why: the two views are crops of one
image, so V2's step gradient η_z Jᵀg ≈ η_z α (2/N) Σ_i J_iᵀ D_i J_i ∇C^H (α the virtual lr, N = 10
outputs, D the tanh derivatives) is a Gauss-Newton-preconditioned step on the hold-out loss whose
rate grows with lr · α · η_z; at α = 10 × lr it is past the stability edge on these faces. With
α = 1 × lr (the authors' V1 value) the same trace trains (one spike at step 40 that recovers).
The AFLW experiments keep the authors' 10×."""

from ._base import SYNTHFACES, impute

CONFIG = impute(
    __name__, SYNTHFACES, "v2", "mt", protocol="authors", weight=1.0, inner_lr_scale=1.0
)
