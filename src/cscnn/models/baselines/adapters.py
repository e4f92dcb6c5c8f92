"""Thin adapters between multivector fields and the channel layouts of the baseline libraries.

Every baseline takes and returns the CS-model layout ``(B, C, X_1..X_dim, 2**dim)`` (blades in
short-lex order of :class:`~cscnn.CliffordAlgebra`). Inside, the field is converted to what the
wrapped library expects:

* ``flat``: ``(B, C * 2**dim, X_1..X_dim)`` with channel index ``c * 2**dim + blade`` -- plain
  torch convolutions (ResNet) and neuraloperator's FNO. Time steps x blades become channels.
* ``clifford``: the layout of cliffordlayers, ``(B, C, X_1..X_dim, 2**dim)`` with the same blade
  order (1, e1, e2, e12 / 1, e1, e2, e3, e12, e13, e23, e123): the identity.
* escnn's geometric tensors: see :mod:`cscnn.models.baselines.steerable_resnet`.
"""

from __future__ import annotations

import torch

from ...nn.checks import check_mv_input

__all__ = ["mv_to_channels", "channels_to_mv", "check_field", "install_hint", "require"]


def mv_to_channels(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, X_1..X_d, n_blades) -> (B, C * n_blades, X_1..X_d)``, channel ``c * n_blades + blade``."""
    nd = x.ndim - 3
    return x.movedim(-1, 2).reshape(x.shape[0], x.shape[1] * x.shape[-1], *x.shape[2:2 + nd])


def channels_to_mv(y: torch.Tensor, n_blades: int) -> torch.Tensor:
    """Inverse of :func:`mv_to_channels`: ``(B, C * n_blades, X_1..X_d) -> (B, C, X_1..X_d, n_blades)``."""
    if y.shape[1] % n_blades:
        raise ValueError(f"{y.shape[1]} channels are not a multiple of {n_blades} blades")
    return y.reshape(y.shape[0], y.shape[1] // n_blades, n_blades, *y.shape[2:]).movedim(2, -1)


def check_field(x: torch.Tensor, alg, channels: int, model: str) -> None:
    """Fail early unless ``x`` is ``(B, channels, X_1..X_dim, n_blades)``."""
    check_mv_input(x, alg, channels, model, spatial_dims=alg.dim)


def install_hint(package: str) -> str:
    return (f"this baseline needs the optional package {package!r}; install the extra with "
            f"`pip install cscnn[baselines]` (or `pip install {package}`)")


def require(module: str, package: str | None = None):
    """Import an optional library or raise ImportError with the install hint."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(install_hint(package or module.split(".")[0])) from err
