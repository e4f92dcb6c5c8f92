"""MVLinear: O(p,q)-equivariant channel mixing with one weight per grade."""

from __future__ import annotations

import math

import torch
from torch import nn

from .checks import as_algebra, check_channels, check_mv_input
from .module import CliffordModule, factory_kwargs


class MVLinear(CliffordModule):
    """Per-grade linear map between multivector channels.

    ``y[:, o, ..., j] = sum_i W[o, i, grade(j)] x[:, i, ..., j] (+ b[o] on the scalar blade)``.

    Args:
        alg: CliffordAlgebra (or metric tuple).
        in_channels, out_channels: multivector channels.
        bias: learnable bias on the scalar grade only (the only invariant blade).
        device, dtype: where and in which float dtype to create parameters (as torch.nn).

    Shapes: ``x: (B, in_channels, *spatial, 2**dim) -> (B, out_channels, *spatial, 2**dim)``.
    """

    def __init__(self, alg, in_channels: int, out_channels: int, bias: bool = True, device=None, dtype=None):
        super().__init__()
        fk = factory_kwargs(device, dtype)
        self.alg = as_algebra(alg)
        self.in_channels = check_channels(in_channels, "in_channels")
        self.out_channels = check_channels(out_channels, "out_channels")
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, self.alg.n_grades, **fk))
        self.bias = nn.Parameter(torch.empty(out_channels, **fk)) if bias else None
        self.register_constant("grade_onehot", self.alg.grade_onehot(), **fk)  # (G, n)
        self.register_constant("scalar_blade", torch.eye(self.alg.n_blades, dtype=torch.float64, device="cpu")[0], **fk)

    def _reset_own_parameters(self) -> None:
        nn.init.normal_(self.weight, std=1 / math.sqrt(self.in_channels))
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def expanded_weight(self) -> torch.Tensor:
        """(out, in, n_blades): the weight of every blade."""
        return self.weight @ self.grade_onehot

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_mv_input(x, self.alg, self.in_channels, "MVLinear", like=self.weight)
        y = torch.einsum("bi...j,oij->bo...j", x, self.expanded_weight())
        if self.bias is not None:
            y = y + (self.bias[:, None] * self.scalar_blade).reshape(-1, *([1] * (x.ndim - 3)), self.alg.n_blades)
        return y

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, metric={self.alg.metric}, bias={self.bias is not None}"
