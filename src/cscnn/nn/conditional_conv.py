"""ConditionalCliffordSteerableConv: Clifford-steerable convolution with input-conditioned kernels.

Szarvas & Zhdanov (arXiv:2510.14007): the implicit kernel network reads, besides
``s(v) + v``, per sample the condition multivectors ``c`` of the layer's input (the mean over the
inscribed disk/ball, :class:`~cscnn.nn.ConditioningSummary`), so kernels are per sample,
``K(v; c_b)``, and reach grade-2 and higher kernel multivectors (products ``v c``). Because
``K(g v; rho(g) c) = rho(g) K(v; c) rho(g)^-1`` and ``c`` transforms as ``rho(g) c``, the
convolution stays equivariant.

Batched: the kernels of all samples come from ONE call of the kernel network on ``B * k^dim``
points and are applied by ONE grouped convolution (``groups = B``), no loop over samples.
"""

from __future__ import annotations

import torch

from .checks import check_mv_input
from .conditioning import SUMMARY_MODES, ConditioningSummary
from .conv import CliffordSteerableConv, channels_to_fields, fields_to_channels
from .functional import PaddingMode, conv_nd

__all__ = ["ConditionalCliffordSteerableConv"]


class ConditionalCliffordSteerableConv(CliffordSteerableConv):
    """Clifford-steerable convolution whose kernel is conditioned on the input field (per sample).

    Called like :class:`~cscnn.nn.CliffordSteerableConv` (same arguments, shapes, padding,
    dilation, padding modes -- one for all axes or one per axis --, dims 1-4, device/dtype), plus:

    Args:
        summary: ``"channels"`` (default: one condition multivector per input channel, kernel
            network input width ``1 + in_channels``), ``"normalized"`` (the same, divided by the
            channels' mean invariant norm: scale-free, keeps deep conditional models' activations
            bounded) or ``"averaged"`` (channel mean and
            MVLayerNorm, width 2; the authors' spacetime setting). See :class:`ConditioningSummary`.
        **kernel_kwargs: passed to :class:`~cscnn.nn.CliffordSteerableKernel` (num_layers,
            hidden_channels, activation, shell_sigma_init, head); ``condition_channels`` follows
            from ``summary``.

    Shapes: ``x: (B, in_channels, X_1..X_dim, 2**dim) -> (B, out_channels, Y_1..Y_dim, 2**dim)``;
    :meth:`sample_weights` gives the per-sample dense kernels
    ``(B, out_channels * 2**dim, in_channels * 2**dim, k, ..., k)``. There is no single ``weight``;
    :func:`~cscnn.nn.freeze` leaves these convs as they are.

    Exactly equivariant on the grid (stride 1, symmetric padding, any padding mode that is the same
    on every axis) because the inscribed region is mapped onto itself by every grid symmetry; a mixed
    per-axis mode keeps only the symmetries that map each axis onto one padded alike. Kernels depend on the input, so
    nothing is cached.
    """

    per_sample_kernels = True

    def __init__(self, alg, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int | str = "same", dilation: int = 1, padding_mode: PaddingMode = "zeros",
                 bias: bool = True, device=None, dtype=None, summary: str = "channels", **kernel_kwargs):
        if summary not in SUMMARY_MODES:
            raise ValueError(f"summary must be one of {SUMMARY_MODES}, got {summary!r}")
        if "condition_channels" in kernel_kwargs:
            raise TypeError("ConditionalCliffordSteerableConv sets condition_channels from summary; do not pass it")
        cond = 1 if summary == "averaged" else in_channels
        super().__init__(alg, in_channels, out_channels, kernel_size, stride, padding, dilation, padding_mode, bias,
                         device, dtype, condition_channels=cond, **kernel_kwargs)
        self.summary = ConditioningSummary(self.alg, in_channels, summary, device=device, dtype=dtype)

    @property
    def weight(self) -> torch.Tensor:
        raise TypeError("ConditionalCliffordSteerableConv has per-sample kernels: use sample_weights(x)")

    def to_dense(self):
        raise TypeError("ConditionalCliffordSteerableConv has per-sample kernels and no dense equivalent")

    def sample_weights(self, x: torch.Tensor) -> torch.Tensor:
        """Per-sample dense kernels for the input ``x`` (B, in, *X, n): (B, out*n, in*n, k, ..., k),
        from ONE kernel-network call on B * k^dim points."""
        check_mv_input(x, self.alg, self.in_channels, type(self).__name__, like=self.kernel.sigma,
                       spatial_dims=self.alg.dim)
        return self.kernel(self.summary(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.sample_weights(x)  # (B, o*n, i*n, k..k)
        b = x.shape[0]
        xc = fields_to_channels(x)  # (B, i*n, *X)
        bias = self.dense_bias()
        y = conv_nd(xc.reshape(1, -1, *xc.shape[2:]), w.flatten(0, 1).to(xc.dtype), self.stride, self._pad,
                    self.padding_mode, None if bias is None else bias.repeat(b), self.dilation, groups=b)
        return channels_to_fields(y.reshape(b, -1, *y.shape[2:]), self.alg.n_blades)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", summary={self.summary.mode!r}"
