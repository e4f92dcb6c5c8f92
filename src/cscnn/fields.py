"""Physical fields <-> multivectors, the one place that defines the embeddings.

Every data set stores plain physical components; models see multivectors.
The embeddings are chosen so that a rotation / reflection / boost ``g`` of the
physical field becomes the outermorphism ``rho(g)`` of the multivector
(see :meth:`cscnn.algebra.CliffordAlgebra.outermorphism`).

The layouts of the paper's three tasks are defined here (:data:`NAVIER_STOKES_LAYOUT`,
:data:`MAXWELL3D_LAYOUT`, :data:`MAXWELL2D_LAYOUT`) and used by their task files in
:mod:`cscnn.data.tasks`; other task files define their own :class:`FieldLayout`.
:data:`FIELD_LAYOUTS` is a read-only view ``task name -> FieldLayout``: the three
above, plus every task registered with :func:`cscnn.data.register_task` (which calls
:func:`register_layout`). This module imports nothing from :mod:`cscnn.data`: the
data layer sits above it. The paper's tasks and their component layouts (last axis
of ``fields``):

``navier-stokes`` in Cl(2,0), metric (1, 1)
    fields ``(u, vx, vy)``: smoke density (scalar) and velocity (vector)
    -> ``[u, vx, vy, 0]`` (blades 1, e0, e1, e01).

``maxwell3d`` in Cl(3,0), metric (1, 1, 1)
    fields ``(Ex, Ey, Ez, Hx, Hy, Hz)``: electric field (vector) and magnetic
    field H (pseudovector = bivector) -> ``[0, Ex, Ey, Ez, Hz, -Hy, Hx, 0]``
    (blades 1, e0, e1, e2, e01, e02, e12, e012), i.e. ``H = Hx e12 + Hy e20 + Hz e01``.

``maxwell2d`` in Cl(1,2), metric (-1, 1, 1), time axis first
    fields ``(Ex, Ey, cBz)`` in the plane z = 0 -> the Faraday bivector
    ``F = Ex e01 + Ey e02 + cBz e12``. These are the contravariant components
    ``c F^{mu nu}`` (mu < nu) for the signature (-,+,+), with ``F^{0i} = E_i / c``
    and ``F^{12} = B_z``. A Lorentz transformation ``Lambda`` of the coordinates
    ``(ct, x, y)`` maps them by ``Lambda F Lambda^T``, which on bivector
    coefficients is exactly ``rho(Lambda)``: boosts give the textbook
    ``E'_perp = gamma (E + v x B)_perp``, ``B'_perp = gamma (B - v x E / c^2)_perp``,
    rotations rotate E and keep Bz, spatial reflections flip Bz (a pseudoscalar
    in the plane). Time reversal ``diag(-1, 1, 1)`` maps ``(E, cB)`` to
    ``(-E, cB)``, i.e. minus the physically time-reversed field ``(E, -cB)``
    (an overall sign, which any linear equivariant map respects).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import torch

from .algebra import CliffordAlgebra

__all__ = [
    "FIELD_LAYOUTS",
    "MAXWELL2D_LAYOUT",
    "MAXWELL3D_LAYOUT",
    "NAVIER_STOKES_LAYOUT",
    "FieldLayout",
    "component_names",
    "faraday_from_multivector",
    "faraday_to_multivector",
    "from_multivector",
    "maxwell3d_from_multivector",
    "maxwell3d_to_multivector",
    "multivector_field_names",
    "navier_stokes_from_multivector",
    "navier_stokes_to_multivector",
    "register_layout",
    "to_multivector",
]


@dataclass(frozen=True)
class FieldLayout:
    """How one task's physical components sit in the multivector.

    ``blades[i]`` is the blade index receiving ``signs[i] * fields[..., i]``.
    ``groups`` lists the physical fields as ``(name, component indices)``;
    a group always fills whole grades, so scaling a group by one number is
    O(p,q)-equivariant (used by normalisation).

    ``channels`` multivectors describe one time step (default 1). With ``channels = C``
    a step is ``C * 2**dim`` coefficients, multivector ``c`` holding entries
    ``c * 2**dim ... (c + 1) * 2**dim - 1``, and ``blades[i]`` indexes that wider axis
    (The Well's data sets with several scalar fields; see :mod:`cscnn.data.tasks.the_well`).
    """

    task: str
    metric: tuple[int, ...]
    components: tuple[str, ...]
    blades: tuple[int, ...]
    signs: tuple[float, ...]
    groups: tuple[tuple[str, tuple[int, ...]], ...]
    channels: int = 1

    @property
    def algebra(self) -> CliffordAlgebra:
        return CliffordAlgebra(self.metric)

    @property
    def n_components(self) -> int:
        return len(self.components)

    @property
    def width(self) -> int:
        """Coefficients of one time step: ``channels * 2**dim``."""
        return self.channels * 2 ** len(self.metric)


NAVIER_STOKES_LAYOUT = FieldLayout(
    task="navier-stokes",
    metric=(1, 1),
    components=("u", "vx", "vy"),
    blades=(0, 1, 2),
    signs=(1.0, 1.0, 1.0),
    groups=(("smoke", (0,)), ("velocity", (1, 2))),
)
"""Smoke density (scalar) and velocity (vector) in Cl(2,0): ``[u, vx, vy, 0]``."""

MAXWELL3D_LAYOUT = FieldLayout(
    task="maxwell3d",
    metric=(1, 1, 1),
    components=("Ex", "Ey", "Ez", "Hx", "Hy", "Hz"),
    # E vector; H pseudovector as the bivector Hx e12 + Hy e20 + Hz e01: Hx -> e12 (6), Hy -> -e02 (5), Hz -> e01 (4)
    blades=(1, 2, 3, 6, 5, 4),
    signs=(1.0, 1.0, 1.0, 1.0, -1.0, 1.0),
    groups=(("E", (0, 1, 2)), ("H", (3, 4, 5))),
)
"""E (vector) and H (bivector ``Hx e12 + Hy e20 + Hz e01``) in Cl(3,0)."""

MAXWELL2D_LAYOUT = FieldLayout(
    task="maxwell2d",
    metric=(-1, 1, 1),
    components=("Ex", "Ey", "cBz"),
    blades=(4, 5, 6),
    signs=(1.0, 1.0, 1.0),
    groups=(("F", (0, 1, 2)),),
)
"""The Faraday bivector ``Ex e01 + Ey e02 + cBz e12`` in Cl(1,2)."""

_LAYOUTS: dict[str, FieldLayout] = {lay.task: lay for lay in (NAVIER_STOKES_LAYOUT, MAXWELL3D_LAYOUT,
                                                                MAXWELL2D_LAYOUT)}

FIELD_LAYOUTS: Mapping[str, FieldLayout] = MappingProxyType(_LAYOUTS)


def register_layout(layout: FieldLayout, name: str | None = None) -> FieldLayout:
    """Make ``layout`` known under ``name`` (default ``layout.task``) to the functions here that take
    a task name; :func:`cscnn.data.register_task` calls it for every task (and refuses duplicates)."""
    if not isinstance(layout, FieldLayout):
        raise TypeError(f"register_layout needs a FieldLayout, got {type(layout).__name__}")
    _LAYOUTS[layout.task if name is None else name] = layout
    return layout


def _layout(task: str | FieldLayout) -> FieldLayout:
    if isinstance(task, FieldLayout):
        return task
    if hasattr(task, "layout"):  # a TaskSpec
        return task.layout
    try:
        return FIELD_LAYOUTS[task]
    except KeyError:
        raise ValueError(f"unknown task {task!r}; valid tasks: {sorted(FIELD_LAYOUTS)} (tasks beyond the paper's "
                         "three are known once cscnn.data is imported; or pass a TaskSpec / FieldLayout)") from None


def component_names(task: str) -> tuple[str, ...]:
    """Names of the physical components of ``task`` in storage order."""
    return _layout(task).components


def multivector_field_names(task: str) -> tuple[str, ...]:
    """A label per blade for plots, e.g. ``('u', 'vx', 'vy', '-')`` for navier-stokes."""
    lay = _layout(task)
    names = ["-"] * lay.width
    for comp, blade, sign in zip(lay.components, lay.blades, lay.signs):
        names[blade] = comp if sign > 0 else f"-{comp}"
    return tuple(names)


def _check_fields(lay: FieldLayout, fields, name="fields"):
    if fields.ndim == 0 or fields.shape[-1] != lay.n_components:
        raise ValueError(
            f"{lay.task} {name} need {lay.n_components} components {lay.components} on the last axis, "
            f"got shape {tuple(fields.shape)}"
        )


def to_multivector(task: str, fields):
    """Embed physical components into multivectors.

    Args:
        task: a task name (see :data:`cscnn.data.TASKS`), its ``TaskSpec`` or a :class:`FieldLayout`.
        fields: torch tensor or numpy array ``(..., n_components)`` in the order of
            :func:`component_names`.
    Returns:
        same type, ``(..., 2**dim)`` (``(..., channels * 2**dim)`` for a layout of several
        multivector channels per step); blades not used by the task are zero.
    """
    lay = _layout(task)
    _check_fields(lay, fields)
    n_blades = lay.width
    if isinstance(fields, torch.Tensor):
        out = fields.new_zeros(*fields.shape[:-1], n_blades)
        signs = torch.tensor(lay.signs, dtype=fields.dtype, device=fields.device)
        out[..., list(lay.blades)] = fields * signs
        return out
    fields = np.asarray(fields)
    out = np.zeros(fields.shape[:-1] + (n_blades,), dtype=np.result_type(fields.dtype, np.float32))
    out[..., list(lay.blades)] = fields * np.asarray(lay.signs, dtype=out.dtype)
    return out


def from_multivector(task: str, mv, check: bool = False, atol: float = 1e-6):
    """Inverse of :func:`to_multivector`: ``(..., 2**dim)`` (``(..., channels * 2**dim)``)
    -> ``(..., n_components)``.

    With ``check=True`` raise if blades that carry no physical field are non-zero
    (beyond ``atol`` times the largest coefficient)."""
    lay = _layout(task)
    n_blades = lay.width
    if mv.ndim == 0 or mv.shape[-1] != n_blades:
        raise ValueError(
            f"{lay.task} multivectors need {n_blades} blades on the last axis, got shape {tuple(mv.shape)}"
        )
    if check:
        unused = [b for b in range(n_blades) if b not in lay.blades]
        if unused:
            arr = mv.detach().cpu().numpy() if isinstance(mv, torch.Tensor) else np.asarray(mv)
            rest = float(np.abs(arr[..., unused]).max()) if arr.size else 0.0
            scale = float(np.abs(arr).max()) if arr.size else 0.0
            if rest > atol * max(scale, 1.0):
                raise ValueError(f"{lay.task} multivector has non-zero coefficients on unused blades {unused}")
    if isinstance(mv, torch.Tensor):
        signs = torch.tensor(lay.signs, dtype=mv.dtype, device=mv.device)
        return mv[..., list(lay.blades)] * signs
    mv = np.asarray(mv)
    return mv[..., list(lay.blades)] * np.asarray(lay.signs, dtype=mv.dtype)


# ---------------------------------------------------------------- named helpers
def navier_stokes_to_multivector(u, vx, vy):
    """Smoke ``u`` and velocity ``(vx, vy)`` (same shapes, torch) -> ``(..., 4)`` in Cl(2,0)."""
    return to_multivector("navier-stokes", torch.stack([u, vx, vy], -1))


def navier_stokes_from_multivector(mv):
    """``(..., 4)`` -> ``(u, vx, vy)``."""
    f = from_multivector("navier-stokes", mv)
    return f[..., 0], f[..., 1], f[..., 2]


def maxwell3d_to_multivector(e_field, h_field):
    """E ``(..., 3)`` as a vector and H ``(..., 3)`` as the bivector (Hz, -Hy, Hx) -> ``(..., 8)``."""
    return to_multivector("maxwell3d", torch.cat([e_field, h_field], -1))


def maxwell3d_from_multivector(mv):
    """``(..., 8)`` in Cl(3,0) -> ``(E (..., 3), H (..., 3))``."""
    f = from_multivector("maxwell3d", mv)
    return f[..., :3], f[..., 3:]


def faraday_to_multivector(e_field, c_b_z):
    """In-plane E ``(..., 2)`` and ``c * B_z`` ``(...)`` -> Faraday bivector ``(..., 8)`` in Cl(1,2)."""
    return to_multivector("maxwell2d", torch.cat([e_field, c_b_z[..., None]], -1))


def faraday_from_multivector(mv):
    """``(..., 8)`` in Cl(1,2) -> ``(E (..., 2), c B_z (...))``."""
    f = from_multivector("maxwell2d", mv)
    return f[..., :2], f[..., 2]
