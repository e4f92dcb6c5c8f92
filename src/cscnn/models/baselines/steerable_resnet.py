"""Steerable ResNet baseline: O(2)/O(3)-steerable convolutions from ``escnn`` on multivector fields.

Adapter (Euclidean metrics only). Every multivector channel becomes a group of escnn fields that
transform under O(n) exactly as its blades do:

* 2D, Cl(2,0), blades (1, e0, e1, e01): scalar -> trivial representation, vector (e0, e1) -> the
  standard representation of O(2), pseudoscalar e01 -> the sign (det) irrep ``irrep(1, 0)``.
* 3D, Cl(3,0), blades (1, e0, e1, e2, e01, e02, e12, e012): scalar -> trivial, vector (e0, e1, e2)
  -> standard representation of O(3), bivector -> pseudovector ``irrep(0, 1)`` (the standard
  representation times det) acting on the dual axial vector ``(e12, -e02, e01)``, pseudoscalar ->
  ``irrep(1, 0)``.

escnn's point coordinates are matched to our grid axes (grid axis d is e_d) by a signed permutation
of the vector blades (see ``_AXIS_MAPS``), so the model commutes with our grid symmetries (see the
tests). Hidden features are ``hidden_channels`` copies of the band-limited regular representation
(irreps up to ``hidden_frequency``) with escnn's FourierELU, sampled on a grid that contains the
grid symmetries (8 rotations/reflections in 2D, the 24 cube rotations with inversion in 3D).
"""

from __future__ import annotations

import contextlib
import copy
import io
from collections.abc import Sequence

import torch
from torch import nn

from ...nn.checks import as_algebra, check_channels, check_kernel_size
from ...nn.functional import PaddingMode, check_padding_mode
from ..cs_resnet import check_blocks
from .adapters import channels_to_mv, check_field, mv_to_channels, require

__all__ = ["SteerableResNet", "blade_map"]

# escnn coordinate i of a vector equals  sign[i] * (our component along grid axis perm[i]).
# Found (and guarded by tests/test_baselines.py) by checking equivariance under all grid symmetries:
# in 2D escnn's coordinates are the tensor axes in order; in 3D they are (axis 2, -axis 1, -axis 0).
_AXIS_MAPS = {2: ((0, 1), (1.0, 1.0)), 3: ((2, 1, 0), (1.0, -1.0, -1.0))}


def blade_map(dim: int) -> torch.Tensor:
    """Signed permutation M (n_blades, n_blades) with ``escnn_components = M @ blades`` for one multivector."""
    n = 2**dim
    perm, sign = _AXIS_MAPS[dim]
    m = torch.zeros(n, n, dtype=torch.float64)
    m[0, 0] = 1.0
    for i in range(dim):  # vector part: blades 1..dim
        m[1 + i, 1 + perm[i]] = sign[i]
    if dim == 2:  # pseudoscalar e01: its sign under the permutation/flip is the det of the axis map
        m[3, 3] = 1.0
    else:
        # bivectors e01, e02, e12 (blades 4, 5, 6) -> axial vector a = (e12, -e02, e01) in our axes,
        # then the same axis map as for vectors; an axial vector picks up det of the axis map.
        axial = torch.zeros(3, 3, dtype=torch.float64)
        axial[0, 2], axial[1, 1], axial[2, 0] = 1.0, -1.0, 1.0
        p = torch.zeros(3, 3, dtype=torch.float64)
        for i in range(3):
            p[i, perm[i]] = sign[i]
        m[4:7, 4:7] = torch.linalg.det(p) * p @ axial
        m[7, 7] = float(torch.linalg.det(p))
    return m


def _private_copy(module: nn.Module, memo: dict) -> nn.Module:
    """Shallow copy of a module tree with its own parameter/buffer/module dicts (tensors still shared).

    escnn caches basis-expansion modules and hands the same objects to every convolution with the
    same field types, across models; ``.double()`` / ``.to()`` on one model would then convert the
    basis of every other model too. With private dicts a conversion replaces only this model's entries.
    """
    if id(module) in memo:
        return memo[id(module)]
    new = copy.copy(module)
    new._parameters = type(module._parameters)(module._parameters)
    new._buffers = type(module._buffers)(module._buffers)
    new._modules = type(module._modules)((k, None if v is None else _private_copy(v, memo))
                                         for k, v in module._modules.items())
    memo[id(module)] = new
    return new


