"""A leaky, spongy shell from an SDF, the way SDS leaves a trained object: an outer shell with pinholes, and inside
it foam and a floating blob that no render shows."""
from __future__ import annotations

import torch

CENTRE = torch.tensor([0.05, -0.03, 0.02])
R_OUT, R_IN = 0.6, 0.5  # the shell between them; R_OUT is the true outer surface
HOLE_R = 0.025  # pinhole radius: 2.4 voxels wide at 96^3, narrower than the default seal (0.06 in a 2-wide box)
HOLE_DIRS = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, -1.0), (-1.0, -1.0, 1.0), (1.0, -1.0, -1.0))


def pinholes_sdf(p: torch.Tensor) -> torch.Tensor:
    """Distance to the union of rays from the centre along HOLE_DIRS, thickened to HOLE_R (p relative to CENTRE)."""
    out = None
    for d in HOLE_DIRS:
        d = torch.nn.functional.normalize(p.new_tensor(d), dim=0)
        along = p @ d
        perp = (p - along.clamp(min=0.0)[:, None] * d).norm(dim=-1) - HOLE_R
        out = perp if out is None else torch.minimum(out, perp)
    return out


def foam_sdf(p: torch.Tensor) -> torch.Tensor:
    """A thickened gyroid inside radius 0.4 plus a blob: internal structure, apart from the shell."""
    f = 14.0
    x, y, z = (f * p[:, i] for i in range(3))
    gyroid = (torch.sin(x) * torch.cos(y) + torch.sin(y) * torch.cos(z) + torch.sin(z) * torch.cos(x)).abs() / f
    sponge = torch.maximum(gyroid - 0.02, p.norm(dim=-1) - 0.4)
    blob = (p - p.new_tensor([0.2, 0.1, -0.1])).norm(dim=-1) - 0.07
    return torch.minimum(sponge, blob)


def leaky_sdf(x: torch.Tensor) -> torch.Tensor:
    """Shell R_IN..R_OUT with pinholes, foam inside; not an exact distance, but exact on the outer sphere."""
    p = x - CENTRE.to(x)
    r = p.norm(dim=-1)
    shell = torch.maximum(torch.maximum(r - R_OUT, R_IN - r), -pinholes_sdf(p))
    return torch.minimum(shell, foam_sdf(p))


def outer_distance(x: torch.Tensor) -> torch.Tensor:
    """Signed distance to the true outer surface, the sphere of radius R_OUT."""
    return (x - CENTRE.to(x)).norm(dim=-1) - R_OUT
