"""The fully connected steerable geometric-product layer (CGENN)."""

from __future__ import annotations

import functools
import math

import torch
from torch import nn

from ..algebra import CliffordAlgebra
from ._checks import as_algebra, check_channels, check_mv_input
from .linear import MVLinear
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


@functools.cache
def _dense_path_of(metric) -> torch.Tensor:
    """(n, n, n) long: path id of the Cayley entry C[l, j, k] (0 where C is zero)."""
    alg = CliffordAlgebra(metric)
    g = alg.grade_index
    ids = alg._path_ids
    n = alg.n_blades
    return torch.tensor([[[ids.get((int(g[i]), int(g[k]), int(g[j])), 0) for k in range(n)] for j in range(n)]
                         for i in range(n)])


def dense_weighted_geometric_product(alg, left, right, path_weight) -> torch.Tensor:
    """Reference of :func:`weighted_geometric_product` through the dense
    (out, in, n, n, n) weighted Cayley tensor (for tests and benchmarks)."""
    w = path_weight[:, :, _dense_path_of(alg.metric).to(left.device)] * alg.cayley.to(left)  # (out, in, l, j, k)
    return torch.einsum("bi...l,oiljk,bi...k->bo...j", left, w, right)


class SteerableGeometricProduct(nn.Module):
    """Fully connected steerable geometric-product layer.

    ``right = GradeNorm(MVLinear(x))``;
    ``out_o = (sum_i sum_paths W[o,i,path] <x_i^(a) right_i^(b)>_c + MVLinear(x)_o) / sqrt(2)``,
    one weight per (out, in, grade path (a, b, c)) that the Cayley table allows.

    Shapes: ``x: (B, in_channels, *spatial, 2**dim) -> (B, out_channels, *spatial, 2**dim)``.
    """

    def __init__(self, alg, in_channels: int, out_channels: int, include_linear: bool = True):
        super().__init__()
        self.alg = as_algebra(alg)
        self.in_channels = check_channels(in_channels, "in_channels")
        self.out_channels = check_channels(out_channels, "out_channels")
        self.right = MVLinear(self.alg, in_channels, in_channels, bias=True)
        self.norm = GradeNorm(self.alg, in_channels)
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, self.alg.n_paths))
        self.linear = MVLinear(self.alg, in_channels, out_channels) if include_linear else None
        dtype = torch.get_default_dtype()
        self.register_buffer("gather_matrix", self.alg.gather_matrix().to(dtype), persistent=False)
        self.register_buffer("path_onehot", self.alg.path_onehot().to(dtype), persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
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
        return f"{self.in_channels}, {self.out_channels}, metric={self.alg.metric}, paths={self.alg.n_paths}"
