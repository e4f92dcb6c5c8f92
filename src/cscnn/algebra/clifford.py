"""The Clifford algebra Cl(p, q) of a diagonal metric, as pure tensor math.

A multivector is a tensor whose last axis holds the ``2**dim`` blade
coefficients in short-lex order (by grade, then lexicographic).
"""

from __future__ import annotations

import functools
import math
from functools import cached_property

import torch

__all__ = ["CliffordAlgebra", "NORM_EPS", "OFFICIAL_FORM_FLOOR", "clipped_form_sqrt", "quadratic_floor"]

#: default eps of the smooth norms: the floor of ``|qbar|`` below which their gradient is cut
NORM_EPS = 1e-12

_MAX_DIM = 8


def _reorder_sign(a: int, b: int) -> int:
    """Sign of sorting the concatenation of blade bitmasks ``a`` then ``b``."""
    swaps = 0
    a >>= 1
    while a:
        swaps += bin(a & b).count("1")
        a >>= 1
    return -1 if swaps % 2 else 1


def _on_cpu(build):
    """Build constant tables on the CPU whatever the default device (e.g. inside
    ``with torch.device("meta")``), so cached tables never end up on a temporary device."""

    @functools.wraps(build)
    def wrapped(*args, **kwargs):
        with torch.device("cpu"):
            return build(*args, **kwargs)

    return wrapped


