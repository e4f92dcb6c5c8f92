"""Data generation: resumable, parallel (local processes or a Dask cluster), sharded, atomic.

Every finished trajectory is written to its own file in the work folder
``<out_dir>/.<stem>.work/`` (temporary name, then renamed), so an interrupted run
resumes where it stopped and never loses or recomputes a finished trajectory.
When all exist they are merged into ``<out_dir>/<stem>.h5`` (temporary file, then
atomic rename) and the work folder is removed. ``stem`` is the split name, or
``<split>_shard<I>-of-<N>`` for one shard of a cluster array job.

Trajectory ``i`` is simulated from :func:`trajectory_seed` ``(seed, split, i)``
only, so the data do not depend on the number of workers, the scheduler, the
sharding or interruptions: a 2-shard run merged with :func:`merge_shards` equals a
single-process run bit for bit.

Safety: a lock file ``<out_dir>/.<stem>.lock`` (``fcntl.flock``, released by the
kernel when its holder dies) makes a second concurrent run into the same output
fail with a message naming the holder (pid, host, start time); local worker
processes end themselves when the process that started them dies (SIGKILL
included), see :func:`_die_with_parent`.

File attributes: ``task``, ``split``, ``preset``, ``params`` (JSON), ``seed``,
``num_trajectories``, ``versions`` (JSON), ``created``, ``format_version``; shard
files also ``shard`` (``"I/N"``), ``first_index`` and ``total_trajectories``.
"""

from __future__ import annotations

import datetime
import difflib
import errno
import json
import os
import re
import shutil
import socket
import threading
import time
import zlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .errors import DataError
from .hdf5 import (
    atomic_write_h5,
    disk_full,
    file_attrs,
    iter_trajectories,
    open_h5,
    split_files,
    write_trajectories,
)
from .tasks import TASKS, TaskSpec, get_task

__all__ = [
    "PRESETS",
    "check_simulator",
    "numpy_mismatch",
    "generate_dataset",
    "merge_shards",
    "parse_shard",
    "resolve_params",
    "shard_range",
    "trajectory_seed",
]

DASK_CONNECT_TIMEOUT = "20s"  # how long to wait for a Dask scheduler
_VERSION_PACKAGES = ("cscnn", "numpy", "h5py", "torch", "phiflow", "jax", "fdtd", "pycharge", "joblib", "dask")


class _Presets(Mapping):
    """``PRESETS[task]`` -> preset name -> parameters (a view of the task registry)."""

    def __getitem__(self, task):
        return get_task(task).presets

    def __iter__(self):
        return iter(TASKS)

    def __len__(self):
        return len(TASKS)


PRESETS: Mapping[str, dict[str, dict]] = _Presets()


def check_simulator(task: str | TaskSpec, data_dir=None) -> TaskSpec:
    """The task's :class:`TaskSpec`; :class:`DataError` when it has no simulator (a task that reads data
    which already exist), saying where such data come from."""
    spec = get_task(task)
    if spec.simulate is None:
        hint = getattr(spec.source, "hint", None)
        where = hint(data_dir) if hint is not None else ("write the files yourself (docs/data.md, \"Your own "
                                                         "data\") and pass --data DIR to `cscnn train`")
        raise DataError(f"task {spec.name!r} has no simulator and no presets: it reads data that already exist; "
                        f"{where}")
    return spec


def _check_param_type(spec: TaskSpec, key: str, value, default):
    """``value`` for parameter ``key`` whose preset value is ``default``: the same kind (ints for floats
    are fine, a list for a tuple of the same length); ``ValueError`` in one line otherwise."""
    def kind(v) -> str:
        return "a list" if isinstance(v, (list, tuple)) else type(v).__name__

    if isinstance(default, bool) or default is None or isinstance(default, str):
        ok = default is None or isinstance(value, type(default))
    elif isinstance(default, (int, np.integer)):
        ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    elif isinstance(default, (float, np.floating)):
        ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, (list, tuple)):
        ok = isinstance(value, (list, tuple)) and len(value) == len(default)
        value = type(default)(value) if ok else value
    else:
        ok = True
    if not ok:
        want = f"a list of {len(default)}" if isinstance(default, (list, tuple)) else kind(default)
        raise ValueError(f"parameter {key!r} of {spec.name} must be {want} (preset value {default!r}), "
                         f"got {value!r}")
    return value


