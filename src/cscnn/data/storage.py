"""HDF5 storage: resumable, parallel, atomic generation and task-aware reading.

File layout (one file per split, ``<out_dir>/<split>.h5``), compatible with PDEArena:

* ``navier-stokes``: group ``<split>`` with ``u, vx, vy`` (N, T, X, Y) and
  ``t`` (N, T), ``x`` (N, X), ``y`` (N, Y), ``dt, dx, dy, buo_y`` (N,).
* ``maxwell3d``: group ``<split>`` with ``d_field, h_field`` (N, T, X, Y, Z, 3).
  As in PDEArena, ``d_field`` holds the E array of the ``fdtd`` package.
* ``maxwell2d``: group ``<split>`` with ``faraday`` (N, T, X, Y, 3) holding
  ``(Ex, Ey, cBz)`` after the log-norm rescaling, ``t`` (N, T), ``x`` (N, X),
  ``y`` (N, Y), ``boost_velocity`` (N, 2) (in units of c).

File attributes: ``task``, ``split``, ``preset``, ``params`` (JSON), ``seed``,
``num_trajectories``, ``versions`` (JSON), ``created``, ``format_version``.

Generation writes every finished trajectory to its own shard file in the work
folder ``<out_dir>/.<split>.work/`` (each written to a temporary name, then
renamed), so an interrupted run resumes where it stopped and never loses or
recomputes a finished trajectory. When all shards exist they are merged into
``<split>.h5`` (temporary file, then atomic rename) and the work folder is removed.
"""

from __future__ import annotations

import datetime
import importlib
import json
import os
import shutil
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

__all__ = [
    "DataError",
    "generate_dataset",
    "open_h5",
    "read_fields",
    "resolve_params",
    "trajectory_seed",
    "PRESETS",
]

FORMAT_VERSION = 1
_GENERATORS = {
    "navier-stokes": "cscnn.data.navier_stokes",
    "maxwell3d": "cscnn.data.maxwell3d",
    "maxwell2d": "cscnn.data.maxwell2d",
}
_VERSION_PACKAGES = ("cscnn", "numpy", "h5py", "torch", "phiflow", "jax", "fdtd", "pycharge")


class DataError(RuntimeError):
    """A data file or trajectory is missing, corrupt or does not fit the request."""


def _h5py():
    try:
        import h5py
    except ImportError as err:  # pragma: no cover - declared in the `data` extra
        raise ImportError("cscnn data files need h5py: pip install 'cscnn[data]'") from err
    return h5py


def _generator(task: str):
    if task not in _GENERATORS:
        raise ValueError(f"unknown task {task!r}; valid tasks: {', '.join(_GENERATORS)}")
    return importlib.import_module(_GENERATORS[task])


class _LazyPresets(dict):
    """``PRESETS[task]`` -> preset name -> parameters, importing generators on demand
    (without their simulation packages)."""

    def __missing__(self, task):
        mod = _generator(task)
        self[task] = mod.PRESETS
        return mod.PRESETS

    def __iter__(self):
        return iter(_GENERATORS)

    def __len__(self):
        return len(_GENERATORS)

    def keys(self):
        return list(_GENERATORS)

    def items(self):
        return [(t, self[t]) for t in _GENERATORS]

    def values(self):
        return [self[t] for t in _GENERATORS]

    def __contains__(self, task):
        return task in _GENERATORS


PRESETS: dict[str, dict[str, dict]] = _LazyPresets()


def resolve_params(task: str, preset: str = "small", overrides: dict | None = None) -> dict:
    """Parameters of ``preset`` for ``task`` with ``overrides`` applied (unknown keys are errors)."""
    presets = PRESETS[task]
    if preset not in presets:
        raise ValueError(f"unknown preset {preset!r} for {task}; valid presets: {', '.join(presets)}")
    params = dict(presets[preset])
    for key, value in (overrides or {}).items():
        if key not in params:
            raise ValueError(f"unknown parameter {key!r} for {task}; known: {', '.join(params)}")
        params[key] = value
    return params


def trajectory_seed(seed: int, split: str, index: int) -> int:
    """Seed of trajectory ``index``: a function of (seed, split, index) only, so every
    trajectory is reproducible independent of worker count and of resumption."""
    ss = np.random.SeedSequence([int(seed), zlib.crc32(split.encode()), int(index)])
    return int(ss.generate_state(1, dtype=np.uint32)[0] & 0x7FFFFFFF)


def package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in _VERSION_PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


# --------------------------------------------------------------------- writing
def _atomic_write_h5(path: Path, write: Callable) -> None:
    h5py = _h5py()
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with h5py.File(tmp, "w") as f:
            write(f)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _shard_path(work: Path, index: int) -> Path:
    return work / f"traj_{index:06d}.h5"


