"""Clifford ResNet baseline (Brandstetter et al. 2023) built from ``cliffordlayers`` convolutions."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ...nn.checks import as_algebra, check_channels, check_kernel_size
from ...nn.functional import PaddingMode, check_padding_mode, pad_nd
from ..cs_resnet import check_blocks
from .adapters import check_field, require
from .resnet import make_activation

__all__ = ["CliffordResNet"]


def _clifford_modules(dim: int):
    conv = require("cliffordlayers.nn.modules.cliffordconv", "cliffordlayers")
    norm = require("cliffordlayers.nn.modules.groupnorm", "cliffordlayers")
    return (getattr(conv, f"CliffordConv{dim}d"), getattr(norm, f"CliffordGroupNorm{dim}d"))


class _CliffordConv(nn.Module):
    """cliffordlayers convolution with "same" padding done here, so every padding mode works, one per
    axis included (cliffordlayers itself only pads with zeros)."""

    def __init__(self, conv_cls, g, c_in, c_out, kernel_size, padding_mode):
        super().__init__()
        self.conv = conv_cls(g, c_in, c_out, kernel_size=kernel_size, padding=0)
        self.pad, self.padding_mode, self.dim = kernel_size // 2, padding_mode, len(g)

    def forward(self, x):
        if self.pad:
            x = pad_nd(x.movedim(-1, 2), (self.pad,) * self.dim, self.padding_mode).movedim(2, -1)
        return self.conv(x)


class _Block(nn.Module):
    def __init__(self, mods, g, width, kernel_size, padding_mode, norm, activation):
        super().__init__()
        conv_cls, norm_cls = mods
        self.conv1 = _CliffordConv(conv_cls, g, width, width, kernel_size, padding_mode)
        self.norm1 = norm_cls(g, 1, width) if norm else nn.Identity()
        self.act1 = make_activation(activation)
        self.conv2 = _CliffordConv(conv_cls, g, width, width, kernel_size, padding_mode)
        self.norm2 = norm_cls(g, 1, width) if norm else nn.Identity()
        self.act2 = make_activation(activation)

    def forward(self, x):
        h = self.act1(self.norm1(self.conv1(x)))
        return self.act2(self.norm2(self.conv2(h)) + x)


class CliffordResNet(nn.Module):
    """Clifford ResNet: the CS-ResNet skeleton with Clifford convolutions from ``cliffordlayers``.

    Uses ``cliffordlayers.nn.modules.cliffordconv.CliffordConv{1,2,3}d`` with signature ``g = metric``
    (the kernel is a multivector per channel pair, applied by a geometric product), optional
    ``CliffordGroupNorm{1,2,3}d`` with one group, and the activation applied per blade as in
    the cliffordlayers models. Not O(p,q)-equivariant (the activation and the kernel grid are not).

    Adapter: none needed -- cliffordlayers uses the same layout ``(B, C, *X, n_blades)`` and the same
    blade order (1, e1, e2, e12 / 1, e1, e2, e3, e12, e13, e23, e123), so blades map to blades.

    Args:
        alg: CliffordAlgebra or metric tuple, dims 1 to 3 (cliffordlayers' limit); any signs.
        in_channels, out_channels, hidden_channels: multivector channels.
        blocks, kernel_size, padding_mode, activation: as in :class:`~cscnn.models.baselines.ResNet`
            (``padding_mode`` one for all axes or one per axis; the padding is done here with
            :func:`~cscnn.nn.functional.pad_nd`).
        norm: use CliffordGroupNorm (one group) in the residual blocks.

    Shapes: ``x: (B, in_channels, X_1..X_dim, 2**dim) -> (B, out_channels, X_1..X_dim, 2**dim)``.
    Raises ImportError (``pip install cscnn[baselines]``) without cliffordlayers.
    """

    def __init__(self, alg, in_channels: int, out_channels: int, hidden_channels: int,
                 blocks: Sequence[int] = (2, 2, 2, 2), kernel_size: int = 7, *, padding_mode: PaddingMode = "zeros",
                 norm: bool = True, activation: str = "gelu"):
        super().__init__()
        self.alg = alg = as_algebra(alg)
        if not 1 <= alg.dim <= 3:
            raise ValueError(f"cliffordlayers supports dims 1 to 3, got metric {alg.metric}")
        padding_mode = check_padding_mode(padding_mode, alg.dim)
        check_kernel_size(kernel_size)
        self.in_channels = check_channels(in_channels, "in_channels")
        self.out_channels = check_channels(out_channels, "out_channels")
        self.hidden_channels = h = check_channels(hidden_channels, "hidden_channels")
        self.blocks = check_blocks(blocks)
        make_activation(activation)
        mods = _clifford_modules(alg.dim)
        g = list(alg.metric)

        def conv1x1(c_in, c_out):
            return _CliffordConv(mods[0], g, c_in, c_out, 1, padding_mode)

        self.embedding = nn.Sequential(conv1x1(in_channels, h), make_activation(activation),
                                       conv1x1(h, h), make_activation(activation))
        self.layers = nn.Sequential(*[
            _Block(mods, g, h, kernel_size, padding_mode, norm, activation) for _ in range(sum(self.blocks))
        ])
        self.output = nn.Sequential(conv1x1(h, h), make_activation(activation), conv1x1(h, out_channels))

    def extra_repr(self) -> str:
        return (f"metric={self.alg.metric}, in={self.in_channels}, out={self.out_channels}, "
                f"hidden={self.hidden_channels}")

    def to_native(self, x: torch.Tensor) -> torch.Tensor:
        """Identity: cliffordlayers' layout is ``(B, C, *X, n_blades)`` with our blade order."""
        return x

    def from_native(self, y: torch.Tensor) -> torch.Tensor:
        return y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_field(x, self.alg, self.in_channels, "CliffordResNet")
        return self.from_native(self.output(self.layers(self.embedding(self.to_native(x)))))
