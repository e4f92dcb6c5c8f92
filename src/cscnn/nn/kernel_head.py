"""The two-sided kernel head: sandwich products ``<k^(a) f^(b) k^(c)>_d`` of a kernel multivector.

The paper's head (Zhdanov et al., ICML 2024, arXiv:2402.14730) turns the kernel multivector ``k(v)`` into the linear map
``f -> sum_paths w <k^(a) f^(b)>_c``. With ``k`` in ``span{1, v}`` these maps miss part of the
commutant of the stabiliser of ``v`` (7 of 8 dimensions in Cl(2,0), 10 of 12 in Cl(3,0) and
Cl(1,2), 13 of 16 in Cl(1,3); see :func:`cscnn.testing.kernel_completeness`). The two-sided head
adds the quadratic maps

    K2(v) f = sum_{paths (a, b, c) -> d} w[path] <k^(a) f^(b) k^(c)>_d,

one weight per grade path (and per output/input channel pair). They are O(p,q)-equivariant by the
same argument as the left product: ``rho(g)`` is an algebra automorphism that preserves grades, so
``<(rho k)(rho f)(rho k)>_d = rho <k f k>_d``. For ``k = alpha + beta v`` they contain the sandwich
``v f v``, which in Cl(2,0) at ``v = e0`` is exactly the missing map (e0 -> e0, e1 -> -e1).

Cayley sparsity: ``e_l e_m e_r`` is one signed blade ``e_(l^m^r)``. For output blade ``j`` and input
blade ``m`` write ``d = j ^ m``; then ``r = l ^ d`` and

    K2[j, j^d] = sum_l (k_l k_(l^d)) T[d, l, j],

so for each ``d`` the map is an (n x n) matrix applied to the vector ``u_d[l] = k_l k_(l^d)`` (the
``n^2`` entries of ``k k^T``, permuted). The work is O(n^3) per kernel entry, not the dense
O(n^4), and autograd keeps only O(n^2) values per entry.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..algebra import CliffordAlgebra
from .checks import as_algebra, check_channels
from .module import CliffordModule, factory_kwargs

__all__ = ["HEADS", "TwoSidedHead", "two_sided_paths"]

#: accepted values of ``CliffordSteerableKernel(head=...)``
HEADS = ("left", "two_sided")


def two_sided_paths(alg: CliffordAlgebra) -> list[tuple[int, int, int, int]]:
    """All grade paths ``(a, b, c, d)`` with a nonzero ``<x^(a) y^(b) z^(c)>_d``, sorted."""
    return sorted(_tables(alg)[2])


def _tables(alg: CliffordAlgebra):
    """Sign (d, l, j) and path id (d, l, j) of ``e_l e_(j^d) e_(l^d) = sign e_j``, and the path ids."""
    n = alg.n_blades
    index = alg.table("prod_index")  # (i, k) -> blade of e_i e_k, i.e. the xor of the masks
    psign = alg.table("prod_sign", dtype=torch.float64)
    grade = alg.grade_index
    sign = torch.zeros(n, n, n, dtype=torch.float64)
    keys = {}
    for d in range(n):
        for l in range(n):
            r = int(index[l, d])
            for j in range(n):
                m = int(index[j, d])
                lm = int(index[l, m])
                if int(index[lm, r]) != j:
                    raise AssertionError("Cayley table: e_l e_m e_r is not e_(l^m^r)")
                sign[d, l, j] = psign[l, m] * psign[lm, r]
                keys[(d, l, j)] = (int(grade[l]), int(grade[m]), int(grade[r]), int(grade[j]))
    ids = {p: i for i, p in enumerate(sorted(set(keys.values())))}
    path = torch.zeros(n, n, n, dtype=torch.long)
    for (d, l, j), p in keys.items():
        path[d, l, j] = ids[p]
    return sign, path, ids


class TwoSidedHead(CliffordModule):
    """Quadratic kernel head: ``K2[o, j, i, m]`` is the e_j coefficient of
    ``sum_paths w[o, i, path] <k_oi^(a) e_m^(b) k_oi^(c)>_d``.

    Args:
        alg: CliffordAlgebra or metric tuple.
        out_channels, in_channels: channel pairs (one kernel multivector and one weight set each).
        device, dtype: as torch.nn.

    Shapes: ``k: (..., out, in, n_blades) -> (..., out, in, n_blades**2)``, the last axis ``j * n + m``
    (output blade j, input blade m), the layout of the left head in
    :class:`~cscnn.nn.CliffordSteerableKernel`.
    """

    def __init__(self, alg, out_channels: int, in_channels: int, device=None, dtype=None):
        super().__init__()
        fk = factory_kwargs(device, dtype)
        self.alg = alg = as_algebra(alg)
        self.out_channels = check_channels(out_channels, "out_channels")
        self.in_channels = check_channels(in_channels, "in_channels")
        n = alg.n_blades
        with torch.device("cpu"):
            sign, path, ids = _tables(alg)
            index = alg.table("prod_index")
            # u[d, l] = (k k^T)[l, l^d]: flat index l * n + (l^d)
            u_index = torch.stack([torch.arange(n) * n + index[:, d] for d in range(n)])  # (d, l)
            # K2[j, m] = out[d = j^m, j]: flat index (j^m) * n + j
            out_index = (index * n + torch.arange(n)[:, None]).reshape(-1)  # at j * n + m
            onehot = nn.functional.one_hot(path.reshape(-1), len(ids)).t().double()  # (paths, d*l*j)
        self.n_paths = len(ids)
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, self.n_paths, **fk))
        self.register_constant("u_index", u_index.reshape(-1), **fk)
        self.register_constant("out_index", out_index, **fk)
        self.register_constant("signed_onehot", onehot * sign.reshape(1, -1), **fk)
        self.register_constant("bank_xor_index", index.t().reshape(-1), **fk)  # (d, l) -> l xor d

    def _reset_own_parameters(self) -> None:
        # each output blade sums n products per path family; keep the term O(|k|^2)
        nn.init.normal_(self.weight, std=1 / math.sqrt(self.alg.n_blades))

    def forward(self, k: torch.Tensor) -> torch.Tensor:
        n = self.alg.n_blades
        kk = (k.unsqueeze(-1) * k.unsqueeze(-2)).flatten(-2)  # (P, o, i, l*n + r)
        u = kk[..., self.u_index].unflatten(-1, (n, n))  # (P, o, i, d, l)
        t = (self.weight @ self.signed_onehot).unflatten(-1, (n, n, n))  # (o, i, d, l, j)
        kd = torch.einsum("...oidl,oidlj->...oidj", u, t).flatten(-2)  # (P, o, i, d*n + j)
        return kd[..., self.out_index]

    def extra_repr(self) -> str:
        return f"{self.out_channels}, {self.in_channels}, metric={self.alg.metric}, paths={self.n_paths}"
