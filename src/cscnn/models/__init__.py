"""Ready models: CS-ResNet, CS-U-Net and the paper's baselines (G-FNO included), with a registry and sizing helpers.

Example::

    from cscnn import CliffordAlgebra
    from cscnn.models import CSResNet
    net = CSResNet(CliffordAlgebra((1, 1)), 4, 1, 48)   # (B, 4, X, Y, 4) -> (B, 1, X, Y, 4)
"""

from .baselines import FNO, GFNO, CliffordResNet, ResNet, SteerableResNet
from .cs_resnet import CSResidualBlock, CSResNet
from .cs_unet import CSUNet, avg_pool_fields, upsample_fields
from .official import load_official_params, official_parameter_shapes
from .registry import DEFAULT_HIDDEN, MODELS, build_model
from .sizing import count_parameters, match_width
from .symmetry_breaking import WithConstantFields

__all__ = [
    "DEFAULT_HIDDEN",
    "MODELS",
    "SteerableResNet",
    "build_model",
    "count_parameters",
    "match_width",
    "CSResNet",
    "CSResidualBlock",
    "CSUNet",
    "CliffordResNet",
    "FNO",
    "GFNO",
    "ResNet",
    "avg_pool_fields",
    "load_official_params",
    "official_parameter_shapes",
    "upsample_fields",
    "WithConstantFields",
]
