"""Input validation shared by the modules and models: fail early with a one-line message.

Public helpers (also used by :mod:`cscnn.models`): :func:`as_algebra`, :func:`check_channels`,
:func:`check_kernel_size`, :func:`check_positive_int`, :func:`check_mv_input`, :func:`channel_view`.
"""

from __future__ import annotations

import torch

from ..algebra import CliffordAlgebra

__all__ = ["COMPAT", "as_algebra", "channel_view", "check_channels", "check_compat", "check_kernel_size",
           "check_mv_input", "check_positive_int"]

#: forward and initialisation of the layers: "cscnn" (the default) or "official" (the authors' JAX code of
#: Zhdanov et al., "Clifford-Steerable Convolutional Neural Networks", ICML 2024; docs/models.md compares them)
COMPAT = ("cscnn", "official")


def check_compat(compat) -> str:
    """``compat`` as one of :data:`COMPAT`, or ValueError."""
    if not isinstance(compat, str) or compat not in COMPAT:
        raise ValueError(f"compat must be one of {COMPAT}, got {compat!r}")
    return compat


def as_algebra(alg) -> CliffordAlgebra:
    """Accept a CliffordAlgebra or a metric tuple."""
    return alg if isinstance(alg, CliffordAlgebra) else CliffordAlgebra(alg)


def check_positive_int(value, name: str, minimum: int = 1) -> int:
    """``value`` as an int ``>= minimum`` (bools rejected), or ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        kind = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        raise ValueError(f"{name} must be {kind}, got {value!r}")
    return value


def check_channels(value, name: str) -> int:
    return check_positive_int(value, name)


def check_kernel_size(value) -> int:
    """A positive odd int: an even kernel grid has no centre, so reflections would not map it onto itself."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"kernel_size must be a positive odd int, got {value!r}")
    if value % 2 == 0:
        raise ValueError(
            f"kernel_size must be odd, got {value}: an even kernel grid has no centre, so "
            "reflections would not map it onto itself and equivariance would break"
        )
    return value


def _autocast_dtype(device: torch.device) -> torch.dtype | None:
    """The lower-precision dtype of an active ``torch.autocast`` for ``device``, else None."""
    kind = device.type
    if kind in ("cpu", "cuda", "xpu", "mps", "hpu") and torch.is_autocast_enabled(kind):
        return torch.get_autocast_dtype(kind)
    return None


def check_mv_input(
    x: torch.Tensor,
    alg: CliffordAlgebra,
    channels: int,
    module: str,
    like: torch.Tensor | None = None,
    spatial_dims: int | None = None,
) -> None:
    """Check ``x`` is (B, channels, *spatial, n_blades) with no empty grid axis and matches ``like``'s
    dtype/device.

    Under ``torch.autocast`` the autocast dtype (e.g. bfloat16) is accepted for float32 parameters."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{module} expects a torch.Tensor, got {type(x).__name__}")
    nd = 3 if spatial_dims is None else 3 + spatial_dims
    if (x.ndim < 3 if spatial_dims is None else x.ndim != nd) or x.shape[-1] != alg.n_blades or x.shape[1] != channels:
        expected = (
            f"(B, {channels}, *spatial, {alg.n_blades})"
            if spatial_dims is None
            else f"(B, {channels}, {', '.join(f'X{i + 1}' for i in range(spatial_dims))}, {alg.n_blades})"
        )
        raise ValueError(
            f"{module} expects input of shape {expected} for metric {alg.metric}, got {tuple(x.shape)}"
        )
    if not x.is_floating_point():
        raise TypeError(f"{module} expects a floating-point input, got {x.dtype}")
    empty = [i for i, s in enumerate(x.shape[2:-1]) if s == 0]
    if empty:
        raise ValueError(f"{module} got an input of shape {tuple(x.shape)} whose grid axis {empty[0]} has no points; "
                         "every grid axis needs at least one")
    if like is None:
        return
    dtype_ok = x.dtype == like.dtype or (like.dtype == torch.float32 and x.dtype == _autocast_dtype(x.device))
    if not dtype_ok or x.device != like.device:
        raise ValueError(
            f"{module} parameters are {like.dtype} on {like.device} but the input is {x.dtype} on "
            f"{x.device}; move one of them (e.g. module.to(x) or x.to(...)) or run under torch.autocast"
        )


def channel_view(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Reshape per-channel parameters (C, ...) to broadcast against x (B, C, *spatial, ...)."""
    n_spatial = x.ndim - 3
    return t.reshape(t.shape[0], *([1] * n_spatial), *t.shape[1:])
