"""The task registry: one file per PDE holding everything about it.

Every module of this package defines ``TASK = TaskSpec(...)``: the metric of its
Clifford algebra, default time windows, how its physical components sit in the
multivector (:class:`cscnn.fields.FieldLayout`), the HDF5 datasets that store them
(reading and writing follow from that), the simulator and its presets, the
padding a model should use, plot labels (``field_names``) and the CLI name
(``name``). The registry imports every module of the package (cheap: simulators
import their packages only when they run), so a new PDE is one new file here plus
its tests; see docs/data.md for the worked example. Packages outside cscnn can
add tasks with :func:`register_task` or an entry point in the group ``cscnn.tasks``
pointing at a ``TaskSpec``.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ...fields import FieldLayout, multivector_field_names, register_layout

__all__ = ["TASKS", "TaskSpec", "get_task", "load_entry_point_tasks", "register_task"]


@dataclass(frozen=True)
class TaskSpec:
    """Everything cscnn knows about one PDE data set.

    Attributes:
        name: task key in :data:`TASKS` and CLI name, e.g. ``"navier-stokes"``.
        metric: metric of the Clifford algebra (time first for spacetime).
        grid_dims: stored spatial grid axes of one frame (2 for a plane, 3 for a volume).
        time_as_axis: True for spacetime tasks where time is the first grid axis of a
            sample; otherwise time steps are stacked as multivector channels.
        time_history / time_future: default number of input / target steps.
        layout: physical components -> blades (:class:`cscnn.fields.FieldLayout`).
        datasets: HDF5 datasets of the split group as ``(key, n)``: ``n`` components
            on a last axis ``(N, T, *grid, n)``, or ``None`` for one component stored
            as ``(N, T, *grid)``; concatenated in order they give ``layout.components``.
        simulate: ``simulate(params, seed) -> {key: array}`` for one trajectory (the
            ``datasets`` without the N axis, plus any coordinates); imports its
            simulation packages when called. None (the default) for a task that reads data
            which already exist: ``cscnn generate`` then says the task has no simulator.
        presets: preset name -> simulation parameters (``"small"`` for CPU, ``"pdearena"``);
            empty (the default) for a task without a simulator.
        padding: padding mode that matches the boundary conditions (``"circular"`` for
            periodic domains), or a tuple with one mode per grid axis where they differ (The Well,
            e.g. ``("circular", "zeros")`` for a channel periodic in x with walls in y); what
            ``model.kwargs.padding_mode: auto`` resolves to.
        description: one line for help texts.
        file_prefix: name part of PDEArena-style shard files (``<prefix>_<split>_...h5``).
        source: None for cscnn / PDEArena files; for a task whose layout comes from the files
            (The Well, :mod:`cscnn.data.tasks.the_well`) the object that reads them: it finds the
            files of a split, checks and describes one file, reads trajectories and builds the
            concrete task from the files (:meth:`resolve`).
        symmetry_breaking: fields the physics singles out that a model may read as extra
            inputs (``data.symmetry_breaking`` in a config): name -> one multivector of
            ``n_blades`` coefficients, constant over the grid, e.g. ``{"gravity": (0, 0, 1, 0)}``
            for buoyancy along +y in Cl(2,0). They are transformed with the data in
            equivariance checks, so ``f(g.x, g.e) = g.f(x, e)`` holds exactly
            (:class:`cscnn.models.WithConstantFields`).
        constant_inputs: names of per-trajectory constant scalars (e.g. a Reynolds number) that the
            data sets append to every model input as one multivector channel each, the (normalised)
            value on the scalar blade at every grid point, after the time steps
            (:meth:`channels` counts them). Scalars are invariant under every group element, so
            models stay equivariant. Set by a task whose source reads them (The Well's option
            ``constant_scalars``); the source then has ``read_constants(spec, group, index)``.
    """

    name: str
    metric: tuple[int, ...]
    grid_dims: int
    time_as_axis: bool
    time_history: int
    time_future: int
    layout: FieldLayout
    datasets: tuple[tuple[str, int | None], ...]
    simulate: Callable[[dict, int], dict] | None = field(default=None, repr=False, compare=False)
    presets: dict = field(default_factory=dict, repr=False, compare=False)
    padding: str | tuple[str, ...] = "zeros"
    description: str = ""
    file_prefix: str = ""
    symmetry_breaking: dict = field(default_factory=dict, compare=False)
    constant_inputs: tuple[str, ...] = ()
    source: object = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        n = sum(1 if k is None else k for _, k in self.datasets)
        if n != self.layout.n_components:
            raise ValueError(f"task {self.name}: datasets hold {n} components, layout has {self.layout.n_components}")
        if tuple(self.layout.metric) != tuple(self.metric):
            raise ValueError(f"task {self.name}: layout metric {self.layout.metric} != metric {self.metric}")
        if self.simulate is not None and not callable(self.simulate):
            raise ValueError(f"task {self.name}: simulate must be a function simulate(params, seed) or None")
        if self.simulate is not None and not self.presets:
            raise ValueError(f"task {self.name}: a simulator needs presets (preset name -> parameters), e.g. "
                             "{'small': {...}}")
        if self.constant_inputs and self.time_as_axis:
            raise ValueError(f"task {self.name}: constant scalar inputs need time steps as channels (time_as_axis "
                             "is True)")
        for key, mv in self.symmetry_breaking.items():
            if len(mv) != self.n_blades or not all(np.isfinite(float(c)) for c in mv):
                raise ValueError(f"task {self.name}: symmetry-breaking field {key!r} must be {self.n_blades} finite "
                                 f"multivector coefficients, got {mv!r}")

    # ------------------------------------------------------------ derived
    @property
    def n_blades(self) -> int:
        return 2 ** len(self.metric)

    @property
    def spatial_dims(self) -> int:
        """Grid axes of one model sample (time included when ``time_as_axis``)."""
        return self.grid_dims + int(self.time_as_axis)

    @property
    def components(self) -> tuple[str, ...]:
        return self.layout.components

    @property
    def field_names(self) -> tuple[str, ...]:
        """A label per blade, for plots."""
        return multivector_field_names(self.layout)

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(k for k, _ in self.datasets)

    @property
    def in_channels(self) -> int:
        return self.channels()[0]

    @property
    def out_channels(self) -> int:
        return self.channels()[1]

    def channels(self, time_history: int | None = None, time_future: int | None = None) -> tuple[int, int]:
        """(in, out) multivector channels for the given windows; ``in`` counts one channel per
        constant scalar input (:attr:`constant_inputs`) after the time steps."""
        if self.time_as_axis:
            return 1, 1
        th = self.time_history if time_history is None else time_history
        tf = self.time_future if time_future is None else time_future
        c = self.layout.channels
        return th * c + len(self.constant_inputs), tf * c

    # ------------------------------------------------- layout from the files
    def resolve(self, data, **options) -> TaskSpec:
        """The concrete task for the data at ``data`` (a data folder, a file or a list of files).

        A task with a fixed layout returns itself (``options`` must then be empty or unused);
        a task whose layout comes from the files (``source`` set, The Well) reads it from
        them, with ``options`` such as ``tensor_fields="decompose"``."""
        if self.source is None:
            return self
        return self.source.resolve(self, data, **options)

    def unfold(self, x):
        """Model channels -> time steps: ``(..., K * C, *spatial, 2**n)`` -> ``(..., K, *spatial, C * 2**n)``
        for a layout of ``C = layout.channels`` multivectors per step (identity for ``C = 1``)."""
        c = self.layout.channels
        if c == 1:
            return x
        axis = x.ndim - self.spatial_dims - 2
        x = x.unflatten(axis, (x.shape[axis] // c, c))  # (..., K, C, *spatial, n)
        return x.movedim(axis + 1, -2).flatten(-2)

    def fold(self, x):
        """Inverse of :meth:`unfold`: ``(..., K, *spatial, C * 2**n)`` -> ``(..., K * C, *spatial, 2**n)``."""
        c = self.layout.channels
        if c == 1:
            return x
        x = x.unflatten(-1, (c, self.n_blades)).movedim(-2, x.ndim - self.spatial_dims - 1)
        return x.flatten(x.ndim - self.spatial_dims - 3, x.ndim - self.spatial_dims - 2)

    def symmetry_breaking_fields(self, names) -> np.ndarray:
        """The declared symmetry-breaking fields ``names`` as ``(len(names), n_blades)`` float64
        multivectors; a ``ValueError`` names the ones this task declares."""
        names = list(names or ())
        unknown = [n for n in names if n not in self.symmetry_breaking]
        if unknown:
            have = ", ".join(self.symmetry_breaking) or "none"
            raise ValueError(f"task {self.name} declares no symmetry-breaking field {unknown[0]!r}; "
                             f"it declares: {have}")
        if len(set(names)) != len(names):
            raise ValueError(f"symmetry-breaking fields listed twice: {names}")
        return np.array([self.symmetry_breaking[n] for n in names], dtype=np.float64).reshape(len(names),
                                                                                           self.n_blades)

    # ------------------------------------------------------------ storage
    def dataset_ndim(self, key: str) -> int:
        """Axes of HDF5 dataset ``key``: N, T, the grid and a component axis if it has one."""
        n = dict(self.datasets)[key]
        return 2 + self.grid_dims + (0 if n is None else 1)

    def read(self, group, index: int, times: slice = slice(None)) -> np.ndarray:
        """Components of trajectory ``index`` at ``times`` from an HDF5 group: ``(T, *grid, C)``."""
        if self.source is not None:
            return self.source.read(self, group, index, times)
        parts = []
        for key, n in self.datasets:
            arr = np.asarray(group[key][index, times])
            parts.append(arr[..., None] if n is None else arr)
        return parts[0] if len(parts) == 1 else np.concatenate(parts, -1)

    def read_constants(self, group, index: int) -> np.ndarray:
        """The constant scalar inputs (:attr:`constant_inputs`) of trajectory ``index``: ``(k,)`` float64,
        raw (physical) values; ``(0,)`` for a task without them."""
        if not self.constant_inputs:
            return np.zeros(0)
        return np.asarray(self.source.read_constants(self, group, index), dtype=np.float64)

    def split_components(self, fields: np.ndarray) -> dict[str, np.ndarray]:
        """Inverse of :meth:`read`: ``(..., C)`` -> ``{key: array}`` in the storage layout."""
        out, c = {}, 0
        for key, n in self.datasets:
            out[key] = fields[..., c] if n is None else fields[..., c:c + n]
            c += 1 if n is None else n
        return out


TASKS: dict[str, TaskSpec] = {}


def register_task(spec: TaskSpec) -> TaskSpec:
    """Add ``spec`` to :data:`TASKS` (an error if another task has its name) and its layout to
    :data:`cscnn.fields.FIELD_LAYOUTS` (so the functions of :mod:`cscnn.fields` know the task's name)."""
    if not isinstance(spec, TaskSpec):
        raise TypeError(f"register_task needs a TaskSpec, got {type(spec).__name__}")
    old = TASKS.get(spec.name)
    if old is not None and old is not spec:
        raise ValueError(f"a task named {spec.name!r} is already registered")
    register_layout(spec.layout, spec.name)
    TASKS[spec.name] = spec
    return spec


def _discover() -> None:
    for mod in sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")):
        spec = getattr(importlib.import_module(f"{__name__}.{mod}"), "TASK", None)
        if spec is not None:
            register_task(spec)


def load_entry_point_tasks() -> None:
    """Register the tasks other installed packages declare in the entry-point group ``cscnn.tasks``
    (``name = "module:TASK"``, the name equal to the ``TaskSpec``'s). Called once when :mod:`cscnn.data`
    has finished importing, so that a plug-in module may ``from cscnn.data import TaskSpec``. An entry
    point that fails to load is skipped with a warning naming it."""
    import warnings
    from importlib.metadata import entry_points

    for ep in entry_points(group="cscnn.tasks"):
        if ep.name in TASKS:
            continue
        try:
            spec = ep.load()
            if not isinstance(spec, TaskSpec) or spec.name != ep.name:
                raise TypeError(f"expected a TaskSpec named {ep.name!r}, got {type(spec).__name__} "
                                f"{getattr(spec, 'name', '')!r}")
            register_task(spec)
        except Exception as e:  # a broken plug-in must not break cscnn
            warnings.warn(f"cscnn.tasks entry point {ep.name!r} ({ep.value}) skipped: {e}", stacklevel=2)


def get_task(name: str | TaskSpec) -> TaskSpec:
    """The :class:`TaskSpec` called ``name``; raises ``ValueError`` listing the valid names."""
    if isinstance(name, TaskSpec):
        return name
    try:
        return TASKS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown task {name!r}; valid tasks: {', '.join(TASKS)} (a task of another package "
                         "reaches every process through an entry point in the group 'cscnn.tasks')") from None


_discover()