def _check_finite(arrays: dict, what: str) -> None:
    for key, arr in arrays.items():
        if np.issubdtype(np.asarray(arr).dtype, np.floating) and not np.isfinite(arr).all():
            raise DataError(f"{what}: field {key!r} contains NaN or inf")


def _run_one(task: str, params: dict, seed: int, index: int, shard: str) -> int:
    """Simulate one trajectory and write its shard (runs in a worker process)."""
    mod = _generator(task)
    what = f"{task} trajectory {index} (seed {seed})"
    try:
        arrays = mod.simulate(params, seed)
    except DataError as err:  # a simulator's own check (e.g. a failed pressure solve): nothing is written
        raise DataError(f"{what}: {err}") from err
    _check_finite(arrays, what)

    def write(f):
        for key, arr in arrays.items():
            f.create_dataset(key, data=np.asarray(arr))
        f.attrs["index"] = index
        f.attrs["seed"] = seed

    _atomic_write_h5(Path(shard), write)
    return index


def _config(task, split, preset, params, seed) -> dict:
    cfg = {"task": task, "split": split, "preset": preset, "params": params, "seed": int(seed)}
    return json.loads(json.dumps(cfg))  # tuples -> lists, as after a round trip through the file


def _same_config(a: dict, b: dict) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def generate_dataset(
    task: str,
    split: str,
    num: int,
    out_dir,
    preset: str = "small",
    workers: int = 1,
    seed: int = 0,
    progress: bool = True,
    params: dict | None = None,
) -> Path:
    """Generate ``num`` trajectories of ``task`` into ``out_dir/<split>.h5``.

    Args:
        task: ``"navier-stokes"``, ``"maxwell3d"`` or ``"maxwell2d"``.
        split: split name, e.g. ``"train"``, ``"valid"``, ``"test"`` (also the HDF5 group).
        num: number of trajectories.
        out_dir: output folder (created).
        preset: a key of ``PRESETS[task]`` (``"pdearena"`` / ``"paper"``-size or ``"small"``).
        workers: parallel processes (joblib); results do not depend on it.
        seed: base seed; trajectory i uses :func:`trajectory_seed` (seed, split, i).
        progress: show a tqdm progress bar.
        params: overrides of single preset parameters (e.g. a tiny grid for tests).
    Returns:
        path of the finished file. Re-running with the same arguments returns at once;
        an interrupted run continues from its finished trajectories; a larger ``num``
        with otherwise equal settings extends an existing file.
    """
    if not isinstance(num, int) or num < 1:
        raise ValueError(f"num must be a positive integer, got {num!r}")
    if not split or any(ch in split for ch in "/\\") or split.startswith("."):
        raise ValueError(f"split must be a plain name like 'train', got {split!r}")
    params = resolve_params(task, preset, params)
    config = _config(task, split, preset, params, seed)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{split}.h5"
    work = out_dir / f".{split}.work"

    n_existing = 0
    if out.exists():
        existing = _read_config(out)
        if not _same_config(existing, config):
            raise DataError(
                f"{out} exists with different settings ({existing}); delete it or choose another out_dir"
            )
        n_existing = _num_trajectories_in(out, split)
        if n_existing == num:
            return out
        if n_existing > num:
            raise DataError(f"{out} already holds {n_existing} > {num} trajectories; use num={n_existing}")

    work.mkdir(exist_ok=True)
    cfg_file = work / "config.json"
    if cfg_file.exists():
        old = json.loads(cfg_file.read_text())
        if not _same_config(old, config):
            raise DataError(
                f"work folder {work} belongs to a run with different settings ({old}); "
                "delete it or choose another out_dir"
            )
    else:
        tmp = cfg_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(config, sort_keys=True))
        os.replace(tmp, cfg_file)
    for stale in work.glob(".*.tmp-*"):  # shards of an interrupted worker
        stale.unlink(missing_ok=True)

    todo = [i for i in range(n_existing, num) if not _shard_path(work, i).exists()]
    if todo:
        _run_parallel(task, params, seed, split, todo, work, workers, progress)
    _merge(out, work, config, num, n_existing)
    shutil.rmtree(work, ignore_errors=True)
    return out


def _run_parallel(task, params, seed, split, todo, work, workers, progress):
    from joblib import Parallel, delayed
    from tqdm.auto import tqdm

    jobs = (
        delayed(_run_one)(task, params, trajectory_seed(seed, split, i), i, str(_shard_path(work, i)))
        for i in todo
    )
    bar = tqdm(total=len(todo), desc=f"{task} {split}", unit="traj", disable=not progress)
    try:
        if workers <= 1:
            for job in jobs:
                fn, args, kwargs = job
                fn(*args, **kwargs)
                bar.update(1)
        else:
            runner = Parallel(n_jobs=workers, return_as="generator_unordered")
            for _ in runner(jobs):
                bar.update(1)
    finally:
        bar.close()


