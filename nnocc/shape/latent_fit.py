"""Test-time fitting of shape codes to labelled points: T steps of Adam written out in tensors, so
that with ``differentiable=True`` the fitted code (and whatever is decoded from it) stays a function
of the points' positions (the learned sampler trains through the T unrolled steps, seed 004)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from nnocc.shape.network import ShapeDecoder, occupancy_loss


@dataclass(frozen=True)
class LatentFit:
    """The public code's settings: Adam at 1e-2 from N(0, 1e-4^2) codes, an L2 prior of 1e-4 ramped
    in over the first 100 steps; T = 100 is seed 004's 'high quality' (33 and 66 its low and medium)."""
    steps: int = 100
    learning_rate: float = 1e-2
    init_std: float = 1e-4
    prior: float = 1e-4
    prior_ramp_steps: int = 100
    betas: tuple = (0.9, 0.999)
    eps: float = 1e-8
    points_per_step: Optional[int] = None     # a fresh random subset of the points each step (None: all)


def fit_latents(decoder: ShapeDecoder, positions_mm: torch.Tensor, targets: torch.Tensor,
                weights: Optional[torch.Tensor] = None, fit: LatentFit = LatentFit(), differentiable: bool = False,
                generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Codes (S, D) fitted to the labelled points of S shapes: positions (S, M, 3), targets (S, M) in {0, 1},
    weights (S, M) (0 for padding).  The decoder's weights stay as they are."""
    s = positions_mm.shape[0]
    weights = torch.ones_like(targets) if weights is None else weights
    z = torch.randn(s, decoder.latent_dim, generator=generator, device=positions_mm.device) * fit.init_std
    z.requires_grad_(True)
    m, v = torch.zeros_like(z), torch.zeros_like(z)
    b1, b2 = fit.betas
    for t in range(1, fit.steps + 1):
        ramp = min(1.0, t / max(fit.prior_ramp_steps, 1))
        chosen = _step_points(positions_mm.shape[1], fit.points_per_step, generator, positions_mm.device)
        loss = occupancy_loss(decoder(z, positions_mm[:, chosen]), targets[:, chosen], weights[:, chosen]).sum() \
            + fit.prior * ramp * (z * z).sum()
        (grad,) = torch.autograd.grad(loss, z, create_graph=differentiable)
        m = b1 * m + (1 - b1) * grad
        v = b2 * v + (1 - b2) * grad * grad
        step = fit.learning_rate * (m / (1 - b1 ** t)) / ((v / (1 - b2 ** t)).sqrt() + fit.eps)
        z = z - step
        if not differentiable:
            z, m, v = z.detach().requires_grad_(True), m.detach(), v.detach()
    return z if differentiable else z.detach()


def _step_points(count: int, per_step: Optional[int], generator: Optional[torch.Generator], device) -> slice | torch.Tensor:
    """Every point, or a random subset: a minibatch of the labelled voxels keeps a step's cost bounded
    when the cubes hold tens of thousands (12 cubes of 13^3), the way a CPU run affords T = 100."""
    if per_step is None or per_step >= count:
        return slice(None)
    return torch.randperm(count, generator=generator)[:per_step].to(device)
