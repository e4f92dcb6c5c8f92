"""Parameter counting and width matching, for comparing models at equal parameter budgets."""

from __future__ import annotations

from torch import nn

__all__ = ["count_parameters", "match_width"]


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of real parameters; a complex parameter (FNO spectral weights) counts twice."""
    return sum(p.numel() * (2 if p.is_complex() else 1) for p in model.parameters()
               if p.requires_grad or not trainable_only)


def match_width(name: str, alg, in_channels: int, out_channels: int, target_params: int, *,
                min_width: int = 1, max_width: int = 1024, **kwargs) -> int:
    """Hidden width of registry model ``name`` whose parameter count is closest to ``target_params``.

    The count grows with the width, so an exponential search brackets the target and a
    binary search narrows it; each step builds the model once (on CPU, with ``**kwargs``).
    Ties go to the smaller width. Returns a width in ``[min_width, max_width]``.
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

    lo, hi = min_width, min_width
    if count(lo) < target_params:
        while hi < max_width and count(hi) < target_params:
            lo, hi = hi, min(2 * hi, max_width)
        # invariant: count(lo) < target (or lo == min_width), count(hi) >= target unless hi == max_width
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if count(mid) < target_params:
                lo = mid
            else:
                hi = mid
    candidates = sorted({lo, hi})
    return min(candidates, key=lambda w: (abs(count(w) - target_params), w))