def _merge(out: Path, work: Path, config: dict, num: int, n_existing: int) -> None:
    h5py = _h5py()
    split = config["split"]
    first = out if n_existing else _shard_path(work, 0)
    with h5py.File(first, "r") as f:
        src = f[split] if n_existing else f
        shapes = {k: (src[k].shape[1:] if n_existing else src[k].shape) for k in src}
        dtypes = {k: src[k].dtype for k in src}

    def write(f):
        grp = f.create_group(split)
        dsets = {}
        for key, shape in shapes.items():
            chunks = (1, 1, *shape[1:]) if len(shape) >= 2 else None
            dsets[key] = grp.create_dataset(key, (num, *shape), dtype=dtypes[key], chunks=chunks)
        if n_existing:
            with h5py.File(out, "r") as old:
                for i in range(n_existing):
                    for key in dsets:
                        dsets[key][i] = old[split][key][i]
        for i in range(n_existing, num):
            shard = _shard_path(work, i)
            try:
                with h5py.File(shard, "r") as s:
                    for key in dsets:
                        if s[key].shape != shapes[key]:
                            raise DataError(f"shard {shard}: {key} has shape {s[key].shape}, expected {shapes[key]}")
                        dsets[key][i] = s[key][()]
            except OSError as err:
                shard.unlink(missing_ok=True)
                raise DataError(f"shard {shard} is corrupt and was removed; re-run to regenerate it") from err
        f.attrs["task"] = config["task"]
        f.attrs["split"] = split
        f.attrs["preset"] = config["preset"]
        f.attrs["params"] = json.dumps(config["params"], sort_keys=True)
        f.attrs["seed"] = config["seed"]
        f.attrs["num_trajectories"] = num
        f.attrs["versions"] = json.dumps(package_versions(), sort_keys=True)
        f.attrs["created"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        f.attrs["format_version"] = FORMAT_VERSION

    _atomic_write_h5(out, write)


def _read_config(path: Path) -> dict:
    with open_h5(path) as f:
        a = f.attrs
        if "params" not in a:
            raise DataError(
                f"{path} has no cscnn generation metadata (a foreign file?); delete it or choose another out_dir"
            )
        return _config(str(a["task"]), str(a["split"]), str(a["preset"]), json.loads(a["params"]), int(a["seed"]))


def _num_trajectories_in(path: Path, split: str) -> int:
    with open_h5(path) as f:
        grp = f[split]
        return int(next(iter(grp.values())).shape[0])


# --------------------------------------------------------------------- reading
def open_h5(path):
    """Open an HDF5 file read-only with a clear error for missing or corrupt files."""
    h5py = _h5py()
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"data file {path} does not exist")
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise DataError(f"data file {path} is not a readable HDF5 file (corrupt or truncated?): {err}") from err


_TASK_KEYS = {
    "navier-stokes": ("u", "vx", "vy"),
    "maxwell3d": ("d_field", "h_field"),
    "maxwell2d": ("faraday",),
}


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
    if "task" in f.attrs:
        return str(f.attrs["task"])
    for task, keys in _TASK_KEYS.items():
        if all(k in group for k in keys):
            return task
    return None


def check_layout(task: str, group, path) -> tuple[int, int, tuple[int, ...]]:
    """Validate the datasets of ``task`` in ``group``; returns (N, T, spatial shape)."""
    keys = _TASK_KEYS[task]
    missing = [k for k in keys if k not in group]
    if missing:
        raise DataError(f"{path} is not a {task} file: datasets {missing} missing (found {list(group)})")
    shape = group[keys[0]].shape
    ndim = {"navier-stokes": 4, "maxwell3d": 6, "maxwell2d": 5}[task]
    if len(shape) != ndim:
        raise DataError(f"{path}: {task} dataset {keys[0]!r} must have {ndim} axes, got shape {shape}")
    for k in keys[1:]:
        if group[k].shape != shape:
            raise DataError(f"{path}: datasets {keys[0]!r} {shape} and {k!r} {group[k].shape} differ in shape")
    spatial = tuple(shape[2:5]) if task == "maxwell3d" else tuple(shape[2:4])
    return int(shape[0]), int(shape[1]), spatial


def read_fields(task: str, group, index: int, times: slice) -> np.ndarray:
    """Physical components of trajectory ``index`` at ``times``: (T, *spatial, n_components)."""
    if task == "navier-stokes":
        return np.stack([group[k][index, times] for k in ("u", "vx", "vy")], -1)
    if task == "maxwell3d":
        return np.concatenate([group["d_field"][index, times], group["h_field"][index, times]], -1)
    if task == "maxwell2d":
        return group["faraday"][index, times]
    raise ValueError(f"unknown task {task!r}")
