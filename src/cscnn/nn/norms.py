"""Equivariant normalisations: GradeNorm and MVLayerNorm."""

from __future__ import annotations

import torch
from torch import nn

from ._checks import as_algebra, channel_view, check_channels, check_mv_input


class GradeNorm(nn.Module):
    """Divide each grade by ``sigmoid(s_k) (|x^(k)| - 1) + 1``, ``s`` learnable per channel and grade.

    ``s`` starts at 0 (half-way between identity and full normalisation). The
    divisor is always >= 1 - sigmoid(s) > 0, and the grade norms are O(p,q)-
    invariant, so the layer is equivariant.

    Shapes: ``x: (B, channels, *spatial, 2**dim) -> same``.
    """

    def __init__(self, alg, channels: int, eps: float = 1e-12):
        super().__init__()
        self.alg = as_algebra(alg)
        self.channels = check_channels(channels, "channels")
        self.eps = eps
        self.s = nn.Parameter(torch.zeros(channels, self.alg.n_grades))
        self.register_buffer("grade_onehot", self.alg.grade_onehot().to(torch.get_default_dtype()), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_mv_input(x, self.alg, self.channels, "GradeNorm", like=self.s)
        norms = self.alg.grade_norms(x, self.eps)  # (B, C, *, G)
        gate = channel_view(torch.sigmoid(self.s), x)
        divisor = gate * (norms - 1) + 1
        return x / (divisor @ self.grade_onehot)


class MVLayerNorm(nn.Module):
    """Divide by the mean over channels of the invariant multivector norm.

    ``y = a_c x / (mean_c |x_c| + eps)`` per location, with ``|x| =
    sqrt(sum_k |qbar(x^(k))|)`` and ``a`` a learnable per-channel scale.

    Shapes: ``x: (B, channels, *spatial, 2**dim) -> same``.
    """

    def __init__(self, alg, channels: int, eps: float = 1e-6, affine: bool = True):
        super().__init__()
        self.alg = as_algebra(alg)
        self.channels = check_channels(channels, "channels")
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels)) if affine else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_mv_input(x, self.alg, self.channels, "MVLayerNorm", like=self.weight)
        norm = self.alg.norm(x).mean(1, keepdim=True)  # (B, 1, *spatial)
        scale = 1 / (norm + self.eps)
        if self.weight is not None:  # fold the per-channel scale in before touching x: (B, C, *spatial)
            scale = scale * channel_view(self.weight, x)  # (C, 1.., 1) against (B, C, *spatial)
        return x * scale.unsqueeze(-1)  # one pass over x, in x's memory order
