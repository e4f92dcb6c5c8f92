"""Memory layout of the dense convolution inside :class:`~cscnn.nn.CliffordSteerableConv`.

A multivector field ``(B, C, *spatial, n_blades)`` enters the dense convolution as
``(B, C * n_blades, *spatial)`` in one of two memory orders:

* ``"contiguous"``: channels first in memory (torch's default NC(D)HW), a free view when
  the field's memory is ``(B, C, n_blades, *spatial)``, as a conv output in this layout is;
* ``"channels_last"``: channels last in memory (NHWC / NDHWC), a free view when the
  field's memory is ``(B, *spatial, C, n_blades)``, as a conv output in this layout is.

Which is faster depends on the machine, the backend and the shape: on an AVX2-only AMD
EPYC plain NCHW wins for 2D convs and for 3D inference while channels-last wins for 3D
training; an earlier machine (docs/results/conv_speed.md) favoured channels-last in 2D;
on GPUs half precision usually prefers channels-last. In the default mode ``"auto"`` the
conv therefore times both layouts once per :class:`LayoutKey` (device, dtypes, shapes,
stride, padding, train or eval, threads) on random data and keeps the faster one for the
rest of the process, like ``torch.backends.cudnn.benchmark``: paired rounds of one call per
layout (order alternating), deciding by the median time ratio within a round, 3 rounds when
one layout is clearly (10 %) faster and up to 11 when they are close.

Without measuring, a fixed preference is used (:func:`preferred_layout`: channels-last for
16-bit floats on CUDA, contiguous otherwise): for small convs (under ``MIN_MEASURED_MACS``
multiply-adds, where measuring costs more than any choice saves), while tracing
(``torch.compile``, ``torch.export``, ``torch.jit``), for tensor subclasses, on the meta
device, and when ``torch.use_deterministic_algorithms(True)`` is set, so that runs which
must be bitwise reproducible across processes never depend on a timing (the two layouts
agree to rounding, not bitwise).

Set the mode with :func:`set_conv_layout` or the environment variable
``CSCNN_CONV_LAYOUT`` (``auto``, ``contiguous`` or ``channels_last``).
"""

from __future__ import annotations

import math
import os
import statistics
import time
import warnings
from typing import NamedTuple

import torch

from .functional import conv_nd

__all__ = ["LAYOUTS", "LayoutKey", "set_conv_layout", "get_conv_layout", "clear_layout_choices", "layout_choices",
           "choose_layout", "preferred_layout", "fields_to_channels", "channels_to_fields", "synchronize"]

LAYOUTS = ("auto", "contiguous", "channels_last")
#: timed rounds (one call per layout each, after a warm-up round): at least the first number; more,
#: up to the second, while the median time ratio of the two layouts is within ``_DECISIVE`` of 1
_ROUNDS = (3, 11)
_DECISIVE = 1.1
#: below this many multiply-adds per forward a conv takes about a millisecond or less on one CPU core,
#: the layouts differ by less and timing them would cost more than the choice can save: use the preference
MIN_MEASURED_MACS = 2e7


def _check_mode(mode: str, source: str = "conv layout") -> str:
    if mode not in LAYOUTS:
        raise ValueError(f"{source} must be one of {LAYOUTS}, got {mode!r}")
    return mode


_state = {"mode": _check_mode(os.environ.get("CSCNN_CONV_LAYOUT", "auto"), "environment variable CSCNN_CONV_LAYOUT")}


class LayoutKey(NamedTuple):
    """What a measured choice depends on."""

    device: str
    dtype: torch.dtype
    compute_dtype: torch.dtype  # the autocast dtype where autocast is on
    input_shape: tuple  # the field (B, C, *spatial, n_blades)
    weight_shape: tuple
    stride: int
    padding: int
    padding_mode: str | tuple  # one mode, or one per spatial axis (a tuple, hashable)
    dilation: int
    train: bool  # forward + backward timed
    input_grad: bool
    threads: int


_choices: dict[LayoutKey, str] = {}


def set_conv_layout(mode: str) -> None:
    """``"auto"`` (measure per shape, the default), ``"contiguous"`` or ``"channels_last"`` (fixed)."""
    _state["mode"] = _check_mode(mode)


def get_conv_layout() -> str:
    """The current mode (see :func:`set_conv_layout`)."""
    return _state["mode"]


def clear_layout_choices() -> None:
    """Forget the measured choices (the next conv of each shape measures again)."""
    _choices.clear()


