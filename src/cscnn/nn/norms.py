"""Equivariant normalisations: GradeNorm and MVLayerNorm.

Their statistics (grade norms, the mean norm) are computed in float32 with autocast off when the
input is float16/bfloat16, so mixed-precision training neither underflows the epsilons nor loses the
small squares; the output has the input's dtype.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..algebra import clipped_form_sqrt, quadratic_floor
from .checks import as_algebra, channel_view, check_channels, check_compat, check_mv_input
from .module import CliffordModule, factory_kwargs, float32_statistics

#: added to GradeNorm's divisor in the authors' code (``compat="official"``)
OFFICIAL_DIVISOR_EPS = 1e-6


class GradeNorm(CliffordModule):
    """Divide each grade by ``sigmoid(s_k) (|x^(k)| - 1) + 1``, ``s`` learnable per channel and grade.

    ``s`` starts at 0 (half-way between identity and full normalisation). The
    divisor is always >= 1 - sigmoid(s) > 0, and the grade norms are O(p,q)-
    invariant, so the layer is equivariant.

    ``compat="cscnn"`` (default): ``|x^(k)| = sqrt(max(|qbar(x^(k))|, eps))``. ``compat="official"`` (the
    authors' code): ``|x^(k)| = sqrt(max(qbar(x^(k)), 0.01))`` of the SIGNED form
    (:func:`cscnn.algebra.clipped_form_sqrt`) and ``1e-6`` added to the divisor; a grade whose form is
    negative (a timelike vector in Cl(1,2)) gets the constant norm 0.1.

    Shapes: ``x: (B, channels, *spatial, 2**dim) -> same``.
    """

    def __init__(self, alg, channels: int, eps: float = 1e-12, device=None, dtype=None, compat: str = "cscnn"):
        super().__init__()
        fk = factory_kwargs(device, dtype)
        self.alg = as_algebra(alg)
        self.channels = check_channels(channels, "channels")
        self.eps = eps
        self.compat = check_compat(compat)
        self.s = nn.Parameter(torch.empty(channels, self.alg.n_grades, **fk))
        self.register_constant("grade_onehot", self.alg.grade_onehot(), **fk)

    def _reset_own_parameters(self) -> None:
        nn.init.zeros_(self.s)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_mv_input(x, self.alg, self.channels, "GradeNorm", like=self.s)
        ctx, xs = float32_statistics(x)
        with ctx:
            official = self.compat == "official"
            if official:
                norms = clipped_form_sqrt(self.alg.grade_quadratic_forms(xs))  # (B, C, *, G)
            else:
                norms = self.alg.grade_norms(xs, self.eps)  # (B, C, *, G)
            gate = channel_view(torch.sigmoid(self.s), x).to(norms.dtype)
            divisor = torch.addcmul(1 - gate, gate, norms) @ self.grade_onehot.to(norms.dtype)  # gate (n - 1) + 1
            if official:
                divisor = divisor + OFFICIAL_DIVISOR_EPS
            return (xs / divisor).to(x.dtype)

    def extra_repr(self) -> str:
        extra = ", compat='official'" if self.compat == "official" else ""
        return f"{self.channels}, metric={self.alg.metric}, eps={self.eps}{extra}"


class MVLayerNorm(CliffordModule):
    """Divide by the mean over channels of the invariant multivector norm.

    ``y = a_c x / (mean_c |x_c| + eps)`` per location, with ``|x| =
    sqrt(sum_k |qbar(x^(k))|)`` and ``a`` a learnable per-channel scale.
    ``compat="official"`` (the authors' code): ``|x| = sqrt(max(qbar(x), 0.01))`` of the signed form of
    the whole multivector (:func:`cscnn.algebra.clipped_form_sqrt`); use it with ``affine=False``, as theirs.

    Shapes: ``x: (B, channels, *spatial, 2**dim) -> same``.
    """

    def __init__(self, alg, channels: int, eps: float = 1e-6, affine: bool = True, device=None, dtype=None,
                 compat: str = "cscnn"):
        super().__init__()
        fk = factory_kwargs(device, dtype)
        self.alg = as_algebra(alg)
        self.channels = check_channels(channels, "channels")
        self.eps = eps
        self.compat = check_compat(compat)
        self.weight = nn.Parameter(torch.empty(channels, **fk)) if affine else None

    def _reset_own_parameters(self) -> None:
        if self.weight is not None:
            nn.init.ones_(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_mv_input(x, self.alg, self.channels, "MVLayerNorm", like=self.weight)
        ctx, xs = float32_statistics(x)
        with ctx:
            if self.compat == "official":
                norm = clipped_form_sqrt(self.alg.quadratic_form(xs)).mean(1, keepdim=True)  # (B, 1, *spatial)
                scale = 1 / (norm + self.eps)
                if self.weight is not None:
                    scale = scale * channel_view(self.weight, x).to(scale.dtype)
                return (xs * scale.unsqueeze(-1)).to(x.dtype)
            if self.alg._grade_signs_uniform:  # |x| is the Euclidean norm of the coefficients
                # the floor of CliffordAlgebra.norm (its default eps)
                return _EuclideanLayerNorm.apply(xs, self.weight, self.eps, quadratic_floor(xs.dtype)).to(x.dtype)
            norm = self.alg.norm(xs).mean(1, keepdim=True)  # (B, 1, *spatial)
            scale = 1 / (norm + self.eps)
            if self.weight is not None:  # fold the per-channel scale in before touching x: (B, C, *spatial)
                scale = scale * channel_view(self.weight, x).to(scale.dtype)  # (C, 1.., 1)
            return (xs * scale.unsqueeze(-1)).to(x.dtype)  # one pass over x, in x's memory order

    def extra_repr(self) -> str:
        extra = ", compat='official'" if self.compat == "official" else ""
        return f"{self.channels}, metric={self.alg.metric}, eps={self.eps}, affine={self.weight is not None}{extra}"


class _EuclideanLayerNorm(torch.autograd.Function):
    """MVLayerNorm where ``|x|`` is the Euclidean norm of the blade coefficients (metrics of one sign),
    with a hand-written backward: two passes over the field forward and three backward, where
    autograd of the composite (square, sum, sqrt, mean, broadcast product) makes about ten.

    ``y = x * a``, ``a[b, c, s] = w_c r[b, s]``, ``r = 1 / (mean_c |x_c| + eps)``,
    ``|x_c| = sqrt(max(||x_c||^2, q_floor))``. Shapes: x (B, C, *spatial, n_blades), weight (C,) or None.
    Twice differentiable (a double backward recomputes the statistics with autograd)."""

    @staticmethod
    def statistics(x, weight, eps: float, q_floor: float):
        """``|x_c|`` (B, C, *spatial), ``r`` (B, 1, *spatial) and ``a`` (B, C, *spatial)."""
        # (square, sum, sqrt: torch.linalg.vector_norm is ~40x slower when the blades are not innermost in memory)
        norm = x.square().sum(-1).clamp_min(q_floor).sqrt()
        r = 1 / (norm.mean(1, keepdim=True) + eps)
        a = r if weight is None else r * channel_view(weight, x).to(r.dtype)
        return norm, r, a

    @staticmethod
    def forward(ctx, x, weight, eps: float, q_floor: float):
        norm, r, a = _EuclideanLayerNorm.statistics(x, weight, eps, q_floor)
        ctx.save_for_backward(x, weight, norm, r, a)
        ctx.eps, ctx.q_floor = eps, q_floor
        return x * a.unsqueeze(-1)

    @staticmethod
    def backward(ctx, grad):
        x, weight, norm, r, a = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph: make the statistics differentiable in x and weight
            norm, r, a = _EuclideanLayerNorm.statistics(x, weight, ctx.eps, ctx.q_floor)
        ga = torch.linalg.vecdot(grad, x)  # dL/da: (B, C, *spatial)
        w = None if weight is None else channel_view(weight, x).to(ga.dtype)
        gw = None
        if weight is not None and ctx.needs_input_grad[1]:
            gw = (ga * r).transpose(0, 1).reshape(ga.shape[1], -1).sum(1).to(weight.dtype)
        gr = (ga if w is None else ga * w).sum(1, keepdim=True)  # dL/dr: (B, 1, *spatial)
        # dL/d|x_c| = -gr r^2 / C where the floor is not active; d|x_c|/dx_c = x_c / |x_c|
        coef = torch.where(norm > math.sqrt(ctx.q_floor), (-gr * r * r / norm.shape[1]) / norm, 0)
        gx = torch.addcmul(grad * a.unsqueeze(-1), x, coef.unsqueeze(-1))
        return gx, gw, None, None
