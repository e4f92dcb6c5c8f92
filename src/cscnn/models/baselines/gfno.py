"""Group-equivariant Fourier neural operator (G-FNO) on multivector fields.

The G-FNO of Helwig, Zhang, Fu, Kurtin, Wojtowytsch and Ji ("Group Equivariant Fourier Neural
Operators for Partial Differential Equations", ICML 2023, arXiv:2306.05697), written for cscnn's
multivector-field layout. The symmetry group is the group of grid symmetries of the metric
(:func:`cscnn.algebra.grid_symmetries`): in 2D Euclidean space p4m's point group (rotations by 90
degrees and reflections, 8 elements), in 3D the full octahedral group O_h (48 elements); for a
spacetime metric the permutations that keep time on the time axis, with every axis reflection.

Hidden features are regular fields ``(B, C, n_G, *X)``: one value per channel, group element and grid
point, transforming as ``f'(h, x) = f(g^-1 h, g^-1 x)``. The layers:

* lifting (1x1): ``f(h, x) = W rho(h)^-1 u(x) + b``, where ``u`` is the input multivector field and
  ``rho`` the action of the grid symmetry on blades (scalars fixed, vectors rotated/reflected,
  pseudoscalars flipping sign under reflections), so every input blade enters with its own
  transformation law;
* group 1x1 convolution: ``f_out(h) = sum_k W(h^-1 k) f_in(k) + b``;
* group spectral convolution: a circular group convolution whose kernel is stored by its Fourier
  coefficients on the centred window of frequencies ``[-m+1, m-1]^dim``; the coefficients for output
  element ``h`` are those of the identity rotated by ``h`` on the frequency grid, and they are
  Hermitian (``W(-k) = conj W(k)``) by construction, so the kernel is real and no parameter is wasted;
* projection (1x1): ``u(x) = sum_h rho(h) V f(h, x) + b e_0`` (a bias on the scalar blade only, the
  one blade every grid symmetry fixes).

Network (the authors' 2D G-FNO): lifting; ``n_layers`` Fourier layers
``x <- act(norm(spec(norm(x))) -> group MLP + group 1x1(x))`` (no activation after the last); a group
1x1 layer to ``projection_channels`` regular fields, activation, projection. ``norm`` is an instance norm
per channel over group and grid (statistics invariant under every symmetry).

Boundaries: ``padding_mode="circular"`` treats the grid as periodic (the spectral convolution's own
boundary). ``padding_mode="zeros"`` adds ``ceil(domain_padding * X_i)`` zero cells on *both* sides of
every axis before the Fourier layers and crops them after, as FNOs do on non-periodic domains; the
padding is the same on both sides, so the model still commutes exactly with every symmetry of the
grid (about its centre), but no longer with circular shifts.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from ...algebra import grid_symmetries
from ...nn.checks import as_algebra, check_channels, check_positive_int
from ...nn.module import CliffordModule
from .adapters import channels_to_mv, check_field, mv_to_channels

__all__ = ["GFNO", "GroupSpectralConv", "GroupPointwise", "SymmetryGroup"]

PADDING_MODES = ("circular", "zeros")
_ACTIVATIONS = {"gelu": F.gelu, "silu": F.silu, "relu": F.relu}


def grid_action(g: torch.Tensor) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """How a signed permutation matrix ``g`` (nd, nd) moves an array on a centred grid:
    ``(order, flips)`` such that ``t'(v) = t(g^-1 v)`` is ``t.permute(order).flip(flips)`` on the grid axes
    (axis indices counted from the first grid axis)."""
    nd = g.shape[0]
    perm = [int(g[:, i].abs().argmax()) for i in range(nd)]  # g e_i = s_i e_perm[i]
    inv = [0] * nd
    for i, p in enumerate(perm):
        inv[p] = i
    return tuple(inv), tuple(perm[i] for i in range(nd) if g[perm[i], i] < 0)


def move_grid(t: torch.Tensor, action: tuple[tuple[int, ...], tuple[int, ...]]) -> torch.Tensor:
    """Apply a :func:`grid_action` to the last ``nd`` axes of ``t``: ``(..., X_1..X_nd) -> same``."""
    order, flips = action
    first = t.ndim - len(order)
    y = t.permute(list(range(first)) + [first + a for a in order])
    return y.flip([first + a for a in flips]) if flips else y


class SymmetryGroup(CliffordModule):
    """The grid symmetries of an algebra as a finite group, with the tables the G-FNO layers need.

    Attributes (constant, non-persistent buffers):
        elements: (n, dim, dim) signed permutation matrices, identity first.
        inv_mul: (n, n) long, ``inv_mul[h, k]`` = index of ``h^-1 k``.
        rho: (n, n_blades, n_blades) the action on blades, ``rho(g) u = rho[g] @ u`` for a multivector ``u``.
        rho_inv: (n, n_blades, n_blades) ``rho(g^-1)``.
    """

    def __init__(self, alg):
        super().__init__()
        self.alg = alg = as_algebra(alg)
        with torch.device("cpu"):  # the tables are built on the CPU (also inside a meta-device build)
            el = grid_symmetries(alg.metric, torch.float64, "cpu")
            prod = torch.einsum("hji,kjl->hkil", el, el)  # prod[h, k] = h^T k = h^-1 k
            match = (prod[:, :, None] - el[None, None]).abs().flatten(3).amax(-1) < 0.5  # (n, n, n)
            if not bool((match.sum(-1) == 1).all()):
                raise RuntimeError("the grid symmetries are not closed under composition")
            inv_mul = match.to(torch.int8).argmax(-1)
            rho = torch.stack([alg.outermorphism(g) for g in el])
        self.actions = [grid_action(g) for g in el]  # plain Python: no device round trips in forward
        self.register_constant("elements", el)
        self.register_constant("inv_mul", inv_mul)
        self.register_constant("rho", rho)
        self.register_constant("rho_inv", rho[inv_mul[:, 0]])  # identity first: h^-1 e = h^-1

    def __len__(self) -> int:
        return len(self.elements)


class GroupPointwise(CliffordModule):
    """1x1 group convolution between regular fields: ``(B, C_in, n, *X) -> (B, C_out, n, *X)``,
    ``f_out(h) = sum_k W(h^-1 k) f_in(k) + b`` (bias shared over the group)."""

    def __init__(self, group: SymmetryGroup, in_channels: int, out_channels: int, bias: bool = True):
        super().__init__()
        self.group = group
        self.in_channels, self.out_channels = in_channels, out_channels
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, len(group)))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None

    def _reset_own_parameters(self) -> None:
        bound = 1 / math.sqrt(self.in_channels * len(self.group))
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def matrix(self) -> torch.Tensor:
        """The full weight ``(C_out * n, C_in * n)``, row ``o * n + h``, column ``i * n + k``."""
        w = self.weight[:, :, self.group.inv_mul]  # (o, i, h, k)
        return w.permute(0, 2, 1, 3).reshape(self.out_channels * len(self.group), -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, n, *grid = x.shape
        y = torch.einsum("pq,bq...->bp...", self.matrix(), x.reshape(b, -1, *grid))
        y = y.reshape(b, self.out_channels, n, *grid)
        if self.bias is not None:
            y = y + self.bias.view(-1, 1, *([1] * len(grid)))
        return y


class GroupSpectralConv(CliffordModule):
    """Group spectral convolution between regular fields on a periodic grid:
    ``(B, C_in, n, X_1..X_dim) -> (B, C_out, n, X_1..X_dim)``.

    Parameters: ``weight`` (C_out, C_in, n, 2m-1, ..., 2m-1), real. The Fourier coefficients of the
    identity's kernel are ``((1+i) w(k) + (1-i) w(-k)) / 2`` on the centred frequency window (Hermitian,
    one real number per frequency); output element ``h`` uses them rotated by ``h``. Frequencies a grid
    cannot hold are dropped: on an axis of ``X`` cells the window is cut to ``|k| < ceil(X / 2)`` (no
    Nyquist frequency, so the kernel stays real and symmetric).
    """

    def __init__(self, group: SymmetryGroup, in_channels: int, out_channels: int, modes: int):
        super().__init__()
        self.group = group
        self.in_channels, self.out_channels, self.modes = in_channels, out_channels, modes
        self.dim = group.alg.dim
        side = 2 * modes - 1
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, len(group), *([side] * self.dim)))

    def _reset_own_parameters(self) -> None:
        fan_in = self.in_channels * len(self.group) * (2 * self.modes - 1) ** self.dim
        bound = 1 / math.sqrt(fan_in)
        nn.init.uniform_(self.weight, -bound, bound)

    def coefficients(self) -> torch.Tensor:
        """Complex kernel coefficients ``(C_out, n, C_in, n, 2m-1, ...)`` on the centred window:
        ``K[o, h, i, k, xi] = W[o, i, h^-1 k, h^-1 xi]``."""
        axes = list(range(3, 3 + self.dim))
        w, w_neg = self.weight, self.weight.flip(axes)
        base = torch.complex(w + w_neg, w - w_neg) / 2  # ((1+i) w(xi) + (1-i) w(-xi)) / 2
        rows = [move_grid(base[:, :, self.group.inv_mul[h]], a) for h, a in enumerate(self.group.actions)]
        return torch.stack(rows, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type in ("cpu", "cuda", "xpu", "mps"):
            with torch.autocast(x.device.type, enabled=False):  # FFTs in float32 at least (no half-precision FFT)
                return self._forward(x.float() if x.dtype in (torch.float16, torch.bfloat16) else x)
        return self._forward(x)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, n, *grid = x.shape
        d = self.dim
        spatial = list(range(-d, 0))
        # frequencies per axis: |k| <= m-1, cut to what the axis holds without its Nyquist frequency
        keep = [min(self.modes - 1, (size + 1) // 2 - 1) for size in grid]
        m = self.modes - 1
        kernel = self.coefficients()
        kernel = kernel[(Ellipsis, *[slice(m - k, m + k + 1) for k in keep[:-1]], slice(m, m + keep[-1] + 1))]
        x_ft = torch.fft.rfftn(x.reshape(b, -1, *grid), dim=spatial)
        index = [torch.arange(-k, k + 1, device=x.device) % size for k, size in zip(keep[:-1], grid[:-1])]
        index.append(torch.arange(0, keep[-1] + 1, device=x.device))
        mesh = torch.meshgrid(*index, indexing="ij")
        window = x_ft[(slice(None), slice(None), *mesh)]  # (B, C_in * n, window)
        k = kernel.reshape(self.out_channels * n, self.in_channels * n, *kernel.shape[4:]).to(window.dtype)
        out = torch.einsum("bi...,oi...->bo...", window, k)
        out_ft = x_ft.new_zeros(b, self.out_channels * n, *x_ft.shape[2:])
        out_ft[(slice(None), slice(None), *mesh)] = out
        y = torch.fft.irfftn(out_ft, s=grid, dim=spatial)
        return y.reshape(b, self.out_channels, n, *grid)


def _instance_norm(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Per sample and channel, over group elements and grid: ``(B, C, n, *X) -> same``."""
    return F.instance_norm(x.reshape(x.shape[0], x.shape[1], -1), eps=eps).reshape(x.shape)


