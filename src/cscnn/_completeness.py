"""Kernel completeness certificate: how much of the space of steerable kernels a kernel model reaches.

At a point ``v`` a steerable kernel ``K(v)`` must commute with ``rho(h)`` for every ``h`` in the
stabiliser ``Stab(v) = {h in O(p,q) : h v = v}`` (set ``g = h`` in ``K(g v) = rho(g) K(v) rho(g)^-1``).
Conversely every map in that commutant is the value at ``v`` of some steerable kernel, so a kernel
model is *complete* at ``v`` when its values ``K(v)`` over all parameters span the whole commutant.

This module measures both numbers for single-channel kernels (``c_in = c_out = 1``, maps on ONE
multivector, ``2^n x 2^n``):

* the commutant dimension, computed from sampled stabiliser elements (nothing assumed): the
  identity component from ``exp`` of a basis of the stabiliser's Lie algebra
  ``{X in o(p,q) : X v = 0}`` (and ``drho(X) c = 0`` for a conditioning multivector ``c``), the
  other components from reflections along vectors ``u`` with ``eta(u, v) = 0`` (kept when they also
  fix ``c``). Sampled elements generate a subgroup, so the dimension is an upper bound of the
  true commutant's (the ratio a lower bound); for non-null ``v`` without ``c`` the elements
  generate the whole stabiliser (Cartan-Dieudonne in the non-degenerate ``v``-orthogonal space).
* the span dimension of ``K(v)`` over many random parameter draws (numerical rank with a
  relative tolerance; the singular-value gap is reported so the cut can be judged).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .algebra import CliffordAlgebra, is_in_group

__all__ = ["KernelCompleteness", "kernel_completeness", "stabiliser_elements", "commutant_basis"]


@dataclass(frozen=True)
class KernelCompleteness:
    """Result of :func:`kernel_completeness`.

    Attributes:
        span_dim: dimension of the span of ``K(v)`` over the parameter draws.
        commutant_dim: dimension of ``{M : rho(h) M = M rho(h)}`` over the sampled stabiliser.
        stabiliser_dim: dimension of the stabiliser's Lie algebra.
        n_stabiliser: stabiliser elements used; ``n_reflections`` of them involve a reflection.
        n_draws: parameter draws.
        max_outside: largest relative distance of a drawn ``K(v)`` from the commutant
            (round-off size when the kernel is steerable). Draws are unit-normalised, except
            near-zero ones (norm below 1e-3 of the median), which keep their small size.
        kept_sv, dropped_sv: smallest kept / largest dropped singular value of the stacked
            (normalised) kernels, relative to the largest: the gap behind ``span_dim``.
    """

    span_dim: int
    commutant_dim: int
    stabiliser_dim: int
    n_stabiliser: int
    n_reflections: int
    n_draws: int
    max_outside: float
    kept_sv: float
    dropped_sv: float

    @property
    def ratio(self) -> float:
        return self.span_dim / self.commutant_dim

    @property
    def complete(self) -> bool:
        return self.span_dim == self.commutant_dim

    def __str__(self) -> str:
        return f"{self.span_dim}/{self.commutant_dim}"


def _as_alg(alg) -> CliffordAlgebra:
    return alg if isinstance(alg, CliffordAlgebra) else CliffordAlgebra(alg)


def _lie_basis(dim: int, eta: torch.Tensor) -> torch.Tensor:
    """Basis ``eta (E_ij - E_ji)`` of o(p,q): (dim*(dim-1)/2, dim, dim)."""
    mats = []
    for i in range(dim):
        for j in range(i + 1, dim):
            a = torch.zeros(dim, dim, dtype=eta.dtype)
            a[i, j], a[j, i] = 1.0, -1.0
            mats.append(eta @ a)
    return torch.stack(mats) if mats else torch.zeros(0, dim, dim, dtype=eta.dtype)


def _derived_action(alg: CliffordAlgebra, x: torch.Tensor) -> torch.Tensor:
    """``drho(X)`` on multivectors (..., n_blades, n_blades), exactly: ``rho(I + tX)`` is a polynomial of
    degree <= dim in t; its linear coefficient comes from the odd part at t = 1..m (Vandermonde solve)."""
    dim = alg.dim
    m = (dim + 1) // 2  # odd coefficients t^1, t^3, ... up to degree dim
    eye = torch.eye(dim, dtype=x.dtype)
    ts = torch.arange(1, m + 1, dtype=x.dtype)
    odd = torch.stack([(alg.outermorphism(eye + t * x) - alg.outermorphism(eye - t * x)) / (2 * t) for t in ts])
    vander = ts[:, None] ** (2 * torch.arange(m, dtype=x.dtype))[None, :]  # f(t) = sum_k t^(2k) P_(2k+1)
    coeff = torch.linalg.solve(vander, odd.reshape(m, -1))
    return coeff[0].reshape(odd.shape[1:])


def _null_space(a: torch.Tensor, rtol: float) -> torch.Tensor:
    """Orthonormal basis (cols) of the null space of ``a`` (rows x cols)."""
    if a.shape[0] == 0:
        return torch.eye(a.shape[1], dtype=a.dtype)
    _, s, vh = torch.linalg.svd(a, full_matrices=True)
    rank = int((s > rtol * s.max().clamp_min(1e-300)).sum()) if s.numel() else 0
    return vh[rank:].T


def stabiliser_elements(alg, v: torch.Tensor, n: int = 24, condition: torch.Tensor | None = None,
                        generator: torch.Generator | None = None, rtol: float = 1e-10):
    """Sampled elements of ``Stab(v)`` (or of ``Stab(v) ∩ Stab(c)`` for a multivector ``c``).

    Args:
        alg: CliffordAlgebra or metric tuple.
        v: (dim,) float64 point.
        n: number of elements drawn from the identity component (exp of random Lie-algebra elements);
            each is also multiplied by a random product of reflections fixing v (and c) when any exist.
        condition: optional (C, n_blades) multivectors that must be fixed too.
    Returns:
        (elements (N, dim, dim), lie_dim, n_reflections): N <= 2 n + 1 elements (identity first), each
        checked to lie in O(p,q) and to fix v (and c).
    """
    alg = _as_alg(alg)
    dim = alg.dim
    v = v.to(torch.float64)
    eta = torch.diag(torch.tensor(alg.metric, dtype=torch.float64))
    basis = _lie_basis(dim, eta)  # (L, dim, dim)
    cond = None if condition is None else condition.to(torch.float64).reshape(-1, alg.n_blades)
    # Lie algebra of the stabiliser: null space of X -> (X v, drho(X) c)
    cols = [basis @ v]  # (L, dim)
    if cond is not None and len(basis):
        d = _derived_action(alg, basis)  # (L, nb, nb)
        cols.append((cond @ d.transpose(-1, -2)).reshape(len(basis), -1))
    lin = torch.cat(cols, -1).T  # (equations, L)
    coef = _null_space(lin, rtol) if len(basis) else torch.zeros(0, 0, dtype=torch.float64)
    lie = torch.einsum("lk,lij->kij", coef, basis) if coef.numel() else torch.zeros(0, dim, dim, dtype=torch.float64)
    # reflections fixing v: along u with eta(u, v) = 0 and eta(u, u) != 0 (and fixing c)
    perp = _null_space((eta @ v)[None, :], rtol)  # (dim, dim-1)

    def reflection(u):
        return torch.eye(dim, dtype=torch.float64) - 2 * torch.outer(u, eta @ u) / (u @ eta @ u)

    def fixes(h):
        ok = bool(is_in_group(h, alg.metric, 1e-9)) and bool(torch.allclose(h @ v, v, atol=1e-9, rtol=1e-9))
        if ok and cond is not None:
            r = alg.outermorphism(h)
            ok = bool(torch.allclose(cond @ r.T, cond, atol=1e-9 * (1 + float(cond.abs().max())), rtol=1e-9))
        return ok

    refl_pool = []
    cands = list(perp.T) + [perp @ torch.randn(perp.shape[1], generator=generator, dtype=torch.float64)
                            for _ in range(4 * dim)]
    for u in cands:
        if perp.shape[1] and abs(float(u @ eta @ u)) > 1e-3 * float(u @ u):
            r = reflection(u)
            if fixes(r):
                refl_pool.append(r)
    out = [torch.eye(dim, dtype=torch.float64)]
    n_refl = 0
    for _ in range(n):
        h = torch.eye(dim, dtype=torch.float64)
        if len(lie):
            x = torch.einsum("k,kij->ij", torch.randn(len(lie), generator=generator, dtype=torch.float64), lie)
            h = torch.linalg.matrix_exp(x / max(1.0, float(x.abs().max())))
        out.append(h)
        if refl_pool:
            picks = torch.randint(len(refl_pool), (1 + int(torch.randint(dim, (1,), generator=generator)),),
                                  generator=generator)
            r = h
            for p in picks:
                r = r @ refl_pool[int(p)]
            out.append(r)
            n_refl += 1
    elements = torch.stack(out)
    bad = [i for i, h in enumerate(elements) if not fixes(h)]
    if bad:
        raise RuntimeError(f"stabiliser sample {bad[0]} does not fix v (or c) or leaves O(p,q): numerical failure")
    return elements, len(lie), n_refl


def commutant_basis(alg, elements: torch.Tensor, rtol: float = 1e-10) -> torch.Tensor:
    """Orthonormal basis of ``{M : rho(h) M = M rho(h) for all h in elements}``.

    Args:
        elements: (N, dim, dim) group elements.
    Returns:
        (d, n_blades, n_blades): the commutant's dimension d and basis (Frobenius-orthonormal).
    """
    alg = _as_alg(alg)
    nb = alg.n_blades
    eye = torch.eye(nb, dtype=torch.float64)
    rows = []
    for r in alg.outermorphism(elements.to(torch.float64)):
        eq = torch.kron(r, eye) - torch.kron(eye, r.T.contiguous())  # row-major vec(R M - M R)
        rows.append(eq / r.norm() ** 2)
    q = _null_space(torch.cat(rows), rtol)
    return q.T.reshape(-1, nb, nb)


def kernel_completeness(kernel_factory: Callable[[int], torch.nn.Module], alg, v, condition=None, *,
                        n_draws: int | None = None, n_stabiliser: int = 24, perturb: float = 0.5, seed: int = 0,
                        rtol: float = 1e-9) -> KernelCompleteness:
    """Completeness certificate of a kernel model at the point ``v``.

    Args:
        kernel_factory: ``draw -> kernel`` building a fresh single-channel kernel (``in_channels =
            out_channels = 1``) with ``kernel.evaluate(points)`` -> (N, 1, n_blades, 1, n_blades); for a
            conditional kernel ``kernel.evaluate(points, condition)`` -> (B, N, 1, n_blades, 1, n_blades).
            Called under ``torch.manual_seed`` of a draw-specific seed; the module is moved to float64.
        alg: CliffordAlgebra or metric tuple.
        v: (dim,) point in kernel-grid units (spacelike, timelike or lightlike).
        condition: optional multivectors ``c`` (C, n_blades) fed to a conditional kernel; the
            stabiliser is then that of ``(v, c)``.
        n_draws: parameter draws (default ``2 * commutant_dim + 8``).
        n_stabiliser: stabiliser elements from the identity component (see :func:`stabiliser_elements`).
        perturb: after building, every parameter gets ``perturb * N(0, 1)`` noise so that parameters
            initialised to constants (ones, zeros) vary between draws too.
        rtol: relative singular-value cut for both ranks.

    Returns:
        :class:`KernelCompleteness`; ``str(result)`` is ``"span/commutant"``, e.g. ``"7/8"``.

    Example::

        from cscnn.nn import CliffordSteerableKernel
        from cscnn.testing import kernel_completeness
        res = kernel_completeness(lambda i: CliffordSteerableKernel((1, 1), 1, 1, 1), (1, 1),
                                  torch.tensor([0.5, 0.0], dtype=torch.float64))
        print(res)   # 7/8
    """
    alg = _as_alg(alg)
    v = torch.as_tensor(v, dtype=torch.float64)
    if v.shape != (alg.dim,):
        raise ValueError(f"v must have shape ({alg.dim},) for metric {alg.metric}, got {tuple(v.shape)}")
    cond = None
    if condition is not None:
        cond = torch.as_tensor(condition, dtype=torch.float64).reshape(-1, alg.n_blades)
    gen = torch.Generator().manual_seed(seed)
    elements, lie_dim, n_refl = stabiliser_elements(alg, v, n_stabiliser, cond, gen)
    comm = commutant_basis(alg, elements, rtol)  # (d, nb, nb)
    d = comm.shape[0]
    n_draws = 2 * d + 8 if n_draws is None else n_draws
    nb = alg.n_blades
    mats = []
    for draw in range(n_draws):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed * 1_000_003 + draw)
            kernel = kernel_factory(draw).to(torch.float64)
            with torch.no_grad():
                for p in kernel.parameters():
                    p.add_(perturb * torch.randn_like(p))
                if cond is None:
                    k = kernel.evaluate(v[None])
                else:
                    k = kernel.evaluate(v[None], cond[None])[0]
        if k.shape != (1, 1, nb, 1, nb):
            raise ValueError(f"kernel_completeness needs single-channel kernels: evaluate gave {tuple(k.shape)}, "
                             f"expected (1, 1, {nb}, 1, {nb})")
        mats.append(k.reshape(nb * nb))
    stack = torch.stack(mats)
    # unit-normalise each draw, except near-zero ones (below 1e-3 of the median norm): their values
    # come from cancellation and carry round-off of the size of the terms that cancelled
    norms = stack.norm(dim=1, keepdim=True)
    stack = stack / torch.maximum(norms, 1e-3 * norms.median()).clamp_min(1e-300)
    flat = comm.reshape(d, -1)
    outside = (stack - (stack @ flat.T) @ flat).norm(dim=1).max() if d else stack.norm(dim=1).max()
    s = torch.linalg.svdvals(stack)
    s = s / s.max().clamp_min(1e-300)
    span = int((s > rtol).sum())
    kept = float(s[span - 1]) if span else math.nan
    dropped = float(s[span]) if span < len(s) else 0.0
    return KernelCompleteness(span, d, lie_dim, len(elements), n_refl, n_draws, float(outside), kept, dropped)
