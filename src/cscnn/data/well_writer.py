"""Your own arrays as a data set in The Well's HDF5 layout, ready for ``cscnn train --data DIR``.

The Well (PolymathicAI) stores each field by tensor order: scalars in ``t0_fields`` (``(N, T, *grid)``),
vectors in ``t1_fields`` (``(N, T, *grid, D)``), 2-tensors in ``t2_fields`` (``(N, T, *grid, D, D)``),
beside the boundary condition of every grid axis and the time coordinates. Task ``the-well`` reads that
layout and builds the multivector embedding from it (scalars -> grade 0, vectors -> grade 1), so arrays
written by :func:`write_well_dataset` train with the packaged ``cpu/well_cs_resnet`` (or ``well_resnet``)
config and work with ``cscnn evaluate`` / ``plot`` / ``equivariance``::

    from cscnn.data import write_well_dataset
    a = ...  # your simulation: (N, T, X, Y, 3) holding pressure, vx, vy
    fields = lambda a: {"pressure": a[..., 0], "velocity": a[..., 1:3]}
    write_well_dataset("data/my_flow", {"train": fields(a[:48]), "valid": fields(a[48:56]),
                                         "test": fields(a[56:])},
                       boundary_conditions=("periodic", "wall"), dt=0.1)
    # cscnn train --config cpu/well_cs_resnet --data data/my_flow

The vector components must be the components along the grid axes in their order (x = first grid axis).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from .tasks.the_well import _AXES

__all__ = ["write_well_dataset", "BOUNDARY_CONDITIONS"]

#: accepted boundary conditions per grid axis (The Well's bc_type, lower case)
BOUNDARY_CONDITIONS = ("periodic", "wall", "open")


def _check_fields(split: str, fields, d: int) -> dict[str, tuple[int, np.ndarray]]:
    """``{name: (tensor order, float32 array)}`` of one split; ValueError naming the field otherwise."""
    if not isinstance(fields, Mapping) or not fields:
        raise ValueError(f"split {split!r}: expected a mapping field name -> array, got {type(fields).__name__}")
    out = {}
    for name, arr in fields.items():
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ValueError(f"split {split!r}: field name {name!r} must be a plain identifier such as 'pressure'")
        a = np.asarray(arr)
        if not np.issubdtype(a.dtype, np.number) or np.iscomplexobj(a):
            raise ValueError(f"split {split!r}: field {name!r} must hold real numbers, got dtype {a.dtype}")
        order = a.ndim - 2 - d
        if order not in (0, 1, 2) or a.shape[a.ndim - order:] != (d,) * order:
            raise ValueError(f"split {split!r}: field {name!r} has shape {a.shape}; expected (N, T, *grid) for a "
                             f"scalar, (N, T, *grid, {d}) for a vector or (N, T, *grid, {d}, {d}) for a 2-tensor "
                             f"on a {d}D grid")
        if not np.isfinite(a).all():
            raise ValueError(f"split {split!r}: field {name!r} holds NaN or infinite values")
        out[name] = (order, a.astype(np.float32, copy=False))
    return out


def write_well_dataset(out_dir, splits: Mapping[str, Mapping[str, np.ndarray]], *,
                       boundary_conditions: Sequence[str], dt: float = 1.0, name: str | None = None,
                       scalars: Mapping[str, float] | None = None, spacing: Sequence[float] | float = 1.0) -> Path:
    """Write ``splits`` as ``out_dir/data/<split>/<name>_<split>.hdf5`` in The Well's layout.

    Args:
        out_dir: data set folder to create; pass it to ``cscnn train --data`` (config ``cpu/well_cs_resnet``).
        splits: split name (``"train"``, ``"valid"``, ``"test"``: all three for training and evaluation)
            -> ``{field name: array}``. A field's tensor order follows from its shape on a ``D``-dimensional
            grid (``D = len(boundary_conditions)``, 2 or 3): ``(N, T, *grid)`` scalar, ``(N, T, *grid, D)``
            vector (components along the grid axes), ``(N, T, *grid, D, D)`` 2-tensor. Every split holds the
            same fields on the same grid; N and T may differ between splits.
        boundary_conditions: one of ``"periodic"``, ``"wall"``, ``"open"`` per grid axis, in axis order;
            with ``padding_mode: auto`` (the packaged well configs) a model pads periodic axes circularly.
        dt: time step between stored frames (the files' time coordinate).
        name: data set name stored in the files (default: the folder's name).
        scalars: constant physical parameters such as ``{"Reynolds": 1e4}`` (one value, or one per
            trajectory of every split as a sequence of length N); a config may feed them to the model
            (``data.well.constant_scalars``).
        spacing: grid spacing (one value or one per axis) for the coordinate datasets.
    Returns:
        ``out_dir`` as a :class:`~pathlib.Path`.
    """
    import h5py

    bcs = tuple(str(b).lower() for b in boundary_conditions)
    d = len(bcs)
    if d not in (2, 3) or any(b not in BOUNDARY_CONDITIONS for b in bcs):
        raise ValueError(f"boundary_conditions must name 2 or 3 grid axes, each one of {BOUNDARY_CONDITIONS}; "
                         f"got {tuple(boundary_conditions)}")
    if not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a positive number, got {dt!r}")
    steps = (spacing,) * d if isinstance(spacing, (int, float)) else tuple(spacing)
    if len(steps) != d or not all(isinstance(h, (int, float)) and math.isfinite(h) and h > 0 for h in steps):
        raise ValueError(f"spacing must be a positive number or {d} of them, got {spacing!r}")
    if not isinstance(splits, Mapping) or not splits:
        raise ValueError("splits must map split names such as 'train' to {field: array}")
    out_dir = Path(out_dir)
    name = name or out_dir.resolve().name
    checked = {s: _check_fields(s, f, d) for s, f in splits.items()}
    first_split, first = next(iter(checked.items()))
    layout = {k: (o, a.shape[2:2 + d]) for k, (o, a) in first.items()}
    for split, fields in checked.items():
        if not re.fullmatch(r"[A-Za-z0-9_-]+", split):
            raise ValueError(f"split name {split!r} must be a plain name like 'train'")
        here = {k: (o, a.shape[2:2 + d]) for k, (o, a) in fields.items()}
        if here != layout:
            raise ValueError(f"split {split!r} holds fields {here}, split {first_split!r} {layout}; every split "
                             "needs the same fields on the same grid")
        lead = {a.shape[:2] for _, a in fields.values()}
        if len(lead) != 1:
            raise ValueError(f"split {split!r}: fields differ in (N, T): {sorted(lead)}")
    scalars = dict(scalars or {})
    for key, value in scalars.items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(key)):
            raise ValueError(f"scalar name {key!r} must be a plain identifier such as 'Reynolds'")
        for split, fields in checked.items():
            n = next(iter(fields.values()))[1].shape[0]
            if np.ndim(value) not in (0, 1) or (np.ndim(value) == 1 and len(value) != n):
                raise ValueError(f"scalar {key!r} must be one number or one per trajectory; split {split!r} "
                                 f"has {n} trajectories, got shape {np.shape(value)}")
    grid = next(iter(layout.values()))[1]
    for split, fields in checked.items():
        n, t = next(iter(fields.values()))[1].shape[:2]
        path = out_dir / "data" / split / f"{name}_{split}.hdf5"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".hdf5.tmp")
        with h5py.File(tmp, "w") as f:
            f.attrs["dataset_name"] = name
            f.attrs["grid_type"] = "cartesian"
            f.attrs["n_spatial_dims"] = d
            f.attrs["n_trajectories"] = n
            f.attrs["simulation_parameters"] = list(scalars)
            dims = f.create_group("dimensions")
            dims.attrs["spatial_dims"] = list(_AXES[:d])
            time = dims.create_dataset("time", data=np.arange(t, dtype=np.float32) * np.float32(dt))
            time.attrs["sample_varying"] = False
            for axis, size, h in zip(_AXES, grid, steps):
                c = dims.create_dataset(axis, data=np.arange(size, dtype=np.float32) * np.float32(h))
                c.attrs["sample_varying"] = False
                c.attrs["time_varying"] = False
            bc_group = f.create_group("boundary_conditions")
            for axis, kind, size in zip(_AXES, bcs, grid):
                g = bc_group.create_group(f"{axis}_{kind}")
                g.attrs["bc_type"] = kind.upper()
                g.attrs["associated_dims"] = [axis]
                g.attrs["associated_fields"] = []
                g.attrs["sample_varying"] = False
                g.attrs["time_varying"] = False
                mask = np.zeros(size, bool)
                mask[[0, -1]] = True
                g.create_dataset("mask", data=mask)
            sc = f.create_group("scalars")
            sc.attrs["field_names"] = list(scalars)
            for key, value in scalars.items():
                ds = sc.create_dataset(key, data=np.asarray(value, np.float32))
                ds.attrs["sample_varying"] = np.ndim(value) > 0
                ds.attrs["time_varying"] = False
            for order in range(3):
                grp = f.create_group(f"t{order}_fields")
                names = [k for k, (o, _) in fields.items() if o == order]
                grp.attrs["field_names"] = names
                for key in names:
                    ds = grp.create_dataset(key, data=fields[key][1])
                    ds.attrs["dim_varying"] = [True] * d
                    ds.attrs["sample_varying"] = True
                    ds.attrs["time_varying"] = True
        tmp.replace(path)
    return out_dir
