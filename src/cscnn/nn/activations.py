"""Gated nonlinearities: scale each multivector by a function of its invariant scalar part."""

from __future__ import annotations

import math

import torch

from .checks import as_algebra
from .module import CliffordModule

_TANH_GELU_SCALE = 2 * math.sqrt(2 / math.pi)
_TANH_GELU_CUBIC = 0.044715


def _tanh_gelu_gate(s: torch.Tensor) -> torch.Tensor:
    """The gate of the tanh-approximate GELU: ``0.5 (1 + tanh(sqrt(2/pi) (s + 0.044715 s^3)))``, written
    as the logistic sigmoid of twice the argument (the authors' MVGELU, Zhdanov et al. 2024)."""
    return torch.sigmoid(_TANH_GELU_SCALE * (s + _TANH_GELU_CUBIC * s * s * s))


#: gelu: the Gaussian CDF 0.5 (1 + erf(s / sqrt 2)), as one operation; gelu_tanh: its tanh approximation
_GATES = {"gelu": torch.special.ndtr, "gelu_tanh": _tanh_gelu_gate, "silu": torch.sigmoid, "sigmoid": torch.sigmoid}


def _gate_derivative(activation: str, s: torch.Tensor) -> torch.Tensor:
    """d gate / d s: the Gaussian density for gelu, sigma (1 - sigma) for silu / sigmoid (times the
    derivative of the argument for gelu_tanh)."""
    if activation == "gelu":
        return torch.exp(-0.5 * s * s) * (1 / math.sqrt(2 * math.pi))
    if activation == "gelu_tanh":
        sig = _tanh_gelu_gate(s)
        return (sig - sig * sig) * (_TANH_GELU_SCALE * (1 + 3 * _TANH_GELU_CUBIC * s * s))
    sig = torch.sigmoid(s)
    return sig - sig * sig


class _Gate(torch.autograd.Function):
    """``y = x * gate(x^(0))`` with a hand-written backward.

    ``dL/dx = g * gate(s) + e_0 <g, x> gate'(s)`` (``s = x^(0)``, ``<g, x>`` summed over blades): two
    passes over the field and one over the scalars, where autograd of the composite also zero-fills a
    full-size gradient for the slice ``x[..., :1]`` and adds the two gradients of ``x``. The backward is
    itself made of differentiable operators, so double backward works (the gate is recomputed from
    ``x`` when grad mode is on). Shapes: ``x (..., n_blades)``, any memory order."""

    @staticmethod
    def forward(ctx, x, activation: str):
        g = _GATES[activation](x[..., :1])
        ctx.save_for_backward(x, g)
        ctx.activation = activation
        return x * g

    @staticmethod
    def backward(ctx, grad):
        x, g = ctx.saved_tensors
        s = x[..., :1]
        if torch.is_grad_enabled():  # create_graph: the gate as a function of x
            g = _GATES[ctx.activation](s)
        gx = grad * g
        dot = torch.linalg.vecdot(grad, x, dim=-1).unsqueeze(-1)  # <g, x> over the blades: (..., 1)
        gx[..., :1] += dot * _gate_derivative(ctx.activation, s)
        return gx, None


class MVGate(CliffordModule):
    """``x * gate(x^(0))``: the gate sees only the O(p,q)-invariant scalar.

    ``activation="gelu"`` uses the Gaussian CDF (so the scalar part becomes
    GELU(x0)), ``"gelu_tanh"`` its tanh approximation (the authors' code), ``"silu"`` the
    logistic sigmoid (scalar part becomes SiLU(x0)).

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
        return _Gate.apply(x, self.activation)

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
