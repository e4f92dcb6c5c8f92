"""Torch modules: O(p,q)-equivariant layers on multivector fields and the
Clifford-steerable kernels and convolutions."""

from .activations import MVGELU, MVGate, MVSiLU
from .conditional_conv import ConditionalCliffordSteerableConv
from .conditioning import ConditioningSummary, inscribed_mask
from .conv import CliffordSteerableConv
from .dense import Conv4d, FrozenConv
from .freezing import freeze
from .kernel import CliffordSteerableKernel, KernelNetwork, kernel_grid
from .kernel_head import TwoSidedHead
from .linear import MVLinear
from .module import CliffordModule, reset_parameters
from .norms import GradeNorm, MVLayerNorm
from .product import SteerableGeometricProduct, weighted_geometric_product

__all__ = [
    "ConditionalCliffordSteerableConv",
    "ConditioningSummary",
    "inscribed_mask",
    "TwoSidedHead",
    "CliffordModule",
    "CliffordSteerableConv",
    "CliffordSteerableKernel",
    "Conv4d",
    "FrozenConv",
    "KernelNetwork",
    "kernel_grid",
    "freeze",
    "GradeNorm",
    "MVGELU",
    "MVGate",
    "MVLayerNorm",
    "MVLinear",
    "MVSiLU",
    "SteerableGeometricProduct",
    "reset_parameters",
    "weighted_geometric_product",
]