class SteerableResNet(nn.Module):
    """E(2)/E(3)-steerable ResNet (escnn) with the CS-ResNet skeleton, on multivector fields.

    Embedding: two 1x1 steerable convs with FourierELU; ``sum(blocks)`` residual blocks (conv k x k,
    IIDBatchNorm, FourierELU, conv k x k, IIDBatchNorm, add shortcut, FourierELU); two 1x1 convs.
    Uses ``escnn.gspaces.flipRot2dOnR2(N=-1)`` (O(2)) in 2D and ``flipRot3dOnR3`` (O(3)) in 3D.
    The field mapping is described in the module docstring.

    Args:
        alg: CliffordAlgebra or metric tuple; only Euclidean (1, 1) and (1, 1, 1) are supported.
        in_channels, out_channels: multivector channels.
        hidden_channels: copies of the band-limited regular field inside (each has
            ``sum_irreps dim^2`` components: 10 in 2D and 20 in 3D at ``hidden_frequency=1``).
        blocks, kernel_size, padding_mode: as in :class:`~cscnn.models.CSResNet`, but one mode for all
            axes: escnn's R2Conv / R3Conv pad every axis alike, so a mixed per-axis mode is refused.
        norm: IIDBatchNorm in the residual blocks.
        hidden_frequency: band limit of the hidden features.
        maximum_frequency: band limit of escnn's kernel bases.
        initialize: run escnn's He initialisation of the convolutions (slow for wide models; pass
            False when only counting parameters, e.g. ``match_width(..., initialize=False)``).

    Shapes: ``x: (B, in_channels, X_1..X_dim, 2**dim) -> (B, out_channels, X_1..X_dim, 2**dim)``.
    Under ``torch.autocast`` it computes in float32 (escnn's filter expansion is not autocast-safe).
    Raises ImportError (``pip install cscnn[baselines]``) without escnn and ValueError for
    non-Euclidean metrics (escnn has no Lorentz groups).
    """

    def __init__(self, alg, in_channels: int, out_channels: int, hidden_channels: int,
                 blocks: Sequence[int] = (2, 2, 2, 2), kernel_size: int = 7, *, padding_mode: PaddingMode = "zeros",
                 norm: bool = True, hidden_frequency: int = 1, maximum_frequency: int | None = None,
                 initialize: bool = True):
        super().__init__()
        self.alg = alg = as_algebra(alg)
        if alg.metric not in ((1, 1), (1, 1, 1)):
            raise ValueError(
                f"SteerableResNet (escnn) supports only the Euclidean metrics (1, 1) and (1, 1, 1), got {alg.metric}: "
                "escnn has O(2)/O(3) but no pseudo-orthogonal (Lorentz) groups; use CSResNet for spacetime"
            )
        check_kernel_size(kernel_size)
        padding_mode = check_padding_mode(padding_mode, alg.dim)
        if not isinstance(padding_mode, str):
            raise ValueError(f"SteerableResNet (escnn) pads every axis with one mode; the per-axis padding_mode "
                             f"{list(padding_mode)} is not supported (escnn's R2Conv/R3Conv take one padding_mode)")
        self.in_channels = check_channels(in_channels, "in_channels")
        self.out_channels = check_channels(out_channels, "out_channels")
        self.hidden_channels = h = check_channels(hidden_channels, "hidden_channels")
        self.blocks = check_blocks(blocks)
        escnn_nn = require("escnn.nn", "escnn")
        gspaces = require("escnn.gspaces", "escnn")
        escnn_group = require("escnn.group", "escnn")
        self._geometric_tensor = escnn_nn.GeometricTensor
        # escnn prints debug lines while it computes Clebsch-Gordan coefficients; keep stdout clean
        with contextlib.redirect_stdout(io.StringIO()):
            dim = alg.dim
            if dim == 2:
                mf = 2 * hidden_frequency + 2 if maximum_frequency is None else maximum_frequency
                gs = gspaces.flipRot2dOnR2(N=-1, maximum_frequency=mf)
                group = gs.fibergroup
                mv_reps = [group.trivial_representation, group.standard_representation(), group.irrep(1, 0)]
                grid = {"type": "regular", "N": 8}
                conv_cls, bn_cls = escnn_nn.R2Conv, escnn_nn.IIDBatchNorm2d
            else:
                mf = 2 * hidden_frequency + 1 if maximum_frequency is None else maximum_frequency
                gs = gspaces.flipRot3dOnR3(maximum_frequency=mf)
                group = gs.fibergroup
                std = group.standard_representation()
                pseudo = escnn_group.change_basis(group.irrep(0, 1), std.change_of_basis, "pseudovector")
                mv_reps = [group.trivial_representation, std, pseudo, group.irrep(1, 0)]
                grid = {"type": "cube"}
                conv_cls, bn_cls = escnn_nn.R3Conv, escnn_nn.IIDBatchNorm3d
            self.gspace = gs
            self.in_type = escnn_nn.FieldType(gs, mv_reps * in_channels)
            self.out_type = escnn_nn.FieldType(gs, mv_reps * out_channels)
            irreps = group.bl_irreps(hidden_frequency)

            def act():
                return escnn_nn.FourierELU(gs, h, irreps=irreps, inplace=False, **grid)

            hid = act().in_type

            def conv(t_in, t_out, k):
                return conv_cls(t_in, t_out, k, padding=k // 2, padding_mode=padding_mode, initialize=initialize)

            def bn():
                return bn_cls(hid) if norm else escnn_nn.IdentityModule(hid)

            self.hidden_type = hid
            self.embedding = escnn_nn.SequentialModule(conv(self.in_type, hid, 1), act(), conv(hid, hid, 1), act())
            self.layers = nn.ModuleList([
                nn.ModuleList([conv(hid, hid, kernel_size), bn(), act(), conv(hid, hid, kernel_size), bn(), act()])
                for _ in range(sum(self.blocks))
            ])
            self.output = escnn_nn.SequentialModule(conv(hid, hid, 1), act(), conv(hid, self.out_type, 1))
        memo: dict = {}
        for m in self.modules():
            if isinstance(getattr(m, "_basisexpansion", None), nn.Module):
                m._basisexpansion = _private_copy(m._basisexpansion, memo)
        self.register_buffer("blade_map", blade_map(dim).to(torch.get_default_dtype()), persistent=False)

    def extra_repr(self) -> str:
        return (f"metric={self.alg.metric}, in={self.in_channels}, out={self.out_channels}, "
                f"hidden={self.hidden_channels}")

    def to_native(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, *X, n_blades) -> (B, C * n_blades, *X)`` in escnn's field components (a GeometricTensor's data)."""
        return mv_to_channels(x @ self.blade_map.to(x.dtype).T)

    def from_native(self, y: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`to_native` (the blade map is a signed permutation, so its inverse is its transpose)."""
        return channels_to_mv(y, self.alg.n_blades) @ self.blade_map.to(y.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_field(x, self.alg, self.in_channels, "SteerableResNet")
        # escnn's basis expansion writes autocast (bf16/fp16) results into float32 filters and fails, so
        # under torch.autocast this baseline runs in its parameters' dtype (float32)
        with torch.autocast(x.device.type, enabled=False):
            if x.dtype in (torch.float16, torch.bfloat16):
                x = x.to(self.blade_map.dtype)
            h = self.embedding(self._geometric_tensor(self.to_native(x), self.in_type))
            for conv1, bn1, act1, conv2, bn2, act2 in self.layers:
                r = act1(bn1(conv1(h)))
                h = act2(bn2(conv2(r)) + h)
            return self.from_native(self.output(h).tensor)
