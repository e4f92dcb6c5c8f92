"""Parameters of the authors' JAX/flax models loaded into cscnn's (``compat="official"``).

The authors' code (Zhdanov et al., "Clifford-Steerable Convolutional Neural Networks", ICML 2024,
arXiv:2402.14730; github.com/maxxxzdn/clifford-group-equivariant-cnns) names its parameters by flax's
module paths, e.g. ``CSBasicBlock_0/CliffordSteerableConv_1/CliffordSteerableKernel_0/rel_pos_sigma``.
:func:`load_official_params` takes them flattened with ``'/'``::

    flat = flax.traverse_util.flatten_dict(variables["params"], sep="/")   # in their environment
    np.savez("weights.npz", **{k: np.asarray(v) for k, v in flat.items()})

and copies them into a cscnn model built with ``compat="official"`` and the same sizes, after which
both compute the same function (to float64 rounding; tests/test_official.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import torch
from torch import nn

from ..nn import CliffordSteerableConv, CliffordSteerableKernel
from .cs_resnet import CSResNet

__all__ = ["load_official_params", "official_parameter_shapes"]

#: their kernel-shell widths are stored minus this offset (``kernel_width = param + 0.4``)
_SHELL_OFFSET = 0.4

# one entry per official name: (their shape, our parameter, their array -> our value)
_Entry = tuple[tuple[int, ...], nn.Parameter, Callable[[torch.Tensor], torch.Tensor]]


def _reshape(shape) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda t: t.reshape(shape)


def _path_order(alg) -> torch.Tensor:
    """Their path index for each of ours: the authors number the grade paths (left a, output c, right b)
    in C order of their boolean (dim+1)^3 table; cscnn sorts them as (a, b, c) (``alg.path_table()``)."""
    theirs = sorted((a, c, b) for a, b, c in alg.path_table())
    position = {(a, b, c): n for n, (a, c, b) in enumerate(theirs)}
    return torch.tensor([position[p] for p in alg.path_table()], dtype=torch.long)


def _paths(alg) -> Callable[[torch.Tensor], torch.Tensor]:
    order = _path_order(alg)
    return lambda t: t[..., order]


def _product_entries(gp, prefix: str) -> dict[str, _Entry]:
    """A FullyConnectedSteerableGeometricProductLayer: WeightedCayley_0, MVLinear_0 (right, no bias),
    GradeNorm_0, MVLinear_1 (the linear term, with bias)."""
    o, i, p = gp.weight.shape
    g = gp.alg.n_grades
    return {
        f"{prefix}/WeightedCayley_0/weight": ((o, i, p), gp.weight, _paths(gp.alg)),
        f"{prefix}/MVLinear_0/weight": ((i, i, g), gp.right.weight, _reshape((i, i, g))),
        f"{prefix}/GradeNorm_0/factor": ((1, i, g), gp.norm.s, _reshape((i, g))),
        f"{prefix}/MVLinear_1/weight": ((o, i, g), gp.linear.weight, _reshape((o, i, g))),
        f"{prefix}/MVLinear_1/bias": ((1, o, 1), gp.linear.bias, _reshape((o,))),
    }


def _kernel_entries(kernel: CliffordSteerableKernel, prefix: str) -> dict[str, _Entry]:
    o, i, g = kernel.shell_sigma.shape
    out = {
        f"{prefix}rel_pos_sigma": ((1, 1, 1), kernel.sigma, _reshape(())),
        f"{prefix}ScalarShell_0/kernel_width": ((o, i, g), kernel.shell_sigma, lambda t: t + _SHELL_OFFSET),
        f"{prefix}WeightedCayley_0/weight": ((o, i, kernel.alg.n_paths), kernel.head_weight, _paths(kernel.alg)),
    }
    layers = list(kernel.net.layers)
    for n, idx in enumerate(range(0, len(layers), 3)):
        gp_name = f"{prefix}KernelNetwork_0/FullyConnectedSteerableGeometricProductLayer_{n}"
        out.update(_product_entries(layers[idx], gp_name))
        if idx + 1 < len(layers):
            s = layers[idx + 1].s
            out[f"{prefix}KernelNetwork_0/GradeNorm_{n}/factor"] = ((1, *s.shape), s, _reshape(tuple(s.shape)))
    return out


def _conv_entries(conv: CliffordSteerableConv, prefix: str) -> dict[str, _Entry]:
    out = _kernel_entries(conv.kernel, f"{prefix}CliffordSteerableKernel_0/")
    if conv.bias is not None:
        o = conv.out_channels
        out[f"{prefix}bias"] = ((1, o, *([1] * conv.alg.dim), 1), conv.bias, _reshape((o,)))
    return out


def _resnet_entries(net: CSResNet) -> dict[str, _Entry]:
    if net.pointwise != "kernel":
        raise ValueError("the authors' CS-ResNet has 1x1 CS-convs: build it with pointwise='kernel'")
    out: dict[str, _Entry] = {}
    ends = [net.embedding[0], net.embedding[2], net.output[0], net.output[2]]
    for n, conv in enumerate(ends):
        out.update(_conv_entries(conv, f"CliffordSteerableConv_{n}/"))
    for b, block in enumerate(net.layers):
        out.update(_conv_entries(block.conv1, f"CSBasicBlock_{b}/CliffordSteerableConv_0/"))
        out.update(_conv_entries(block.conv2, f"CSBasicBlock_{b}/CliffordSteerableConv_1/"))
    return out


def _entries(model: nn.Module) -> dict[str, _Entry]:
    """Official name -> entry for every parameter of ``model``; checks that it can hold the authors' model."""
    kernels = [m for m in model.modules() if isinstance(m, CliffordSteerableKernel)]
    if isinstance(model, CSResNet):
        if model.conditional:
            raise ValueError("the authors' CS-ResNet has no conditional kernels: build it with conditional=False")
        entries = _resnet_entries(model)
    elif isinstance(model, CliffordSteerableConv) and not model.per_sample_kernels:
        entries = _conv_entries(model, "")
    elif isinstance(model, CliffordSteerableKernel):
        entries = _kernel_entries(model, "")
    else:
        raise TypeError("load_official_params loads the authors' CSResNet, CliffordSteerableConv or "
                        f"CliffordSteerableKernel, got {type(model).__name__}")
    plain = [k.compat for k in kernels if k.compat != "official"]
    if plain:
        raise ValueError(f"build the model with compat='official' (the authors' forward); its kernels have "
                         f"compat={plain[0]!r}")
    covered = {id(e[1]) for e in entries.values()}
    extra = [name for name, p in model.named_parameters() if id(p) not in covered]
    if extra:
        raise ValueError(f"the model has parameters the authors' model does not: {', '.join(extra)}")
    return entries


