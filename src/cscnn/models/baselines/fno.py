"""Fourier Neural Operator baseline: ``neuralop.models.FNO`` behind the multivector-field interface."""

from __future__ import annotations

import torch
from torch import nn

from ...nn.checks import as_algebra, check_channels
from .adapters import channels_to_mv, check_field, mv_to_channels, require

__all__ = ["FNO"]

_COMPLEX_OF = {torch.float16: torch.complex32, torch.float32: torch.complex64, torch.float64: torch.complex128}


class FNO(nn.Module):
    """FNO (Li et al. 2021) from ``neuraloperator`` on multivector fields.

    Adapter: as the plain ResNet, channels and blades are flattened into ``C * 2**dim`` scalar
    channels with index ``c * 2**dim + blade``; the FNO maps ``in_channels * 2**dim`` to
    ``out_channels * 2**dim`` channels, which are unflattened back into multivectors.

    Args:
        alg: CliffordAlgebra or metric tuple (dims 1 to 3).
        in_channels, out_channels: multivector channels.
        hidden_channels: FNO width (scalar channels).
        modes: Fourier modes kept per axis (int or one per axis); at most ``X_i // 2 + 1`` is useful.
        n_layers: Fourier layers.
        **fno_kwargs: passed on to ``neuralop.models.FNO`` (e.g. ``positional_embedding=None``,
            ``norm="group_norm"``, ``domain_padding``).

    Shapes: ``x: (B, in_channels, X_1..X_dim, 2**dim) -> (B, out_channels, X_1..X_dim, 2**dim)``.
    Raises ImportError (``pip install cscnn[baselines]``) without neuraloperator.
    """

    def __init__(self, alg, in_channels: int, out_channels: int, hidden_channels: int,
                 modes: int | tuple[int, ...] = 16, n_layers: int = 4, **fno_kwargs):
        super().__init__()
        self.alg = alg = as_algebra(alg)
        if not 1 <= alg.dim <= 3:
            raise ValueError(f"the FNO baseline supports dims 1 to 3, got metric {alg.metric}")
        self.in_channels = check_channels(in_channels, "in_channels")
        self.out_channels = check_channels(out_channels, "out_channels")
        self.hidden_channels = check_channels(hidden_channels, "hidden_channels")
        if isinstance(modes, int):
            modes = (modes,) * alg.dim
        modes = tuple(modes)
        if len(modes) != alg.dim or any(isinstance(m, bool) or not isinstance(m, int) or m < 1 for m in modes):
            raise ValueError(f"modes must be a positive int or {alg.dim} of them, got {modes!r}")
        self.modes = modes
        neuralop_models = require("neuralop.models", "neuraloperator")
        n = alg.n_blades
        self.fno = neuralop_models.FNO(n_modes=modes, in_channels=in_channels * n, out_channels=out_channels * n,
                                       hidden_channels=hidden_channels, n_layers=n_layers, **fno_kwargs)

    def _apply(self, fn, recurse=True):
        # neuraloperator keeps complex spectral weights; make them follow the real dtype and device
        # (``.double()`` would leave them complex64, ``.to(torch.float64)`` would drop their imaginary part).
        def follow(t):
            if not t.is_complex():
                return fn(t)
            real = torch.empty((), dtype=t.real.dtype, device=t.device)
            moved = fn(real)
            target = _COMPLEX_OF.get(moved.dtype, t.dtype) if moved.is_floating_point() else t.dtype
            return t.to(device=moved.device, dtype=target)

        return super()._apply(follow, recurse)

    def extra_repr(self) -> str:
        return (f"metric={self.alg.metric}, in={self.in_channels}, out={self.out_channels}, "
                f"hidden={self.hidden_channels}, modes={self.modes}")

    def to_native(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, *X, n_blades) -> (B, C * n_blades, *X)``, channel ``c * n_blades + blade``."""
        return mv_to_channels(x)

    def from_native(self, y: torch.Tensor) -> torch.Tensor:
        return channels_to_mv(y, self.alg.n_blades)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_field(x, self.alg, self.in_channels, "FNO")
        return self.from_native(self.fno(self.to_native(x)))
