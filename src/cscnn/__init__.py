"""cscnn: Clifford-Steerable CNNs in PyTorch.

E(p,q)-equivariant convolutions on multivector fields: E(2)/E(3) on Euclidean
grids and Poincaré symmetry (boosts included) on spacetime grids.

``CliffordAlgebra`` (and the ``algebra`` subpackage) are imported on first use, so that
``cscnn --version`` / ``--help`` answer without importing torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # for type checkers and the API reference; imported on first use below
    from .algebra import CliffordAlgebra

__version__ = "0.1.0"

__all__ = ["CliffordAlgebra", "__version__"]


def __getattr__(name: str):
    if name == "CliffordAlgebra":
        from .algebra import CliffordAlgebra

        return CliffordAlgebra
    if name in ("algebra", "nn", "models", "data", "training", "testing", "fields"):
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'cscnn' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | {"CliffordAlgebra"})
