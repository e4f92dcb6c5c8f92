"""Elements of the pseudo-orthogonal group O(p, q) of a diagonal metric.

``g`` is in O(p,q) when ``g^T eta g = eta`` with ``eta = diag(metric)``. The
action on vectors is ``v -> g v``; on multivectors see
:meth:`CliffordAlgebra.outermorphism`.
"""

from __future__ import annotations

import itertools
import math
import operator

import torch

from .clifford import CliffordAlgebra

__all__ = [
    "metric_tensor",
    "is_in_group",
    "random_orthogonal",
    "boost",
    "sample_group_elements",
    "grid_symmetries",
    "sample_grid_symmetries",
]


def _metric(metric) -> tuple[int, ...]:
    return CliffordAlgebra(metric).metric if not isinstance(metric, CliffordAlgebra) else metric.metric


def metric_tensor(metric, dtype=torch.float64, device=None) -> torch.Tensor:
    """``diag(metric)`` as a (dim, dim) tensor."""
    return torch.diag(torch.tensor(_metric(metric), dtype=dtype, device=device))


def is_in_group(g: torch.Tensor, metric, atol: float = 1e-8) -> torch.Tensor:
    """Whether each matrix in ``g`` (..., dim, dim) satisfies ``g^T eta g = eta``.

    Returns a bool tensor of shape (...). The tolerance is relative to the
    size of the entries of g (boosts have large entries)."""
    m = _metric(metric)
    if g.shape[-2:] != (len(m), len(m)):
        raise ValueError(f"g must have shape (..., {len(m)}, {len(m)}) for metric {m}, got {tuple(g.shape)}")
    eta = metric_tensor(m, g.dtype, g.device)
    err = (g.transpose(-1, -2) @ eta @ g - eta).abs().amax((-1, -2))
    scale = g.abs().amax((-1, -2)).clamp_min(1) ** 2
    return err <= atol * scale


def random_orthogonal(n: int, batch=(), generator=None, dtype=torch.float64, device=None, proper=False):
    """Haar-random matrices in O(n) (or SO(n) if ``proper``): (*batch, n, n)."""
    a = torch.randn(*batch, n, n, generator=generator, dtype=dtype)
    q, r = torch.linalg.qr(a)
    q = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(-2)
    if proper and n > 0:
        flip = torch.linalg.det(q) < 0
        q[..., 0] = torch.where(flip[..., None], -q[..., 0], q[..., 0])
    return q.to(device)


def boost(metric, time_axis: int, space_axis: int, rapidity, dtype=torch.float64, device=None):
    """Pure boost mixing a negative-metric axis and a positive-metric axis.

    Args:
        rapidity: float or tensor (...), finite, with ``cosh(rapidity)`` finite in ``dtype``
            (|rapidity| below ~710 in float64, ~89 in float32); returns (..., dim, dim) in O(p,q).
    Raises ValueError for a NaN, infinite or overflowing rapidity.
    """
    m = _metric(metric)
    if m[time_axis] == m[space_axis]:
        raise ValueError(f"a boost needs axes of opposite metric sign, got axes {time_axis}, {space_axis} of {m}")
    r = torch.as_tensor(rapidity, dtype=dtype, device=device)
    c, s = torch.cosh(r), torch.sinh(r)
    if not torch.isfinite(c).all():
        bad = r[~torch.isfinite(c)].flatten()[0].item() if r.ndim else r.item()
        raise ValueError(f"a boost needs a finite rapidity with cosh(rapidity) finite in {dtype}, got {bad}"
                         + (f" (cosh overflows {dtype})" if math.isfinite(bad) else ""))
    g = torch.eye(len(m), dtype=dtype, device=device).expand(*r.shape, len(m), len(m)).clone()
    g[..., time_axis, time_axis] = c
    g[..., space_axis, space_axis] = c
    g[..., time_axis, space_axis] = s
    g[..., space_axis, time_axis] = s
    return g


