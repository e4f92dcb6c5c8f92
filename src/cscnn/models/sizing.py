"""Parameter counting and width matching, for comparing models at equal parameter budgets."""

from __future__ import annotations

import math

from torch import nn

__all__ = ["count_parameters", "match_width"]


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of real parameters; a complex parameter (FNO spectral weights) counts twice."""
    return sum(p.numel() * (2 if p.is_complex() else 1) for p in model.parameters()
               if p.requires_grad or not trainable_only)


def match_width(name: str, alg, in_channels: int, out_channels: int, target_params: int, *,
                min_width: int = 1, max_width: int = 1024, exact_quadratic: bool = False, **kwargs) -> int:
    """Hidden width of registry model ``name`` whose parameter count is closest to ``target_params``.

    Parameter counts of all registered models grow (about quadratically) with the width, so the
    count at three small widths gives a quadratic first guess; a bracketing search with growing
    steps around the guess and a binary search then find the best width with real counts. Only
    models near the target size (plus three tiny ones) are built, on CPU, with ``**kwargs``.
    Ties go to the smaller width. Returns a width in ``[min_width, max_width]``.

    With ``exact_quadratic=True`` the quadratic through the three probes is trusted and no other
    model is built. It is exact when every layer's parameter count is bilinear in the widths it
    connects: true for the CS-ResNet, CS-U-Net, ResNet, Clifford ResNet and Steerable ResNet, not
    for the FNO (neuraloperator rounds some widths). Use it when building is slow (escnn in 3D).
    """
    from .registry import build_model

    if target_params < 1:
        raise ValueError(f"target_params must be positive, got {target_params}")
    if not 1 <= min_width <= max_width:
        raise ValueError(f"need 1 <= min_width <= max_width, got {min_width}, {max_width}")
    cache: dict[int, int] = {}

    def count(w: int) -> int:
        if w not in cache:
            cache[w] = count_parameters(build_model(name, alg, in_channels, out_channels, w, **kwargs))
        return cache[w]

    def clip(w: float) -> int:
        return int(min(max(round(w), min_width), max_width))

    # quadratic first guess from three small widths
    probe = sorted({clip(min_width + i) for i in range(3)})
    guess = probe[0]
    if len(probe) == 3:
        a, b, c = _quadratic_through([(w, count(w)) for w in probe])
        guess = clip(_positive_root(a, b, c - target_params, fallback=max_width))
        if exact_quadratic:
            def poly(w: int) -> float:
                return a * w * w + b * w + c

            root = _positive_root(a, b, c - target_params, fallback=max_width)
            candidates = sorted({clip(math.floor(root)), clip(math.ceil(root))})
            return min(candidates, key=lambda w: (abs(poly(w) - target_params), w))
    # bracket lo < hi with count(lo) < target <= count(hi), stepping away from the guess
    if count(guess) < target_params:
        lo, step = guess, 1
        hi = clip(lo + step)
        while hi < max_width and count(hi) < target_params:
            lo, step = hi, 2 * step
            hi = clip(lo + step)
    else:
        hi, step = guess, 1
        lo = clip(hi - step)
        while lo > min_width and count(lo) >= target_params:
            hi, step = lo, 2 * step
            lo = clip(hi - step)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if count(mid) < target_params:
            lo = mid
        else:
            hi = mid
    return min(sorted({lo, hi}), key=lambda w: (abs(count(w) - target_params), w))


def _quadratic_through(points: list[tuple[int, int]]) -> tuple[float, float, float]:
    """Coefficients (a, b, c) of a w^2 + b w + c through three points (Lagrange form)."""
    (x0, y0), (x1, y1), (x2, y2) = points
    d0, d1, d2 = (x0 - x1) * (x0 - x2), (x1 - x0) * (x1 - x2), (x2 - x0) * (x2 - x1)
    a = y0 / d0 + y1 / d1 + y2 / d2
    b = -(y0 * (x1 + x2) / d0 + y1 * (x0 + x2) / d1 + y2 * (x0 + x1) / d2)
    c = y0 * x1 * x2 / d0 + y1 * x0 * x2 / d1 + y2 * x0 * x1 / d2
    return a, b, c


def _positive_root(a: float, b: float, c: float, fallback: float) -> float:
    """Largest real root of a w^2 + b w + c (a linear or constant fit falls back gracefully)."""
    if abs(a) < 1e-12:
        return -c / b if abs(b) > 1e-12 else fallback
    disc = b * b - 4 * a * c
    if disc < 0:
        return fallback
    return (-b + disc**0.5) / (2 * a) if a > 0 else (-b - disc**0.5) / (2 * a)
