"""CliffordSteerableConv: E(p,q)-equivariant convolution of multivector fields."""

from __future__ import annotations

import contextlib
import inspect

import torch
from torch import nn

from .checks import as_algebra, check_kernel_size, check_mv_input, check_positive_int
from .dense import FrozenConv
from .functional import PaddingMode, check_padding_mode, conv_nd
from .kernel import CliffordSteerableKernel
from .kernel_bank import _full_precision, dense_from_head, evaluate_kernel_groups, kernel_group_key
from .layout import channels_to_fields, choose_layout, fields_to_channels
from .module import CliffordModule, factory_kwargs

_CONV_KEYWORDS = ("stride", "padding", "dilation", "padding_mode", "bias", "device", "dtype")


def resolve_padding(padding, kernel_size: int, dilation: int = 1) -> int:
    """Per-side padding of an odd kernel: ``"same"`` -> ``dilation * (kernel_size // 2)``, ``"valid"`` -> 0,
    an int >= 0 as given."""
    if isinstance(padding, str):
        if padding == "same":
            return dilation * (kernel_size // 2)
        if padding == "valid":
            return 0
    elif isinstance(padding, int) and not isinstance(padding, bool) and padding >= 0:
        return padding
    raise ValueError(f"padding must be 'same', 'valid' or an int >= 0 (per side, every axis), got {padding!r}")


def _same_values(old: list[torch.Tensor], new: list[torch.Tensor]) -> bool:
    return len(old) == len(new) and all(
        a.shape == b.shape and a.dtype == b.dtype and a.device == b.device and torch.equal(a, b)
        for a, b in zip(old, new)
    )


class CliffordSteerableConv(CliffordModule):
    """Clifford-steerable convolution (cross-correlation, as torch) on multivector fields.

    Equivariant under translations and O(p,q) at the level of the kernel
    function; exactly equivariant on the grid for its symmetries (axis
    permutations of equal metric sign, reflections, time reversal) with
    stride 1, symmetric padding and any padding mode that is the same on every
    axis. A mixed per-axis mode such as ``("circular", "zeros")`` keeps only the
    symmetries that map each axis onto one padded alike (reflections, swaps of
    equally padded axes): it is not rotation-equivariant.

    Args:
        alg: CliffordAlgebra (or metric tuple) of dim 1 to 4; spatial axis d is e_d.
        in_channels, out_channels: multivector channels.
        kernel_size: odd int.
        stride: int >= 1.
        padding: ``"same"`` (default: ``dilation * (kernel_size // 2)`` per side, so the output
            keeps the input size at stride 1), ``"valid"`` (none) or an int >= 0 per side on every axis.
        dilation: int >= 1, spacing of the kernel taps.
        padding_mode: "zeros", "circular", "reflect" or "replicate" for every axis, or a sequence
            with one of them per spatial axis, e.g. ``("circular", "zeros")`` (periodic in the first
            axis, walled in the second); a list is stored as a tuple, a repeated mode as its string
            (:func:`cscnn.nn.functional.check_padding_mode`).
        bias: learnable bias on the scalar blade (the only O(p,q)-invariant one).
        device, dtype: where and in which float dtype to create parameters (as torch.nn).
        **kernel_kwargs: passed to :class:`CliffordSteerableKernel` (num_layers, hidden_channels,
            activation, shell_sigma_init, head, compat -- ``compat="official"`` is the authors' kernel,
            see docs/models.md); any other keyword raises TypeError listing the valid ones.

    Shapes: ``x: (B, in_channels, X_1..X_dim, 2**dim) -> (B, out_channels, Y_1..Y_dim, 2**dim)``
    with ``Y = (X + 2 padding - dilation (kernel_size - 1) - 1) // stride + 1``.

    ``weight`` (read-only) is the dense kernel ``(out_channels * 2**dim, in_channels * 2**dim, k, ..., k)``.
    In eval mode, when no gradient is needed, it is computed once and reused while the kernel's
    parameters and buffers keep their values (compared by value, so ``p.data`` writes, optimizer
    steps, ``load_state_dict``, ``.to()`` and replaced parameters all recompute it; never stored as
    an inference tensor). Under ``torch.compile`` it is computed inside the graph; for inference
    without kernel networks use :func:`cscnn.nn.freeze` / :meth:`to_dense`.
    """

    kernel_class = CliffordSteerableKernel
    #: True for convs whose kernel depends on the input (no single dense ``weight``; not frozen)
    per_sample_kernels = False

    def __init__(self, alg, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int | str = "same", dilation: int = 1, padding_mode: PaddingMode = "zeros",
                 bias: bool = True, device=None, dtype=None, **kernel_kwargs):
        super().__init__()
        unknown = sorted(set(kernel_kwargs) - set(self.kernel_keywords()))
        if unknown:
            raise TypeError(f"{type(self).__name__} got unexpected keyword argument(s) "
                            f"{', '.join(map(repr, unknown))}; valid keywords: "
                            f"{', '.join(_CONV_KEYWORDS + self.kernel_keywords())}")
        if kernel_kwargs.get("condition_channels") and not self.per_sample_kernels:
            raise TypeError(f"{type(self).__name__} has one kernel for all samples; for kernels conditioned on "
                            "the input use ConditionalCliffordSteerableConv")
        fk = factory_kwargs(device, dtype)
        self.alg = alg = as_algebra(alg)
        if not 1 <= alg.dim <= 4:
            raise ValueError(f"{type(self).__name__} supports dims 1 to 4, got metric {alg.metric}")
        padding_mode = check_padding_mode(padding_mode, alg.dim)
        self.kernel_size = check_kernel_size(kernel_size)
        self.stride = check_positive_int(stride, "stride")
        self.dilation = check_positive_int(dilation, "dilation")
        self._pad = resolve_padding(padding, kernel_size, self.dilation)
        self.padding, self.padding_mode = padding, padding_mode
        self.kernel = self.kernel_class(alg, in_channels, out_channels, kernel_size, **kernel_kwargs, **fk)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.bias = nn.Parameter(torch.empty(out_channels, **fk)) if bias else None
        if bias:  # e_0 (n_blades,), the grade-0 row of grade_onehot: the dense bias is bias (x) e_0
            self.register_constant("scalar_blade", alg.grade_onehot()[0], **fk)
        self._kernel_cache: tuple[list[torch.Tensor], torch.Tensor] | None = None
        self._banked_weight: torch.Tensor | None = None  # set inside kernel_bank(model)

    @classmethod
    def kernel_keywords(cls) -> tuple[str, ...]:
        """Keyword options of the kernel (``kernel_class``) this conv passes on."""
        params = inspect.signature(cls.kernel_class.__init__).parameters
        skip = {"self", "alg", "in_channels", "out_channels", "kernel_size", "device", "dtype"}
        return tuple(n for n, p in params.items() if n not in skip and p.kind == p.POSITIONAL_OR_KEYWORD)

    def _reset_own_parameters(self) -> None:
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    # ------------------------------------------------------------ dense kernel
    @property
    def weight(self) -> torch.Tensor:
        """The dense kernel (out*2^n, in*2^n, k, ..., k), read-only; cached when safe (see class docs)."""
        if self._banked_weight is not None:  # evaluated with its model's other kernels (kernel_bank)
            return self._banked_weight
        if self.training or torch.compiler.is_compiling() or (
            torch.is_grad_enabled() and any(p.requires_grad for p in self.kernel.parameters())
        ):
            return self.kernel()
        state = [*self.kernel.parameters(), *self.kernel.buffers()]
        cache = self._kernel_cache
        if cache is not None and _same_values(cache[0], state):
            return cache[1]
        with torch.inference_mode(False), torch.no_grad():  # a normal tensor, usable with autograd later
            weight = self.kernel()
            snapshot = [t.detach().clone() for t in state]
        self._kernel_cache = (snapshot, weight)
        return weight

    def dense_bias(self) -> torch.Tensor | None:
        """Bias of the dense conv, (out_channels * 2**dim,): the scalar-blade bias, zeros elsewhere."""
        if self.bias is None:
            return None
        # a product, not a concatenation with zeros: the bias's gradient is then a fresh contiguous
        # tensor (a strided slice of the dense one would be copied, eager and compiled)
        return (self.bias[:, None] * self.scalar_blade).reshape(-1)

    def train(self, mode: bool = True):
        self._kernel_cache = None
        return super().train(mode)

    def _apply(self, fn, recurse=True):
        self._kernel_cache = None
        return super()._apply(fn, recurse)

    def to_dense(self):
        """This conv as a :class:`~cscnn.nn.FrozenConv` around a plain ``torch.nn.Conv{1,2,3}d``
        (4D: :class:`~cscnn.nn.Conv4d`) holding the current dense kernel: same outputs, no kernel network."""
        return FrozenConv.from_conv(self)

    # ----------------------------------------------------------------- forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_mv_input(x, self.alg, self.in_channels, type(self).__name__, like=self.kernel.sigma,
                       spatial_dims=self.alg.dim)
        weight = self.weight
        layout = choose_layout(x, weight, self.stride, self._pad, self.padding_mode, self.dilation)  # cscnn.nn.layout
        y = conv_nd(fields_to_channels(x, layout), weight, self.stride, self._pad, self.padding_mode,
                    self.dense_bias(), self.dilation)
        return channels_to_fields(y, self.alg.n_blades)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding!r}, dilation={self.dilation}, padding_mode={self.padding_mode!r}, "
                f"metric={self.alg.metric}, bias={self.bias is not None}")