def official_parameter_shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    """The '/'-joined flax names and shapes of the authors' parameters that ``model`` (built with
    ``compat="official"``) holds, as :func:`load_official_params` expects them."""
    return {name: shape for name, (shape, _, _) in _entries(model).items()}


@torch.no_grad()
def load_official_params(model: nn.Module, params: Mapping[str, object]) -> None:
    """Copy the parameters of one of the authors' flax models into ``model``, in place.

    Args:
        model: a :class:`~cscnn.models.CSResNet`, :class:`~cscnn.nn.CliffordSteerableConv` or
            :class:`~cscnn.nn.CliffordSteerableKernel` built with ``compat="official"`` and the sizes of
            theirs: their ``CSResNet(time_history, time_future, hidden_channels, kernel_num_layers,
            kernel_hidden_dim, kernel_size, blocks, norm)`` is ``CSResNet(alg, time_history, time_future,
            hidden_channels, blocks, kernel_size, norm=norm, kernel_num_layers=..,
            kernel_hidden_channels=kernel_hidden_dim, compat="official")`` (``make_channels=True``, their
            spacetime setting: 1 in, 1 out), with ``bias_dims=(0,)`` and padding ``"SAME"`` (zeros), theirs.
        params: '/'-joined flax parameter names (``flax.traverse_util.flatten_dict(variables["params"],
            sep="/")``) -> arrays (numpy, jax or torch), e.g. ``dict(np.load("weights.npz"))``.

    Raises:
        ValueError: one message listing every unknown, missing and mis-shaped name (nothing is copied then),
            or a model that cannot hold the authors' (not ``compat="official"``, other layers).
        TypeError: a model of another class.
    """
    entries = _entries(model)
    if not isinstance(params, Mapping):
        raise TypeError(f"params must map '/'-joined flax names to arrays, got {type(params).__name__}")
    arrays = {name: np.asarray(value) for name, value in params.items()}
    unknown = sorted(set(arrays) - set(entries))
    missing = sorted(set(entries) - set(arrays))
    misshaped = sorted(f"{name} {tuple(arrays[name].shape)} (expected {entries[name][0]})"
                       for name in set(arrays) & set(entries) if tuple(arrays[name].shape) != entries[name][0])
    if unknown or missing or misshaped:
        parts = [f"{label} ({len(names)}): {', '.join(names)}" for label, names in
                 (("unknown", unknown), ("missing", missing), ("mis-shaped", misshaped)) if names]
        raise ValueError(f"official parameters do not fit this {type(model).__name__}: " + "; ".join(parts))
    for name, (_, param, convert) in entries.items():
        value = convert(torch.as_tensor(arrays[name], dtype=torch.float64))
        param.copy_(value.to(dtype=param.dtype, device=param.device))
