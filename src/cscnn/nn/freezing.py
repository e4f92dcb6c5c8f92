"""``freeze(model)``: every Clifford-steerable conv of a model as a plain torch convolution.

Above both :mod:`cscnn.nn.conv` and :mod:`cscnn.nn.dense` in the import order (the conv makes its
:class:`~cscnn.nn.FrozenConv`; this module walks models)."""

from __future__ import annotations

import copy

from torch import nn

from .conv import CliffordSteerableConv

__all__ = ["freeze"]


def freeze(model: nn.Module, inplace: bool = False) -> nn.Module:
    """Replace every :class:`CliffordSteerableConv` in ``model`` by its :class:`FrozenConv`
    (conditional convs, whose kernels depend on the input, stay as they are).

    The result computes the same function with plain torch convolutions (no kernel networks), is in
    eval mode with ``requires_grad=False`` everywhere, and works with ``torch.compile`` and
    ``torch.export``. A copy is returned unless ``inplace``; a conv passed directly is converted too.
    """
    if isinstance(model, CliffordSteerableConv):
        model = model.to_dense()
    else:
        model = model if inplace else copy.deepcopy(model)
        _replace_convs(model)
    return model.eval().requires_grad_(False)


def _replace_convs(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, CliffordSteerableConv) and not child.per_sample_kernels:
            setattr(module, name, child.to_dense())
        else:
            _replace_convs(child)
