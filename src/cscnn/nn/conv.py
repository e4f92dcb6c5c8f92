"""CliffordSteerableConv: E(p,q)-equivariant convolution of multivector fields."""

from __future__ import annotations

import torch
from torch import nn

from ._checks import as_algebra, check_mv_input
from .functional import PADDING_MODES, conv_nd
from .kernel import CliffordSteerableKernel


def fields_to_channels(x: torch.Tensor) -> torch.Tensor:
    """(B, C, *spatial, n_blades) -> (B, C * n_blades, *spatial), channel index c * n_blades + blade.

    The result is in channels-last memory order (B, *spatial, C * n_blades), which
    is a free view when ``x`` came from :func:`channels_to_fields` and one copy
    otherwise; CPU and GPU convolutions run fastest in that order."""
    last = x.movedim(1, -2)  # (B, *spatial, C, n)
    if not last.is_contiguous():
        last = last.contiguous()
    flat = last.reshape(*last.shape[:-2], -1)  # (B, *spatial, C * n): a view
    return flat.movedim(-1, 1)


def channels_to_fields(y: torch.Tensor, n_blades: int) -> torch.Tensor:
    """(B, C * n_blades, *spatial) -> (B, C, *spatial, n_blades), a view (no copy)."""
    last = y.movedim(1, -1)  # (B, *spatial, C * n)
    return last.unflatten(-1, (y.shape[1] // n_blades, n_blades)).movedim(-2, 1)


class CliffordSteerableConv(nn.Module):
    """Clifford-steerable convolution (cross-correlation, as torch) on multivector fields.

    Equivariant under translations and O(p,q) at the level of the kernel
    function; exactly equivariant on the grid for its symmetries (axis
    permutations of equal metric sign, reflections, time reversal) with
    stride 1 and any padding mode.

    Args:
        alg: CliffordAlgebra (or metric tuple) of dim 1 to 4; spatial axis d is e_d.
        in_channels, out_channels: multivector channels.
        kernel_size: odd int; the output keeps the input size ("same" padding) at stride 1.
        stride: int >= 1.
        padding_mode: "zeros", "circular", "reflect" or "replicate".
        bias: learnable bias on the scalar blade (the only O(p,q)-invariant one).
        **kernel_kwargs: passed to :class:`CliffordSteerableKernel`
            (num_layers, hidden_channels, activation, ...).

    Shapes: ``x: (B, in_channels, X_1..X_dim, 2**dim) -> (B, out_channels, Y_1..Y_dim, 2**dim)``
    with ``Y = (X - 1) // stride + 1``.

    In eval mode, when no gradient is needed, the dense kernel is computed once
    and cached; any change of the parameters (optimizer step, load_state_dict,
    ``.to()``) or of mode invalidates it.
    """

    def __init__(self, alg, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding_mode: str = "zeros", bias: bool = True, **kernel_kwargs):
        super().__init__()
        self.alg = alg = as_algebra(alg)
        if not 1 <= alg.dim <= 4:
            raise ValueError(f"CliffordSteerableConv supports dims 1 to 4, got metric {alg.metric}")
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")
        if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
            raise ValueError(f"stride must be a positive int, got {stride!r}")
        self.kernel = CliffordSteerableKernel(alg, in_channels, out_channels, kernel_size, **kernel_kwargs)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding_mode = kernel_size, stride, padding_mode
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self._cache: tuple | None = None

    # ------------------------------------------------------------ kernel cache
    def _cache_key(self) -> tuple:
        return tuple((p._version, p.data_ptr(), p.dtype, p.device) for p in self.kernel.parameters()) + tuple(
            (b._version, b.data_ptr()) for b in self.kernel.buffers()
        )

    def weight(self) -> torch.Tensor:
        """The dense kernel (out*2^n, in*2^n, k, ..., k), cached when safe (see class docs)."""
        use_cache = not self.training and not torch.compiler.is_compiling() and not (
            torch.is_grad_enabled() and any(p.requires_grad for p in self.kernel.parameters())
        )
        if not use_cache:
            self._cache = None
            return self.kernel()
        key = self._cache_key()
        if self._cache is None or self._cache[0] != key:
            with torch.no_grad():
                self._cache = (key, self.kernel())
        return self._cache[1]

    def train(self, mode: bool = True):
        self._cache = None
        return super().train(mode)

    def _apply(self, fn, recurse=True):
        self._cache = None
        return super()._apply(fn, recurse)

    # ----------------------------------------------------------------- forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_mv_input(x, self.alg, self.in_channels, "CliffordSteerableConv", like=self.kernel.sigma,
                       spatial_dims=self.alg.dim)
        y = conv_nd(fields_to_channels(x), self.weight(), self.stride, self.kernel_size // 2, self.padding_mode,
                    self._dense_bias())
        return channels_to_fields(y, self.alg.n_blades)

    def _dense_bias(self) -> torch.Tensor | None:
        """The bias on the scalar blade only: (C_out * n,) with zeros on the other blades, or None."""
        if self.bias is None:
            return None
        n = self.alg.n_blades
        return torch.cat([self.bias[:, None], self.bias.new_zeros(self.out_channels, n - 1)], 1).reshape(-1)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding_mode={self.padding_mode!r}, metric={self.alg.metric}, bias={self.bias is not None}")
