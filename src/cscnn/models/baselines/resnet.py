"""Plain (non-equivariant) ResNet baseline with the CS-ResNet skeleton, built from torch convolutions."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ...nn.checks import as_algebra, check_channels, check_kernel_size
from ...nn.functional import PaddingMode, check_padding_mode, pad_nd
from ...nn.module import reset_parameters
from ..cs_resnet import check_blocks
from .adapters import channels_to_mv, check_field, mv_to_channels

__all__ = ["ResNet", "ChannelLayerNorm", "make_norm", "make_activation"]

_CONVS = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_ACTIVATIONS = {"gelu": nn.GELU, "silu": nn.SiLU, "relu": nn.ReLU}
NORMS = ("group", "layer", None)


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channel axis at every grid point: ``(B, C, *spatial) -> same``."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.norm = nn.LayerNorm(channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.movedim(1, -1)).movedim(-1, 1)


def make_norm(norm, channels: int) -> nn.Module:
    """``"group"``: GroupNorm(1, C) (over channels and grid), ``"layer"``: per-point channel LayerNorm."""
    if norm in (None, False):
        return nn.Identity()
    if norm is True or norm == "group":
        return nn.GroupNorm(1, channels)
    if norm == "layer":
        return ChannelLayerNorm(channels)
    raise ValueError(f"norm must be one of {NORMS} (or True/False), got {norm!r}")


def make_activation(activation: str) -> nn.Module:
    if activation not in _ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}")
    return _ACTIVATIONS[activation]()


class _Block(nn.Module):
    """conv, norm, activation, conv, norm, shortcut, activation. torch's convs pad every axis with one
    mode: a per-axis mode (a tuple) is padded here with :func:`pad_nd` before convs of padding 0
    (same parameters and state dict as with a string mode)."""

    def __init__(self, conv, width, kernel_size, padding_mode, norm, activation):
        super().__init__()
        pad = kernel_size // 2
        per_axis = not isinstance(padding_mode, str)
        self.pad, self.padding_mode = (pad, padding_mode) if per_axis else (0, "zeros")
        kw = {"padding": 0} if per_axis else {"padding": pad, "padding_mode": padding_mode}
        self.conv1 = conv(width, width, kernel_size, **kw)
        self.norm1 = make_norm(norm, width)
        self.act1 = make_activation(activation)
        self.conv2 = conv(width, width, kernel_size, **kw)
        self.norm2 = make_norm(norm, width)
        self.act2 = make_activation(activation)

    def _padded(self, x):
        return pad_nd(x, (self.pad,) * (x.ndim - 2), self.padding_mode) if self.pad else x

    def forward(self, x):
        h = self.act1(self.norm1(self.conv1(self._padded(x))))
        return self.act2(self.norm2(self.conv2(self._padded(h))) + x)


class ResNet(nn.Module):
    """ResNet baseline: the CS-ResNet skeleton with ordinary convolutions (not equivariant).

    Embedding: two 1x1 convs with activations; ``sum(blocks)`` residual blocks (conv k x k, norm,
    activation, conv k x k, norm, add shortcut, activation); two 1x1 convs with an activation between.

    Adapter: multivector channels and blades are flattened into ``in_channels * 2**dim`` scalar
    channels, index ``c * 2**dim + blade`` (for time steps as channels: time-major, blade-minor);
    the output channels are unflattened the same way.

    Args:
        alg: CliffordAlgebra or metric tuple (dims 1 to 3; torch has no 4D convolution).
        in_channels, out_channels: multivector channels of the input/output fields.
        hidden_channels: scalar channels inside (paper: 96 for Navier-Stokes).
        blocks, kernel_size, padding_mode: as in :class:`~cscnn.models.CSResNet` (``padding_mode``
            one for all axes, passed to torch's convs as before, or one per axis: then padded with
            :func:`~cscnn.nn.functional.pad_nd` before convs of padding 0, same state dict).
        norm: "group" (GroupNorm(1, C), default), "layer" (LayerNorm over channels per point) or None.
        activation: "gelu" (default), "silu" or "relu".

    Shapes: ``x: (B, in_channels, X_1..X_dim, 2**dim) -> (B, out_channels, X_1..X_dim, 2**dim)``.
    """

    def __init__(self, alg, in_channels: int, out_channels: int, hidden_channels: int,
                 blocks: Sequence[int] = (2, 2, 2, 2), kernel_size: int = 7, *, padding_mode: PaddingMode = "zeros",
                 norm: str | None = "group", activation: str = "gelu"):
        super().__init__()
        self.alg = alg = as_algebra(alg)
        if alg.dim not in _CONVS:
            raise ValueError(f"ResNet supports dims 1 to 3 (torch convolutions), got metric {alg.metric}")
        self.in_channels = check_channels(in_channels, "in_channels")
        self.out_channels = check_channels(out_channels, "out_channels")
        self.hidden_channels = h = check_channels(hidden_channels, "hidden_channels")
        check_kernel_size(kernel_size)
        self.blocks = check_blocks(blocks)
        self.padding_mode = padding_mode = check_padding_mode(padding_mode, alg.dim)
        make_norm(norm, 1)
        make_activation(activation)
        conv = _CONVS[alg.dim]
        n = alg.n_blades
        self.embedding = nn.Sequential(conv(in_channels * n, h, 1), make_activation(activation),
                                       conv(h, h, 1), make_activation(activation))
        self.layers = nn.Sequential(*[
            _Block(conv, h, kernel_size, padding_mode, norm, activation) for _ in range(sum(self.blocks))
        ])
        self.output = nn.Sequential(conv(h, h, 1), make_activation(activation), conv(h, out_channels * n, 1))

    def reset_parameters(self) -> None:
        """torch's initialisation of every layer (e.g. after a meta-device build and ``to_empty()``)."""
        for child in self.children():
            reset_parameters(child)

    def extra_repr(self) -> str:
        return (f"metric={self.alg.metric}, in={self.in_channels}, out={self.out_channels}, "
                f"hidden={self.hidden_channels}, blocks={self.blocks}")

    def to_native(self, x: torch.Tensor) -> torch.Tensor:
        """Multivector field -> channels: ``(B, C, *X, n_blades) -> (B, C * n_blades, *X)``."""
        return mv_to_channels(x)

    def from_native(self, y: torch.Tensor) -> torch.Tensor:
        """Channels -> multivector field: ``(B, C * n_blades, *X) -> (B, C, *X, n_blades)``."""
        return channels_to_mv(y, self.alg.n_blades)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_field(x, self.alg, self.in_channels, "ResNet")
        return self.from_native(self.output(self.layers(self.embedding(self.to_native(x)))))