def _count(n) -> int:
    """``n`` as a non-negative int (numpy / 0-d tensor integers accepted); ValueError otherwise."""
    try:
        if isinstance(n, bool):
            raise TypeError
        k = operator.index(n)
    except TypeError:
        raise ValueError(f"the number of group elements must be an integer >= 0, got {n!r}") from None
    if k < 0:
        raise ValueError(f"the number of group elements must be an integer >= 0, got {k}")
    return k


def sample_group_elements(
    metric,
    n: int = 1,
    max_rapidity: float = 1.0,
    reflections: bool = True,
    generator: torch.Generator | None = None,
    dtype=torch.float64,
    device=None,
) -> torch.Tensor:
    """Random elements of O(p,q): (n, dim, dim).

    Sampled as ``k1 a k2`` (Cartan decomposition): ``k1, k2`` random in the
    maximal compact subgroup O(q) x O(p) (rotations of the axes of equal metric
    sign, with reflections unless ``reflections=False``) and ``a`` a product of
    boosts along min(p, q) axis pairs with rapidities uniform in
    [-max_rapidity, max_rapidity]. With ``reflections=False`` the result lies
    in the identity component SO+(p,q).

    Raises:
        ValueError: ``n`` is not a non-negative integer or ``max_rapidity`` is not a
            finite number >= 0.
    """
    n = _count(n)
    try:
        rap = math.nan if isinstance(max_rapidity, (str, bytes, bool)) else float(max_rapidity)
    except (TypeError, ValueError):
        rap = math.nan
    if not math.isfinite(rap) or rap < 0:
        raise ValueError(f"max_rapidity must be a finite number >= 0, got {max_rapidity!r}")
    m = _metric(metric)
    dim = len(m)
    neg = [i for i, s in enumerate(m) if s < 0]
    pos = [i for i, s in enumerate(m) if s > 0]

    def compact():
        k = torch.zeros(n, dim, dim, dtype=dtype)
        for axes in (neg, pos):
            if axes:
                q = random_orthogonal(len(axes), (n,), generator, dtype, proper=not reflections)
                idx = torch.tensor(axes)
                k[:, idx[:, None], idx[None, :]] = q
        return k

    g = compact()
    for t, s in zip(neg, pos):
        u = torch.rand(n, generator=generator, dtype=dtype)
        g = g @ boost(m, t, s, (2 * u - 1) * rap, dtype=dtype)
    g = g @ compact()
    return g.to(device)


def grid_symmetries(metric, dtype=torch.float64, device=None) -> torch.Tensor:
    """All signed permutation matrices in O(p,q): (n_sym, dim, dim).

    These map the pixel grid onto itself: permutations of axes with equal
    metric sign combined with any axis reflections (time reversal included).
    The identity comes first."""
    m = _metric(metric)
    dim = len(m)
    mats = []
    for perm in itertools.permutations(range(dim)):
        if any(m[perm[i]] != m[i] for i in range(dim)):
            continue
        for signs in itertools.product((1, -1), repeat=dim):
            g = torch.zeros(dim, dim, dtype=dtype)
            for i in range(dim):
                g[perm[i], i] = signs[i]
            mats.append(g)
    return torch.stack(mats).to(device)


def sample_grid_symmetries(metric, n: int = 1, generator=None, dtype=torch.float64, device=None):
    """``n`` grid symmetries drawn uniformly without the identity when possible: (n, dim, dim)."""
    n = _count(n)
    sym = grid_symmetries(metric, dtype)
    pool = sym[1:] if len(sym) > 1 else sym
    idx = torch.randint(len(pool), (n,), generator=generator)
    return pool[idx].to(device)


def count_grid_symmetries(metric) -> int:
    """Number of signed permutations in O(p,q): p! q! 2^(p+q)."""
    p, q = CliffordAlgebra(metric).signature
    return math.factorial(p) * math.factorial(q) * 2 ** (p + q)
