"""Pure tensor math: the Clifford algebra and the group O(p,q) acting on it."""

from .clifford import NORM_EPS, OFFICIAL_FORM_FLOOR, CliffordAlgebra, clipped_form_sqrt, quadratic_floor
from .group import (
    boost,
    count_grid_symmetries,
    grid_symmetries,
    is_in_group,
    metric_tensor,
    random_orthogonal,
    sample_grid_symmetries,
    sample_group_elements,
)

__all__ = [
    "CliffordAlgebra",
    "NORM_EPS",
    "OFFICIAL_FORM_FLOOR",
    "clipped_form_sqrt",
    "quadratic_floor",
    "boost",
    "count_grid_symmetries",
    "grid_symmetries",
    "is_in_group",
    "metric_tensor",
    "random_orthogonal",
    "sample_grid_symmetries",
    "sample_group_elements",
]
