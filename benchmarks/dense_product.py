"""Reference steerable geometric product through the dense weighted Cayley tensor.

Used by ``geometric_product.py`` (speed of the sparse form against this one) and by
``tests/test_layers.py`` (the sparse form must agree with it).
"""

from __future__ import annotations

import functools

import torch

from cscnn import CliffordAlgebra


@functools.cache
def dense_path_of(metric) -> torch.Tensor:
    """(n, n, n) long: path id (index in ``alg.path_table()``) of the Cayley entry C[l, j, k], 0 where C is zero."""
    alg = CliffordAlgebra(metric)
    g = alg.grade_index
    ids = {path: i for i, path in enumerate(alg.path_table())}
    n = alg.n_blades
    return torch.tensor([[[ids.get((int(g[i]), int(g[k]), int(g[j])), 0) for k in range(n)] for j in range(n)]
                         for i in range(n)])


def dense_weighted_geometric_product(alg, left, right, path_weight) -> torch.Tensor:
    """``out_o = sum_i sum_paths w[o,i,path] <left_i^(a) right_i^(b)>_c`` via the dense
    (out, in, n, n, n) weighted Cayley tensor. left, right: (B, in, *, n); path_weight: (out, in, n_paths)."""
    w = path_weight[:, :, dense_path_of(alg.metric).to(left.device)] * alg.cayley.to(left)  # (out, in, l, j, k)
    return torch.einsum("bi...l,oiljk,bi...k->bo...j", left, w, right)
