"""N-d padding and cross-correlation in 1 to 4 dimensions (conv4d built from conv3d)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

PADDING_MODES = ("zeros", "circular", "reflect", "replicate")

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


def pad_nd(x: torch.Tensor, pads: tuple[int, ...], mode: str) -> torch.Tensor:
    """Pad the trailing ``len(pads)`` axes of ``x`` by ``pads[d]`` on both sides.

    ``mode`` is one of ``PADDING_MODES``; works for any number of spatial axes.
    """
    if mode not in PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {PADDING_MODES}, got {mode!r}")
    nd = len(pads)
    if not any(pads):
        return x
    flat = [p for p in reversed(pads) for _ in range(2)]
    if mode == "zeros":
        return F.pad(x, flat)
    spatial = x.shape[x.ndim - nd :]
    for n, p in zip(spatial, pads):
        if mode == "reflect" and p >= n:
            raise ValueError(f"reflect padding of {p} needs more than {p} points on every axis, got {n}")
    if nd <= 3 and x.ndim == nd + 2:
        return F.pad(x, flat, mode=mode)
    for d, (n, p) in enumerate(zip(spatial, pads)):
        if p:
            x = x.index_select(x.ndim - nd + d, _pad_indices(n, p, mode, x.device))
    return x


def check_circular_padding(spatial: tuple[int, ...], padding: int, kernel_size: int, dilation: int = 1) -> None:
    """Circular padding wraps the grid at most once: fail with a one-line message when the kernel
    reaches further than the grid (``padding > X`` on some axis)."""
    for axis, n in enumerate(spatial):
        if padding > n:
            raise ValueError(
                f"kernel_size {kernel_size} (dilation {dilation}, circular padding {padding}) is larger than "
                f"the circular grid ({n} points on spatial axis {axis + 1}, grid {tuple(spatial)}); "
                f"use a grid of at least {padding} points per axis or a smaller kernel"
            )


def conv_nd(x: torch.Tensor, weight: torch.Tensor, stride: int = 1, padding: int = 0,
            padding_mode: str = "zeros", bias: torch.Tensor | None = None, dilation: int = 1,
            groups: int = 1) -> torch.Tensor:
    """Cross-correlation in 1-4 dims with symmetric padding ``padding`` on every axis.

    Args:
        x: (B, C_in, X_1..X_d); weight: (C_out, C_in / groups, k_1..k_d); bias: (C_out,) or None.
        groups: as torch's convNd (input and output channels split into ``groups`` blocks).
    Returns:
        (B, C_out, Y_1..Y_d) with ``Y = (X + 2 padding - dilation (k - 1) - 1) // stride + 1``.
    """
    nd = weight.ndim - 2
    if nd not in _CONV and nd != 4:
        raise ValueError(f"convolutions in {nd} dimensions are not supported (1 to 4)")
    if padding_mode == "circular":
        check_circular_padding(tuple(x.shape[2:]), padding, weight.shape[-1], dilation)
    if nd in _CONV and padding_mode == "zeros":  # let the backend pad: no copy
        return _CONV[nd](x, weight, bias, stride=stride, padding=padding, dilation=dilation, groups=groups)
    x = pad_nd(x, (padding,) * nd, padding_mode)
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
