"""Gated nonlinearities: scale each multivector by a function of its invariant scalar part."""

from __future__ import annotations

import torch

from .checks import as_algebra
from .module import CliffordModule

#: gelu: the Gaussian CDF 0.5 (1 + erf(s / sqrt 2)), as one operation
_GATES = {"gelu": torch.special.ndtr, "silu": torch.sigmoid, "sigmoid": torch.sigmoid}


class MVGate(CliffordModule):
    """``x * gate(x^(0))``: the gate sees only the O(p,q)-invariant scalar.

    ``activation="gelu"`` uses the Gaussian CDF (so the scalar part becomes
    GELU(x0)), ``"silu"`` the logistic sigmoid (scalar part becomes SiLU(x0)).

    Shapes: ``x: (..., 2**dim) -> same``.
    """

    def __init__(self, alg, activation: str = "gelu"):
        super().__init__()
        self.alg = as_algebra(alg)
        if activation not in _GATES:
            raise ValueError(f"activation must be one of {sorted(_GATES)}, got {activation!r}")
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.alg.check(x)
        return x * _GATES[self.activation](x[..., :1])

    def extra_repr(self) -> str:
        return f"activation={self.activation!r}, metric={self.alg.metric}"


class MVGELU(MVGate):
    """Multivector GELU gate (see :class:`MVGate`)."""

    def __init__(self, alg):
        super().__init__(alg, "gelu")


class MVSiLU(MVGate):
    """Multivector SiLU gate (see :class:`MVGate`)."""

    def __init__(self, alg):
        super().__init__(alg, "silu")
