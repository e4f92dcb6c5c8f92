"""The Clifford-steerable implicit kernel (Zhdanov et al., ICML 2024, arXiv:2402.14730)."""

from __future__ import annotations

import math

import torch
from torch import nn

from .activations import MVGate
from .checks import as_algebra, check_channels, check_compat, check_kernel_size
from .kernel_bank import (
    _full_precision,
    _signed_gaussian,
    bank_tables,
    evaluate_kernels,
    kernel_gain,
    network_tensors,
    run_network,
)
from .kernel_head import HEADS, TwoSidedHead
from .module import CliffordModule, factory_kwargs
from .norms import GradeNorm
from .product import SteerableGeometricProduct


def kernel_grid(dim: int, kernel_size: int, dtype=torch.float64, device=None) -> torch.Tensor:
    """Kernel grid points (kernel_size**dim, dim), coordinates (index - k//2) / (k//2) in [-1, 1].

    Points are in C order of the kernel axes (last axis fastest), axis d is e_d."""
    half = kernel_size // 2
    ticks = (torch.arange(kernel_size, dtype=dtype, device=device) - half) / max(half, 1)
    mesh = torch.meshgrid(*([ticks] * dim), indexing="ij")
    return torch.stack([m.reshape(-1) for m in mesh], -1)


def official_kernel_factor(dim: int, kernel_size: int) -> float:
    """The constant kernel factor of the authors' code, ``20 / kernel_size**(dim - 1)`` (empirical there)."""
    return 20 / kernel_size ** (dim - 1)


def check_time_scale(time_scale) -> float:
    """``time_scale`` of a kernel grid as a float: a finite real number > 0."""
    if isinstance(time_scale, bool) or not isinstance(time_scale, (int, float)) or not math.isfinite(time_scale) \
            or time_scale <= 0:
        raise ValueError(f"time_scale must be a finite number > 0 (c dt / dx of the data), got {time_scale!r}")
    return float(time_scale)


