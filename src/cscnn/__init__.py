"""cscnn: Clifford-Steerable CNNs in PyTorch.

E(p,q)-equivariant convolutions on multivector fields: E(2)/E(3) on Euclidean
grids and Poincaré symmetry (boosts included) on spacetime grids.
"""

from .algebra import CliffordAlgebra

__version__ = "0.1.0"

__all__ = ["CliffordAlgebra", "__version__"]