def layout_choices() -> dict[LayoutKey, str]:
    """A copy of the measured choices: :class:`LayoutKey` -> layout."""
    return dict(_choices)


def fields_to_channels(x: torch.Tensor, layout: str = "channels_last") -> torch.Tensor:
    """(B, C, *spatial, n_blades) -> (B, C * n_blades, *spatial), channel index c * n_blades + blade.

    The result is in ``layout`` memory order (see the module docs): a view when ``x``
    already has that order in memory, one copy otherwise."""
    if layout == "channels_last":
        last = x.movedim(1, -2)  # (B, *spatial, C, n)
        if not last.is_contiguous():
            last = _copy_blade_groups(x).movedim(1, -2) if _groups_copyable(x) else last.contiguous()
        return last.reshape(*last.shape[:-2], -1).movedim(-1, 1)  # reshape of a contiguous tensor: a view
    first = x.movedim(-1, 2)  # (B, C, n, *spatial)
    if not first.is_contiguous():
        first = first.contiguous()
    return first.flatten(1, 2)


def _traced(x: torch.Tensor) -> bool:
    """Whether ``x`` flows through a tracer (``torch.compile``, ``torch.export``, ``torch.jit``) or is a
    tensor subclass (fake, distributed): then nothing is timed or reinterpreted."""
    return (torch.compiler.is_compiling() or torch.jit.is_tracing() or torch.jit.is_scripting()
            or type(x) is not torch.Tensor)


#: bytes of one blade group moved as a single element by :func:`_copy_blade_groups`
_GROUP_BYTES = 16


def _groups_copyable(x: torch.Tensor) -> bool:
    """Whether the channels-last copy of ``x`` may move each multivector (blades contiguous) as
    16-byte elements: not tracing, no gradient is needed (a dtype view is not differentiable), CPU or
    CUDA, the blades contiguous in memory and a multiple of 16 bytes."""
    if _traced(x):
        return False  # inside a graph the compiler plans the copy
    return (not (x.requires_grad and torch.is_grad_enabled())
            and x.device.type in ("cpu", "cuda") and x.stride(-1) == 1
            and (x.shape[-1] * x.element_size()) % _GROUP_BYTES == 0 and x.storage_offset() * x.element_size()
            % _GROUP_BYTES == 0 and all(st * x.element_size() % _GROUP_BYTES == 0 for st in x.stride()[:-1]))


def _copy_blade_groups(x: torch.Tensor) -> torch.Tensor:
    """``x`` (B, C, *spatial, n) copied to memory order (B, *spatial, C, n), bitwise, moving the
    blades of a multivector as 16-byte elements: on CPUs the copy of 4 float32 blades as 4 separate
    elements is ~6x slower (3.8 vs 0.6 ms for (4, 16, 64, 64, 4) on an Intel Xeon)."""
    wide = x.view(torch.complex128)  # (B, C, *spatial, n * itemsize / 16)
    return wide.movedim(1, -2).contiguous().movedim(-2, 1).view(x.dtype)