class KernelNetwork(CliffordModule):
    """CGENN mapping ``in_mv`` multivectors per point to ``out_mv`` multivectors.

    FCGP(in_mv -> h), GradeNorm, gate, then (FCGP(h -> h), GradeNorm, gate) x (num_layers - 2),
    then FCGP(h -> out_mv). Shapes: (P, in_mv, n_blades) -> (P, out_mv, n_blades).
    ``compat="official"``: the authors' layers (see :class:`~cscnn.nn.SteerableGeometricProduct` and
    :class:`~cscnn.nn.GradeNorm`); pass ``activation="gelu_tanh"`` for their gate.
    """

    def __init__(self, alg, out_mv: int, num_layers: int = 4, hidden_channels: int = 12,
                 activation: str = "gelu", device=None, dtype=None, in_mv: int = 1, compat: str = "cscnn"):
        super().__init__()
        fk = factory_kwargs(device, dtype)
        if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 2:
            raise ValueError(f"the kernel network needs num_layers >= 2, got {num_layers!r}")
        check_channels(hidden_channels, "hidden_channels")
        alg = as_algebra(alg)
        self.num_layers, self.hidden_channels, self.activation = num_layers, hidden_channels, activation
        self.compat = compat = check_compat(compat)
        layers: list[nn.Module] = []
        width = check_channels(in_mv, "in_mv")
        for _ in range(num_layers - 1):
            layers += [SteerableGeometricProduct(alg, width, hidden_channels, **fk, compat=compat),
                       GradeNorm(alg, hidden_channels, **fk, compat=compat), MVGate(alg, activation)]
            width = hidden_channels
        layers.append(SteerableGeometricProduct(alg, width, out_mv, **fk, compat=compat))
        self.layers = nn.Sequential(*layers)
        # tables of the batched evaluation (cscnn.nn.kernel_bank), shared by the kernel head
        with torch.device("cpu"):
            tables = bank_tables(alg)
        self.bank_table_names = tuple(tables)
        for name, table in tables.items():
            self.register_constant(name, table, **fk)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(P, in_mv, n_blades) -> (P, out_mv, n_blades): the layers as a few batched operators
        (:func:`cscnn.nn.kernel_bank.run_network`), the same function as ``self.layers(x)``."""
        if x.ndim != 3:
            return self.layers(x)
        params = [t.unsqueeze(0) for t in network_tensors(self)]
        return run_network(x.permute(2, 1, 0).unsqueeze(0), params, self)[0].permute(2, 1, 0)

    def extra_repr(self) -> str:
        return f"num_layers={self.num_layers}, hidden_channels={self.hidden_channels}"


class CliffordSteerableKernel(CliffordModule):
    """O(p,q)-steerable implicit kernel ``K(v)``: (c_out * 2^n) x (c_in * 2^n) matrices over R^{p,q}.

    ``K(g v) = rho(g) K(v) rho(g)^-1`` for every g in O(p,q).

    Args:
        alg: CliffordAlgebra (or metric tuple), dim 1 to 4 for convolutions.
        in_channels, out_channels: multivector channels.
        kernel_size: odd int >= 1 (grid symmetries need a symmetric grid).
        num_layers, hidden_channels: kernel-network size (paper: 4, 12).
        activation: gate of the kernel network ("gelu" or "silu").
        shell_sigma_init: range of the per-output kernel-shell widths.
        head: ``"left"`` (the paper's weighted left product ``<k^(a) f^(b)>_c``) or ``"two_sided"``
            (adds the sandwich products ``<k^(a) f^(b) k^(c)>_d`` of
            :class:`~cscnn.nn.TwoSidedHead`, which complete the kernel basis).
        condition_channels: 0 for a plain kernel ``K(v)``; C > 0 for a conditional kernel
            ``K(v; c)`` whose network also reads C condition multivectors per sample
            (Szarvas & Zhdanov, arXiv:2510.14007; see :class:`~cscnn.nn.ConditionalCliffordSteerableConv`). Then
            ``K(g v; rho(g) c) = rho(g) K(v; c) rho(g)^-1``.
        time_scale: length of one step along grid axis 0 (e_0, time on a spacetime metric such as
            ``(-1, 1, 1)``) in units of one step along the other axes: the tap at offset
            ``(t, x_1, ..)`` is the vector ``(time_scale * t, x_1, ..) / (k // 2)``. Default 1: a frame is
            as long as a pixel, so the kernel's light cone runs one pixel per frame. Set it to
            ``c dt / dx`` of the data (e.g. 0.25 for fields whose light moves a quarter pixel per frame) so
            that the kernel's metric is the data's; the kernel stays exactly O(p,q)-steerable at every
            point, and time reversal and the spatial grid symmetries still map the grid onto itself.
        device, dtype: where and in which float dtype to create parameters (as torch.nn).
        compat: ``"cscnn"`` (default) or ``"official"``, the forward and initialisation of the authors'
            code (Zhdanov et al., ICML 2024): their GradeNorm (signed quadratic form clipped at 0.01)
            and tanh-GELU gate (``activation`` must be ``"gelu"`` or ``"gelu_tanh"``) in the kernel
            network, no bias on the right-hand MVLinear of its geometric products, the kernel scaled by
            the constant ``20 / kernel_size**(dim - 1)`` (cscnn's default calibrates a factor so that a
            unit-variance input gives a unit-variance output), and their initialisation: input-shell
            sigma 1 (cscnn: 0.5), head path weights N(0, 1 / (in_channels (dim + 1))) (cscnn: ones),
            kernel-network biases N(0, (0.1 / sqrt(fan_in))^2) (cscnn: zeros). ``head="left"`` only.
            Weights of the authors' models load with :func:`cscnn.models.load_official_params`.

    Calling the module returns the dense weight
    ``(out_channels * 2^n, in_channels * 2^n, k, ..., k)``, row index ``o * 2^n + blade``;
    a conditional kernel called with ``condition`` (B, C, 2^n) returns one per sample,
    ``(B, out_channels * 2^n, in_channels * 2^n, k, ..., k)``. The kernel is always computed in its
    parameters' dtype, with autocast off (mixed-precision training casts the finished dense kernel,
    as it does a torch conv's weight).
    """

    def __init__(self, alg, in_channels: int, out_channels: int, kernel_size: int,
                 num_layers: int = 4, hidden_channels: int = 12, activation: str = "gelu",
                 shell_sigma_init: tuple[float, float] = (0.4, 0.6), head: str = "left",
                 condition_channels: int = 0, time_scale: float = 1.0, device=None, dtype=None,
                 compat: str = "cscnn"):
        super().__init__()
        fk = factory_kwargs(device, dtype)
        self.alg = alg = as_algebra(alg)
        self.time_scale = check_time_scale(time_scale)
        self.compat = check_compat(compat)
        if compat == "official":
            if head != "left":
                raise ValueError(f"compat='official' has only the authors' head (head='left'), got head={head!r}")
            if activation not in ("gelu", "gelu_tanh"):
                raise ValueError("compat='official' uses the authors' tanh-GELU gate; activation must be 'gelu' or "
                                 f"'gelu_tanh', got {activation!r}")
            activation = "gelu_tanh"
        self.in_channels = check_channels(in_channels, "in_channels")
        self.out_channels = check_channels(out_channels, "out_channels")
        self.kernel_size = check_kernel_size(kernel_size)
        grid_bytes = kernel_size ** alg.dim * alg.dim * 8  # the float64 CPU grid below (and its copy per device)
        if grid_bytes > 2**26:
            from .._memory import check_memory

            check_memory(2 * grid_bytes, f"the kernel grid of kernel_size={kernel_size} in {alg.dim}D "
                         f"({kernel_size}^{alg.dim} points)", "choose a smaller kernel_size")
        lo, hi = shell_sigma_init
        if not 0 < lo <= hi:
            raise ValueError(f"shell_sigma_init must be (low, high) with 0 < low <= high, got {shell_sigma_init!r}")
        self.shell_sigma_init = (float(lo), float(hi))
        if head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {head!r}")
        if isinstance(condition_channels, bool) or not isinstance(condition_channels, int) or condition_channels < 0:
            raise ValueError(f"condition_channels must be an int >= 0, got {condition_channels!r}")
        self.head, self.condition_channels = head, condition_channels
        n = alg.n_blades
        self.sigma = nn.Parameter(torch.empty((), **fk))
        self.shell_sigma = nn.Parameter(torch.empty(out_channels, in_channels, alg.n_grades, **fk))
        self.head_weight = nn.Parameter(torch.empty(out_channels, in_channels, alg.n_paths, **fk))
        self.net = KernelNetwork(alg, out_channels * in_channels, num_layers, hidden_channels, activation, **fk,
                                 in_mv=1 + condition_channels, compat=compat)
        self.two_sided = TwoSidedHead(alg, out_channels, in_channels, **fk) if head == "two_sided" else None
        # head over (output blade j, input blade m): left blade l = j xor m, sign = C[l, j, m]
        # (coefficient of e_j in e_l e_m), path = (grade l, grade m, grade j)
        with torch.device("cpu"):
            left = alg.table("gather_index")  # symmetric: (j, m) -> l
            cols = torch.arange(n * n)
            sign = alg.table("prod_sign", dtype=torch.float64)[left, torch.arange(n)[None, :]].reshape(-1)
            path = alg.path_index[left, torch.arange(n)[:, None]].reshape(-1)
            head_matrix = torch.zeros(n, n * n, dtype=torch.float64)
            head_matrix[left.reshape(-1), cols] = sign
            head_paths = torch.zeros(alg.n_paths, n * n, dtype=torch.float64)
            head_paths[path, cols] = 1.0
            grid = kernel_grid(alg.dim, kernel_size)
            grid[:, 0] *= self.time_scale
        self.register_constant("head_matrix", head_matrix, **fk)  # (l, j*n + m)
        self.register_constant("head_paths", head_paths, **fk)  # (path, j*n + m)
        self.register_constant("grade_onehot", alg.grade_onehot(), **fk)
        self.register_constant("metric_diag", torch.tensor(alg.metric, dtype=torch.float64, device="cpu"), **fk)
        self.register_constant("grid", grid, **fk)
        # constant init factor: unit-variance input -> unit-variance output at init (set by reset_parameters)
        self.register_buffer("init_scale", torch.ones((), **fk))

    def _reset_own_parameters(self) -> None:
        nn.init.uniform_(self.shell_sigma, *self.shell_sigma_init)
        if self.compat == "official":
            nn.init.constant_(self.sigma, 1.0)
            nn.init.normal_(self.head_weight, std=1 / math.sqrt(self.in_channels * (self.alg.dim + 1)))
            nn.init.constant_(self.init_scale, official_kernel_factor(self.alg.dim, self.kernel_size))
            return
        nn.init.constant_(self.sigma, 0.5)
        nn.init.ones_(self.head_weight)
        nn.init.ones_(self.init_scale)

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Re-initialise the shells, head and kernel network, then rescale so that a unit-variance
        input gives a unit-variance output (skipped on the meta device, which holds no values, and with
        ``compat="official"``, whose factor is the constant of :func:`official_kernel_factor`)."""
        super().reset_parameters()
        if self.init_scale.device.type == "meta" or self.compat == "official":
            return
        # (no inference_mode(False): a kernel built under torch.inference_mode holds inference tensors,
        # which only inference mode may update in place; normal ones may be updated in either)
        with torch.no_grad(), _full_precision(self.grid.device):
            # mean over (o, j) of sum over (i, m, v) of K^2, the head run in chunks of output channels
            gain = kernel_gain(self, self.grid, self._calibration_condition())
            self.init_scale.fill_(float(1 / gain.clamp_min(1e-12).sqrt()))

    def _apply(self, fn, recurse=True):
        out = super()._apply(fn, recurse)
        if self.compat == "official" and self.init_scale.device.type != "meta":
            # the constant factor in the new dtype, not the old dtype's rounding of it (20/9 in float32)
            with torch.no_grad():
                self.init_scale.fill_(official_kernel_factor(self.alg.dim, self.kernel_size))
        return out

    def _calibration_condition(self) -> torch.Tensor | None:
        """Condition at which a conditional kernel's init scale is set: fixed pseudo-random multivectors
        of unit coefficient norm (the size of a normalised condition), (1, C, n_blades); None if plain."""
        c = self.condition_channels
        if not c:
            return None
        cond = torch.randn(1, c, self.alg.n_blades, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        return (cond / cond.norm(dim=-1, keepdim=True)).to(self.grid)

    def _kernel_multivectors(self, points: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        """(P, dim) [, condition (B, C, n)] -> kernel multivectors k_{o,i}(v): ([B,] P, out, in, n_blades),
        shells applied. All samples go through the kernel network in ONE call of B * P points."""
        alg = self.alg
        n = alg.n_blades
        q = (points * points * self.metric_diag).sum(-1)  # eta(v, v): (P,)
        rest = points.new_zeros(points.shape[0], n - 1 - alg.dim)
        mv = torch.cat([_signed_gaussian(q, self.sigma)[:, None], points, rest], -1).unsqueeze(1)  # (P, 1, n)
        lead: tuple[int, ...] = ()
        if condition is not None:  # network input [s(v) + v, c_1..c_C] per (sample, point)
            b, p = condition.shape[0], mv.shape[0]
            mv = torch.cat([mv.expand(b, p, 1, n), condition[:, None].expand(b, p, -1, n)], 2).flatten(0, 1)
            lead = (b,)
        k = self.net(mv).reshape(*lead, -1, self.out_channels, self.in_channels, n)
        shell = _signed_gaussian(q[:, None, None, None], self.shell_sigma[None])  # (P, o, i, G)
        return k * (shell @ self.grade_onehot)

    def evaluate(self, points: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        """Kernel at arbitrary points.

        Args:
            points: (N, dim) in kernel-grid units (the grid spans [-1, 1]^dim).
            condition: conditional kernels only: (B, condition_channels, n_blades) per sample.
        Returns:
            (N, out_channels, n_blades, in_channels, n_blades): ``K(v)[o, j, i, m]``; with a condition
            (B, N, out_channels, n_blades, in_channels, n_blades), ``K(v; c_b)``.
        """
        if not isinstance(points, torch.Tensor) or points.ndim != 2 or points.shape[1] != self.alg.dim:
            shape = tuple(points.shape) if isinstance(points, torch.Tensor) else type(points).__name__
            raise ValueError(f"points must have shape (N, {self.alg.dim}), got {shape}")
        ref = self.sigma
        if points.dtype != ref.dtype or points.device != ref.device:
            raise ValueError(f"points are {points.dtype} on {points.device}, the kernel is {ref.dtype} on {ref.device}")
        n, c = self.alg.n_blades, self.condition_channels
        if (condition is None) != (c == 0) or condition is not None and (
                not isinstance(condition, torch.Tensor) or condition.ndim != 3 or condition.shape[1:] != (c, n)):
            got = "None" if condition is None else tuple(getattr(condition, "shape", ()))
            want = "no condition" if c == 0 else f"a condition of shape (B, {c}, {n})"
            raise ValueError(f"this kernel (condition_channels={c}) needs {want}, got {got}")
        with _full_precision(points.device):
            if condition is not None:
                condition = condition.to(ref.dtype)
            kern = evaluate_kernels([self], points, condition)[0]  # (o, i, j*n + m, [B,] P)
        o, i = self.out_channels, self.in_channels
        if condition is None:
            return kern.view(o, i, n, n, -1).permute(4, 0, 2, 1, 3)  # (P, o, j, i, m)
        return kern.view(o, i, n, n, *kern.shape[-2:]).permute(4, 5, 0, 2, 1, 3)  # (B, P, o, j, i, m)

    def forward(self, condition: torch.Tensor | None = None) -> torch.Tensor:
        """Dense weight (out_channels * n_blades, in_channels * n_blades, k, ..., k); for a
        conditional kernel, ``condition`` (B, C, n_blades) gives (B, out_channels * n_blades, ...)."""
        n, k, d = self.alg.n_blades, self.kernel_size, self.alg.dim
        kern = self.evaluate(self.grid, condition)  # ([B,] P, o, j, i, m)
        kern = kern.movedim(-5, -1)
        return kern.reshape(*kern.shape[:-5], self.out_channels * n, self.in_channels * n, *([k] * d))

    def extra_repr(self) -> str:
        extra = f", head={self.head!r}" if self.head != "left" else ""
        if self.compat != "cscnn":
            extra += f", compat={self.compat!r}"
        if self.condition_channels:
            extra += f", condition_channels={self.condition_channels}"
        if self.time_scale != 1.0:
            extra += f", time_scale={self.time_scale}"
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"metric={self.alg.metric}{extra}")
