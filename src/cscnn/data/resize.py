"""Anti-aliased resizing of gridded fields that commutes with the grid symmetries.

Downsampling by an integer factor per axis is area averaging (the mean over each
``f x f`` block), exactly what averaging a finer simulation into coarser cells does.
Any other size change (upsampling, non-integer factors) uses a separable
anti-aliased linear filter (:func:`linear_weights`: a triangle filter widened by the
downsampling factor, cell centres aligned), the filter of
``torch.nn.functional.interpolate(mode="bilinear", antialias=True, align_corners=False)``
for 2D grids (tested), applied axis by axis in any dimension. (Calling ``interpolate``
on one axis at a time is not an option: with a singleton second axis its antialiased
kernel is not mirror-symmetric.)

Both are separable, apply the same 1D filter to every axis of equal size and ratio,
and each 1D filter is symmetric about the domain centre, so the resize commutes with
reversing any axis and with permuting axes of equal size and ratio: with every
reflection and 90-degree rotation of a square / cubic grid (tested). It acts on each
component alone, so it also commutes with the action ``rho(g)`` on the multivector
(component) axis. The output has the input's dtype.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["linear_weights", "parse_resolution", "resize_fields"]


def parse_resolution(resolution, grid: Sequence[int]) -> tuple[int, ...] | None:
    """``data.resolution`` (None, an int, or one int per grid axis) -> target grid shape, or None.

    Raises ``ValueError`` naming the expected form."""
    if resolution is None:
        return None
    grid = tuple(int(g) for g in grid)
    if isinstance(resolution, (int, np.integer)) and not isinstance(resolution, bool):
        target = (int(resolution),) * len(grid)
    elif isinstance(resolution, (list, tuple)) and all(
            isinstance(r, (int, np.integer)) and not isinstance(r, bool) for r in resolution):
        target = tuple(int(r) for r in resolution)
    else:
        raise ValueError(f"resolution must be an int or a list of {len(grid)} ints, got {resolution!r}")
    if len(target) != len(grid):
        raise ValueError(f"resolution {list(target)} has {len(target)} entries, "
                         f"the grid {list(grid)} has {len(grid)} axes")
    if any(r < 1 for r in target):
        raise ValueError(f"resolution must be positive, got {list(target)}")
    return target


def linear_weights(n: int, size: int, dtype=torch.float64) -> torch.Tensor:
    """``(size, n)`` matrix of the anti-aliased linear (triangle) filter from ``n`` to ``size``
    cells, cell centres aligned: output ``i`` sits at input coordinate ``c = (i + 0.5) n / size - 0.5``
    and weighs input ``j`` by ``max(0, 1 - |j - c| / s)`` with ``s = max(n / size, 1)``,
    normalised over the inputs inside the domain. The same weights as
    ``interpolate(mode="bilinear", antialias=True, align_corners=False)`` on a 2D grid."""
    scale = n / size
    support = max(scale, 1.0)
    centre = (torch.arange(size, dtype=torch.float64) + 0.5) * scale - 0.5
    j = torch.arange(n, dtype=torch.float64)
    w = (1 - (j[None, :] - centre[:, None]).abs() / support).clamp(min=0)
    return (w / w.sum(1, keepdim=True)).to(dtype)


def _resize_axis(x: torch.Tensor, axis: int, size: int) -> torch.Tensor:
    n = x.shape[axis]
    if n == size:
        return x
    moved = x.movedim(axis, -1)
    if n % size == 0:  # integer factor: area averaging
        out = moved.reshape(*moved.shape[:-1], size, n // size).mean(-1)
    else:
        work = moved if moved.dtype in (torch.float32, torch.float64) else moved.float()
        out = (work @ linear_weights(n, size, work.dtype).T).to(moved.dtype)
    return out.movedim(-1, axis)


def resize_fields(fields, size: Sequence[int], first_axis: int = 1):
    """Resize the grid axes of ``fields``.

    Args:
        fields: torch tensor or numpy array ``(T, *grid, C)`` (grid axes start at
            ``first_axis`` and are followed by one component axis).
        size: target grid shape, one entry per grid axis.
    Returns:
        the same type, ``(T, *size, C)``.
    """
    is_np = not isinstance(fields, torch.Tensor)
    x = torch.from_numpy(np.ascontiguousarray(fields)) if is_np else fields
    grid_axes = range(first_axis, x.ndim - 1)
    if len(grid_axes) != len(size):
        raise ValueError(f"fields of shape {tuple(x.shape)} have {len(grid_axes)} grid axes, size {tuple(size)} "
                         f"has {len(size)}")
    for axis, s in zip(grid_axes, size):
        x = _resize_axis(x, axis, int(s))
    return x.numpy() if is_np else x