class CliffordAlgebra:
    """Clifford algebra of ``R^{p,q}`` with diagonal metric ``metric``.

    Args:
        metric: sequence of +1/-1 entries, one per basis vector, e.g. ``(1, 1)``
            for R^2 or ``(-1, 1, 1)`` for Minkowski R^{1,2} with time first.

    All methods take multivectors ``(..., n_blades)``, broadcast over leading
    axes, and work in any float dtype on any device. Constant tables are always
    built on the CPU (also inside ``with torch.device("meta")``) and cached per
    (device, dtype) when asked for elsewhere.
    """

    def __init__(self, metric):
        if isinstance(metric, CliffordAlgebra):
            metric = metric.metric
        if isinstance(metric, torch.Tensor):
            metric = metric.tolist()
        try:
            metric = tuple(metric)
        except TypeError:
            raise TypeError(f"metric must be a sequence of +1/-1 entries, got {metric!r}") from None
        if len(metric) == 0:
            raise ValueError("metric must have at least one entry, e.g. (1, 1) for R^2")
        if len(metric) > _MAX_DIM:
            raise ValueError(f"metric has {len(metric)} entries; at most {_MAX_DIM} are supported")
        for m in metric:
            if isinstance(m, bool) or m not in (1, -1):
                raise ValueError(f"metric entries must be +1 or -1, got {metric!r}")
        self.metric: tuple[int, ...] = tuple(int(m) for m in metric)
        self.dim: int = len(self.metric)
        self.n_blades: int = 2**self.dim
        masks = sorted(range(self.n_blades), key=lambda m: (bin(m).count("1"), _bits(m)))
        self._masks = masks
        self._index_of_mask = {m: i for i, m in enumerate(masks)}
        self.blades: tuple[tuple[int, ...], ...] = tuple(tuple(_bits(m)) for m in masks)
        self.grades: tuple[int, ...] = tuple(len(b) for b in self.blades)
        self.n_grades: int = self.dim + 1
        # every blade squares to +-1 (the product of its metric entries); within each grade the signs agree
        # exactly when the metric is definite (a mixed metric has both signs among the vectors)
        self._grade_signs_uniform: bool = len(set(self.metric)) == 1
        self._cache: dict = {}

    # ------------------------------------------------------------------ basics
    @property
    def signature(self) -> tuple[int, int]:
        """``(p, q)``: the number of +1 and -1 entries."""
        p = sum(1 for m in self.metric if m == 1)
        return p, self.dim - p

    def __repr__(self) -> str:
        return f"CliffordAlgebra(metric={self.metric})"

    def __eq__(self, other) -> bool:
        return isinstance(other, CliffordAlgebra) and other.metric == self.metric

    def __hash__(self) -> int:
        return hash(self.metric)

    def blade_slice(self, grade: int) -> slice:
        """Slice of the blade axis holding grade ``grade``."""
        if not 0 <= grade <= self.dim:
            raise ValueError(f"grade must be in 0..{self.dim}, got {grade}")
        start = sum(math.comb(self.dim, k) for k in range(grade))
        return slice(start, start + math.comb(self.dim, grade))

    def blade_index(self, blade) -> int:
        """Position of the blade given as a tuple of basis indices, e.g. ``(0, 2)``."""
        blade = tuple(blade)
        if list(blade) != sorted(set(blade)) or any(not 0 <= i < self.dim for i in blade):
            raise ValueError(f"blade must be a sorted tuple of distinct indices in 0..{self.dim - 1}")
        return self._index_of_mask[sum(1 << i for i in blade)]

    # --------------------------------------------------------- constant tables
    @cached_property
    @_on_cpu
    def _tables_cpu(self) -> dict[str, torch.Tensor]:
        n = self.n_blades
        prod_index = torch.empty(n, n, dtype=torch.long)  # (i, k) -> j
        prod_sign = torch.empty(n, n, dtype=torch.float64)
        for i, a in enumerate(self._masks):
            for k, b in enumerate(self._masks):
                s = _reorder_sign(a, b)
                for d in range(self.dim):
                    if (a & b) >> d & 1:
                        s *= self.metric[d]
                prod_index[i, k] = self._index_of_mask[a ^ b]
                prod_sign[i, k] = s
        # gather form: for output blade j and left blade i, right blade k = mask_i xor mask_j
        gather_index = torch.empty(n, n, dtype=torch.long)  # (i, j) -> k
        gather_sign = torch.empty(n, n, dtype=torch.float64)
        for i, a in enumerate(self._masks):
            for j, c in enumerate(self._masks):
                k = self._index_of_mask[a ^ c]
                gather_index[i, j] = k
                gather_sign[i, j] = prod_sign[i, k]
        grades = torch.tensor(self.grades, dtype=torch.long)
        gi, gj = grades[:, None], grades[None, :]
        gk = grades[gather_index]
        masks = torch.tensor(self._masks, dtype=torch.long)
        left_in_right = (masks[:, None] & masks[gather_index]) == masks[:, None]
        blade_sq = torch.tensor(
            [math.prod(self.metric[d] for d in b) for b in self.blades], dtype=torch.float64
        )
        return {
            "prod_index": prod_index,
            "prod_sign": prod_sign,
            "gather_index": gather_index,
            "gather_sign": gather_sign,
            "wedge_sign": gather_sign * (gj == gi + gk),
            "inner_sign": gather_sign * ((gj == gk - gi) & left_in_right),
            "grades": grades,
            "blade_metric": blade_sq,
            "reverse_sign": torch.tensor(
                [(-1) ** (g * (g - 1) // 2) for g in self.grades], dtype=torch.float64
            ),
            "involute_sign": torch.tensor([(-1) ** g for g in self.grades], dtype=torch.float64),
            "grade_onehot_t": torch.nn.functional.one_hot(grades, self.dim + 1).double(),
            # (n_blades, n_grades): blade j's square in grade(j)'s column, so x**2 @ it sums qbar per grade
            "grade_metric_t": blade_sq[:, None] * torch.nn.functional.one_hot(grades, self.dim + 1).double(),
        }

    def table(self, name: str, device=None, dtype=None) -> torch.Tensor:
        """A constant table on ``device``/``dtype`` (cached; index tables stay long)."""
        base = self._tables_cpu[name]
        if base.dtype == torch.long:
            dtype = torch.long
        elif dtype is None:
            dtype = torch.get_default_dtype()
        key = (name, torch.device(device) if device is not None else torch.device("cpu"), dtype)
        t = self._cache.get(key)
        if t is None:
            t = base.to(device=key[1], dtype=dtype)
            self._cache[key] = t
        return t

    @cached_property
    @_on_cpu
    def cayley(self) -> torch.Tensor:
        """Dense Cayley table ``C`` (n_blades, n_blades, n_blades), float64:
        ``(ab)_j = sum_{i,k} a_i C[i, j, k] b_k``."""
        n = self.n_blades
        c = torch.zeros(n, n, n, dtype=torch.float64)
        t = self._tables_cpu
        i = torch.arange(n)[:, None].expand(n, n)
        k = torch.arange(n)[None, :].expand(n, n)
        c[i, t["prod_index"], k] = t["prod_sign"]
        return c

    @property
    def grade_index(self) -> torch.Tensor:
        """Grade of each blade, (n_blades,) long."""
        return self._tables_cpu["grades"]

    # ------------------------------------------------------------- validation
    def check(self, x: torch.Tensor, name: str = "x") -> torch.Tensor:
        """Raise a clear error unless ``x`` is a floating tensor (..., n_blades)."""
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if x.ndim == 0 or x.shape[-1] != self.n_blades:
            raise ValueError(
                f"{name} must have {self.n_blades} blade coefficients on its last axis "
                f"(2**dim for metric {self.metric}), got shape {tuple(x.shape)}"
            )
        if not x.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}")
        return x

    def _check_pair(self, a: torch.Tensor, b: torch.Tensor) -> None:
        self.check(a, "a")
        self.check(b, "b")
        if a.dtype != b.dtype or a.device != b.device:
            raise ValueError(
                f"operands must share dtype and device, got {a.dtype}/{a.device} and {b.dtype}/{b.device}"
            )

    # --------------------------------------------------------------- products
    def _bilinear(self, a: torch.Tensor, b: torch.Tensor, sign_name: str) -> torch.Tensor:
        self._check_pair(a, b)
        idx = self.table("gather_index", a.device)
        sign = self.table(sign_name, a.device, a.dtype)
        a, b = torch.broadcast_tensors(a, b)
        bg = b[..., idx]  # (..., i, j): b_k with k = i xor j
        return torch.einsum("...i,...ij,ij->...j", a, bg, sign)

    def geometric_product(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Geometric product ``a b``: (..., n_blades) x (..., n_blades) -> (..., n_blades)."""
        return self._bilinear(a, b, "gather_sign")

    def outer_product(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Wedge product ``a ^ b`` (grade-raising part of the geometric product)."""
        return self._bilinear(a, b, "wedge_sign")

    def inner_product(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Left contraction ``a _| b`` (grade(b) - grade(a) part, blades of a inside b)."""
        return self._bilinear(a, b, "inner_sign")

    def scalar_product(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Extended bilinear form ``<beta(a) b>_0``: (..., n_blades) x2 -> (...)."""
        self._check_pair(a, b)
        return (a * b * self.table("blade_metric", a.device, a.dtype)).sum(-1)

    # ------------------------------------------------------------- involutions
    def reverse(self, x: torch.Tensor) -> torch.Tensor:
        """Reversion beta: grade k scaled by (-1)^(k(k-1)/2)."""
        self.check(x)
        return x * self.table("reverse_sign", x.device, x.dtype)

    def grade_involution(self, x: torch.Tensor) -> torch.Tensor:
        """Grade involution alpha: grade k scaled by (-1)^k."""
        self.check(x)
        return x * self.table("involute_sign", x.device, x.dtype)

    def conjugate(self, x: torch.Tensor) -> torch.Tensor:
        """Clifford conjugation (reversion composed with grade involution)."""
        return self.grade_involution(self.reverse(x))

    # ------------------------------------------------------------------ grades
    def grade_project(self, x: torch.Tensor, grades) -> torch.Tensor:
        """Keep only the given grade(s) of ``x`` (others zeroed), same shape."""
        self.check(x)
        grades = [grades] if isinstance(grades, int) else list(grades)
        for g in grades:
            self.blade_slice(g)  # validates
        mask = torch.zeros(self.n_blades, dtype=x.dtype, device=x.device)
        for g in grades:
            mask[self.blade_slice(g)] = 1
        return x * mask

    def get_grade(self, x: torch.Tensor, grade: int) -> torch.Tensor:
        """Coefficients of one grade: (..., n_blades) -> (..., comb(dim, grade))."""
        self.check(x)
        return x[..., self.blade_slice(grade)]

    def embed_grade(self, values: torch.Tensor, grade: int) -> torch.Tensor:
        """Embed coefficients (..., comb(dim, grade)) as a multivector (..., n_blades)."""
        sl = self.blade_slice(grade)
        width = sl.stop - sl.start
        if values.ndim == 0 or values.shape[-1] != width:
            raise ValueError(
                f"grade-{grade} values of Cl{self.signature} need last axis {width}, got shape {tuple(values.shape)}"
            )
        out = values.new_zeros(*values.shape[:-1], self.n_blades)
        out[..., sl] = values
        return out

    def embed(self, values: torch.Tensor, blades) -> torch.Tensor:
        """Embed values (..., len(blades)) at the given blade tuples, e.g. ``[(0, 1), (0, 2)]``."""
        idx = [self.blade_index(b) for b in blades]
        if values.ndim == 0 or values.shape[-1] != len(idx):
            raise ValueError(f"values need last axis {len(idx)}, got shape {tuple(values.shape)}")
        out = values.new_zeros(*values.shape[:-1], self.n_blades)
        out[..., idx] = values
        return out

    # ------------------------------------------------------------------- norms
    def quadratic_form(self, x: torch.Tensor) -> torch.Tensor:
        """Extended quadratic form qbar(x) = <beta(x) x>_0: (..., n_blades) -> (...)."""
        self.check(x)
        return (x * x * self.table("blade_metric", x.device, x.dtype)).sum(-1)

    def grade_quadratic_forms(self, x: torch.Tensor) -> torch.Tensor:
        """qbar of every grade part: (..., n_blades) -> (..., dim + 1). Each is O(p,q)-invariant."""
        self.check(x)
        return x.square() @ self.table("grade_metric_t", x.device, x.dtype)

    def grade_norms(self, x: torch.Tensor, eps: float = NORM_EPS) -> torch.Tensor:
        """Smooth grade-wise norms sqrt(|qbar(x^(k))|): (..., n_blades) -> (..., dim + 1).

        ``|q|`` is clamped below at ``eps`` (at least the dtype's smallest normal number, so float16
        keeps it) so the gradient is finite at 0."""
        return _smooth_sqrt_abs(self.grade_quadratic_forms(x), eps)

    def norm(self, x: torch.Tensor, eps: float = NORM_EPS) -> torch.Tensor:
        """Invariant multivector norm sqrt(sum_k |qbar(x^(k))|): (..., n_blades) -> (...).

        Where every grade's blades square to the same sign (definite metrics), ``|qbar(x^(k))|``
        is the Euclidean norm of the grade's coefficients, so the norm is one elementwise
        square and one sum over blades (no per-grade split)."""
        if self._grade_signs_uniform:
            self.check(x)
            return _smooth_sqrt_abs(x.square().sum(-1), eps)
        return _smooth_sqrt_abs(self.grade_quadratic_forms(x).abs().sum(-1), eps)

    # ------------------------------------------------------------ group action
    @cached_property
    @_on_cpu
    def _minor_indices(self) -> list[torch.Tensor]:
        return [
            torch.tensor(self.blades[self.blade_slice(k)], dtype=torch.long).reshape(math.comb(self.dim, k), k)
            for k in range(self.n_grades)
        ]

    def outermorphism(self, g: torch.Tensor) -> torch.Tensor:
        """Matrix of the outermorphism rho(g) on multivectors.

        Args:
            g: (..., dim, dim) matrices (usually in O(p,q); any matrix works).
        Returns:
            (..., n_blades, n_blades) block-diagonal by grade, with
            ``M[A, B] = det(g[A, B])``, so that ``rho(g) x = M @ x``.
        """
        if not isinstance(g, torch.Tensor) or g.ndim < 2 or g.shape[-2:] != (self.dim, self.dim):
            shape = tuple(g.shape) if isinstance(g, torch.Tensor) else type(g).__name__
            raise ValueError(f"g must have shape (..., {self.dim}, {self.dim}), got {shape}")
        if not g.is_floating_point():
            raise TypeError(f"g must be floating point, got {g.dtype}")
        batch = g.shape[:-2]
        out = g.new_zeros(*batch, self.n_blades, self.n_blades)
        out[..., 0, 0] = 1
        for k in range(1, self.n_grades):
            idx = self._minor_indices[k].to(g.device)  # (n_k, k)
            rows = idx[:, None, :, None]
            cols = idx[None, :, None, :]
            sub = g[..., rows, cols]  # (..., n_k, n_k, k, k)
            sl = self.blade_slice(k)
            out[..., sl, sl] = sub[..., 0, 0] if k == 1 else torch.linalg.det(sub)
        return out

    def act(self, g: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Apply rho(g) to multivectors: g (dim, dim), x (..., n_blades) -> (..., n_blades)."""
        self.check(x)
        return x @ self.outermorphism(g.to(x)).transpose(-1, -2)

    # ------------------------------------------------------------- conveniences
    def basis(self, dtype=torch.float64, device=None) -> torch.Tensor:
        """All basis blades as multivectors: (n_blades, n_blades) identity."""
        return torch.eye(self.n_blades, dtype=dtype, device=device)

    def path_table(self) -> list[tuple[int, int, int]]:
        """All grade paths (a, b, c) with a nonzero product <x^(a) y^(b)>_c, sorted."""
        return sorted(self._path_ids)

    @cached_property
    def _path_ids(self) -> dict[tuple[int, int, int], int]:
        grades = self._tables_cpu["grades"]
        gk = grades[self._tables_cpu["gather_index"]]
        paths = set()
        for i in range(self.n_blades):
            for j in range(self.n_blades):
                paths.add((int(grades[i]), int(gk[i, j]), int(grades[j])))
        return {p: n for n, p in enumerate(sorted(paths))}

    @cached_property
    @_on_cpu
    def path_index(self) -> torch.Tensor:
        """(n_blades, n_blades) long: for left blade i and output blade j, the id of
        the grade path (grade i, grade k, grade j) with k = i xor j (see path_table)."""
        grades = self._tables_cpu["grades"]
        gk = grades[self._tables_cpu["gather_index"]]
        ids = self._path_ids
        return torch.tensor(
            [
                [ids[(int(grades[i]), int(gk[i, j]), int(grades[j]))] for j in range(self.n_blades)]
                for i in range(self.n_blades)
            ],
            dtype=torch.long,
        )

    @property
    def n_paths(self) -> int:
        return len(self._path_ids)

    # ----------------------------------------------- matrix forms of the tables
    # Gathers on the blade axis written as small matrix products: one GEMM
    # forward and backward instead of advanced indexing (much faster on CPU).
    @_on_cpu
    def grade_onehot(self) -> torch.Tensor:
        """(n_grades, n_blades) float64: ``[k, j] = 1`` if blade j has grade k."""
        return self._tables_cpu["grade_onehot_t"].t().contiguous()

    @_on_cpu
    def gather_matrix(self) -> torch.Tensor:
        """(n_blades, n_blades**2) float64 ``T`` with ``(b @ T)[l * n + j] = sign(l, j) b_{l xor j}``,
        so that ``a_l (b @ T)[l, j]`` summed over l is the geometric product ``(a b)_j``."""
        n = self.n_blades
        t = torch.zeros(n, n * n, dtype=torch.float64)
        idx = self._tables_cpu["gather_index"].reshape(-1)
        t[idx, torch.arange(n * n)] = self._tables_cpu["gather_sign"].reshape(-1)
        return t

    @_on_cpu
    def path_onehot(self) -> torch.Tensor:
        """(n_paths, n_blades**2) float64: ``[p, l * n + j] = 1`` if (left blade l, output blade j) is on path p."""
        return torch.nn.functional.one_hot(self.path_index.reshape(-1), self.n_paths).t().double()


def _bits(mask: int) -> list[int]:
    return [d for d in range(mask.bit_length()) if mask >> d & 1]


def quadratic_floor(dtype: torch.dtype, eps: float = NORM_EPS) -> float:
    """The floor of ``|qbar|`` in the smooth norms: ``eps``, but at least ``dtype``'s smallest normal
    number (in float16 an eps of 1e-12 rounds to 0, and the gradient of sqrt at 0 is infinite)."""
    return max(eps, torch.finfo(dtype).tiny)


def _smooth_sqrt_abs(q: torch.Tensor, eps: float) -> torch.Tensor:
    return q.abs().clamp_min(quadratic_floor(q.dtype, eps)).sqrt()


#: floor of the signed quadratic form in the norms of the authors' code (Zhdanov et al., ICML 2024)
OFFICIAL_FORM_FLOOR = 0.01


def clipped_form_sqrt(q: torch.Tensor, floor: float = OFFICIAL_FORM_FLOOR, eps: float = 1e-16) -> torch.Tensor:
    """The norm of the authors' code: ``(max(q, floor)^2 + eps)^(1/4)``, about ``sqrt(max(q, floor))``.

    ``q`` is the SIGNED quadratic form (of one grade, or of a whole multivector): where it is below
    ``floor`` (``q < 0`` for timelike vectors in Cl(1,2), for instance) the norm is the constant
    ``sqrt(floor)``. It is O(p,q)-invariant like ``sqrt(|q|)`` (cscnn's default), but a different
    function wherever ``q < floor``. Shapes: any, elementwise."""
    return (q.clamp_min(floor).square() + eps).pow(0.25)