class GFNO(CliffordModule):
    """G-FNO (Helwig et al. 2023) on multivector fields, equivariant to every grid symmetry.

    Args:
        alg: CliffordAlgebra or metric tuple (dims 1 to 3).
        in_channels, out_channels: multivector channels.
        hidden_channels: width in regular fields (each ``n_G`` scalar channels wide: 8 in 2D, 48 in 3D).
        modes: Fourier modes kept per axis (frequencies ``|k| <= modes - 1``); at most ``ceil(X / 2)``
            are used on an axis of ``X`` cells.
        n_layers: Fourier layers.
        projection_channels: width of the output head in regular fields (default ``4 * hidden_channels``,
            as the authors').
        padding_mode: ``"circular"`` (periodic domain) or ``"zeros"`` (zero cells on both sides of every
            axis, ``domain_padding`` of its length each, around the Fourier layers).
        domain_padding: fraction of each axis padded on each side with ``padding_mode="zeros"``.
        norm: instance norms around every spectral convolution (as the authors').
        activation: ``"gelu"``, ``"silu"`` or ``"relu"``.

    Shapes: ``x: (B, in_channels, X_1..X_dim, 2**dim) -> (B, out_channels, X_1..X_dim, 2**dim)``.
    """

    def __init__(self, alg, in_channels: int, out_channels: int, hidden_channels: int, modes: int = 16,
                 n_layers: int = 4, projection_channels: int | None = None, *, padding_mode: str = "circular",
                 domain_padding: float = 0.125, norm: bool = True, activation: str = "gelu"):
        super().__init__()
        self.alg = alg = as_algebra(alg)
        if not 1 <= alg.dim <= 3:
            raise ValueError(f"the G-FNO supports dims 1 to 3, got metric {alg.metric}")
        self.in_channels = check_channels(in_channels, "in_channels")
        self.out_channels = check_channels(out_channels, "out_channels")
        self.hidden_channels = h = check_channels(hidden_channels, "hidden_channels")
        self.modes = check_positive_int(modes, "modes")
        self.n_layers = check_positive_int(n_layers, "n_layers")
        self.projection_channels = p = check_channels(4 * h if projection_channels is None else projection_channels,
                                                      "projection_channels")
        if not isinstance(padding_mode, str) or padding_mode not in PADDING_MODES:
            raise ValueError(f"the G-FNO's padding_mode must be one of {PADDING_MODES} (one for every axis), "
                             f"got {padding_mode!r}")
        if isinstance(domain_padding, bool) or not isinstance(domain_padding, (int, float)) or not \
                0 <= domain_padding <= 1:
            raise ValueError(f"domain_padding must be a fraction in [0, 1], got {domain_padding!r}")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}")
        self.padding_mode, self.domain_padding, self.norm, self.activation = (padding_mode, float(domain_padding),
                                                                             bool(norm), activation)
        self.group = group = SymmetryGroup(alg)
        nb = alg.n_blades
        self.lift_weight = nn.Parameter(torch.empty(h, in_channels, nb))
        self.lift_bias = nn.Parameter(torch.empty(h))
        self.spectral = nn.ModuleList(GroupSpectralConv(group, h, h, self.modes) for _ in range(n_layers))
        self.mlp_in = nn.ModuleList(GroupPointwise(group, h, h) for _ in range(n_layers))
        self.mlp_out = nn.ModuleList(GroupPointwise(group, h, h) for _ in range(n_layers))
        self.skip = nn.ModuleList(GroupPointwise(group, h, h) for _ in range(n_layers))
        self.head = GroupPointwise(group, h, p)
        self.proj_weight = nn.Parameter(torch.empty(out_channels, p, nb))
        self.proj_bias = nn.Parameter(torch.empty(out_channels))

    def _reset_own_parameters(self) -> None:
        n, nb = len(self.group), self.alg.n_blades
        for w, b, fan_in in ((self.lift_weight, self.lift_bias, self.in_channels * nb),
                             (self.proj_weight, self.proj_bias, self.projection_channels * n)):
            bound = 1 / math.sqrt(fan_in)
            nn.init.uniform_(w, -bound, bound)
            nn.init.uniform_(b, -bound, bound)

    def extra_repr(self) -> str:
        return (f"metric={self.alg.metric}, in={self.in_channels}, out={self.out_channels}, "
                f"hidden={self.hidden_channels} regular fields x {len(self.group)}, modes={self.modes}, "
                f"n_layers={self.n_layers}, padding_mode={self.padding_mode!r}")

    def to_native(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, *X, n_blades) -> (B, C * n_blades, *X)``, channel ``c * n_blades + blade``."""
        return mv_to_channels(x)

    def from_native(self, y: torch.Tensor) -> torch.Tensor:
        return channels_to_mv(y, self.alg.n_blades)

    def lift(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C_in * n_blades, *X) -> (B, hidden, n, *X)``: ``f(h) = W rho(h)^-1 u + b``."""
        w = torch.einsum("oia,hab->ohib", self.lift_weight, self.group.rho_inv.to(self.lift_weight))
        y = torch.einsum("ohq,bq...->boh...", w.flatten(2), x)
        return y + self.lift_bias.view(-1, *([1] * (y.ndim - 2)))

    def project(self, f: torch.Tensor) -> torch.Tensor:
        """``(B, proj, n, *X) -> (B, C_out * n_blades, *X)``: ``u = sum_h rho(h) V f(h) + b e_0``."""
        w = torch.einsum("hab,oib->oaih", self.group.rho.to(self.proj_weight), self.proj_weight)
        y = torch.einsum("oaih,bih...->boa...", w, f)
        scalar = torch.zeros(self.alg.n_blades, dtype=y.dtype, device=y.device)
        scalar[0] = 1
        bias = self.proj_bias[:, None] * scalar  # (C_out, n_blades): the scalar blade only
        return (y + bias.view(*bias.shape, *([1] * (y.ndim - 3)))).flatten(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_field(x, self.alg, self.in_channels, "G-FNO")
        act = _ACTIVATIONS[self.activation]
        norm = _instance_norm if self.norm else (lambda t: t)
        f = self.lift(self.to_native(x))
        grid = f.shape[3:]
        pads = [math.ceil(self.domain_padding * s) if self.padding_mode == "zeros" else 0 for s in grid]
        if any(pads):
            f = F.pad(f, [q for pad in reversed(pads) for q in (pad, pad)])
        for i in range(self.n_layers):
            g = self.mlp_out[i](act(self.mlp_in[i](norm(self.spectral[i](norm(f))))))
            f = g + self.skip[i](f)
            if i < self.n_layers - 1:
                f = act(f)
        if any(pads):
            f = f[(Ellipsis, *[slice(pad, pad + s) for pad, s in zip(pads, grid)])]
        return self.from_native(self.project(act(self.head(f))))
