"""Ready models: CS-ResNet, CS-U-Net and the paper's baselines, with a registry and sizing helpers.

Example::

    from cscnn import CliffordAlgebra
    from cscnn.models import CSResNet
    net = CSResNet(CliffordAlgebra((1, 1)), 4, 1, 48)   # (B, 4, X, Y, 4) -> (B, 1, X, Y, 4)
"""

from .baselines import FNO, CliffordResNet, ResNet
from .cs_resnet import CSResidualBlock, CSResNet
from .cs_unet import CSUNet, avg_pool_fields, upsample_fields

__all__ = [
    "CSResNet",
    "CSResidualBlock",
    "CSUNet",
    "CliffordResNet",
    "FNO",
    "ResNet",
    "avg_pool_fields",
    "upsample_fields",
]