def resolve_params(task: str | TaskSpec, preset: str = "small", overrides: dict | None = None) -> dict:
    """Parameters of ``preset`` for ``task`` with ``overrides`` applied; an unknown key, or a value of
    another kind than the preset's (``nx=3.5`` for an int), raises ``ValueError`` naming the valid keys.
    :class:`DataError` for a task without a simulator."""
    spec = check_simulator(task)
    if preset not in spec.presets:
        raise ValueError(f"unknown preset {preset!r} for {spec.name}; valid presets: {', '.join(spec.presets)}")
    params = dict(spec.presets[preset])
    for key, value in (overrides or {}).items():
        if key not in params:
            close = difflib.get_close_matches(str(key), list(params), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"unknown parameter {key!r} for {spec.name}{hint}; known: {', '.join(params)}")
        params[key] = _check_param_type(spec, key, value, params[key])
    return params


def trajectory_seed(seed: int, split: str, index: int) -> int:
    """Seed of trajectory ``index``: a function of (seed, split, index) only, so every
    trajectory is reproducible independent of worker count, sharding and resumption."""
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


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` (0 <= I < N) -> ``(I, N)``; ``ValueError`` naming the expected form otherwise."""
    try:
        i, n = (int(v) for v in str(text).split("/"))
    except ValueError:
        raise ValueError(f"shard must look like I/N (e.g. 0/4), got {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"shard I/N needs 0 <= I < N, got {text!r}")
    return i, n


def shard_range(num: int, shard: tuple[int, int]) -> range:
    """Trajectory indices of shard ``(i, n)`` of ``num``: contiguous blocks, in order."""
    i, n = shard
    return range(i * num // n, (i + 1) * num // n)


def _shard_stem(split: str, shard: tuple[int, int]) -> str:
    return f"{split}_shard{shard[0]:04d}-of-{shard[1]:04d}"


# ------------------------------------------------------------------ workers
_WATCH = {}


def _die_with_parent() -> None:
    """In a local worker process: end it when the process that started it dies.

    Linux: ``PR_SET_PDEATHSIG`` = SIGKILL (the kernel kills the worker when its parent
    exits, SIGKILL of the parent included). Elsewhere (and as a second line, since the
    signal follows the parent *thread*), a daemon thread polls ``os.getppid()`` and
    exits when the worker has been re-parented. Idempotent per process."""
    if _WATCH.get("pid") == os.getpid():
        return
    parent = os.getppid()
    _WATCH["pid"] = os.getpid()
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux
        pass

    def watch():
        while True:
            if os.getppid() != parent:
                os._exit(1)
            time.sleep(0.5)

    threading.Thread(target=watch, name="cscnn-parent-watch", daemon=True).start()


def _check_finite(arrays: dict, what: str) -> None:
    for key, arr in arrays.items():
        if np.issubdtype(np.asarray(arr).dtype, np.floating) and not np.isfinite(arr).all():
            raise DataError(f"{what}: field {key!r} contains NaN or inf")


def _run_one(spec: TaskSpec, params: dict, seed: int, index: int, path: str, local_worker: bool) -> int:
    """Simulate one trajectory and write its file (runs in a worker process)."""
    if local_worker:
        _die_with_parent()
    what = f"{spec.name} trajectory {index} (seed {seed})"
    try:
        arrays = spec.simulate(params, seed)
    except DataError as err:  # a simulator's own check (e.g. a failed pressure solve): nothing is written
        raise DataError(f"{what}: {err}") from err
    _check_finite(arrays, what)

    def write(f):
        for key, arr in arrays.items():
            f.create_dataset(key, data=np.asarray(arr))
        f.attrs["index"] = index
        f.attrs["seed"] = seed

    atomic_write_h5(Path(path), write)
    return index


def _traj_path(work: Path, index: int) -> Path:
    return work / f"traj_{index:06d}.h5"


def _run_parallel(spec, params, seed, split, todo, work, workers, progress, scheduler):
    from joblib import Parallel, delayed
    from tqdm.auto import tqdm

    local = scheduler is None
    jobs = [
        delayed(_run_one)(spec, params, trajectory_seed(seed, split, i), i, str(_traj_path(work, i)), local and
                          workers > 1)
        for i in todo
    ]
    bar = tqdm(total=len(todo), desc=f"{spec.name} {split}", unit="traj", disable=not progress)
    try:
        if local and workers <= 1:
            for fn, args, kwargs in jobs:
                fn(*args, **kwargs)
                bar.update(1)
        elif local:
            for _ in Parallel(n_jobs=workers, return_as="generator_unordered")(jobs):
                bar.update(1)
        else:
            from joblib import parallel_config

            client = _dask_client(scheduler)
            try:
                with parallel_config(backend="dask"):
                    for _ in Parallel(return_as="generator_unordered")(jobs):
                        bar.update(1)
            finally:
                client.close()
    finally:
        bar.close()


def _dask_client(scheduler: str):
    try:
        from distributed import Client
    except ImportError as err:
        raise ImportError("--scheduler needs dask.distributed: pip install 'cscnn[dask]'") from err
    try:
        return Client(scheduler, timeout=DASK_CONNECT_TIMEOUT)
    except (OSError, TimeoutError) as err:
        raise DataError(f"cannot connect to the Dask scheduler at {scheduler}: {err}") from err


# -------------------------------------------------------------------- lock
class _Lock:
    """Exclusive ``flock`` on ``path`` holding ``{"pid", "host", "started"}``; released when
    the holder exits (also on SIGKILL: the kernel drops the lock)."""

    def __init__(self, path: Path, what: str):
        self.path, self.what, self.fd = Path(path), what, None

    def __enter__(self):
        import fcntl

        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                try:
                    holder = json.loads(os.read(fd, 4096) or b"{}")
                except ValueError:
                    holder = {}
                os.close(fd)
                raise DataError(
                    f"{self.what} is being generated by another run (pid {holder.get('pid', '?')} on host "
                    f"{holder.get('host', '?')}, started {holder.get('started', '?')}; lock {self.path}); "
                    "wait for it to finish or stop it") from None
            try:  # the file we locked may have been removed by a finishing holder: retry then
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(info).encode())
        self.fd = fd
        return self

    def __exit__(self, *exc):
        self.path.unlink(missing_ok=True)
        os.close(self.fd)


def _prepare_out_dir(out_dir) -> Path:
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise DataError(f"output {str(out_dir)!r} is a file; expected a folder (it will hold <split>.h5)")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / f".cscnn-write-test-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as err:
        raise DataError(f"cannot write to output folder {str(out_dir)!r}: {err.strerror or err}; "
                        "choose a writable --out") from None
    return out_dir


# --------------------------------------------------------------- generation
def _config(task, split, preset, params, seed) -> dict:
    cfg = {"task": task, "split": split, "preset": preset, "params": params, "seed": int(seed)}
    return json.loads(json.dumps(cfg))  # tuples -> lists, as after a round trip through the file


def _same_config(a: dict, b: dict) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _config_diff(stored: dict, requested: dict) -> str:
    """The settings that differ, e.g. ``"seed: the file has 0, requested 1"`` (preset parameters
    as ``params.nx``); the full stored settings when nothing differs key by key."""
    diffs = []
    for key in sorted(set(stored) | set(requested)):
        a, b = stored.get(key), requested.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            diffs += [f"{key}.{k}: the file has {a.get(k)!r}, requested {b.get(k)!r}"
                      for k in sorted(set(a) | set(b)) if json.dumps(a.get(k)) != json.dumps(b.get(k))]
        elif json.dumps(a, sort_keys=True) != json.dumps(b, sort_keys=True):
            diffs.append(f"{key}: the file has {a!r}, requested {b!r}")
    return "; ".join(diffs) or f"stored {stored}"


def _read_config(path: Path) -> dict:
    a = file_attrs(path)
    if "params" not in a:
        raise DataError(
            f"{path} has no cscnn generation metadata (a foreign file?); delete it or choose another out_dir")
    return _config(a["task"], a["split"], a["preset"], a["params"], a["seed"])


def _num_trajectories_in(path: Path, split: str) -> int:
    with open_h5(path) as f:
        return int(next(iter(f[split].values())).shape[0])


def generate_dataset(
    task: str | TaskSpec,
    split: str,
    num: int,
    out_dir,
    preset: str = "small",
    workers: int = 1,
    seed: int = 0,
    progress: bool = True,
    params: dict | None = None,
    scheduler: str | None = None,
    shard: tuple[int, int] | str | None = None,
) -> Path:
    """Generate ``num`` trajectories of ``task`` into ``out_dir/<split>.h5``.

    Args:
        task: a task name (see :data:`cscnn.data.TASKS`) or its ``TaskSpec``.
        split: split name, e.g. ``"train"``, ``"valid"``, ``"test"`` (also the HDF5 group).
        num: number of trajectories (of the whole split when sharded).
        out_dir: output folder (created).
        preset: a key of ``PRESETS[task]`` (``"pdearena"`` / ``"paper"``-size or ``"small"``).
        workers: local parallel processes (joblib/loky); results do not depend on it.
        seed: base seed; trajectory i uses :func:`trajectory_seed` (seed, split, i).
        progress: show a tqdm progress bar.
        params: overrides of single preset parameters (e.g. ``{"nx": 32, "nt": 12}`` for a tiny
            grid; the CLI's ``cscnn generate --set nx=32 nt=12``); keys and value kinds are checked
            against the preset.
        scheduler: address of a Dask scheduler (``tcp://host:8786``): run the trajectories on
            that cluster through joblib's Dask backend (needs ``cscnn[dask]``); ``workers`` is
            then ignored.
        shard: ``(I, N)`` or ``"I/N"``: generate only block I of N of the trajectories into
            ``out_dir/<split>_shard<I>-of-<N>.h5`` (cluster array jobs); the loader reads the
            shards of a folder together, :func:`merge_shards` joins them into ``<split>.h5``.
    Returns:
        path of the finished file. Re-running with the same arguments returns at once;
        an interrupted run continues from its finished trajectories; a larger ``num``
        with otherwise equal settings extends an existing (unsharded) file.
    """
    spec = check_simulator(task, out_dir)
    if isinstance(num, bool) or not isinstance(num, (int, np.integer)) or num < 1:
        raise ValueError(f"num must be a positive integer, got {num!r}")
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    if not split or any(ch in split for ch in "/\\") or split.startswith("."):
        raise ValueError(f"split must be a plain name like 'train', got {split!r}")
    if isinstance(shard, str):
        shard = parse_shard(shard)
    if shard is not None:
        shard = parse_shard(f"{shard[0]}/{shard[1]}")
    params = resolve_params(spec, preset, params)
    config = _config(spec.name, split, preset, params, seed)
    indices = range(num) if shard is None else shard_range(num, shard)
    if not indices:
        raise ValueError(f"shard {shard[0]}/{shard[1]} of {num} trajectories is empty; use fewer shards")
    stem = split if shard is None else _shard_stem(split, shard)
    out_dir = _prepare_out_dir(out_dir)
    out = out_dir / f"{stem}.h5"
    work = out_dir / f".{stem}.work"
    try:
        with _Lock(out_dir / f".{stem}.lock", str(out)):
            return _generate_locked(spec, split, config, indices, shard, num, out, work, workers, progress,
                                    scheduler)
    except OSError as err:
        if not disk_full(err):
            raise
        raise DataError(_disk_full_message(out, work, len(indices), err)) from err
    except (ImportError, AttributeError, RuntimeError) as err:
        msg = numpy_mismatch(err)
        if msg is None:
            raise
        raise DataError(msg) from err


#: what an extension module built for another NumPy major version says when it is imported
_NUMPY_ABI = re.compile(r"numpy\.core\.multiarray failed to import|_ARRAY_API not found|compiled using NumPy|"
                        r"numpy\.dtype size changed|No module named 'numpy\._core'|module compiled against "
                        r"(ABI|API) version|requires numpy ?>= ?2", re.I)


def numpy_mismatch(err: BaseException) -> str | None:
    """One line with the fix when ``err`` (or an exception it came from) is a simulator package, such as jax
    or jaxlib, that does not run with the installed NumPy; None for any other error."""
    seen = err
    while seen is not None:
        if _NUMPY_ABI.search(str(seen)):
            import numpy

            first = str(seen).strip().splitlines()[0] if str(seen).strip() else type(seen).__name__
            return (f"a simulator package does not run with the installed numpy {numpy.__version__} ({first}); "
                    "install versions that match, as cscnn's [data] extra bounds them: "
                    "pip install \"numpy>=1.24,<2\" \"jax>=0.4.30,<0.7\" \"jaxlib>=0.4.30,<0.7\"")
        seen = seen.__cause__ or seen.__context__
    return None


def _size(nbytes: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if nbytes >= scale:
            return f"{nbytes / scale:.3g} {unit}"
    return f"{nbytes:.0f} bytes"


def _disk_full_message(out: Path, work: Path, num: int, err: OSError) -> str:
    done = sorted(work.glob("traj_*.h5")) if work.is_dir() else []
    size = sum(p.stat().st_size for p in done)
    need = ""
    if done:
        per = size / len(done)
        need = (f"; the remaining {num - len(done)} need about {_size((num - len(done)) * per)}, and joining "
                f"all {num} into {out.name} about {_size(num * per)} more")
    saved = (f"{len(done)} of {num} trajectories are finished and kept in {work} ({_size(size)})" if done
             else "no trajectory is finished yet")
    why = "disk quota exceeded" if getattr(err, "errno", None) == errno.EDQUOT else "no space left on device"
    return (f"{why} while generating {out}: {saved}{need}; free some space and run the same command again: "
            "it continues where it stopped")


def _generate_locked(spec, split, config, indices, shard, num, out, work, workers, progress, scheduler) -> Path:
    seed, params = config["seed"], config["params"]
    first = indices[0]
    n_existing = 0
    if out.exists():
        existing = _read_config(out)
        if not _same_config(existing, config):
            raise DataError(f"{out} exists with different settings ({_config_diff(existing, config)}); delete it, "
                            "choose another out_dir, or generate with the file's settings")
        n_existing = _num_trajectories_in(out, split)
        if n_existing == len(indices):
            return out
        if shard is not None or n_existing > len(indices):
            raise DataError(f"{out} already holds {n_existing} trajectories, not {len(indices)}; "
                            "delete it or choose another out_dir")
    work.mkdir(exist_ok=True)
    cfg_file = work / "config.json"
    if cfg_file.exists():
        old = json.loads(cfg_file.read_text())
        if not _same_config(old, config):
            raise DataError(f"work folder {work} belongs to a run with different settings "
                            f"({_config_diff(old, config)}); delete it or choose another out_dir")
    else:
        tmp = cfg_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(config, sort_keys=True))
        os.replace(tmp, cfg_file)
    for stale in work.glob(".*.tmp-*"):  # files of an interrupted worker
        stale.unlink(missing_ok=True)

    new = indices[n_existing:]
    todo = [i for i in new if not _traj_path(work, i).exists()]
    if todo:
        _run_parallel(spec, params, seed, split, todo, work, workers, progress, scheduler)

    def trajectories():
        if n_existing:
            yield from iter_trajectories(out, split)
        for i in new:
            path = _traj_path(work, i)
            try:
                with open_h5(path) as f:
                    yield {k: f[k][()] for k in f}
            except (OSError, DataError) as err:
                path.unlink(missing_ok=True)
                raise DataError(f"trajectory file {path} is corrupt and was removed; re-run to regenerate it") from err

    attrs = {**_file_attrs(config, len(indices))}
    if shard is not None:
        attrs.update(shard=f"{shard[0]}/{shard[1]}", first_index=first, total_trajectories=num)
    write_trajectories(out, split, len(indices), trajectories(), attrs)
    shutil.rmtree(work, ignore_errors=True)
    return out


def _file_attrs(config: dict, num: int) -> dict:
    return {
        "task": config["task"], "split": config["split"], "preset": config["preset"], "params": config["params"],
        "seed": config["seed"], "num_trajectories": num, "versions": package_versions(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def merge_shards(data_dir, split: str, out=None) -> Path:
    """Join the ``--shard I/N`` files of ``split`` in ``data_dir`` into ``out``
    (default ``data_dir/<split>.h5``), identical to an unsharded run with the same seed.

    Raises ``DataError`` naming the files if shards are missing, overlap or were generated
    with different settings. The shard files are kept (delete them after checking)."""
    data_dir = Path(data_dir)
    files = [p for p in split_files(data_dir, split) if p.name != f"{split}.h5"]
    if not files:
        raise DataError(f"no shard files of split {split!r} in {data_dir} (expected {split}_shard*-of-*.h5)")
    infos = []
    for p in files:
        a = file_attrs(p)
        if "shard" not in a:
            raise DataError(f"{p} is not a shard written by `cscnn generate --shard` (no 'shard' attribute)")
        infos.append((a["first_index"], p, a))
    infos.sort(key=lambda t: t[0])
    ref = infos[0][2]
    cfg = _config(ref["task"], ref["split"], ref["preset"], ref["params"], ref["seed"])
    total, expect = ref["total_trajectories"], 0
    for first, p, a in infos:
        if not _same_config(_config(a["task"], a["split"], a["preset"], a["params"], a["seed"]), cfg):
            raise DataError(f"shards {infos[0][1]} and {p} were generated with different settings")
        if a["total_trajectories"] != total:
            raise DataError(f"shards {infos[0][1]} and {p} belong to runs of {total} and "
                            f"{a['total_trajectories']} trajectories")
        if first != expect:
            raise DataError(f"shard files of {split!r} in {data_dir} do not cover trajectories {expect}..{first - 1} "
                            f"(next file: {p}); generate the missing shards first")
        expect = first + a["num_trajectories"]
    if expect != total:
        raise DataError(f"shard files of {split!r} in {data_dir} cover {expect} of {total} trajectories; "
                        "generate the missing shards first")
    out = Path(out) if out is not None else data_dir / f"{split}.h5"

    def trajectories():
        for _, p, _a in infos:
            yield from iter_trajectories(p, split)

    write_trajectories(out, split, total, trajectories(), _file_attrs(cfg, total))
    return out
