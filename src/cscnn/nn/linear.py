"""MVLinear: O(p,q)-equivariant channel mixing with one weight per grade."""

from __future__ import annotations

import math

import torch
from torch import nn

from .checks import as_algebra, check_channels, check_compat, check_mv_input
from .module import CliffordModule, factory_kwargs

#: :func:`blade_linear` runs as one GEMM with the block-diagonal (in * n_blades, out * n_blades)
#: matrix when that matrix has at most ``DENSE_BLADE_BLOCK`` entries and the GEMM at most
#: ``DENSE_BLADE_MACS`` multiply-adds; otherwise as a per-blade batched product (``n_blades`` times
#: fewer multiply-adds). Small inputs, such as the hidden layers of a kernel network at a few dozen
#: points, are dominated by the cost of each operation, not of the arithmetic.
DENSE_BLADE_BLOCK = 2**17
DENSE_BLADE_MACS = 2**22


def field_points(x: torch.Tensor) -> torch.Tensor:
    """(B, C, *spatial, n_blades) -> (P, C, n_blades), P = B * prod(spatial): a view when there are
    no spatial axes (as in a kernel network), one copy otherwise."""
    return x.movedim(1, -2).reshape(-1, x.shape[1], x.shape[-1])


def mix_blades(features: torch.Tensor, weight: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``y[p, o, j] = sum_f weight[o, f, j] features[j, p, f]``, one matrix product per blade ``j``,
    returned in the field shape of ``like``.

    Args:
        features: (n_blades, P, F), blade-major, P = B * prod(spatial) points.
        weight: (out, *F, n_blades) with prod(F) = F.
        like: the (B, in, *spatial, n_blades) input the features came from.
    Returns:
        (B, out, *spatial, n_blades).
    """
    n, c_out = features.shape[0], weight.shape[0]
    y = torch.bmm(features, weight.flatten(1, -2).permute(2, 1, 0)).permute(1, 2, 0)  # (P, out, n)
    if like.ndim == 3:
        return y
    return y.reshape(like.shape[0], *like.shape[2:-1], c_out, n).movedim(-2, 1)


def blade_linear(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Channel mixing with one weight per blade: ``y[b, o, ..., j] = sum_i weight[o, i, j] x[b, i, ..., j]``.

    Args:
        x: (B, in, *spatial, n_blades).
        weight: (out, in, n_blades).
    Returns:
        (B, out, *spatial, n_blades).
    """
    c_out, c_in, n = weight.shape
    points = x.numel() // (c_in * n)
    block = c_in * c_out * n * n
    if block > DENSE_BLADE_BLOCK or points * block > DENSE_BLADE_MACS:
        return mix_blades(field_points(x).permute(2, 0, 1), weight, x)
    # rows (i, j'), columns (o, j): weight[o, i, j] where j' = j
    dense = torch.diag_embed(weight).permute(1, 3, 0, 2).reshape(c_in * n, c_out * n)
    y = x.movedim(1, -2).flatten(-2) @ dense  # (B, *spatial, out * n): a view of x for (P, in, n)
    return y.unflatten(-1, (c_out, n)).movedim(-2, 1)


class MVLinear(CliffordModule):
    """Per-grade linear map between multivector channels.

    ``y[:, o, ..., j] = sum_i W[o, i, grade(j)] x[:, i, ..., j] (+ b[o] on the scalar blade)``.

    Args:
        alg: CliffordAlgebra (or metric tuple).
        in_channels, out_channels: multivector channels.
        bias: learnable bias on the scalar grade only (the only invariant blade).
        device, dtype: where and in which float dtype to create parameters (as torch.nn).
        compat: ``"cscnn"`` (bias initialised at 0) or ``"official"`` (the authors' code: bias drawn
            from N(0, (0.1 / sqrt(in_channels))^2)); the forward is the same.

    Shapes: ``x: (B, in_channels, *spatial, 2**dim) -> (B, out_channels, *spatial, 2**dim)``.
    """

    def __init__(self, alg, in_channels: int, out_channels: int, bias: bool = True, device=None, dtype=None,
                 compat: str = "cscnn"):
        super().__init__()
        fk = factory_kwargs(device, dtype)
        self.compat = check_compat(compat)
        self.alg = as_algebra(alg)
        self.in_channels = check_channels(in_channels, "in_channels")
        self.out_channels = check_channels(out_channels, "out_channels")
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, self.alg.n_grades, **fk))
        self.bias = nn.Parameter(torch.empty(out_channels, **fk)) if bias else None
        self.register_constant("grade_onehot", self.alg.grade_onehot(), **fk)  # (G, n)
        self.register_constant("scalar_blade", self.alg.grade_onehot()[0], **fk)  # e_0: the grade-0 row

    def _reset_own_parameters(self) -> None:
        nn.init.normal_(self.weight, std=1 / math.sqrt(self.in_channels))
        if self.bias is not None:
            if self.compat == "official":
                nn.init.normal_(self.bias, std=0.1 / math.sqrt(self.in_channels))
            else:
                nn.init.zeros_(self.bias)

    def expanded_weight(self) -> torch.Tensor:
        """(out, in, n_blades): the weight of every blade."""
        return self.weight @ self.grade_onehot

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_mv_input(x, self.alg, self.in_channels, "MVLinear", like=self.weight)
        y = blade_linear(x, self.expanded_weight())
        if self.bias is not None:
            y = y + self.bias_field(x.ndim)
        return y

    def bias_field(self, ndim: int, scale: float = 1.0) -> torch.Tensor:
        """``scale`` times the bias as a multivector per output channel, (out, 1, ..., 1, n_blades)
        for ``ndim``-d inputs."""
        blade = self.scalar_blade if scale == 1 else self.scalar_blade * scale
        return (self.bias[:, None] * blade).reshape(-1, *([1] * (ndim - 3)), self.alg.n_blades)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, metric={self.alg.metric}, bias={self.bias is not None}"
