"""Plain (dense) convolutions: :class:`Conv4d` and :class:`FrozenConv`.

:func:`cscnn.nn.freeze` (module ``cscnn.nn.freezing``) turns a trained model into one whose
Clifford-steerable convolutions are plain ``torch.nn.Conv{1,2,3}d`` (4D: :class:`Conv4d`) holding
the dense kernels: identical outputs, no kernel networks left, so inference, ``torch.compile`` and
``torch.export`` see ordinary convolutions. This module imports no conv module (imports go one way:
``conv`` -> ``dense``).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .checks import check_mv_input
from .functional import (
    PaddingMode,
    check_circular_padding,
    check_padding_mode,
    conv_nd,
    pad_nd,
    padding_modes,
    uniform_padding,
)
from .layout import channels_to_fields, choose_layout, fields_to_channels

__all__ = ["Conv4d", "FrozenConv"]

_TORCH_CONVS = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}


class Conv4d(nn.Module):
    """4-d cross-correlation with the interface of ``torch.nn.Conv3d`` (cubic kernels, symmetric padding).

    Args: in_channels, out_channels, kernel_size, stride, padding (int per side), dilation, bias,
    padding_mode ("zeros", "circular", "reflect", "replicate", or a sequence of four of them, one
    per axis), device, dtype.

    Shapes: ``x: (B, in_channels, T, X, Y, Z) -> (B, out_channels, T', X', Y', Z')``,
    ``T' = (T + 2 padding - dilation (kernel_size - 1) - 1) // stride + 1`` and likewise for X, Y, Z.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 dilation: int = 1, bias: bool = True, padding_mode: PaddingMode = "zeros", device=None,
                 dtype=None):
        super().__init__()
        padding_mode = check_padding_mode(padding_mode, 4)
        fk = {"device": device, "dtype": dtype}
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.stride, self.padding, self.dilation, self.padding_mode = stride, padding, dilation, padding_mode
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, *([kernel_size] * 4), **fk))
        self.bias = nn.Parameter(torch.empty(out_channels, **fk)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torch's ConvNd initialisation (Kaiming-uniform weight, uniform bias)."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_channels * self.kernel_size**4)
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return conv_nd(x, self.weight, self.stride, self.padding, self.padding_mode, self.bias, self.dilation)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, dilation={self.dilation}, padding_mode={self.padding_mode!r}, "
                f"bias={self.bias is not None}")


class FrozenConv(nn.Module):
    """A Clifford-steerable conv frozen into a plain torch convolution on the flattened fields.

    ``conv`` is a ``torch.nn.Conv{1,2,3}d`` (4D: :class:`Conv4d`) on ``in_channels * 2**dim`` channels
    (index ``c * 2**dim + blade``). Build it with :meth:`CliffordSteerableConv.to_dense` or
    :func:`freeze`. torch's convolutions take one padding mode for all axes, so a conv with a
    mixed per-axis mode is frozen into one with ``padding=0`` and the frozen conv pads first
    (``pad`` per side with ``padding_mode``, :func:`~cscnn.nn.functional.pad_nd`).

    Shapes: as the conv it came from, ``(B, in_channels, X_1..X_dim, 2**dim) -> (B, out_channels, Y.., 2**dim)``.
    """

    def __init__(self, alg, in_channels: int, out_channels: int, conv: nn.Module, pad: int = 0,
                 padding_mode: PaddingMode = "zeros"):
        super().__init__()
        self.alg, self.in_channels, self.out_channels, self.conv = alg, in_channels, out_channels, conv
        self.pad, self.padding_mode = pad, check_padding_mode(padding_mode, alg.dim)

    @classmethod
    @torch.no_grad()
    def from_conv(cls, source) -> FrozenConv:
        """The frozen form of ``source``, a :class:`~cscnn.nn.CliffordSteerableConv`."""
        n, d = source.alg.n_blades, source.alg.dim
        weight = source.kernel().detach()
        make = _TORCH_CONVS.get(d, Conv4d)
        # a mixed per-axis mode: torch's convs pad every axis alike, so pad here and convolve unpadded
        own = make is not Conv4d and uniform_padding(source.padding_mode) is None
        with torch.device("meta"):  # no random initialisation: the values are copied in below
            conv = make(source.in_channels * n, source.out_channels * n, source.kernel_size, stride=source.stride,
                        padding=0 if own else source._pad, dilation=source.dilation, bias=source.bias is not None,
                        padding_mode="zeros" if own else source.padding_mode, dtype=weight.dtype)
        conv = conv.to_empty(device=weight.device)
        conv.weight.copy_(weight)
        if source.bias is not None:
            conv.bias.copy_(source.dense_bias())
        if own:
            return cls(source.alg, source.in_channels, source.out_channels, conv, source._pad, source.padding_mode)
        return cls(source.alg, source.in_channels, source.out_channels, conv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_mv_input(x, self.alg, self.in_channels, "FrozenConv", like=self.conv.weight, spatial_dims=self.alg.dim)
        c = self.conv
        pad, dil, stride = (v if isinstance(v, int) else v[0] for v in (c.padding, c.dilation, c.stride))
        if self.pad:  # a mixed per-axis padding mode, done here (the torch conv has padding 0)
            modes = padding_modes(self.padding_mode, self.alg.dim)
            check_circular_padding(tuple(x.shape[2:-1]), self.pad, c.weight.shape[-1], dil,
                                   [d for d, m in enumerate(modes) if m == "circular"])
            layout = choose_layout(x, c.weight, stride, self.pad, modes, dil)
            h = pad_nd(fields_to_channels(x, layout), (self.pad,) * self.alg.dim, modes)
            return channels_to_fields(c(h), self.alg.n_blades)
        if uniform_padding(c.padding_mode) == "circular":
            check_circular_padding(tuple(x.shape[2:-1]), pad, c.weight.shape[-1], dil)
        layout = choose_layout(x, c.weight, stride, pad, c.padding_mode, dil)  # as CliffordSteerableConv
        return channels_to_fields(c(fields_to_channels(x, layout)), self.alg.n_blades)

    def extra_repr(self) -> str:
        own = f", pad={self.pad}, padding_mode={self.padding_mode!r}" if self.pad else ""
        return f"{self.in_channels}, {self.out_channels}, metric={self.alg.metric}{own}"
