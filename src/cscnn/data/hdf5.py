"""HDF5 I/O: opening, finding the split files of a folder, checking and writing trajectories.

Two folder layouts are read, both with one group per split holding the datasets
of :attr:`TaskSpec.datasets <cscnn.data.tasks.TaskSpec>` with a leading trajectory axis N:

* cscnn's: ``<dir>/train.h5``, ``valid.h5``, ``test.h5`` (group ``train`` etc.);
* The Well's (task ``the-well``): ``<dir>/data/<split>/*.hdf5``, fields in groups
  ``t0_fields``, ``t1_fields``, ``t2_fields`` at the file root, read by the task's ``source``
  (:mod:`cscnn.data.tasks.the_well`);
* PDEArena's: several shard files per split, every ``*.h5`` whose name contains the
  split, e.g. ``NavierStokes2D_train_<seed>_0.50000_100.h5`` with group ``train``
  (u, vx, vy (N, 56, 128, 128) float32, plus buo_y, t, x, y, dt, dx, dy), or
  ``Maxwell3D_valid_<seed>.h5`` with d_field, h_field (N, T, X, Y, Z, 3).
  ``cscnn generate --shard I/N`` writes ``<split>_shard<I>-of-<N>.h5`` files of this kind.

Shards of a split are read together as one data set (:class:`~cscnn.data.PDEDataset`),
in the order of their sorted file names.
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from .errors import DataError, MissingDataError
from .tasks import TaskSpec, get_task

__all__ = [
    "SPLITS",
    "atomic_write_h5",
    "check_data_dir",
    "check_layout",
    "detect_task",
    "find_group",
    "open_h5",
    "split_files",
    "write_trajectories",
]

SPLITS = ("train", "valid", "test")
FORMAT_VERSION = 1


def _h5py():
    try:
        import h5py
    except ImportError as err:  # pragma: no cover - declared in the `data` extra
        raise ImportError("cscnn data files need h5py: pip install 'cscnn[data]'") from err
    return h5py


def open_h5(path):
    """Open an HDF5 file read-only with a clear error for missing or corrupt files."""
    h5py = _h5py()
    path = Path(path)
    if not path.exists():
        raise MissingDataError(f"data file {path} does not exist")
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise DataError(f"data file {path} is not a readable HDF5 file (corrupt or truncated?): {err}") from err


def disk_full(err: BaseException) -> bool:
    """Whether ``err`` reports a full disk or an exhausted quota (HDF5 errors carry the C errno only
    in their message)."""
    text = str(err)
    return getattr(err, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or "No space left on device" in text \
        or f"errno = {errno.ENOSPC}," in text or "Disk quota exceeded" in text


def atomic_write_h5(path: Path, write: Callable) -> None:
    """Write an HDF5 file through ``write(h5file)`` to a temporary name, then rename it to ``path``.

    HDF5 writes cached data when its objects are closed, and h5py only prints ("Exception ignored
    in ...") an error there, e.g. of a full disk; the file would then hold zeros in place of data.
    Such errors are collected while writing (``sys.unraisablehook``; what h5py prints meanwhile is
    held back and shown unless it was a full disk) and raised, the file is flushed and synced, and
    only then renamed. A full disk raises ``OSError(ENOSPC)`` naming ``path``; nothing is renamed
    then."""
    import contextlib
    import io
    import sys

    h5py = _h5py()
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    swallowed: list[BaseException] = []
    previous = sys.unraisablehook

    def hook(unraisable):
        if isinstance(unraisable.exc_value, (OSError, RuntimeError)) and "h5py" in repr(unraisable.object):
            swallowed.append(unraisable.exc_value)
        else:
            previous(unraisable)

    printed = io.StringIO()
    try:
        sys.unraisablehook = hook
        try:
            with contextlib.redirect_stderr(printed):
                with h5py.File(tmp, "w") as f:
                    write(f)
                    f.flush()
            if swallowed:
                raise swallowed[0]
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except (OSError, RuntimeError) as err:
            if disk_full(err):
                printed = None  # h5py's own tracebacks of the failed writes: the error below says it
                raise OSError(errno.ENOSPC, "No space left on device", str(path)) from err
            raise
        finally:
            sys.unraisablehook = previous
            if printed is not None and printed.getvalue():
                sys.stderr.write(printed.getvalue())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


# ----------------------------------------------------------------- one file
def find_group(f, path, split: str | None = None):
    """The group holding the trajectories: ``split`` if given and present, else the
    only group of the file (PDEArena files hold one group named after the split)."""
    if split is not None and split in f and hasattr(f[split], "keys"):
        return f[split]
    groups = [k for k in f if hasattr(f[k], "keys")]
    if len(groups) == 1:
        return f[groups[0]]
    if not groups:
        raise DataError(f"{path} has no data group (expected one group per split, e.g. 'train')")
    raise DataError(f"{path} holds several groups {groups}; name the split to use")


def detect_task(f, group) -> str | None:
    """Task stored in the file: its ``task`` attribute, else guessed from dataset names."""
    from .tasks import TASKS

    if "task" in f.attrs:
        t = f.attrs["task"]
        return t.decode() if isinstance(t, bytes) else str(t)
    for name, spec in TASKS.items():
        if spec.keys and all(k in group for k in spec.keys):
            return name
    return None


_KINDS = {"S": "byte strings", "U": "strings", "O": "strings or other objects", "b": "booleans",
          "V": "records (compound or opaque data)", "M": "dates", "m": "time spans"}


def check_real_dtype(dtype, key: str, path, task: str = "") -> None:
    """DataError naming ``path`` and dataset ``key`` unless ``dtype`` holds real numbers (floats or
    integers): strings and other non-numbers are refused, and so are complex numbers, whose
    imaginary parts a float conversion would silently drop."""
    dtype = np.dtype(dtype)
    what = f"{path}: {task + ' ' if task else ''}dataset {key!r}"
    if dtype.kind == "c":
        raise DataError(f"{what} is complex-valued ({dtype}); cscnn reads real fields only and does not drop "
                        "imaginary parts: store the real and imaginary parts as real components of the task")
    if dtype.kind not in "fiu":
        raise DataError(f"{what} holds {_KINDS.get(dtype.kind, 'non-numbers')} ({dtype}), not numbers; "
                        "expected real floating-point fields")


def check_layout(task: str | TaskSpec, group, path) -> tuple[int, int, tuple[int, ...]]:
    """Validate the datasets of ``task`` in ``group``; returns (N, T, grid shape)."""
    spec = get_task(task)
    missing = [k for k in spec.keys if k not in group]
    if missing:
        raise DataError(f"{path} is not a {spec.name} file: datasets {missing} missing (found {list(group)})")
    first = spec.keys[0]
    shape = group[first].shape
    lead = None
    for key, n in spec.datasets:
        s = group[key].shape
        check_real_dtype(group[key].dtype, key, path, spec.name)
        if len(s) != spec.dataset_ndim(key) or (n is not None and s[-1] != n):
            want = f"(N, T, {spec.grid_dims} grid axes{', ' + str(n) if n is not None else ''})"
            raise DataError(f"{path}: {spec.name} dataset {key!r} must have shape {want}, got {s}")
        empty = [i for i, size in enumerate(s[2: 2 + spec.grid_dims]) if size == 0]
        if empty:
            raise DataError(f"{path}: {spec.name} dataset {key!r} has shape {s}: grid axis {empty[0]} has no points")
        if lead is None:
            lead = s[: 2 + spec.grid_dims]
        elif s[: 2 + spec.grid_dims] != lead:
            raise DataError(f"{path}: datasets {first!r} {shape} and {key!r} {s} differ in shape")
    return int(lead[0]), int(lead[1]), tuple(int(v) for v in lead[2:])


def file_info(path: Path, task: str | TaskSpec, split: str | None) -> dict:
    """What one split file holds: ``{"path", "group", "task", "num", "frames", "grid", "dtypes"}``."""
    spec = get_task(task)
    if spec.source is not None:  # another file layout (The Well)
        return spec.source.file_info(spec, path, split)
    with open_h5(path) as f:
        group = find_group(f, path, split)
        found = detect_task(f, group)
        if found is not None and found != spec.name:
            other = _metric_of(found)
            raise DataError(f"{path} holds {found!r} data{other}, but {spec.name!r} data "
                            f"(metric {tuple(spec.metric)}) is needed")
        n, frames, grid = check_layout(spec, group, path)
        dtypes = {k: str(group[k].dtype) for k in spec.keys}
        return {"path": Path(path), "group": group.name, "task": spec.name, "num": n, "frames": frames,
                "grid": grid, "dtypes": dtypes}


def _metric_of(task_name: str) -> str:
    from .tasks import TASKS

    spec = TASKS.get(task_name)
    return f" (metric {tuple(spec.metric)})" if spec is not None else ""


# --------------------------------------------------------------- a folder
def split_files(data_dir, split: str) -> list[Path]:
    """Files of ``split`` in ``data_dir``: ``<split>.h5`` if it exists, else every non-hidden
    ``*.h5`` whose name contains ``split`` (PDEArena shards), else The Well's
    ``data/<split>/*.hdf5``, sorted by name; ``[]`` if none."""
    data_dir = Path(data_dir)
    single = data_dir / f"{split}.h5"
    if single.is_file():
        return [single]
    if not data_dir.is_dir():
        return []
    found = sorted(p for p in data_dir.glob("*.h5") if split in p.name and not p.name.startswith(".") and p.is_file())
    return found or split_folder_files(data_dir, split)


def split_folder_files(data_dir, split: str) -> list[Path]:
    """The Well's folder layout: every non-hidden ``*.hdf5`` / ``*.h5`` in ``<dir>/data/<split>/``
    (or in ``<dir>/<split>/`` when ``dir`` is that ``data`` folder), sorted; ``[]`` if none."""
    data_dir = Path(data_dir)
    for folder in (data_dir / "data" / split, data_dir / split):
        if folder.is_dir():
            files = sorted(p for p in folder.iterdir() if p.suffix in (".hdf5", ".h5") and p.is_file()
                           and not p.name.startswith("."))
            if files:
                return files
    return []


def check_shards(files: list[Path], task: str | TaskSpec, split: str | None) -> list[dict]:
    """:func:`file_info` of every shard of one split; shards must agree in frames, grid and dtypes."""
    infos = [file_info(p, task, split) for p in files]
    ref = infos[0]
    for inf in infos[1:]:
        for key in ("frames", "grid", "dtypes"):
            if inf[key] != ref[key]:
                raise DataError(f"shards of one split disagree: {ref['path']} has {key} {ref[key]}, "
                                f"{inf['path']} has {key} {inf[key]}")
    return infos


def check_data_dir(data_dir, task: str | TaskSpec, require_test: bool = True,
                   splits: Iterable[str] | None = None, hint: str | None = None) -> dict[str, list[Path] | None]:
    """The files of every split in ``data_dir`` (cscnn's ``<split>.h5`` or PDEArena shards).

    Args:
        data_dir: data folder.
        task: task the files must hold.
        require_test: ``test`` is required too (``train`` always is, unless ``splits`` is given).
        splits: the required splits (default ``train`` and, with ``require_test``, ``test``).
        hint: appended to the error for missing data (e.g. how to generate it).
    Returns:
        ``{"train": [paths], "valid": [paths] or None, "test": [paths] or None}``.
    Raises:
        MissingDataError: the folder or a required split is missing (names what was looked for).
        DataError: a file is unreadable, holds another task, or the shards of a split disagree
            (names the files).
    """
    spec = get_task(task)
    data_dir = Path(data_dir)
    needed = list(splits) if splits is not None else ["train"] + (["test"] if require_test else [])
    if hint is None and spec.source is not None:
        hint = spec.source.hint(data_dir)
    if hint is None:
        hint = (f"generate it with `cscnn generate {spec.name} --split SPLIT --num N --out {data_dir}`, "
                "or point to a folder of PDEArena files")
    if not data_dir.is_dir():
        raise MissingDataError(f"data folder {str(data_dir)!r} does not exist; {hint}")
    files = {s: split_files(data_dir, s) for s in dict.fromkeys([*SPLITS, *needed])}
    missing = [s for s in needed if not files[s]]
    if missing:
        raise MissingDataError(
            f"data folder {str(data_dir)!r} has no {' and no '.join(repr(m) for m in missing)} data "
            f"(looked for {', '.join(_pattern(m, spec) for m in missing)}); {hint}")
    for s, paths in files.items():
        if paths:
            check_shards(paths, spec, s)
    return {s: (p or None) for s, p in files.items()}


def _pattern(split: str, spec: TaskSpec) -> str:
    return f"data/{split}/*.hdf5" if spec.source is not None else f"{split}.h5 or *{split}*.h5"


# ------------------------------------------------------------------ writing
def write_trajectories(out: Path, split: str, num: int, trajectories: Iterable[dict], attrs: dict) -> None:
    """Write ``num`` trajectories (dicts ``key -> array`` without the N axis, all alike) into
    ``out`` (group ``split``, datasets chunked per frame) atomically, with file ``attrs``."""

    def write(f):
        grp = f.create_group(split)
        dsets, ref = {}, None
        count = 0
        for i, traj in enumerate(trajectories):
            if ref is None:
                ref = {k: (np.shape(v), np.asarray(v).dtype) for k, v in traj.items()}
                for key, (shape, dtype) in ref.items():
                    chunks = (1, 1, *shape[1:]) if len(shape) >= 2 else None
                    dsets[key] = grp.create_dataset(key, (num, *shape), dtype=dtype, chunks=chunks)
            if set(traj) != set(ref):
                raise DataError(f"trajectory {i} holds {sorted(traj)}, trajectory 0 {sorted(ref)}")
            for key, arr in traj.items():
                if np.shape(arr) != ref[key][0]:
                    raise DataError(f"trajectory {i}: {key} has shape {np.shape(arr)}, expected {ref[key][0]}")
                dsets[key][i] = arr
            count += 1
        if count != num:
            raise DataError(f"expected {num} trajectories for {out}, got {count}")
        for k, v in attrs.items():
            f.attrs[k] = json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else v
        f.attrs["format_version"] = FORMAT_VERSION

    atomic_write_h5(Path(out), write)


def iter_trajectories(path: Path, split: str | None = None) -> Iterable[dict]:
    """Every trajectory of a split file as ``key -> array`` (read one at a time)."""
    with open_h5(path) as f:
        group = find_group(f, path, split)
        keys = [k for k in group if not hasattr(group[k], "keys")]
        n = int(group[keys[0]].shape[0])
        for i in range(n):
            yield {k: group[k][i] for k in keys}


def file_attrs(path: Path) -> dict:
    """File attributes with JSON values decoded."""
    out = {}
    with open_h5(path) as f:
        for k, v in f.attrs.items():
            if isinstance(v, bytes):
                v = v.decode()
            if isinstance(v, np.generic):
                v = v.item()
            if k in ("params", "versions") and isinstance(v, str):
                v = json.loads(v)
            out[k] = v
    return out
