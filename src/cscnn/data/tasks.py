"""The three PDE tasks of the paper: geometry, default windows, field names."""

from __future__ import annotations

from dataclasses import dataclass

from ..fields import FIELD_LAYOUTS, multivector_field_names

__all__ = ["TASKS", "TaskSpec", "get_task"]


@dataclass(frozen=True)
class TaskSpec:
    """What a model needs to know about a data set.

    Attributes:
        name: task key in :data:`TASKS`.
        metric: metric of the Clifford algebra (time first for spacetime).
        spatial_dims: number of grid axes of one sample (time included when
            ``time_as_axis``).
        time_as_axis: True for spacetime tasks where time is the first grid
            axis; otherwise time steps are stacked as multivector channels.
        time_history / time_future: default number of input / target steps.
        in_channels / out_channels: multivector channels a model sees with the
            default windows (``time_history`` / ``time_future``, or 1 / 1 when
            ``time_as_axis``).
        components: physical components stored per grid point.
        field_names: a label per blade, for plots.
        description: one line for help texts.
    """

    name: str
    metric: tuple[int, ...]
    spatial_dims: int
    time_as_axis: bool
    time_history: int
    time_future: int
    in_channels: int
    out_channels: int
    components: tuple[str, ...]
    field_names: tuple[str, ...]
    description: str

    @property
    def n_blades(self) -> int:
        return 2 ** len(self.metric)

    def channels(self, time_history: int | None = None, time_future: int | None = None) -> tuple[int, int]:
        """(in, out) multivector channels for the given windows."""
        if self.time_as_axis:
            return 1, 1
        th = self.time_history if time_history is None else time_history
        tf = self.time_future if time_future is None else time_future
        return th, tf


def _spec(name, spatial_dims, time_as_axis, th, tf, description):
    lay = FIELD_LAYOUTS[name]
    cin, cout = (1, 1) if time_as_axis else (th, tf)
    return TaskSpec(
        name=name,
        metric=lay.metric,
        spatial_dims=spatial_dims,
        time_as_axis=time_as_axis,
        time_history=th,
        time_future=tf,
        in_channels=cin,
        out_channels=cout,
        components=lay.components,
        field_names=multivector_field_names(name),
        description=description,
    )


TASKS: dict[str, TaskSpec] = {
    "navier-stokes": _spec(
        "navier-stokes", 2, False, 4, 1, "2D smoke with buoyancy (PhiFlow), [u, vx, vy, 0] in Cl(2,0)"
    ),
    "maxwell3d": _spec("maxwell3d", 3, False, 4, 1, "3D Maxwell (FDTD), E vector + H bivector in Cl(3,0)"),
    "maxwell2d": _spec(
        "maxwell2d", 3, True, 16, 16, "2D+1 electrodynamics (pycharge), Faraday bivector in Cl(1,2)"
    ),
}


def get_task(name: str) -> TaskSpec:
    """The :class:`TaskSpec` called ``name``; raises ``ValueError`` listing the valid names."""
    if isinstance(name, TaskSpec):
        return name
    try:
        return TASKS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown task {name!r}; valid tasks: {', '.join(TASKS)}") from None
