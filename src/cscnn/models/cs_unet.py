"""CS-U-Net: a multi-scale U-Net of Clifford-steerable residual blocks.

Down-sampling is average pooling and up-sampling nearest-neighbour repetition,
both per channel and blade. On grids whose sides are divisible by the pooling
factor they commute with every grid symmetry (axis permutations, reflections,
time reversal): a reflection maps pooling cells onto pooling cells. Strided
convolutions do not (their sample grid is not symmetric), so they are not used.
Channel changes between levels are :class:`~cscnn.nn.MVLinear` maps (pointwise,
O(p,q)-equivariant), so the whole network is as equivariant as the CS-ResNet.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..nn import CliffordModule, MVGate, MVLinear
from ..nn.checks import as_algebra, check_channels, check_mv_input
from ..nn.conv import kernel_bank
from ..nn.functional import PaddingMode, check_padding_mode
from .cs_resnet import CSResidualBlock, kernel_options, model_gate, pointwise_layer

__all__ = ["CSUNet", "avg_pool_fields", "upsample_fields"]


def avg_pool_fields(x: torch.Tensor, spatial_dims: int, factor: int = 2) -> torch.Tensor:
    """Average pooling of a multivector field over non-overlapping cells of ``factor**spatial_dims`` points.

    Works in any number of grid axes (by reshaping, so 4D grids are fine too).

    Shapes: ``x: (B, C, X_1..X_d, n_blades) -> (B, C, X_1/factor..X_d/factor, n_blades)``; every
    ``X_i`` must be divisible by ``factor``.
    """
    lead = x.ndim - 1 - spatial_dims
    sizes = x.shape[lead:-1]
    if any(s % factor for s in sizes):
        raise ValueError(f"average pooling by {factor} needs grid sides divisible by {factor}, got {tuple(sizes)}")
    shape = list(x.shape[:lead])
    for s in sizes:
        shape += [s // factor, factor]
    shape.append(x.shape[-1])
    cell_axes = tuple(lead + 2 * i + 1 for i in range(spatial_dims))
    return x.reshape(shape).mean(cell_axes)


def upsample_fields(x: torch.Tensor, spatial_dims: int, factor: int = 2) -> torch.Tensor:
    """Nearest-neighbour up-sampling of a multivector field: every point is repeated ``factor`` times per axis.

    Shapes: ``x: (B, C, X_1..X_d, n_blades) -> (B, C, factor*X_1..factor*X_d, n_blades)``.
    """
    lead = x.ndim - 1 - spatial_dims
    for ax in range(lead, lead + spatial_dims):
        x = x.repeat_interleave(factor, dim=ax)
    return x


def _per_level(value, n_levels: int, name: str) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value,) * n_levels
    if not isinstance(value, Sequence) or len(value) != n_levels or any(
        isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in value
    ):
        raise ValueError(f"{name} must be an int >= 0 or {n_levels} of them (one per level), got {value!r}")
    return tuple(value)


class CSUNet(CliffordModule):
    """U-Net of Clifford-steerable residual blocks with equivariant pooling and up-sampling.

    Layout: embedding (two 1x1 layers with gates, as the CS-ResNet); then for each level
    ``l`` (width ``hidden_channels * channel_mults[l]``) ``blocks[l]`` residual blocks
    (:class:`~cscnn.models.CSResidualBlock`), a skip connection and average pooling by 2 into
    the next level (an :class:`~cscnn.nn.MVLinear` adapts the width); on the way up, nearest
    up-sampling, concatenation with the skip, an MVLinear back to the level's width and
    ``blocks[l]`` residual blocks; finally two 1x1 layers (hidden -> hidden -> out).

    Args:
        alg: CliffordAlgebra or metric tuple (dims 1 to 4; grid axis d is e_d).
        in_channels, out_channels, hidden_channels: multivector channels.
        channel_mults: width multiplier per level; ``len(channel_mults)`` levels, so the grid is
            pooled ``len(channel_mults) - 1`` times and every side must be divisible by
            ``2 ** (len(channel_mults) - 1)``.
        blocks: residual blocks per level (int or one per level), used on the way down and up.
        kernel_size: odd kernel side; it and ``padding_mode``, ``norm``, ``activation``, ``kernel_num_layers``,
            ``kernel_hidden_channels``, ``kernel_activation``, ``pointwise``, ``kernel_head``, ``conditional``,
            ``condition_summary``, ``compat``, ``time_scale`` are as in :class:`~cscnn.models.CSResNet`
            (``padding_mode`` one for all axes or one per axis; pooling and up-sampling do not pad; pooling halves
            every axis, so ``time_scale`` is the same at every level).

    Shapes: ``x: (B, in_channels, X_1..X_dim, 2**dim) -> (B, out_channels, X_1..X_dim, 2**dim)``.
    """

    def __init__(self, alg, in_channels: int, out_channels: int, hidden_channels: int,
                 channel_mults: Sequence[int] = (1, 2, 2), blocks: int | Sequence[int] = 1, kernel_size: int = 5, *,
                 padding_mode: PaddingMode = "zeros", norm: bool = True, activation: str = "gelu",
                 kernel_num_layers: int = 4, kernel_hidden_channels: int = 12, kernel_activation: str | None = None,
                 pointwise: str = "kernel", kernel_head: str = "left", conditional: bool = False,
                 condition_summary: str = "channels", compat: str = "cscnn", time_scale: float = 1.0):
        super().__init__()
        self.alg = alg = as_algebra(alg)
        self.in_channels = check_channels(in_channels, "in_channels")
        self.out_channels = check_channels(out_channels, "out_channels")
        self.hidden_channels = h = check_channels(hidden_channels, "hidden_channels")
        if not isinstance(channel_mults, Sequence) or len(channel_mults) == 0 or any(
            isinstance(m, bool) or not isinstance(m, int) or m < 1 for m in channel_mults
        ):
            raise ValueError(f"channel_mults must be a non-empty sequence of positive ints, got {channel_mults!r}")
        self.channel_mults = tuple(channel_mults)
        n_levels = len(self.channel_mults)
        self.blocks = _per_level(blocks, n_levels, "blocks")
        self.kernel_size = kernel_size
        self.padding_mode = padding_mode = check_padding_mode(padding_mode, alg.dim)
        kk = kernel_options(kernel_num_layers, kernel_hidden_channels, kernel_activation, activation, kernel_head,
                            conditional, condition_summary, compat, time_scale)
        self.kernel_head, self.conditional, self.compat = kernel_head, conditional, compat
        self.time_scale = kk["time_scale"]
        activation = model_gate(activation, compat)
        widths = [h * m for m in self.channel_mults]

        self.pointwise = pointwise

        def conv1x1(c_in, c_out):
            return pointwise_layer(alg, c_in, c_out, pointwise, padding_mode, kk)

        def stage(width, n):
            return nn.Sequential(*[
                CSResidualBlock(alg, width, kernel_size, padding_mode, norm, activation, kk) for _ in range(n)
            ])

        self.embedding = nn.Sequential(conv1x1(in_channels, h), MVGate(alg, activation),
                                       conv1x1(h, h), MVGate(alg, activation))
        # down path: level 0 keeps ``h`` channels after the embedding
        self.down_proj = nn.ModuleList(
            [nn.Identity() if h == widths[0] else MVLinear(alg, h, widths[0], compat=compat)]
            + [MVLinear(alg, widths[i - 1], widths[i], compat=compat) if widths[i - 1] != widths[i] else nn.Identity()
               for i in range(1, n_levels)]
        )
        self.down = nn.ModuleList([stage(widths[i], self.blocks[i]) for i in range(n_levels)])
        # up path (levels n_levels-2 .. 0): merge [up-sampled coarse, skip] -> level width
        self.up_merge = nn.ModuleList(
            [MVLinear(alg, widths[i + 1] + widths[i], widths[i], compat=compat) for i in range(n_levels - 1)]
        )
        self.up = nn.ModuleList([stage(widths[i], self.blocks[i]) for i in range(n_levels - 1)])
        self.output = nn.Sequential(conv1x1(widths[0], h), MVGate(alg, activation), conv1x1(h, out_channels))

    @property
    def n_levels(self) -> int:
        return len(self.channel_mults)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_mv_input(x, self.alg, self.in_channels, type(self).__name__, spatial_dims=self.alg.dim)
        with kernel_bank(self):  # equal-shaped kernel networks in one batched call each
            return self._forward(x)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        factor = 2 ** (self.n_levels - 1)
        sizes = tuple(x.shape[2:-1])
        if any(s % factor for s in sizes):
            raise ValueError(f"CSUNet with {self.n_levels} levels needs grid sides divisible by {factor}, "
                             f"got {sizes}")
        d = self.alg.dim
        h = self.embedding(x)
        skips = []
        for level in range(self.n_levels):
            if level > 0:
                h = avg_pool_fields(h, d)
            h = self.down[level](self.down_proj[level](h))
            skips.append(h)
        for level in reversed(range(self.n_levels - 1)):
            h = upsample_fields(h, d)
            h = self.up_merge[level](torch.cat([h, skips[level]], dim=1))
            h = self.up[level](h)
        return self.output(h)

    def extra_repr(self) -> str:
        return (f"metric={self.alg.metric}, in={self.in_channels}, out={self.out_channels}, "
                f"hidden={self.hidden_channels}, channel_mults={self.channel_mults}, blocks={self.blocks}, "
                f"kernel_size={self.kernel_size}, pointwise={self.pointwise!r}, kernel_head={self.kernel_head!r}, "
                f"conditional={self.conditional}" + (f", compat={self.compat!r}" if self.compat != "cscnn" else "")
                + (f", time_scale={self.time_scale}" if self.time_scale != 1.0 else ""))