def channels_to_fields(y: torch.Tensor, n_blades: int) -> torch.Tensor:
    """(B, C * n_blades, *spatial) -> (B, C, *spatial, n_blades), a view (no copy) in either layout."""
    last = y.movedim(1, -1)  # (B, *spatial, C * n)
    return last.unflatten(-1, (y.shape[1] // n_blades, n_blades)).movedim(-2, 1)


def preferred_layout(device: torch.device, dtype: torch.dtype) -> str:
    """The fixed preference used without measuring: channels-last for 16-bit floats on CUDA."""
    if device.type == "cuda" and dtype in (torch.float16, torch.bfloat16):
        return "channels_last"
    return "contiguous"


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    dev = x.device.type
    if torch.is_autocast_enabled(dev):
        return torch.get_autocast_dtype(dev)
    return x.dtype


def choose_layout(x: torch.Tensor, weight: torch.Tensor, stride: int, padding: int, padding_mode,
                  dilation: int = 1) -> str:
    """The memory layout for ``conv_nd`` of the field ``x`` (B, C, *spatial, n_blades) with ``weight``.

    Fixed modes return themselves; ``"auto"`` returns the measured faster layout (measuring
    on first use of a key), or :func:`preferred_layout` where measuring is not possible or
    not wanted (compiling, meta tensors, deterministic algorithms)."""
    mode = _state["mode"]
    if mode != "auto":
        return mode
    if x.device.type == "meta" or weight.device.type == "meta":
        return preferred_layout(x.device, x.dtype)
    dtype = _compute_dtype(x)
    if _traced(x) or torch.are_deterministic_algorithms_enabled():
        return preferred_layout(x.device, dtype)  # tracing, exporting, tensor subclasses (fake, distributed)
    if _macs(x, weight, stride, padding, dilation) < MIN_MEASURED_MACS:
        return preferred_layout(x.device, dtype)
    train = torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)
    mode_key = padding_mode if isinstance(padding_mode, str) else tuple(padding_mode)  # one per axis: hashable
    key = LayoutKey(str(x.device), x.dtype, dtype, tuple(x.shape), tuple(weight.shape), stride, padding,
                    mode_key, dilation, train, x.requires_grad, torch.get_num_threads())
    choice = _choices.get(key)
    if choice is None:
        try:
            choice = _measure(x, weight, stride, padding, padding_mode, dilation, train)
        except Exception as e:  # noqa: BLE001 - timing is only an optimisation: say so and use the preference
            choice = preferred_layout(x.device, dtype)
            warnings.warn(f"cscnn: could not time the conv layouts for {tuple(x.shape)} ({type(e).__name__}: {e}); "
                          f"using {choice!r}", RuntimeWarning, stacklevel=3)
        _choices[key] = choice
    return choice


def _macs(x: torch.Tensor, weight: torch.Tensor, stride: int, padding: int, dilation: int) -> float:
    """Multiply-adds of one forward: output points * weight entries."""
    k = weight.shape[-1]
    out_points = x.shape[0] * math.prod(max(0, (s + 2 * padding - dilation * (k - 1) - 1) // stride + 1)
                                        for s in x.shape[2:-1])
    return float(out_points) * weight.numel()


def synchronize(device) -> None:
    """Wait for the device's queued work (no-op on CPU), so that wall-clock timings are complete."""
    device = torch.device(device)
    backend = getattr(torch, device.type, None) if device.type not in ("cpu", "meta") else None
    if backend is not None and hasattr(backend, "synchronize"):
        try:
            backend.synchronize(device)
        except TypeError:  # backends whose synchronize takes no device (mps)
            backend.synchronize()


def _measure(x: torch.Tensor, weight: torch.Tensor, stride: int, padding: int, padding_mode, dilation: int,
             train: bool) -> str:
    """Time ``conv_nd`` (forward, plus backward when ``train``) in both layouts on random data.

    Paired rounds: each round times one call per layout back to back, the order alternating
    between rounds, and the decision is the median over rounds of the time ratio within a round.
    A pair runs within a fraction of a second, so slow phases of a shared machine (which
    can last seconds and slow every call by a third or more) scale both calls alike and cancel in
    the ratio, where the best time of each layout could come from different phases."""
    with torch.no_grad():
        w = torch.randn_like(weight)
        field = torch.randn_like(x, memory_format=torch.contiguous_format)
        inputs = {lay: fields_to_channels(field, lay) for lay in LAYOUTS[1:]}
        grads = {}
        if train:  # the upstream gradient in the output's layout, drawn once (outside the timings)
            for lay, inp in inputs.items():
                grads[lay] = torch.randn_like(conv_nd(inp, w, stride, padding, padding_mode, None, dilation))

    def run(lay):
        if not train:
            with torch.no_grad():
                conv_nd(inputs[lay], w, stride, padding, padding_mode, None, dilation)
            return
        with torch.enable_grad():
            xi = inputs[lay].detach().requires_grad_(x.requires_grad)
            wi = w.detach().requires_grad_(weight.requires_grad)
            y = conv_nd(xi, wi, stride, padding, padding_mode, None, dilation)
            wrt = [t for t in (xi, wi) if t.requires_grad]
            torch.autograd.grad(y, wrt, grads[lay])

    first, second = LAYOUTS[1:]
    ratios = []  # time(second) / time(first), one per round
    for rnd in range(_ROUNDS[1] + 1):
        order = (first, second) if rnd % 2 else (second, first)
        times = {}
        for lay in order:
            synchronize(x.device)
            t = time.perf_counter()
            run(lay)
            synchronize(x.device)
            times[lay] = time.perf_counter() - t
        if rnd:  # the first round warms up (allocator, backend primitives)
            ratios.append(times[second] / max(times[first], 1e-9))
        if len(ratios) >= _ROUNDS[0]:
            r = statistics.median(ratios)
            if max(r, 1 / r) >= _DECISIVE:
                break
    return second if statistics.median(ratios) < 1 else first
