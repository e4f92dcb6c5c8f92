"""N-d padding and cross-correlation in 1 to 4 dimensions (conv4d built from conv3d).

Padding modes: every layer and model of cscnn takes ``padding_mode`` as one of
:data:`PADDING_MODES` for all spatial axes, or as a sequence with one mode per spatial axis,
e.g. ``("circular", "zeros")`` for a 2D grid periodic in x and walled in y.
:func:`check_padding_mode` is the one place that validates and normalises it (lists become
tuples, so a YAML list and a Python tuple give the same model); :func:`pad_nd` and
:func:`conv_nd` pad each axis with its own mode.

Equivariance: padding with one mode on every axis commutes with every grid symmetry. A mixed
per-axis mode commutes only with those that map each axis onto an axis padded alike (reflections
of single axes, permutations among equally padded axes): an axis swap moves a circular axis
onto a walled one, so a model padded ``("circular", "zeros")`` is not rotation-equivariant (nor
is the physics of such a domain).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

PADDING_MODES = ("zeros", "circular", "reflect", "replicate")

#: a padding mode: one of PADDING_MODES for every axis, or a tuple with one mode per spatial axis
PaddingMode = str | tuple[str, ...]


def check_padding_mode(padding_mode, spatial_dims: int | None = None) -> PaddingMode:
    """Validate and normalise a padding mode; a one-line ``ValueError`` otherwise.

    Args:
        padding_mode: one of :data:`PADDING_MODES` (all spatial axes), or a sequence (list or
            tuple) with one of them per spatial axis, in grid-axis order.
        spatial_dims: number of spatial axes, when known (a layer's ``alg.dim``): a sequence of
            another length is refused naming both numbers. Without it the length is checked at
            forward time (:func:`padding_modes`).
    Returns:
        the string, or the modes as a tuple; with ``spatial_dims``, a sequence of one mode
        repeated collapses to that string (the same padding, the same model).
    """
    if isinstance(padding_mode, str):
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {PADDING_MODES} or a sequence of them, one per spatial "
                             f"axis; got {padding_mode!r}")
        return padding_mode
    if not isinstance(padding_mode, Sequence) or not padding_mode or not all(isinstance(m, str) for m in padding_mode):
        raise ValueError(f"padding_mode must be one of {PADDING_MODES} or a non-empty sequence of them, one per "
                         f"spatial axis; got {padding_mode!r}")
    modes = tuple(padding_mode)
    bad = [m for m in modes if m not in PADDING_MODES]
    if bad:
        raise ValueError(f"padding_mode must be one of {PADDING_MODES} per spatial axis; got {bad[0]!r} in "
                         f"{list(modes)}")
    if spatial_dims is not None:
        if len(modes) != spatial_dims:
            raise ValueError(f"padding_mode {list(modes)} gives {len(modes)} modes for {spatial_dims} spatial axes; "
                             f"give one mode per axis ({spatial_dims}) or one string for all")
        if len(set(modes)) == 1:
            return modes[0]
    return modes


def padding_modes(padding_mode, spatial_dims: int) -> tuple[str, ...]:
    """The mode of each of ``spatial_dims`` axes: ``("zeros",) * 2`` for ``"zeros"`` in 2D;
    a sequence of another length fails naming both numbers."""
    mode = check_padding_mode(padding_mode, spatial_dims)
    return (mode,) * spatial_dims if isinstance(mode, str) else mode


def uniform_padding(padding_mode) -> str | None:
    """The one mode of every axis (``"circular"`` for ``"circular"`` or ``("circular", "circular")``),
    None for a mixed per-axis mode."""
    if isinstance(padding_mode, str):
        return padding_mode
    modes = set(padding_mode)
    return next(iter(modes)) if len(modes) == 1 else None


def describe_padding(padding_mode) -> str:
    """A short text for reports: ``"circular"``, or ``"circular/zeros (per axis)"``."""
    if isinstance(padding_mode, str):
        return padding_mode
    one = uniform_padding(padding_mode)
    return one if one is not None else "/".join(padding_mode) + " (per axis)"

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def _pad_indices(n: int, p: int, mode: str, device) -> torch.Tensor:
    idx = torch.arange(-p, n + p, device=device)
    if mode == "circular":
        return idx % n
    if mode == "replicate":
        return idx.clamp(0, n - 1)
    if mode == "reflect":  # mirror without repeating the edge, like torch
        period = 2 * (n - 1)
        idx = idx.abs() % period if period else idx * 0
        return torch.where(idx >= n, period - idx, idx)
    raise ValueError(f"unknown padding mode {mode!r}")


def pad_nd(x: torch.Tensor, pads: tuple[int, ...], mode: PaddingMode) -> torch.Tensor:
    """Pad the trailing ``len(pads)`` axes of ``x`` by ``pads[d]`` on both sides.

    ``mode`` is one of ``PADDING_MODES`` for every axis or a sequence with one mode per padded
    axis (:func:`check_padding_mode`; another length fails naming both numbers); works for any
    number of spatial axes. Each axis is padded with its own mode; the value at a corner is the
    product of the axes' rules (zero where any zero-padded axis is outside the grid).
    """
    nd = len(pads)
    modes = padding_modes(mode, nd)
    if not any(pads):
        return x
    one = uniform_padding(modes)
    flat = [p for p in reversed(pads) for _ in range(2)]
    if one == "zeros":
        return F.pad(x, flat)
    spatial = x.shape[x.ndim - nd :]
    for n, p, m in zip(spatial, pads, modes):
        if m == "reflect" and p >= n:
            raise ValueError(f"reflect padding of {p} needs more than {p} points on every reflect-padded axis, got {n}")
    if one is not None and nd <= 3 and x.ndim == nd + 2:
        return F.pad(x, flat, mode=one)
    for d, (n, p, m) in enumerate(zip(spatial, pads, modes)):
        if not p:
            continue
        if m == "zeros":
            axis_pads = [0] * (2 * nd)
            axis_pads[2 * (nd - 1 - d)] = axis_pads[2 * (nd - 1 - d) + 1] = p
            x = F.pad(x, axis_pads)
        else:
            x = x.index_select(x.ndim - nd + d, _pad_indices(n, p, m, x.device))
    return x


def check_circular_padding(spatial: tuple[int, ...], padding: int, kernel_size: int, dilation: int = 1,
                           axes: Sequence[int] | None = None) -> None:
    """Circular padding wraps the grid at most once: fail with a one-line message when the kernel
    reaches further than the grid (``padding > X`` on some axis). ``axes``: the circular axes
    (indices into ``spatial``) of a per-axis padding mode; default all."""
    for axis, n in enumerate(spatial):
        if axes is not None and axis not in axes:
            continue
        if padding > n:
            raise ValueError(
                f"kernel_size {kernel_size} (dilation {dilation}, circular padding {padding}) is larger than "
                f"the circular grid ({n} points on spatial axis {axis + 1}, grid {tuple(spatial)}); "
                f"use a grid of at least {padding} points per axis or a smaller kernel"
            )


def conv_nd(x: torch.Tensor, weight: torch.Tensor, stride: int = 1, padding: int = 0,
            padding_mode: PaddingMode = "zeros", bias: torch.Tensor | None = None, dilation: int = 1,
            groups: int = 1) -> torch.Tensor:
    """Cross-correlation in 1-4 dims with symmetric padding ``padding`` on every axis.

    Args:
        x: (B, C_in, X_1..X_d); weight: (C_out, C_in / groups, k_1..k_d); bias: (C_out,) or None.
        padding_mode: one mode for every axis or one per axis (:func:`check_padding_mode`).
        groups: as torch's convNd (input and output channels split into ``groups`` blocks).
    Returns:
        (B, C_out, Y_1..Y_d) with ``Y = (X + 2 padding - dilation (k - 1) - 1) // stride + 1``.
    """
    nd = weight.ndim - 2
    if nd not in _CONV and nd != 4:
        raise ValueError(f"convolutions in {nd} dimensions are not supported (1 to 4)")
    modes = padding_modes(padding_mode, nd)
    if "circular" in modes:
        check_circular_padding(tuple(x.shape[2:]), padding, weight.shape[-1], dilation,
                               [d for d, m in enumerate(modes) if m == "circular"])
    if nd in _CONV and uniform_padding(modes) == "zeros":  # let the backend pad: no copy
        return _CONV[nd](x, weight, bias, stride=stride, padding=padding, dilation=dilation, groups=groups)
    x = pad_nd(x, (padding,) * nd, modes)
    if nd in _CONV:
        return _CONV[nd](x, weight, bias, stride=stride, dilation=dilation, groups=groups)
    y = conv4d(x, weight, stride, dilation, groups)
    return y if bias is None else y + bias.reshape(-1, 1, 1, 1, 1)


def conv4d(x: torch.Tensor, weight: torch.Tensor, stride: int = 1, dilation: int = 1,
           groups: int = 1) -> torch.Tensor:
    """Valid 4-d cross-correlation as a sum of conv3d over the first kernel axis.

    All kernel slices run as one conv3d over a batch of (B * T_out) time slices.
    x: (B, C_in, T, X, Y, Z); weight: (C_out, C_in / groups, kt, kx, ky, kz) -> (B, C_out, T_out, ...),
    ``T_out = (T - dilation (kt - 1) - 1) // stride + 1``.
    """
    b, c, t = x.shape[:3]
    c_out, c_in, kt = weight.shape[:3]
    if c != c_in * groups or c_out % groups:
        raise ValueError(f"conv4d: {c} input channels, weight {tuple(weight.shape)} and groups={groups} do not match")
    t_out = (t - dilation * (kt - 1) - 1) // stride + 1
    if t_out < 1:
        raise ValueError(f"input time axis {t} is shorter than the kernel ({kt}, dilation {dilation})")
    # gather the kt input slices each output slice needs: (B, T_out, groups*kt*C_in, X, Y, Z)
    starts = torch.arange(t_out, device=x.device) * stride
    idx = (starts[:, None] + dilation * torch.arange(kt, device=x.device)[None, :]).reshape(-1)
    slabs = x.index_select(2, idx)  # (B, C, T_out*kt, X, Y, Z)
    slabs = slabs.reshape(b, groups, c_in, t_out, kt, *x.shape[3:]).permute(0, 3, 1, 4, 2, 5, 6, 7)
    slabs = slabs.reshape(b * t_out, groups * kt * c_in, *x.shape[3:])
    w = weight.permute(0, 2, 1, 3, 4, 5).reshape(c_out, kt * c_in, *weight.shape[3:])
    y = F.conv3d(slabs, w, stride=stride, dilation=dilation, groups=groups)
    return y.reshape(b, t_out, c_out, *y.shape[2:]).transpose(1, 2)
