"""The fully connected steerable geometric-product layer (CGENN)."""

from __future__ import annotations

import math

import torch
from torch import nn

from .checks import as_algebra, check_channels, check_mv_input
from .linear import MVLinear
from .module import CliffordModule, factory_kwargs
from .norms import GradeNorm


def weighted_geometric_product(
    alg, left: torch.Tensor, right: torch.Tensor, path_weight: torch.Tensor,
    gather_matrix: torch.Tensor | None = None, path_onehot: torch.Tensor | None = None,
) -> torch.Tensor:
    """``out_o = sum_i sum_{paths (a,b)->c} w[o,i,path] <left_i^(a) right_i^(b)>_c``.

    Uses the sparsity of the Cayley table: for each left blade ``l`` and output
    blade ``j`` the right blade is fixed (``k = l xor j``), so the work is
    O(out * in * n_blades**2), never the dense n_blades**3 tensor.

    Args:
        left, right: (B, in, *spatial, n_blades).
        path_weight: (out, in, n_paths), paths in ``alg.path_table()`` order.
        gather_matrix, path_onehot: ``alg.gather_matrix()`` / ``alg.path_onehot()`` in the
            input's dtype and device (modules keep them as buffers; built if None).
    Returns:
        (B, out, *spatial, n_blades).
    """
    n = alg.n_blades
    if gather_matrix is None:
        gather_matrix = alg.gather_matrix().to(left)
    if path_onehot is None:
        path_onehot = alg.path_onehot().to(left)
    pairs = left.unsqueeze(-1) * (right @ gather_matrix).unflatten(-1, (n, n))  # (B, in, *, l, j), signed
    w = (path_weight @ path_onehot).unflatten(-1, (n, n))  # (out, in, l, j)
    return torch.einsum("bi...lj,oilj->bo...j", pairs, w)


class SteerableGeometricProduct(CliffordModule):
    """Fully connected steerable geometric-product layer.

    ``right = GradeNorm(MVLinear(x))``;
    ``out_o = (sum_i sum_paths W[o,i,path] <x_i^(a) right_i^(b)>_c + MVLinear(x)_o) / sqrt(2)``,
    one weight per (out, in, grade path (a, b, c)) that the Cayley table allows.

    Shapes: ``x: (B, in_channels, *spatial, 2**dim) -> (B, out_channels, *spatial, 2**dim)``.
    """

    def __init__(self, alg, in_channels: int, out_channels: int, include_linear: bool = True,
                 device=None, dtype=None):
        super().__init__()
        fk = factory_kwargs(device, dtype)
        self.alg = as_algebra(alg)
        self.in_channels = check_channels(in_channels, "in_channels")
        self.out_channels = check_channels(out_channels, "out_channels")
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, self.alg.n_paths, **fk))
        self.right = MVLinear(self.alg, in_channels, in_channels, bias=True, **fk)
        self.norm = GradeNorm(self.alg, in_channels, **fk)
        self.linear = MVLinear(self.alg, in_channels, out_channels, **fk) if include_linear else None
        self.register_constant("gather_matrix", self.alg.gather_matrix(), **fk)
        self.register_constant("path_onehot", self.alg.path_onehot(), **fk)

    def _reset_own_parameters(self) -> None:
        # each output blade receives one product per (input channel, left blade)
        nn.init.normal_(self.weight, std=1 / math.sqrt(self.in_channels * self.alg.n_grades))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_mv_input(x, self.alg, self.in_channels, "SteerableGeometricProduct", like=self.weight)
        right = self.norm(self.right(x))
        y = weighted_geometric_product(self.alg, x, right, self.weight, self.gather_matrix, self.path_onehot)
        if self.linear is not None:
            y = (y + self.linear(x)) / math.sqrt(2)
        return y

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, metric={self.alg.metric}, paths={self.alg.n_paths}, "
                f"include_linear={self.linear is not None}")
