"""Baselines of the paper behind the multivector-field interface ``(B, C, *X, 2**dim)``.

The optional libraries (cliffordlayers, escnn, neuraloperator) are imported only when a
model that needs them is built; without them that model raises ImportError with the hint
``pip install cscnn[baselines]``. The plain :class:`ResNet` and the :class:`GFNO` need only torch.
"""

from .adapters import channels_to_mv, mv_to_channels
from .clifford_resnet import CliffordResNet
from .fno import FNO
from .gfno import GFNO
from .resnet import ResNet
from .steerable_resnet import SteerableResNet

__all__ = ["CliffordResNet", "FNO", "GFNO", "ResNet", "SteerableResNet", "channels_to_mv", "mv_to_channels"]
