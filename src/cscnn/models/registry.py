"""Model registry: configs name models by string.

    from cscnn.models import build_model
    net = build_model("cs_resnet", (1, 1), 4, 1, hidden_channels=48, kernel_size=7)
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable

from torch import nn

from ..nn.checks import as_algebra
from .baselines import FNO, GFNO, CliffordResNet, ResNet, SteerableResNet
from .cs_resnet import CSResNet
from .cs_unet import CSUNet

__all__ = ["MODELS", "DEFAULT_HIDDEN", "build_model", "model_kwargs"]

#: name -> model class (or a class with fixed options: ``cond_*`` are the conditional CS models of
#: Szarvas & Zhdanov, ``cs_resnet_two_sided`` the CS-ResNet with the two-sided kernel head); every one is
#: called as ``cls(alg, in_channels, out_channels, hidden_channels, **kwargs)``.
MODELS: dict[str, Callable[..., nn.Module]] = {
    "cs_resnet": CSResNet,
    "cs_unet": CSUNet,
    "cond_cs_resnet": functools.partial(CSResNet, conditional=True),
    "cond_cs_unet": functools.partial(CSUNet, conditional=True),
    "cs_resnet_two_sided": functools.partial(CSResNet, kernel_head="two_sided"),
    "resnet": ResNet,
    "clifford_resnet": CliffordResNet,
    "steerable_resnet": SteerableResNet,
    "fno": FNO,
    "gfno": GFNO,
}

#: hidden width used when ``hidden_channels`` is None (paper's Navier-Stokes widths where it gives them;
#: multivector channels for the CS and Clifford models, scalar channels for ResNet/FNO, regular fields for escnn
#: and the G-FNO; the G-FNO's 15 matches the CS-ResNet's 7.2M parameters at 16 modes).
DEFAULT_HIDDEN: dict[str, int] = {
    "cs_resnet": 48,
    "cs_unet": 16,
    "cond_cs_resnet": 48,
    "cond_cs_unet": 16,
    "cs_resnet_two_sided": 48,
    "resnet": 96,
    "clifford_resnet": 48,
    "steerable_resnet": 16,
    "fno": 64,
    "gfno": 15,
}

_POSITIONAL = ("self", "alg", "in_channels", "out_channels", "hidden_channels")


def model_kwargs(name: str) -> tuple[list[str], bool]:
    """Keyword arguments a registered model accepts beyond the four common ones, and whether it
    forwards arbitrary extra keywords (``**kwargs``) to its library."""
    cls = _lookup(name)
    params = inspect.signature(cls).parameters.values()
    names = [p.name for p in params if p.name not in _POSITIONAL and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
    return names, any(p.kind == p.VAR_KEYWORD for p in params)


def _lookup(name: str):
    if not isinstance(name, str) or name not in MODELS:
        raise KeyError(f"unknown model {name!r}; valid names: {', '.join(sorted(MODELS))}")
    return MODELS[name]


def build_model(name: str, alg, in_channels: int, out_channels: int, hidden_channels: int | None = None,
                **kwargs) -> nn.Module:
    """Build a registered model by name.

    Args:
        name: one of ``MODELS`` ("cs_resnet", "cs_unet", "resnet", "clifford_resnet",
            "steerable_resnet", "fno", "gfno", ...).
        alg: CliffordAlgebra or metric tuple.
        in_channels, out_channels: multivector channels of the input and output fields.
        hidden_channels: width; ``DEFAULT_HIDDEN[name]`` when None.
        **kwargs: model options (e.g. ``blocks``, ``kernel_size``, ``padding_mode``); unknown
            names raise TypeError listing the accepted ones.

    Returns:
        the model, mapping ``(B, in_channels, *X, 2**dim) -> (B, out_channels, *X, 2**dim)``, with ``.alg``.
    """
    cls = _lookup(name)
    accepted, var_kw = model_kwargs(name)
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown and not var_kw:
        raise TypeError(f"model {name!r} got unknown option(s) {unknown}; accepted: {', '.join(accepted)}")
    if hidden_channels is None:
        hidden_channels = DEFAULT_HIDDEN[name]
    return cls(as_algebra(alg), in_channels, out_channels, hidden_channels, **kwargs)
