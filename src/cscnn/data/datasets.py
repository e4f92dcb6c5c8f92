"""Torch datasets of time windows cut from HDF5 trajectories (one file or several shards), as multivectors."""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..fields import to_multivector
from .checksum import file_checksum
from .errors import DataError, MissingDataError
from .hdf5 import check_shards, open_h5, split_files
from .normalization import Normalization
from .resize import parse_resolution, resize_fields
from .tasks import TaskSpec, get_task

__all__ = ["PDEDataset"]


class PDEDataset(torch.utils.data.Dataset):
    """Windows of ``time_history`` input and ``time_future`` target steps.

    Reads lazily: each HDF5 file is opened on first access in each process
    (DataLoader workers included) and only the frames of one window are read.
    Several files (PDEArena shards of one split) are read together as one data set,
    without copying: trajectory ``i`` runs over the files in order.

    Args:
        path: an HDF5 file, a list of files (shards of one split), or a data folder
            (then the files of ``split`` there, see :func:`~cscnn.data.hdf5.split_files`).
        task: task name or :class:`~cscnn.data.TaskSpec`.
        time_history / time_future: window lengths (defaults from the task).
        num_trajectories: use only the first ``num_trajectories`` trajectories (>= 1).
        windows: ``"all"`` (every window start, ``stride`` apart) or ``"random"``
            (one random window per trajectory and item).
        normalization: optional :class:`Normalization` applied to x and y.
        indices: trajectory indices (over all files) to use (before ``num_trajectories``).
        stride: distance between window starts for ``windows="all"``.
        split: group name inside the files (default: the only group; ``"train"`` for a folder).
        resolution: resize the grid on load to this shape (an int or one per grid axis;
            see :mod:`cscnn.data.resize`): inputs, targets and :meth:`raw_fields`.
        task_options: options of a task whose layout comes from the files (``the-well``:
            ``tensor_fields``, ``pseudovectors``, ``wall_padding``, ``open_padding``); the task
            is resolved from the first file (:meth:`TaskSpec.resolve`), see ``self.task``.

    Items are ``(x, y)`` float32: ``x (time_history, *grid, 2**n)`` and
    ``y (time_future, *grid, 2**n)``; for spacetime tasks (maxwell2d)
    ``x (1, time_history, X, Y, 8)`` and ``y (1, time_future, X, Y, 8)``. A layout of
    ``C = task.layout.channels`` multivectors per step (The Well) gives
    ``x (time_history * C, *grid, 2**n)``, step-major (:meth:`TaskSpec.fold`). A task with
    ``k`` constant scalar inputs (``task.constant_inputs``, The Well's ``constant_scalars``)
    appends ``k`` channels to ``x``, ``(time_history * C + k, *grid, 2**n)``: each the trajectory's
    value (normalised when ``normalization`` is set) on the scalar blade at every grid point
    (:meth:`constants`). Why here and not in the model (as the task-wide symmetry-breaking fields of
    :class:`cscnn.models.WithConstantFields`): the values differ between trajectories, so they travel
    with each sample; rollouts append them again at every step (``rollout(..., constants=)``).
    """

    def __init__(
        self,
        path,
        task: str | TaskSpec,
        time_history: int | None = None,
        time_future: int | None = None,
        num_trajectories: int | None = None,
        windows: str = "all",
        normalization: Normalization | None = None,
        indices: Sequence[int] | None = None,
        stride: int = 1,
        split: str | None = None,
        resolution=None,
        task_options: dict | None = None,
    ):
        self.task = get_task(task)
        self.time_history = self.task.time_history if time_history is None else int(time_history)
        self.time_future = self.task.time_future if time_future is None else int(time_future)
        if self.time_history < 1 or self.time_future < 1:
            raise ValueError(f"time_history and time_future must be >= 1, got {self.time_history}, {self.time_future}")
        if windows not in ("all", "random"):
            raise ValueError(f"windows must be 'all' or 'random', got {windows!r}")
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        if num_trajectories is not None and (isinstance(num_trajectories, bool) or int(num_trajectories) < 1):
            raise ValueError(f"num_trajectories must be a positive integer (or None for all), got {num_trajectories!r}")
        self.windows, self.stride, self.split = windows, int(stride), split
        if normalization is not None and normalization.task != self.task.name:
            raise ValueError(f"normalisation is for {normalization.task}, dataset is {self.task.name}")
        self.normalization = normalization

        self.files = self._resolve_files(path, split)
        self.task = self.task.resolve(self.files, **(task_options or {}))
        if normalization is not None and normalization.width != self.task.layout.width:
            raise ValueError(f"normalisation has {normalization.width} coefficients per step, the data "
                             f"{self.task.layout.width}")
        if normalization is not None and self.task.constant_inputs:
            normalization.check_constants(self.task.constant_inputs)
        self.path = self.files[0] if len(self.files) == 1 else self.files[0].parent
        infos = check_shards(self.files, self.task, split)
        self._groups = [inf["group"] for inf in infos]
        self._counts = [inf["num"] for inf in infos]
        self._starts = np.cumsum([0, *self._counts])
        self.num_frames = infos[0]["frames"]
        self.stored_shape = infos[0]["grid"]
        self.resolution = parse_resolution(resolution, self.stored_shape)
        if self.resolution == self.stored_shape:
            self.resolution = None
        self.spatial_shape = self.resolution or self.stored_shape
        if self.resolution is not None:
            self._check_resize_memory()
        n_file = int(self._starts[-1])
        idx = list(range(n_file)) if indices is None else [int(i) for i in indices]
        bad = [i for i in idx if not 0 <= i < n_file]
        if bad:
            raise DataError(f"{self._where()} has {n_file} trajectories; indices {bad[:5]} are out of range")
        if num_trajectories is not None:
            if num_trajectories > len(idx):
                raise DataError(
                    f"{self._where()}: num_trajectories={num_trajectories} but only {len(idx)} trajectories available"
                )
            idx = idx[:num_trajectories]
        if not idx:
            raise DataError(f"{self._where()} holds no trajectories")
        self.indices = idx
        span = self.time_history + self.time_future
        if span > self.num_frames:
            raise DataError(
                f"{self._where()}: windows of {self.time_history} + {self.time_future} steps need {span} frames, "
                f"trajectories have only {self.num_frames}"
            )
        self.windows_per_trajectory = (self.num_frames - span) // self.stride + 1
        self._handles: dict = {}
        self._pid = None
        self._constants: dict[int, tuple] = {}  # i -> (normalisation used, (k, 2**n) multivectors)

    def _check_resize_memory(self) -> None:
        """Refuse a resolution whose resized trajectory would not fit in memory, from an estimate:
        per frame the float32 components at the stored size and at the new one (twice: the axis-by-axis
        passes) and the float32 multivector, plus the float64 filter matrices."""
        from .._memory import check_memory

        n_new, n_old = math.prod(self.resolution), math.prod(self.stored_shape)
        comps = self.task.layout.n_components
        per_frame = 4 * (comps * (n_old + 2 * n_new) + self.task.n_blades * n_new)
        weights = 8 * sum(a * b for a, b in zip(self.resolution, self.stored_shape))
        check_memory(self.num_frames * per_frame + weights,
                     f"{self._where()}: data.resolution={list(self.resolution)} (a trajectory of {self.num_frames} "
                     f"frames resized from {list(self.stored_shape)})", "choose a smaller data.resolution")

    @staticmethod
    def _resolve_files(path, split) -> list[Path]:
        if isinstance(path, (list, tuple)):
            files = [Path(p) for p in path]
            if not files:
                raise DataError("PDEDataset got an empty list of files")
            return files
        path = Path(path)
        if path.is_dir():
            files = split_files(path, split or "train")
            if not files:
                raise MissingDataError(f"data folder {path} has no {split or 'train'!r} data "
                                       f"(looked for {split or 'train'}.h5 or *{split or 'train'}*.h5)")
            return files
        return [path]

    def _where(self) -> str:
        return str(self.files[0]) if len(self.files) == 1 else f"{self.files[0]} (and {len(self.files) - 1} more files)"

    # ----------------------------------------------------------------- access
    @property
    def num_trajectories(self) -> int:
        return len(self.indices)

    @property
    def in_channels(self) -> int:
        return self.task.channels(self.time_history, self.time_future)[0]

    @property
    def out_channels(self) -> int:
        return self.task.channels(self.time_history, self.time_future)[1]

    def _locate(self, traj: int) -> tuple[int, int]:
        """(file number, index in that file) of trajectory ``traj`` (over all files)."""
        k = int(np.searchsorted(self._starts, traj, side="right")) - 1
        return k, traj - int(self._starts[k])

    def _group(self, k: int = 0):
        if self._pid != os.getpid():
            self._handles, self._pid = {}, os.getpid()
        if k not in self._handles:
            self._handles[k] = open_h5(self.files[k])
        return self._handles[k][self._groups[k]]

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_handles"] = {}
        state["_pid"] = None
        return state

    def close(self) -> None:
        for f in self._handles.values():
            f.close()
        self._handles = {}

    def raw_fields(self, i: int, times: slice = slice(None)) -> np.ndarray:
        """Physical components of the i-th used trajectory at the dataset's resolution:
        (T, *spatial, n_components), checked to be finite."""
        traj = self.indices[i]
        k, local = self._locate(traj)
        try:
            f = self.task.read(self._group(k), local, times)
        except (OSError, KeyError) as err:
            raise DataError(f"{self.files[k]}: cannot read trajectory {local}: {err}") from err
        if not np.isfinite(f).all():
            raise DataError(f"{self.files[k]}: trajectory {local} contains NaN or inf (frames {times})")
        if self.resolution is not None:
            f = resize_fields(f, self.resolution)
        return f

    def raw_constants(self, i: int) -> np.ndarray:
        """The constant scalar inputs (``task.constant_inputs``) of the i-th used trajectory, raw
        (physical) values: ``(k,)`` float64, checked to be finite; ``(0,)`` without."""
        if not self.task.constant_inputs:
            return np.zeros(0)
        k, local = self._locate(self.indices[i])
        try:
            v = self.task.read_constants(self._group(k), local)
        except (OSError, KeyError) as err:
            raise DataError(f"{self.files[k]}: cannot read the constant scalars of trajectory {local}: {err}") from err
        if not np.isfinite(v).all():
            raise DataError(f"{self.files[k]}: constant scalars {list(self.task.constant_inputs)} of trajectory "
                            f"{local} are not finite: {v.tolist()}")
        return v

    def constants(self, i: int) -> torch.Tensor:
        """The constant scalar inputs of the i-th used trajectory as multivectors ``(k, 2**n)`` float32:
        the value (normalised when the dataset has a normalisation) on the scalar blade, zeros elsewhere.
        Appended to every ``x`` over the grid; pass it to ``rollout(..., constants=)``."""
        cached = self._constants.get(i)
        if cached is not None and cached[0] is self.normalization:  # it may be replaced (a resumed data module)
            return cached[1]
        v = self.raw_constants(i)
        if self.normalization is not None and v.size:
            v = self.normalization.normalize_constants(self.task.constant_inputs, v)
        mv = torch.zeros(v.size, self.task.n_blades)
        mv[:, 0] = torch.from_numpy(v)
        self._constants[i] = (self.normalization, mv)
        return mv

    def fingerprint(self) -> str:
        """A digest of the data this dataset reads: file names and the SHA-256 of their whole
        content (:func:`cscnn.data.checksum.file_checksum`, cached while a file is untouched),
        trajectory counts, shapes, used indices and resolution. Any change of a file's bytes,
        also an in-place edit that keeps its size, gives another digest."""
        h = hashlib.sha256()
        meta = {"task": self.task.name, "files": [(p.name, file_checksum(p)) for p in self.files],
                "counts": self._counts, "frames": self.num_frames, "grid": self.stored_shape,
                "indices": self.indices, "resolution": self.resolution}
        if self.task.source is not None:  # a layout from the files (the-well): it depends on options
            meta["components"] = self.task.components
        if self.task.constant_inputs:  # their statistics are part of the normalisation
            meta["constants"] = list(self.task.constant_inputs)
        h.update(json.dumps(meta, sort_keys=True).encode())
        return h.hexdigest()

    def _to_mv(self, fields: np.ndarray) -> torch.Tensor:
        mv = to_multivector(self.task, torch.from_numpy(np.ascontiguousarray(fields, dtype=np.float32)))
        if self.normalization is not None:
            mv = self.normalization.normalize(mv)
        return mv

    def trajectory(self, i: int) -> torch.Tensor:
        """Whole i-th trajectory as multivectors (T, *spatial, 2**n), normalised if set
        (``(T, *spatial, C * 2**n)`` for ``C`` multivectors per step; items are folded into
        model channels, :meth:`TaskSpec.fold`)."""
        return self._to_mv(self.raw_fields(i))

    def __len__(self) -> int:
        if self.windows == "random":
            return self.num_trajectories
        return self.num_trajectories * self.windows_per_trajectory

    def __getitem__(self, item: int):
        if not 0 <= item < len(self):
            raise IndexError(f"index {item} out of range for {len(self)} windows")
        if self.windows == "random":
            traj = item
            start = int(torch.randint(self.windows_per_trajectory, ()).item()) * self.stride
        else:
            traj, w = divmod(item, self.windows_per_trajectory)
            start = w * self.stride
        th, tf = self.time_history, self.time_future
        mv = self._to_mv(self.raw_fields(traj, slice(start, start + th + tf)))
        x, y = self.task.fold(mv[:th]), self.task.fold(mv[th:])
        if self.task.time_as_axis:
            x, y = x[None], y[None]
        if self.task.constant_inputs:
            c = self.constants(traj)  # (k, 2**n) -> (k, *grid, 2**n)
            grid = x.shape[1:-1]
            x = torch.cat([x, c.reshape(c.shape[0], *([1] * len(grid)), c.shape[1]).expand(-1, *grid, -1)], 0)
        return x, y

    def __repr__(self) -> str:
        return (
            f"PDEDataset({self._where()!r}, task={self.task.name!r}, trajectories={self.num_trajectories}, "
            f"frames={self.num_frames}, spatial={self.spatial_shape}, windows={self.windows!r}, len={len(self)})"
        )
