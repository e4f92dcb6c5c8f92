"""CliffordModule: the base of cscnn's layers and models.

It gives every module the same life cycle:

* parameters are created empty and initialised **once**, by the outermost module's
  :meth:`CliffordModule.reset_parameters` at the end of its construction (a submodule built inside
  another one does not draw its own values first), so a given seed gives the same model whether it
  is built directly or on the meta device and materialised;
* constant tables (Cayley gathers, grade one-hots, kernel grids) are non-persistent buffers made from
  the algebra's CPU tables; ``reset_parameters()`` refills them, so
  ``with torch.device("meta"): m = Model(...)`` followed by ``m.to_empty(device=d)`` and
  ``m.reset_parameters()`` gives a working model;
* ``device=`` / ``dtype=`` factory arguments as in ``torch.nn``.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools

import torch
from torch import nn

__all__ = ["CliffordModule", "factory_kwargs", "float32_statistics", "reset_parameters"]

_BUILD_DEPTH = contextvars.ContextVar("cscnn_build_depth", default=0)


def factory_kwargs(device=None, dtype=None) -> dict:
    """``{"device", "dtype"}`` resolved like torch does for parameters (default device and dtype,
    including a ``with torch.device(...)`` context); ``dtype`` must be floating point."""
    dtype = torch.get_default_dtype() if dtype is None else dtype
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating-point torch.dtype, got {dtype!r}")
    device = torch.get_default_device() if device is None else torch.device(device)
    return {"device": device, "dtype": dtype}


def reset_parameters(module: nn.Module) -> None:
    """Re-initialise ``module`` and everything under it: calls ``reset_parameters()`` where a module
    has one (a CliffordModule's covers its whole subtree), else descends into its children."""
    if callable(getattr(module, "reset_parameters", None)):
        module.reset_parameters()
    else:
        for child in module.children():
            reset_parameters(child)


def float32_statistics(x: torch.Tensor):
    """Context and dtype for statistics of ``x`` (norms, means): autocast off and half/bfloat16
    inputs upcast to float32, so small squares and epsilons do not underflow.

    Returns ``(context, x_for_statistics)``."""
    low = x.dtype in (torch.float16, torch.bfloat16)
    ctx = torch.autocast(x.device.type, enabled=False) if x.device.type in ("cpu", "cuda", "xpu", "mps") \
        else contextlib.nullcontext()
    return ctx, (x.float() if low else x)


def _init_once(init):
    @functools.wraps(init)
    def wrapped(self, *args, **kwargs):
        token = _BUILD_DEPTH.set(_BUILD_DEPTH.get() + 1)
        try:
            init(self, *args, **kwargs)
        finally:
            _BUILD_DEPTH.reset(token)
        if _BUILD_DEPTH.get() == 0:  # outermost construction: initialise the whole tree once
            self.reset_parameters()

    return wrapped


class CliffordModule(nn.Module):
    """Base class: one initialisation per build, constant tables as refillable buffers (see module docs).

    Subclasses put their own parameter initialisation in :meth:`_reset_own_parameters` and register
    constant tables with :meth:`register_constant`.
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "__init__" in cls.__dict__:
            cls.__init__ = _init_once(cls.__dict__["__init__"])

    def register_constant(self, name: str, table: torch.Tensor, device=None, dtype=None) -> None:
        """Register ``table`` (a CPU tensor of the algebra) as a non-persistent buffer on
        ``device`` (default: torch's default device) in ``dtype`` (default dtype) if it is floating."""
        fk = factory_kwargs(device, dtype)
        source = table.detach().to("cpu")
        value = source.to(**fk) if source.is_floating_point() else source.to(fk["device"])
        self.register_buffer(name, value, persistent=False)
        self.__dict__.setdefault("_constant_sources", {})[name] = source

    def _reset_own_parameters(self) -> None:
        """Initialise the parameters this module holds directly (not its submodules')."""

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Re-initialise this module's parameters and those of all its submodules and refill its
        constant tables (e.g. after ``to_empty()``)."""
        for name, source in self.__dict__.get("_constant_sources", {}).items():
            getattr(self, name).copy_(source)
        self._reset_own_parameters()
        for child in self.children():
            reset_parameters(child)
