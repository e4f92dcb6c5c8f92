"""The fully connected steerable geometric-product layer (CGENN)."""

from __future__ import annotations

import math

import torch
from torch import nn

from .checks import as_algebra, check_channels, check_compat, check_mv_input
from .linear import MVLinear, field_points, mix_blades
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
    pairs = blade_pairs(left, right, _blade_major(gather_matrix))  # (j, P, in, l)
    w = (path_weight @ path_onehot).unflatten(-1, (n, n))  # (out, in, l, j)
    return mix_blades(pairs.reshape(n, pairs.shape[1], -1), w, left)


def _blade_major(gather_matrix: torch.Tensor) -> torch.Tensor:
    """``gather_matrix`` (n, n*n) with its columns reordered from ``l * n + j`` to ``j * n + l``."""
    n = gather_matrix.shape[0]
    return gather_matrix.unflatten(-1, (n, n)).transpose(-2, -1).flatten(-2)


def blade_pairs(left: torch.Tensor, right: torch.Tensor, gather_blade_major: torch.Tensor) -> torch.Tensor:
    """All products ``left_l * sign(l, j) right_(l xor j)`` of the geometric products ``left_i right_i``.

    Args:
        left, right: (B, in, *spatial, n_blades).
        gather_blade_major: ``alg.gather_matrix()`` with columns ordered ``j * n + l``.
    Returns:
        (n_blades [output blade j], P = B * prod(spatial), in, n_blades [left blade l]), a view
        (blade-major, so that mixing the channels is one batched matrix product per output blade).
    """
    n = left.shape[-1]
    right_signed = (field_points(right) @ gather_blade_major).unflatten(-1, (n, n))  # (P, in, j, l)
    return (right_signed * field_points(left).unsqueeze(-2)).permute(2, 0, 1, 3)


class SteerableGeometricProduct(CliffordModule):
    """Fully connected steerable geometric-product layer.

    ``right = GradeNorm(MVLinear(x))``;
    ``out_o = (sum_i sum_paths W[o,i,path] <x_i^(a) right_i^(b)>_c + MVLinear(x)_o) / sqrt(2)``,
    one weight per (out, in, grade path (a, b, c)) that the Cayley table allows.

    ``compat="official"`` builds the authors' layer: no bias in the right-hand MVLinear, their GradeNorm
    (:class:`~cscnn.nn.GradeNorm`) and their bias initialisation of the linear term.

    Shapes: ``x: (B, in_channels, *spatial, 2**dim) -> (B, out_channels, *spatial, 2**dim)``.
    """

    def __init__(self, alg, in_channels: int, out_channels: int, include_linear: bool = True,
                 device=None, dtype=None, compat: str = "cscnn"):
        super().__init__()
        fk = factory_kwargs(device, dtype)
        self.alg = as_algebra(alg)
        self.in_channels = check_channels(in_channels, "in_channels")
        self.out_channels = check_channels(out_channels, "out_channels")
        self.compat = compat = check_compat(compat)
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, self.alg.n_paths, **fk))
        self.right = MVLinear(self.alg, in_channels, in_channels, bias=compat == "cscnn", **fk)
        self.norm = GradeNorm(self.alg, in_channels, **fk, compat=compat)
        self.linear = MVLinear(self.alg, in_channels, out_channels, **fk, compat=compat) if include_linear else None
        self.register_constant("gather_blade_major", _blade_major(self.alg.gather_matrix()), **fk)
        self.register_constant("path_onehot", self.alg.path_onehot(), **fk)

    def _reset_own_parameters(self) -> None:
        # each output blade receives one product per (input channel, left blade)
        nn.init.normal_(self.weight, std=1 / math.sqrt(self.in_channels * self.alg.n_grades))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_mv_input(x, self.alg, self.in_channels, "SteerableGeometricProduct", like=self.weight)
        right = self.norm(self.right(x))
        n = self.alg.n_blades
        pairs = blade_pairs(x, right, self.gather_blade_major)  # (j, P, in, l)
        w = (self.weight @ self.path_onehot).unflatten(-1, (n, n))  # (out, in, l, j)
        lin = self.linear
        if lin is None:
            return mix_blades(pairs.reshape(n, pairs.shape[1], -1), w, x)
        # the product and the linear skip as ONE channel mixing of the features [pairs, x] of each
        # input channel, both terms / sqrt(2)
        xj = field_points(x).permute(2, 0, 1)  # (j, P, in)
        features = torch.cat([pairs, xj.unsqueeze(-1)], -1)  # (j, P, in, n + 1)
        w = torch.cat([w, lin.expanded_weight().unsqueeze(2)], 2) / math.sqrt(2)  # (out, in, n + 1, j)
        y = mix_blades(features.flatten(2), w, x)
        if lin.bias is not None:
            y = y + lin.bias_field(x.ndim, scale=1 / math.sqrt(2))
        return y

    def extra_repr(self) -> str:
        extra = ", compat='official'" if self.compat == "official" else ""
        return (f"{self.in_channels}, {self.out_channels}, metric={self.alg.metric}, paths={self.alg.n_paths}, "
                f"include_linear={self.linear is not None}{extra}")
