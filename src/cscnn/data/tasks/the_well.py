"""The Well (PolymathicAI, NeurIPS 2024 Datasets and Benchmarks): its 2D and 3D cartesian data sets.

Unlike the other tasks, the field layout of ``the-well`` comes from the files. :data:`TASK`
is a template; :meth:`TaskSpec.resolve <cscnn.data.TaskSpec.resolve>` reads the first file of
a data set and returns the concrete task (metric, grid, fields -> blades, padding). Every
part of cscnn that reads data (``PDEDataset``, ``PDEDataModule``, ``cscnn train / evaluate /
plot / equivariance``) resolves it, so a user only names the task and the folder.

File layout (The Well's documentation and ``the_well.data.WellDataset``)::

    <base>/datasets/<name>/data/{train,valid,test}/*.hdf5      (+ <name>/stats.yaml, unused)
    file attrs        dataset_name, grid_type ("cartesian" | "spherical"), n_spatial_dims,
                      n_trajectories
    dimensions/       attr spatial_dims (["x", "y"(, "z")]); datasets time, x, y(, z)
    boundary_conditions/<bc>/   attrs bc_type (PERIODIC | WALL | OPEN), associated_dims; mask
    scalars/          attr field_names; one dataset per scalar (e.g. Reynolds): shape () or
                      (n_trajectories,) (attr sample_varying), attr time_varying
    t0_fields/, t1_fields/, t2_fields/   attr field_names; field datasets
                      (n_trajectories, n_steps, *grid[, D[, D]]) with attrs sample_varying,
                      time_varying, dim_varying (an axis not varying is stored with size 1)

Multivector embedding in Cl(D, 0), D = n_spatial_dims, axis d of the grid is e_d
(x -> e0, y -> e1, z -> e2):

* a t0 field (scalar) -> the scalar blade;
* a t1 field (vector) -> the grade-1 blades ``(f_x e0 + f_y e1 (+ f_z e2))``;
* a t1 field listed in :data:`PSEUDOVECTORS` (or in the option ``pseudovectors``), in 3D:
  the bivector ``f_x e12 + f_y e20 + f_z e01`` (as H in ``maxwell3d``); in 2D no grade carries
  an in-plane pseudovector, so it is refused;
* a t2 field T (rank-2 tensor) = trace part + antisymmetric part + symmetric traceless part.
  The trace ``tr T`` is a scalar and the antisymmetric part ``A_ij = (T_ij - T_ji) / 2`` a
  bivector (``sum_{i<j} A_ij e_ij``), but no grade carries the symmetric traceless part
  ``S = (T + T^T) / 2 - tr(T) / D``. By default a t2 field is refused with an error naming
  it; with the option ``tensor_fields="decompose"`` the trace and antisymmetric parts are
  embedded as above and the independent components of S (``S_xx, S_xy`` in 2D; ``S_xx, S_yy,
  S_xy, S_xz, S_yz`` in 3D) are carried as plain numbers on scalar blades. Those do not
  transform as scalars, so the model is then not equivariant to the data's symmetries.

Packing: the pieces (one per field, three kinds per t2 field) are placed in order into the
first multivector channel whose needed grade is still free (``FieldLayout.channels``
multivectors per time step). E.g. 2D shear_flow (tracer, pressure; velocity) -> channel 0 =
tracer + velocity, channel 1 = pressure. Each piece fills whole grades, so normalising it by
one number (scalars also shifted) is equivariant.

Fields that are not time-varying (constant fields, e.g. masks) are not predicted and not read.

Constant scalars (the ``scalars`` group, e.g. a Reynolds number, one value per trajectory or per
file) are model inputs on request: the option ``constant_scalars`` (``data.well.constant_scalars``
in a config) names them, or ``"all"`` takes every time-invariant scalar of the files; the default
``[]`` feeds none, as The Well's own benchmark (its ``DefaultChannelsFirstFormatter`` feeds input
and constant fields, not constant scalars), and keeps earlier runs and checkpoints valid. The
resolved task lists them in ``TaskSpec.constant_inputs``; ``PDEDataset`` appends each, normalised
over the training trajectories (``Normalization``: standardised, in log10 when all training values
are positive and span a decade or more, as Reynolds and Rayleigh numbers do), as one multivector
channel holding the value on the scalar blade at every grid point, after the time steps. A
grade-0 field is invariant under every group element, so every model stays exactly as equivariant
as before and every model takes them (they are only extra input channels); rollouts re-append them
at each step. Why in the data path rather than :class:`cscnn.models.WithConstantFields`: that
wrapper holds fields fixed per task (a buffer of the model), while these values change from one
trajectory to the next and have to travel with each sample.

Boundary conditions -> padding of the model, per axis (``model.kwargs.padding_mode: auto``,
:func:`axis_padding`): a periodic axis -> ``"circular"``, a wall -> the option ``wall_padding``
(default ``"zeros"``, a zero field beyond the wall), an open axis -> ``open_padding`` (default
``"replicate"``, a zero-gradient outflow). ``TaskSpec.padding`` is one string when every axis
gets the same mode and a tuple with one mode per grid axis otherwise, e.g. ``("circular",
"zeros")`` for a channel periodic in x with walls in y; every conv layer and model of cscnn takes
it (:func:`cscnn.nn.functional.check_padding_mode`; the escnn baseline only one mode). Such a
mixed padding is not rotation-equivariant (an axis swap moves the periodic axis onto the walled
one), and neither is the physics of that domain; reflections of single axes still commute.
:attr:`WellLayout.axis_boundaries` records the type per axis.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from ...fields import FieldLayout
from ..errors import DataError, MissingDataError
from . import TaskSpec

__all__ = ["PSEUDOVECTORS", "TASK", "WellFile", "WellLayout", "axis_padding", "describe_file", "read_scalars",
           "well_files"]

# Per data set: t1 fields that are pseudovectors (axial vectors), embedded as bivectors in 3D.
PSEUDOVECTORS: dict[str, tuple[str, ...]] = {
    "MHD_64": ("magnetic_field",),
    "MHD_256": ("magnetic_field",),
}
TENSOR_MODES = ("refuse", "decompose")
PADDINGS = ("zeros", "reflect", "replicate", "circular")
OPTIONS = {"tensor_fields": "refuse", "pseudovectors": (), "wall_padding": "zeros", "open_padding": "replicate",
           "constant_scalars": ()}
GROUPS = ("dimensions", "boundary_conditions", "scalars", "t0_fields", "t1_fields", "t2_fields")
_AXES = "xyz"


def _text(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _names(obj, path, what: str) -> list[str]:
    if "field_names" not in obj.attrs:
        raise DataError(f"{path}: {what} has no attribute 'field_names' (not a file of The Well?)")
    return [_text(v) for v in np.atleast_1d(obj.attrs["field_names"])]


def well_files(data_dir, split: str) -> list[Path]:
    """Files of ``split`` in a data set folder of The Well: ``<dir>/data/<split>/*.hdf5`` (also
    ``<dir>/<split>/*.hdf5`` when ``dir`` is the ``data`` folder), sorted; ``[]`` if none."""
    from ..hdf5 import split_folder_files

    return split_folder_files(data_dir, split)


@dataclasses.dataclass(frozen=True)
class WellFile:
    """What one file of The Well holds (time-varying fields only; see the module docs)."""

    path: Path
    dataset_name: str
    n_spatial_dims: int
    spatial_dims: tuple[str, ...]
    grid: tuple[int, ...]
    n_trajectories: int
    n_steps: int
    fields: tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]  # t0, t1, t2 names
    constant_fields: tuple[str, ...]
    scalars: tuple[str, ...]
    axis_boundaries: tuple[str, ...]  # PERIODIC | WALL | OPEN per grid axis
    dtypes: dict
    constant_scalars: tuple[str, ...] = ()  # the scalars that are not time-varying (model inputs on request)
    scalar_dtypes: dict = dataclasses.field(default_factory=dict)  # of the constant scalars


def describe_file(path) -> WellFile:
    """Read and check the layout of one file; :class:`DataError` naming the file and what is wrong
    (missing group or attribute, spherical grid, field of the wrong shape or of a type that is not
    real numbers (complex, strings, booleans), a boundary condition that names no axis)."""
    from ..hdf5 import check_real_dtype, open_h5

    path = Path(path)
    with open_h5(path) as f:
        for key in ("dataset_name", "grid_type", "n_spatial_dims"):
            if key not in f.attrs:
                raise DataError(f"{path} is not a file of The Well: file attribute {key!r} missing")
        grid_type = _text(f.attrs["grid_type"])
        if grid_type != "cartesian":
            raise DataError(f"{path}: grid_type {grid_type!r} is not supported; cscnn reads The Well's cartesian "
                            "data sets only (a spherical grid has no E(n) grid symmetries)")
        missing = [g for g in GROUPS if g not in f or not hasattr(f[g], "keys")]
        if missing:
            raise DataError(f"{path}: group {missing[0]!r} missing; a file of The Well holds the groups "
                            f"{', '.join(GROUPS)}")
        d = int(f.attrs["n_spatial_dims"])
        if d not in (2, 3):
            raise DataError(f"{path}: n_spatial_dims = {d}; cscnn reads 2D and 3D data sets of The Well")
        dims = f["dimensions"]
        if "spatial_dims" not in dims.attrs:
            raise DataError(f"{path}: group 'dimensions' has no attribute 'spatial_dims'")
        spatial = tuple(_text(v) for v in np.atleast_1d(dims.attrs["spatial_dims"]))
        absent = [k for k in ("time", *spatial) if k not in dims]
        if len(spatial) != d or absent:
            raise DataError(f"{path}: 'dimensions' must hold time and {d} spatial coordinates, has "
                            f"spatial_dims {list(spatial)} and datasets {list(dims)}")
        grid = tuple(int(dims[k].shape[-1]) for k in spatial)
        if 0 in grid:
            raise DataError(f"{path}: grid axis {spatial[grid.index(0)]!r} has no points (dimensions/"
                            f"{spatial[grid.index(0)]} is empty)")
        n_steps = int(dims["time"].shape[-1])
        n_traj = int(f.attrs.get("n_trajectories", 0))
        fields, constant, dtypes = ([], [], []), [], {}
        for order in range(3):
            grp = f[f"t{order}_fields"]
            for name in _names(grp, path, f"group 't{order}_fields'"):
                if name not in grp:
                    raise DataError(f"{path}: field {name!r} is listed in t{order}_fields but missing")
                ds = grp[name]
                if not bool(ds.attrs.get("time_varying", True)):
                    constant.append(name)
                    continue
                sample = bool(ds.attrs.get("sample_varying", True))
                want = ((n_traj,) if sample else ()) + (n_steps,) + grid + (d,) * order
                ok = ds.ndim == len(want) and all(s in (w, 1) if i >= (1 + sample) and i < len(want) - order
                                                  else s == w for i, (s, w) in enumerate(zip(ds.shape, want)))
                if not ok:
                    lead = "n_trajectories, " if sample else ""
                    raise DataError(f"{path}: field t{order}_fields/{name} has shape {ds.shape}, expected "
                                    f"({lead}n_steps, *grid{', D' * order}) = {want}")
                check_real_dtype(ds.dtype, f"t{order}_fields/{name}", path, "the-well")
                fields[order].append(name)
                dtypes[f"t{order}_fields/{name}"] = str(ds.dtype)
        if not any(fields):
            raise DataError(f"{path}: no time-varying field in t0_fields, t1_fields or t2_fields")
        scalars = tuple(_names(f["scalars"], path, "group 'scalars'")) if "field_names" in f["scalars"].attrs else ()
        constant_scalars = tuple(n for n in scalars if n in f["scalars"]
                                 and not bool(f["scalars"][n].attrs.get("time_varying", False)))
        scalar_dtypes = {n: str(f["scalars"][n].dtype) for n in constant_scalars}
        kinds = {a: set() for a in spatial}
        for bc_name in f["boundary_conditions"]:
            bc = f["boundary_conditions"][bc_name]
            if "bc_type" not in bc.attrs:
                raise DataError(f"{path}: boundary condition {bc_name!r} has no attribute 'bc_type'")
            kind = _text(bc.attrs["bc_type"]).upper()
            if kind not in ("PERIODIC", "WALL", "OPEN"):
                raise DataError(f"{path}: boundary condition {bc_name!r} has bc_type {kind!r}; expected PERIODIC, "
                                "WALL or OPEN")
            axes = [_text(a) for a in np.atleast_1d(bc.attrs.get("associated_dims", ()))]
            if not any(a in kinds for a in axes):
                raise DataError(f"{path}: boundary condition {bc_name!r} ({kind}) names no grid axis in its attribute "
                                f"'associated_dims' (has {axes}); expected one or more of {list(spatial)}, or the "
                                "padding of its axis could not follow it")
            for a in axes:
                if a in kinds:
                    kinds[a].add(kind)
        # as the_well: an axis is periodic or open if any of its boundary is, a wall otherwise; open if unnamed
        axis_bc = tuple("PERIODIC" if "PERIODIC" in k else "OPEN" if ("OPEN" in k or not k) else "WALL"
                        for k in (kinds[a] for a in spatial))
        return WellFile(path, _text(f.attrs["dataset_name"]), d, spatial, grid, n_traj, n_steps,
                        tuple(tuple(x) for x in fields), tuple(constant), scalars, axis_bc, dtypes,
                        constant_scalars, scalar_dtypes)


def _scalar_value(ds, index: int) -> float:
    """The value of a constant scalar dataset for trajectory ``index`` (one per trajectory when
    ``sample_varying``, else one for the file)."""
    arr = np.asarray(ds[index] if bool(ds.attrs.get("sample_varying", False)) else ds[()])
    return float(arr.reshape(-1)[0])


def read_scalars(path, index: int) -> dict[str, float]:
    """The constant scalars (``scalars`` group, e.g. a Reynolds number) of trajectory ``index``."""
    from ..hdf5 import open_h5

    out = {}
    with open_h5(path) as f:
        grp = f["scalars"]
        for name in _names(grp, path, "group 'scalars'"):
            ds = grp[name]
            if bool(ds.attrs.get("time_varying", False)):
                continue
            out[name] = _scalar_value(ds, index)
    return out


# --------------------------------------------------------------- the layout
@dataclasses.dataclass(frozen=True)
class _Piece:
    """Components computed from one stored field: ``kind`` in t0, vector, pseudovector, trace,
    antisym, sym (one component of the symmetric traceless part, ``ij``)."""

    key: str  # "t1_fields/velocity"
    kind: str
    names: tuple[str, ...]
    blades: tuple[int, ...]  # blade index in one multivector (short-lex)
    signs: tuple[float, ...]
    grade: int
    ij: tuple[int, int] = (0, 0)

    def extract(self, arr: np.ndarray, d: int) -> np.ndarray:
        """``arr`` (T, *grid[, D[, D]]) -> (T, *grid, len(names))."""
        if self.kind == "t0":
            return arr[..., None]
        if self.kind in ("vector", "pseudovector"):
            return arr
        diag = np.trace(arr, axis1=-2, axis2=-1)
        if self.kind == "trace":
            return diag[..., None]
        if self.kind == "antisym":
            pairs = [(i, j) for i in range(d) for j in range(i + 1, d)]
            return np.stack([(arr[..., i, j] - arr[..., j, i]) / 2 for i, j in pairs], -1)
        i, j = self.ij  # symmetric traceless part
        s = (arr[..., i, j] + arr[..., j, i]) / 2 - (diag / d if i == j else 0)
        return s[..., None]


def _pieces(info: WellFile, opts: dict) -> list[_Piece]:
    from ...algebra import CliffordAlgebra

    d, ax = info.n_spatial_dims, info.spatial_dims
    index = {b: i for i, b in enumerate(CliffordAlgebra((1,) * d).blades)}
    pseudo = set(PSEUDOVECTORS.get(info.dataset_name, ())) | set(opts["pseudovectors"])
    out = []
    for name in info.fields[0]:
        out.append(_Piece(f"t0_fields/{name}", "t0", (name,), (0,), (1.0,), 0))
    for name in info.fields[1]:
        comps = tuple(f"{name}_{a}" for a in ax)
        if name in pseudo:
            if d != 3:
                raise DataError(f"{info.path}: t1 field {name!r} is a pseudovector; in {d}D no grade of Cl({d},0) "
                                "carries an in-plane pseudovector (drop it from data.well.pseudovectors to read "
                                "it as a vector, which breaks reflection equivariance)")
            # f_x e12 + f_y e20 + f_z e01: f_x -> e12, f_y -> -e02, f_z -> e01 (as H in maxwell3d)
            out.append(_Piece(f"t1_fields/{name}", "pseudovector", comps,
                              (index[(1, 2)], index[(0, 2)], index[(0, 1)]), (1.0, -1.0, 1.0), 2))
        else:
            out.append(_Piece(f"t1_fields/{name}", "vector", comps, tuple(index[(i,)] for i in range(d)),
                              (1.0,) * d, 1))
    for name in info.fields[2]:
        if opts["tensor_fields"] != "decompose":
            raise DataError(f"{info.path}: t2 field {name!r} (rank-2 tensor) has a symmetric traceless part that "
                            "no multivector grade carries; set data.well.tensor_fields: decompose to carry it as "
                            "plain numbers (breaks equivariance), or use a data set without t2 fields")
        key = f"t2_fields/{name}"
        out.append(_Piece(key, "trace", (f"{name}_trace",), (0,), (1.0,), 0))
        pairs = [(i, j) for i in range(d) for j in range(i + 1, d)]
        out.append(_Piece(key, "antisym", tuple(f"{name}_anti_{ax[i]}{ax[j]}" for i, j in pairs),
                          tuple(index[p] for p in pairs), (1.0,) * len(pairs), 2))
        sym = [(i, i) for i in range(d - 1)] + pairs
        for i, j in sym:
            out.append(_Piece(key, "sym", (f"{name}_sym_{ax[i]}{ax[j]}",), (0,), (1.0,), 0, (i, j)))
    return out


def _pack(pieces: list[_Piece]) -> list[int]:
    """Multivector channel of each piece: the first one whose grade is still free."""
    used: list[set[int]] = []
    out = []
    for p in pieces:
        free = [c for c, grades in enumerate(used) if p.grade not in grades]
        c = free[0] if free else len(used)
        if not free:
            used.append(set())
        used[c].add(p.grade)
        out.append(c)
    return out


def axis_padding(axis_boundaries, wall_padding: str = "zeros", open_padding: str = "replicate"):
    """The padding mode of each grid axis from its boundary type: PERIODIC -> ``"circular"``, WALL ->
    ``wall_padding``, OPEN -> ``open_padding``; one string when every axis gets the same mode, else a
    tuple with one mode per axis (``("circular", "zeros")`` for x periodic, y walled)."""
    rule = {"PERIODIC": "circular", "WALL": wall_padding, "OPEN": open_padding}
    modes = tuple(rule[b] for b in axis_boundaries)
    return modes[0] if len(set(modes)) == 1 else modes


def _check_options(opts: dict) -> dict:
    unknown = sorted(set(opts) - set(OPTIONS))
    if unknown:
        raise ValueError(f"unknown option {unknown[0]!r} for task the-well; valid: {', '.join(OPTIONS)}")
    o = {**OPTIONS, **{k: v for k, v in opts.items() if v is not None}}
    if o["tensor_fields"] not in TENSOR_MODES:
        raise ValueError(f"data.well.tensor_fields must be one of {TENSOR_MODES}, got {o['tensor_fields']!r}")
    for k in ("wall_padding", "open_padding"):
        if o[k] not in PADDINGS:
            raise ValueError(f"data.well.{k} must be one of {PADDINGS}, got {o[k]!r}")
    if isinstance(o["pseudovectors"], str) or not all(isinstance(n, str) for n in o["pseudovectors"]):
        raise ValueError(f"data.well.pseudovectors must be a list of t1 field names, got {o['pseudovectors']!r}")
    o["pseudovectors"] = tuple(o["pseudovectors"])
    cs = o["constant_scalars"]
    if cs != "all" and (isinstance(cs, str) or not all(isinstance(n, str) for n in cs)):
        raise ValueError(f"data.well.constant_scalars must be a list of names in the files' scalars group or 'all', "
                         f"got {cs!r}")
    if cs != "all":
        if len(set(cs)) != len(cs):
            raise ValueError(f"data.well.constant_scalars lists a name twice: {list(cs)}")
        o["constant_scalars"] = tuple(cs)
    return o


def _constant_inputs(info: WellFile, requested) -> tuple[str, ...]:
    """The constant scalars to feed as inputs: ``requested`` (names, or ``"all"``), checked against the
    time-invariant scalars of the file (and to hold real numbers)."""
    from ..hdf5 import check_real_dtype

    chosen = info.constant_scalars if requested == "all" else tuple(requested)
    missing = [n for n in chosen if n not in info.constant_scalars]
    if missing:
        what = "is time-varying" if missing[0] in info.scalars else "is not in its scalars group"
        raise DataError(f"{info.path}: constant scalar {missing[0]!r} (data.well.constant_scalars) {what}; "
                        f"its constant scalars are {list(info.constant_scalars) or 'none'}")
    for n in chosen:
        if n in info.scalar_dtypes:
            check_real_dtype(info.scalar_dtypes[n], f"scalars/{n}", info.path, "the-well")
    return chosen


def _first_file(data) -> Path:
    if isinstance(data, (list, tuple)):
        if not data:
            raise DataError("the-well: an empty list of files")
        return Path(data[0])
    data = Path(data)
    if data.is_file():
        return data
    if not data.exists():
        raise MissingDataError(f"data folder {str(data)!r} does not exist; {HINT}")
    for split in ("train", "valid", "test"):
        files = well_files(data, split)
        if files:
            return files[0]
    raise MissingDataError(f"{str(data)!r} holds no data set of The Well (looked for data/train/*.hdf5, "
                           f"data/valid/*.hdf5, data/test/*.hdf5); {HINT}")


HINT = ("download one with The Well's tools, e.g. `the-well-download --base-path BASE --dataset NAME`, and pass "
        "--data BASE/datasets/NAME")


@dataclasses.dataclass(frozen=True)
class WellLayout:
    """The ``source`` of a resolved ``the-well`` task: how its components are read from the files."""

    info: WellFile
    options: dict
    pieces: tuple[_Piece, ...]
    channel_of: tuple[int, ...]

    @property
    def axis_boundaries(self) -> tuple[str, ...]:
        return self.info.axis_boundaries

    @property
    def equivariant(self) -> bool:
        """False when components are carried that do not transform as their blades (t2 ``sym``)."""
        return not any(p.kind == "sym" for p in self.pieces)

    # ---- the source protocol used by TaskSpec and cscnn.data.hdf5
    def resolve(self, spec: TaskSpec, data, **options) -> TaskSpec:
        return TEMPLATE_SOURCE.resolve(spec, data, **{**self.options, **options})

    def split_files(self, data_dir, split: str) -> list[Path]:
        return well_files(data_dir, split)

    def hint(self, data_dir) -> str:
        return HINT

    def file_info(self, spec: TaskSpec, path, split=None) -> dict:
        info = describe_file(path)
        if (info.n_spatial_dims, info.fields) != (self.info.n_spatial_dims, self.info.fields):
            raise DataError(f"{path} holds {info.n_spatial_dims}D fields t0 {list(info.fields[0])}, t1 "
                            f"{list(info.fields[1])}, t2 {list(info.fields[2])}; the data set read first "
                            f"({self.info.path}) has {self.info.n_spatial_dims}D fields t0 "
                            f"{list(self.info.fields[0])}, t1 {list(self.info.fields[1])}, t2 "
                            f"{list(self.info.fields[2])}")
        lacking = [n for n in spec.constant_inputs if n not in info.constant_scalars]
        if lacking:
            raise DataError(f"{path} has no constant scalar {lacking[0]!r} (data.well.constant_scalars); the data "
                            f"set read first ({self.info.path}) has it. Constant scalars of {Path(path).name}: "
                            f"{list(info.constant_scalars) or 'none'}")
        return {"path": Path(path), "group": "/", "task": spec.name, "num": info.n_trajectories,
                "frames": info.n_steps, "grid": info.grid, "dtypes": info.dtypes}

    def read(self, spec: TaskSpec, group, index: int, times: slice = slice(None)) -> np.ndarray:
        """Components of trajectory ``index`` at ``times``: ``(T, *grid, n_components)`` float32."""
        arrays, parts = {}, []
        d, grid = self.info.n_spatial_dims, self.info.grid
        for p in self.pieces:
            if p.key not in arrays:
                ds = group[p.key]
                sel = ((index,) if bool(ds.attrs.get("sample_varying", True)) else ()) + (times,)
                arr = np.asarray(ds[sel], dtype=np.float32)
                order = int(p.key[1])
                arrays[p.key] = np.broadcast_to(arr, arr.shape[:1] + grid + (d,) * order)
            parts.append(p.extract(arrays[p.key], d))
        return np.concatenate(parts, -1).astype(np.float32, copy=False)

    def read_constants(self, spec: TaskSpec, group, index: int) -> np.ndarray:
        """The constant scalars ``spec.constant_inputs`` of trajectory ``index``: ``(k,)`` float64."""
        return np.array([_scalar_value(group["scalars"][n], index) for n in spec.constant_inputs], dtype=np.float64)


class _TemplateSource:
    """The ``source`` of the unresolved ``the-well`` template: it only resolves."""

    def resolve(self, spec: TaskSpec, data, **options) -> TaskSpec:
        opts = _check_options(options)
        info = describe_file(_first_file(data))
        pieces = _pieces(info, opts)
        channel_of = _pack(pieces)
        n = 2 ** info.n_spatial_dims
        comps, blades, signs, groups = [], [], [], []
        for p, c in zip(pieces, channel_of):
            start = len(comps)
            comps += p.names
            blades += [c * n + b for b in p.blades]
            signs += p.signs
            field = p.key.split("/")[1]
            group = p.names[0] if len(p.names) == 1 else field if p.kind != "antisym" else f"{field}_anti"
            groups.append((group, tuple(range(start, len(comps)))))
        metric = (1,) * info.n_spatial_dims
        layout = FieldLayout(task=spec.name, metric=metric, components=tuple(comps), blades=tuple(blades),
                             signs=tuple(signs), groups=tuple(groups), channels=max(channel_of) + 1)
        padding = axis_padding(info.axis_boundaries, opts["wall_padding"], opts["open_padding"])
        source = WellLayout(info, opts, tuple(pieces), tuple(channel_of))
        return dataclasses.replace(
            spec, metric=metric, grid_dims=info.n_spatial_dims, layout=layout,
            datasets=tuple((f"{p.key}:{p.kind}" + (f"_{p.ij[0]}{p.ij[1]}" if p.kind == "sym" else ""), len(p.names))
                           for p in pieces),
            padding=padding, description=f"The Well: {info.dataset_name} ({info.n_spatial_dims}D, "
                                         f"{layout.channels} multivector channel(s) per step)",
            constant_inputs=_constant_inputs(info, opts["constant_scalars"]), source=source)

    def split_files(self, data_dir, split: str) -> list[Path]:
        return well_files(data_dir, split)

    def hint(self, data_dir) -> str:
        return HINT

    def file_info(self, spec, path, split=None) -> dict:
        return self.resolve(spec, path).source.file_info(spec, path, split)

    def read(self, spec, group, index, times=slice(None)):
        raise DataError("the-well: resolve the task from its data first (TaskSpec.resolve)")


TEMPLATE_SOURCE = _TemplateSource()


TASK = TaskSpec(
    name="the-well",
    metric=(1, 1),  # a template: resolve() sets metric, grid and layout from the files
    grid_dims=2,
    time_as_axis=False,
    time_history=4,  # The Well's benchmark: 4 input steps -> 1 output step
    time_future=1,
    layout=FieldLayout(task="the-well", metric=(1, 1), components=(), blades=(), signs=(), groups=()),
    datasets=(),
    padding="zeros",
    description="The Well (PolymathicAI): 2D/3D cartesian data sets, layout from the files (--data BASE/datasets/NAME)",
    source=TEMPLATE_SOURCE,
)
