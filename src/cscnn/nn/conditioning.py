"""The conditioning summary of conditional Clifford-steerable kernels (Szarvas & Zhdanov, arXiv:2510.14007).

Per sample and input channel, the mean multivector of the input field over the disk (2D) / ball
(3D) / ellipsoid inscribed in the grid. Every grid symmetry (axis reflections, permutations of axes
of equal size) maps that region onto itself, so for a grid symmetry g the summary of the
transformed field ``rho(g) f(g^-1 x)`` is ``rho(g) c``: the condition transforms like a multivector
and the conditional kernel stays exactly equivariant on the grid.
"""

from __future__ import annotations

import torch

from .checks import as_algebra, check_channels
from .module import CliffordModule, float32_statistics
from .norms import MVLayerNorm

__all__ = ["SUMMARY_MODES", "ConditioningSummary", "inscribed_mask"]

#: ``"channels"``: one condition multivector per input channel (the paper's 2D/3D setting);
#: ``"normalized"``: one per input channel, then MVLayerNorm over the channels (scale-free condition);
#: ``"averaged"``: the channel mean, then MVLayerNorm (the authors' spacetime setting).
SUMMARY_MODES = ("channels", "normalized", "averaged")


def inscribed_mask(sizes, dtype=torch.float64, device=None) -> torch.Tensor:
    """Weights (X_1..X_d) of the mean over the ellipsoid inscribed in a grid of ``sizes`` points.

    A point with index ``i`` is inside when ``sum_d ((i_d - (X_d - 1)/2) / (X_d / 2))^2 <= 1`` (the
    disk or ball for square grids); the weights are 1/count inside and 0 outside, so they sum to 1.
    The centre point is always inside, and index reflections ``i -> X - 1 - i`` (and swaps of axes
    of equal size) leave the weights unchanged."""
    r2 = torch.zeros((), dtype=torch.float64)
    for d, x in enumerate(sizes):
        t = ((torch.arange(x, dtype=torch.float64) - (x - 1) / 2) / (x / 2)) ** 2
        r2 = r2.unsqueeze(-1) + t.reshape(*([1] * d), x)
    inside = (r2 <= 1 + 1e-12).to(torch.float64)
    return (inside / inside.sum()).to(dtype=dtype, device=device)


class ConditioningSummary(CliffordModule):
    """Condition multivectors of a field: masked mean over the inscribed disk/ball.

    Args:
        alg: CliffordAlgebra or metric tuple.
        channels: input channels of the field.
        mode: ``"channels"`` (one condition per channel, raw: the paper's 2D/3D setting),
            ``"normalized"`` (one per channel, divided by their mean invariant norm by
            :class:`~cscnn.nn.MVLayerNorm`, so the kernel sees the condition at unit scale whatever
            the size of the layer's input) or ``"averaged"`` (mean over channels,
            then :class:`~cscnn.nn.MVLayerNorm`, an O(p,q)-invariant rescaling; the spacetime
            setting of Szarvas & Zhdanov, whose code uses it to keep training from producing NaN).
        eps: the MVLayerNorm epsilon (modes ``"normalized"``, ``"averaged"``).
        device, dtype: of the MVLayerNorm scale, as torch.nn.

    ``out_channels`` is ``channels`` or 1.

    Shapes: ``x: (B, channels, X_1..X_d, 2**dim) -> (B, out_channels, 2**dim)``.
    """

    def __init__(self, alg, channels: int, mode: str = "channels", eps: float = 1e-6, device=None, dtype=None):
        super().__init__()
        self.alg = as_algebra(alg)
        self.channels = check_channels(channels, "channels")
        if mode not in SUMMARY_MODES:
            raise ValueError(f"summary mode must be one of {SUMMARY_MODES}, got {mode!r}")
        self.mode = mode
        self.out_channels = 1 if mode == "averaged" else channels
        self.norm = None if mode == "channels" else MVLayerNorm(self.alg, self.out_channels, eps=eps, device=device,
                                                                 dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nd = x.ndim - 3
        ctx, xs = float32_statistics(x)  # half-precision inputs are averaged in float32
        with ctx:
            w = inscribed_mask(tuple(x.shape[2:-1]), xs.dtype, x.device)  # (X_1..X_d)
            c = torch.tensordot(xs.movedim(-1, 2), w, dims=nd)  # (B, C, n)
            if self.mode == "averaged":
                c = c.mean(1, keepdim=True)
            if self.norm is not None:
                c = self.norm(c)
        return c

    def extra_repr(self) -> str:
        return f"{self.channels}, mode={self.mode!r}"
