"""Equivariance helpers users can call on their own models.

Example::

    from cscnn.testing import assert_equivariant
    err = assert_equivariant(model, alg, torch.randn(2, 3, 16, 16, 4, dtype=torch.float64))
"""

from __future__ import annotations

import operator

import torch

from ._completeness import KernelCompleteness, commutant_basis, kernel_completeness, stabiliser_elements
from .algebra import CliffordAlgebra, grid_symmetries, sample_group_elements

__all__ = [
    "is_grid_symmetry",
    "transform_field",
    "transform_multivectors",
    "sample_elements",
    "equivariance_error",
    "assert_equivariant",
    "perturb_parameters",
    "kernel_completeness",
    "KernelCompleteness",
    "stabiliser_elements",
    "commutant_basis",
]


def is_grid_symmetry(g: torch.Tensor) -> bool:
    """Whether ``g`` (dim, dim) is a signed permutation matrix."""
    a = g.abs()
    return bool(((a == 0) | (a == 1)).all() and (a.sum(0) == 1).all() and (a.sum(1) == 1).all())


def transform_multivectors(alg: CliffordAlgebra, g: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """rho(g) on the last (blade) axis: x (..., n_blades) -> (..., n_blades)."""
    return alg.act(g, x)


def transform_field(alg: CliffordAlgebra, g: torch.Tensor, x: torch.Tensor, spatial_dims: int | None = None):
    """Transform a multivector field by a grid symmetry: ``x'(v) = rho(g) x(g^-1 v)``.

    Args:
        g: (dim, dim) signed permutation in O(p,q) (see :func:`cscnn.algebra.grid_symmetries`).
        x: (B, C, X_1..X_dim, n_blades); grid coordinates centred, so reflection is a flip.
        spatial_dims: number of grid axes (default: alg.dim).
    """
    nd = alg.dim if spatial_dims is None else spatial_dims
    if nd != alg.dim:
        raise ValueError(f"grid symmetries need dim={alg.dim} grid axes, got {nd}")
    if not is_grid_symmetry(g):
        raise ValueError("transform_field needs a signed permutation matrix (a grid symmetry); "
                         "use transform_multivectors for pointwise maps")
    first = x.ndim - 1 - nd
    sizes = x.shape[first:-1]
    perm = [int(g[:, i].abs().argmax()) for i in range(nd)]  # g e_i = s_i e_perm[i]
    signs = [float(g[perm[i], i]) for i in range(nd)]
    if any(sizes[perm[i]] != sizes[i] for i in range(nd)):
        raise ValueError(f"grid symmetry {perm} permutes axes of different sizes {tuple(sizes)}")
    inv = [0] * nd
    for i, p in enumerate(perm):
        inv[p] = i
    # output axis a holds input axis inv[a]
    order = list(range(first)) + [first + inv[a] for a in range(nd)] + [x.ndim - 1]
    y = x.permute(order)
    flips = [first + perm[i] for i in range(nd) if signs[i] < 0]
    if flips:
        y = y.flip(flips)
    return alg.act(g, y)


def sample_elements(alg: CliffordAlgebra, n: int, kind: str = "grid", max_rapidity: float = 1.0,
                    generator=None, dtype=torch.float64) -> torch.Tensor:
    """``n`` group elements (n, dim, dim): ``kind="grid"`` draws grid symmetries (all of
    them, cycled, when n exceeds their number), ``"continuous"`` draws O(p,q) elements
    with boosts up to ``max_rapidity`` and reflections."""
    if kind == "grid":
        sym = grid_symmetries(alg, dtype)
        idx = torch.randperm(len(sym), generator=generator)
        return sym[idx.repeat(n // len(sym) + 1)[:n]]
    if kind == "continuous":
        return sample_group_elements(alg, n, max_rapidity, True, generator, dtype)
    raise ValueError(f"kind must be 'grid' or 'continuous', got {kind!r}")


def equivariance_error(module, alg: CliffordAlgebra, x: torch.Tensor, g: torch.Tensor,
                       spatial: bool = True, spatial_dims: int | None = None) -> float:
    """Relative error ``|f(g.x) - g.f(x)| / |g.f(x)|`` (max-norm) for one element g.

    Raises ValueError when ``x`` or an output ``f(x)``, ``f(g.x)`` holds NaN or inf (the error
    would be NaN, which compares False against any tolerance)."""
    def act(t):
        return transform_field(alg, g, t, spatial_dims) if spatial else alg.act(g, t)

    if not torch.isfinite(x).all():
        raise ValueError(f"the input x {tuple(x.shape)} holds NaN or inf; equivariance needs a finite input")
    with torch.no_grad():
        y1 = module(act(x))
        y2 = act(module(x))
    for what, y in (("f(x)", y2), ("f(g.x)", y1)):
        if not torch.isfinite(y).all():
            bad = int((~torch.isfinite(y)).sum())
            raise ValueError(f"the module's output {what} {tuple(y.shape)} holds {bad} NaN or inf value(s) "
                             "for a finite input; equivariance cannot be measured")
    return float((y1 - y2).abs().max() / y2.abs().max().clamp_min(1e-30))


def assert_equivariant(module, alg: CliffordAlgebra, x: torch.Tensor, n_samples: int = 8,
                       spatial: bool = True, max_rapidity: float = 1.0, rtol: float | None = None,
                       spatial_dims: int | None = None, generator=None) -> float:
    """Check ``module(g.x) == g.module(x)`` for sampled g; returns the worst relative error.

    With ``spatial=True`` the elements are grid symmetries acting on grid and blades
    (for convolutional models); with ``spatial=False`` they are continuous O(p,q)
    elements (boosts, reflections) acting on blades only (for pointwise layers).
    Raises AssertionError above ``rtol`` (default 1e-9 in float64, 1e-4 in float32) and when an
    output holds NaN or inf; ValueError for ``n_samples < 1`` or a non-finite ``x``.
    """
    try:
        if isinstance(n_samples, bool):
            raise TypeError
        n = operator.index(n_samples)
    except TypeError:
        n = 0
    if n < 1:
        raise ValueError(f"n_samples must be an integer >= 1 (group elements to check), got {n_samples!r}")
    alg = alg if isinstance(alg, CliffordAlgebra) else CliffordAlgebra(alg)
    if not torch.isfinite(x).all():
        raise ValueError(f"the input x {tuple(x.shape)} holds NaN or inf; equivariance needs a finite input")
    if rtol is None:
        rtol = 1e-9 if x.dtype == torch.float64 else 1e-4
    gs = sample_elements(alg, n, "grid" if spatial else "continuous", max_rapidity, generator, x.dtype)
    errors = []
    for g in gs:
        try:
            errors.append(equivariance_error(module, alg, x, g.to(x.device), spatial, spatial_dims))
        except ValueError as e:
            if "output" not in str(e):
                raise
            raise AssertionError(f"not equivariant: {e}") from None
    worst = max(errors)
    if worst > rtol:
        raise AssertionError(f"equivariance error {worst:.3e} exceeds rtol {rtol:.1e}")
    return worst


def perturb_parameters(module: torch.nn.Module, scale: float = 0.3, seed: int | None = 0):
    """Add ``scale * N(0, 1)`` noise to every parameter of ``module`` (in place; returns it).

    Equivariance checks should not rely on special initial values (ones, zeros) that can hide a
    broken weight sharing; ``seed=None`` draws from torch's global generator."""
    gen = None if seed is None else torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen, dtype=p.dtype).to(p.device))
    return module