def _bankable(conv) -> bool:
    """A conv whose dense kernel would be computed now (not read from its eval cache)."""
    if conv.per_sample_kernels or getattr(conv, "_banked_weight", None) is not None:
        return False
    return conv.training or torch.compiler.is_compiling() or (
        torch.is_grad_enabled() and any(p.requires_grad for p in conv.kernel.parameters()))


@contextlib.contextmanager
def kernel_bank(model):
    """Evaluate the dense kernels of all :class:`~cscnn.nn.CliffordSteerableConv` of ``model`` together,
    and let each conv use its kernel inside the block: the kernel networks of all convs whose networks
    share a shape (:func:`~cscnn.nn.kernel_bank.network_group_key`; in the paper's CS-ResNet all 20) run
    in ONE call, then one kernel head per group of equal-shaped kernels
    (:func:`~cscnn.nn.kernel_bank.evaluate_kernel_groups`).

    Only convs that would compute their kernel anyway take part (training, a gradient needed, or under
    ``torch.compile``): in eager eval mode without gradients each conv keeps its own value-checked cache.
    Conditional convs (per-sample kernels that depend on their layer's input) compute their own kernels.
    Under ``torch.compile`` the bank is traced into the graph as well (the compiler does not merge the
    convs' separate kernel networks by itself). Usage: ``with kernel_bank(self): return self.body(x)``."""
    groups: dict[tuple, list] = {}
    for m in model.modules():
        if isinstance(m, CliffordSteerableConv) and _bankable(m):
            groups.setdefault(kernel_group_key(m.kernel), []).append(m)
    banked = []
    try:
        if groups:
            convs_of = list(groups.values())
            first = convs_of[0][0].kernel
            scope = contextlib.nullcontext() if torch.compiler.is_compiling() else \
                torch.profiler.record_function("cscnn::kernel networks")  # (the compiler would warn and drop it)
            with scope, _full_precision(first.sigma.device):
                kerns = evaluate_kernel_groups([[c.kernel for c in convs] for convs in convs_of])
                for convs, kern in zip(convs_of, kerns):
                    k = convs[0].kernel
                    for conv, w in zip(convs, dense_from_head(kern, k.kernel_size, k.alg.dim).unbind(0)):
                        conv._banked_weight = w
                        banked.append(conv)
        yield
    finally:
        for conv in banked:
            conv._banked_weight = None
