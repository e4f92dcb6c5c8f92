"""CS-ResNet: the residual network of Clifford-steerable convolutions (Zhdanov et al., ICML 2024, arXiv:2402.14730)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..nn import CliffordModule, CliffordSteerableConv, ConditionalCliffordSteerableConv, MVGate, MVLayerNorm, MVLinear
from ..nn.checks import as_algebra, check_channels, check_compat, check_mv_input
from ..nn.conv import kernel_bank
from ..nn.functional import PaddingMode, check_padding_mode
from ..nn.kernel import check_time_scale

__all__ = ["CSResNet", "CSResidualBlock", "POINTWISE", "check_blocks", "cs_conv", "kernel_options", "model_gate",
           "pointwise_layer"]

#: choices for the 1x1 layers of the CS models: "kernel" (1x1 CS-convs, the paper's) or "linear" (MVLinear).
POINTWISE = ("kernel", "linear")


def model_gate(activation: str, compat: str) -> str:
    """The gate of a CS model's layers: ``activation``, or with ``compat="official"`` the authors'
    tanh-GELU (``"gelu_tanh"``; ``activation`` must then be ``"gelu"`` or ``"gelu_tanh"``)."""
    if check_compat(compat) == "official":
        if activation not in ("gelu", "gelu_tanh"):
            raise ValueError("compat='official' uses the authors' tanh-GELU gate; activation must be 'gelu' or "
                             f"'gelu_tanh', got {activation!r}")
        return "gelu_tanh"
    return activation


def kernel_options(num_layers: int, hidden_channels: int, activation: str | None, gate: str, head: str = "left",
                   conditional: bool = False, condition_summary: str = "channels", compat: str = "cscnn",
                   time_scale: float = 1.0) -> dict:
    """Keyword arguments of the CS-convs of a model: kernel-network size and gate, kernel head, forward
    (``compat``), the kernel grid's ``time_scale`` (:class:`~cscnn.nn.CliffordSteerableKernel`) and
    (``conditional=True``) the conditioning summary, which makes :func:`cs_conv` build
    :class:`~cscnn.nn.ConditionalCliffordSteerableConv`."""
    if not isinstance(conditional, bool):
        raise ValueError(f"conditional must be True or False, got {conditional!r}")
    kw = {"num_layers": num_layers, "hidden_channels": hidden_channels,
          "activation": model_gate(gate if activation is None else activation, compat), "head": head,
          "time_scale": check_time_scale(time_scale)}
    if compat != "cscnn":
        kw["compat"] = compat
    if conditional:
        kw["summary"] = condition_summary
    return kw


def cs_conv(alg, in_channels: int, out_channels: int, kernel_size: int, padding_mode: PaddingMode,
            kernel_kwargs: dict) -> CliffordSteerableConv:
    """A CS-conv of the models: :class:`~cscnn.nn.ConditionalCliffordSteerableConv` when ``kernel_kwargs``
    (from :func:`kernel_options`) holds a conditioning ``summary``, else :class:`~cscnn.nn.CliffordSteerableConv`."""
    cls = ConditionalCliffordSteerableConv if "summary" in kernel_kwargs else CliffordSteerableConv
    return cls(alg, in_channels, out_channels, kernel_size, padding_mode=padding_mode, **kernel_kwargs)


def check_blocks(blocks) -> tuple[int, ...]:
    """Validate a stage specification like ``(2, 2, 2, 2)``: a non-empty sequence of ints >= 0."""
    if isinstance(blocks, int) and not isinstance(blocks, bool):
        blocks = (blocks,)
    if not isinstance(blocks, Sequence) or len(blocks) == 0 or any(
        isinstance(b, bool) or not isinstance(b, int) or b < 0 for b in blocks
    ):
        raise ValueError(f"blocks must be a non-empty sequence of non-negative ints, e.g. (2, 2, 2, 2), got {blocks!r}")
    return tuple(blocks)


def pointwise_layer(alg, in_channels: int, out_channels: int, pointwise: str, padding_mode: PaddingMode,
                    kernel_kwargs: dict) -> nn.Module:
    """A 1x1 layer of the CS models: a 1x1 :class:`~cscnn.nn.CliffordSteerableConv` (``"kernel"``) or the
    per-grade linear map it amounts to, :class:`~cscnn.nn.MVLinear` (``"linear"``, far fewer parameters).

    A 1x1 CS-conv's kernel network sees only the scalar s(0), so its kernel is a per-grade linear map
    too; both choices are O(p,q)-equivariant."""
    if pointwise == "kernel":
        return cs_conv(alg, in_channels, out_channels, 1, padding_mode, kernel_kwargs)
    if pointwise == "linear":
        return MVLinear(alg, in_channels, out_channels, compat=kernel_kwargs.get("compat", "cscnn"))
    raise ValueError(f"pointwise must be one of {POINTWISE}, got {pointwise!r}")


class CSResidualBlock(CliffordModule):
    """CS-conv k x k, MVLayerNorm, gate, CS-conv k x k, MVLayerNorm, add shortcut, gate.

    ``kernel_kwargs`` (from :func:`kernel_options`) go to both CS-convs (see :func:`cs_conv`); with their
    ``compat="official"`` the norms are the authors' (:class:`~cscnn.nn.MVLayerNorm`, without the
    per-channel scale) and the gates their tanh-GELU.

    Shapes: ``x: (B, channels, X_1..X_dim, 2**dim) -> same``.
    """

    def __init__(self, alg, channels: int, kernel_size: int, padding_mode: PaddingMode = "zeros", norm: bool = True,
                 activation: str = "gelu", kernel_kwargs: dict | None = None):
        super().__init__()
        kernel_kwargs = kernel_kwargs or {}
        compat = kernel_kwargs.get("compat", "cscnn")
        activation = model_gate(activation, compat)
        self.channels, self.kernel_size = channels, kernel_size

        def layer_norm():
            if not norm:
                return nn.Identity()
            return MVLayerNorm(alg, channels, affine=compat == "cscnn", compat=compat)

        self.conv1 = cs_conv(alg, channels, channels, kernel_size, padding_mode, kernel_kwargs)
        self.norm1 = layer_norm()
        self.act1 = MVGate(alg, activation)
        self.conv2 = cs_conv(alg, channels, channels, kernel_size, padding_mode, kernel_kwargs)
        self.norm2 = layer_norm()
        self.act2 = MVGate(alg, activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act1(self.norm1(self.conv1(x)))
        h = self.norm2(self.conv2(h))
        return self.act2(h + x)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, kernel_size={self.kernel_size}"


class CSResNet(CliffordModule):
    """Clifford-steerable ResNet, E(p,q)-equivariant (exactly so for the grid symmetries).

    Architecture (Zhdanov et al., ICML 2024, arXiv:2402.14730):

    * embedding: 1x1 layer (in -> hidden), gate, 1x1 layer (hidden -> hidden), gate;
    * ``sum(blocks)`` residual blocks (:class:`CSResidualBlock`) with k x k CS-convs;
    * output: 1x1 layer (hidden -> hidden), gate, 1x1 layer (hidden -> out).

    The 1x1 layers are 1x1 CS-convs (``pointwise="kernel"``, the paper's) or MVLinear
    (``pointwise="linear"``, the same per-grade linear maps without kernel networks).

    Args:
        alg: CliffordAlgebra or metric tuple (dims 1 to 4). Grid axis d is basis vector e_d; for
            spacetime metrics such as ``(-1, 1, 1)`` time is the first grid axis.
        in_channels, out_channels: multivector channels (e.g. time steps: 4 in, 1 out for Navier-Stokes).
        hidden_channels: multivector channels inside (paper: 48 for Navier-Stokes, 12 for Maxwell).
        blocks: residual blocks per stage; stages keep width and resolution, so only ``sum(blocks)`` matters.
        kernel_size: odd size of the k x k convolutions (paper: 7).
        padding_mode: "zeros", "circular" (periodic domains), "reflect" or "replicate" for every
            axis, or one of them per spatial axis, e.g. ``("circular", "zeros")`` for a channel
            periodic in x with walls in y (:func:`cscnn.nn.functional.check_padding_mode`). A mixed
            per-axis mode is not rotation-equivariant: an axis swap moves a periodic axis onto a
            walled one (reflections of single axes still commute).
        norm: use MVLayerNorm in the residual blocks.
        activation: gate of the network ("gelu" or "silu").
        kernel_num_layers, kernel_hidden_channels: size of every implicit kernel network (paper: 4, 12).
        kernel_activation: gate inside the kernel networks (default: ``activation``).
        pointwise: ``"kernel"`` or ``"linear"``, the kind of 1x1 layers (see above).
        kernel_head: ``"left"`` (the paper's) or ``"two_sided"`` (complete kernel basis, see
            :class:`~cscnn.nn.TwoSidedHead`), for every CS-conv.
        conditional: make every CS-conv (1x1 ones included) a
            :class:`~cscnn.nn.ConditionalCliffordSteerableConv` (Szarvas & Zhdanov, arXiv:2510.14007).
        condition_summary: ``"channels"`` or ``"averaged"`` (the authors' spacetime choice), see
            :class:`~cscnn.nn.ConditioningSummary`; used when ``conditional``.
        compat: ``"cscnn"`` (default) or ``"official"``: the forward and initialisation of the authors'
            JAX code in every layer (their GradeNorm and MVLayerNorm on the signed quadratic form
            clipped at 0.01, tanh-GELU gates, their kernel factor and initialisation; see
            :class:`~cscnn.nn.CliffordSteerableKernel` and docs/models.md). With ``pointwise="kernel"``,
            ``kernel_head="left"`` and not ``conditional`` this is their CS-ResNet, and
            :func:`~cscnn.models.load_official_params` loads their weights into it.
        time_scale: length of a step along grid axis 0 (time) in pixels of the other axes, for every
            CS-conv's kernel grid (:class:`~cscnn.nn.CliffordSteerableKernel`); set it to the data's
            ``c dt / dx`` so the kernels' light cone is the data's (default 1: one pixel per frame).

    Shapes: ``x: (B, in_channels, X_1..X_dim, 2**dim) -> (B, out_channels, X_1..X_dim, 2**dim)``.
    """

    def __init__(self, alg, in_channels: int, out_channels: int, hidden_channels: int,
                 blocks: Sequence[int] = (2, 2, 2, 2), kernel_size: int = 7, *, padding_mode: PaddingMode = "zeros",
                 norm: bool = True, activation: str = "gelu", kernel_num_layers: int = 4,
                 kernel_hidden_channels: int = 12, kernel_activation: str | None = None,
                 pointwise: str = "kernel", kernel_head: str = "left", conditional: bool = False,
                 condition_summary: str = "channels", compat: str = "cscnn", time_scale: float = 1.0):
        super().__init__()
        self.alg = alg = as_algebra(alg)
        self.in_channels = check_channels(in_channels, "in_channels")
        self.out_channels = check_channels(out_channels, "out_channels")
        self.hidden_channels = check_channels(hidden_channels, "hidden_channels")
        self.blocks = check_blocks(blocks)
        self.kernel_size = kernel_size
        self.padding_mode = padding_mode = check_padding_mode(padding_mode, alg.dim)
        kk = kernel_options(kernel_num_layers, kernel_hidden_channels, kernel_activation, activation, kernel_head,
                            conditional, condition_summary, compat, time_scale)
        self.kernel_head, self.conditional, self.compat = kernel_head, conditional, compat
        self.time_scale = kk["time_scale"]
        activation = model_gate(activation, compat)
        h = hidden_channels

        self.pointwise = pointwise

        def conv1x1(c_in, c_out):
            return pointwise_layer(alg, c_in, c_out, pointwise, padding_mode, kk)

        self.embedding = nn.Sequential(conv1x1(in_channels, h), MVGate(alg, activation),
                                       conv1x1(h, h), MVGate(alg, activation))
        self.layers = nn.Sequential(*[
            CSResidualBlock(alg, h, kernel_size, padding_mode, norm, activation, kk) for _ in range(sum(self.blocks))
        ])
        self.output = nn.Sequential(conv1x1(h, h), MVGate(alg, activation), conv1x1(h, out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_mv_input(x, self.alg, self.in_channels, type(self).__name__, spatial_dims=self.alg.dim)
        with kernel_bank(self):  # equal-shaped kernel networks in one batched call each
            return self.output(self.layers(self.embedding(x)))

    def extra_repr(self) -> str:
        return (f"metric={self.alg.metric}, in={self.in_channels}, out={self.out_channels}, "
                f"hidden={self.hidden_channels}, blocks={self.blocks}, kernel_size={self.kernel_size}, "
                f"pointwise={self.pointwise!r}, kernel_head={self.kernel_head!r}, conditional={self.conditional}"
                + (f", compat={self.compat!r}" if self.compat != "cscnn" else "")
                + (f", time_scale={self.time_scale}" if self.time_scale != 1.0 else ""))
