"""Torch datasets of time windows cut from HDF5 trajectories, as multivectors."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..fields import to_multivector
from .normalization import Normalization
from .storage import DataError, check_layout, detect_task, find_group, open_h5, read_fields
from .tasks import TaskSpec, get_task

__all__ = ["PDEDataset"]


class PDEDataset(torch.utils.data.Dataset):
    """Windows of ``time_history`` input and ``time_future`` target steps.

    Reads lazily: the HDF5 file is opened on first access in each process
    (DataLoader workers included) and only the frames of one window are read.

    Args:
        path: HDF5 file written by :func:`~cscnn.data.generate_dataset` (or by PDEArena).
        task: task name (``"navier-stokes"``, ``"maxwell3d"``, ``"maxwell2d"``).
        time_history / time_future: window lengths (defaults from the task).
        num_trajectories: use only the first ``num_trajectories`` trajectories.
        windows: ``"all"`` (every window start, ``stride`` apart) or ``"random"``
            (one random window per trajectory and item).
        normalization: optional :class:`Normalization` applied to x and y.
        indices: trajectory indices in the file to use (before ``num_trajectories``).
        stride: distance between window starts for ``windows="all"``.
        split: group name inside the file (default: the only group).

    Items are ``(x, y)`` float32: ``x (time_history, *spatial, 2**n)`` and
    ``y (time_future, *spatial, 2**n)``; for spacetime tasks (maxwell2d)
    ``x (1, time_history, X, Y, 8)`` and ``y (1, time_future, X, Y, 8)``.
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
    ):
        self.task = get_task(task)
        self.path = Path(path)
        self.time_history = self.task.time_history if time_history is None else int(time_history)
        self.time_future = self.task.time_future if time_future is None else int(time_future)
        if self.time_history < 1 or self.time_future < 1:
            raise ValueError(f"time_history and time_future must be >= 1, got {self.time_history}, {self.time_future}")
        if windows not in ("all", "random"):
            raise ValueError(f"windows must be 'all' or 'random', got {windows!r}")
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        self.windows, self.stride, self.split = windows, int(stride), split
        if normalization is not None and normalization.task != self.task.name:
            raise ValueError(f"normalisation is for {normalization.task}, dataset is {self.task.name}")
        self.normalization = normalization

        with open_h5(self.path) as f:
            group = find_group(f, self.path, split)
            found = detect_task(f, group)
            if found is not None and found != self.task.name:
                raise DataError(f"{self.path} holds {found} data, not {self.task.name}")
            n_file, self.num_frames, self.spatial_shape = check_layout(self.task.name, group, self.path)
            self._group_name = group.name
        idx = list(range(n_file)) if indices is None else [int(i) for i in indices]
        bad = [i for i in idx if not 0 <= i < n_file]
        if bad:
            raise DataError(f"{self.path} has {n_file} trajectories; indices {bad[:5]} are out of range")
        if num_trajectories is not None:
            if num_trajectories < 1 or num_trajectories > len(idx):
                raise DataError(
                    f"{self.path}: num_trajectories={num_trajectories} but only {len(idx)} trajectories available"
                )
            idx = idx[:num_trajectories]
        if not idx:
            raise DataError(f"{self.path} holds no trajectories")
        self.indices = idx
        span = self.time_history + self.time_future
        if span > self.num_frames:
            raise DataError(
                f"{self.path}: windows of {self.time_history} + {self.time_future} steps need {span} frames, "
                f"trajectories have only {self.num_frames}"
            )
        self.windows_per_trajectory = (self.num_frames - span) // self.stride + 1
        self._file = None
        self._pid = None

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

    def _group(self):
        if self._file is None or self._pid != os.getpid():
            self._file = open_h5(self.path)
            self._pid = os.getpid()
        return self._file[self._group_name]

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_file"] = None
        state["_pid"] = None
        return state

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def raw_fields(self, i: int, times: slice = slice(None)) -> np.ndarray:
        """Physical components of the i-th used trajectory: (T, *spatial, n_components),
        checked to be finite."""
        traj = self.indices[i]
        try:
            f = read_fields(self.task.name, self._group(), traj, times)
        except (OSError, KeyError) as err:
            raise DataError(f"{self.path}: cannot read trajectory {traj}: {err}") from err
        if not np.isfinite(f).all():
            raise DataError(f"{self.path}: trajectory {traj} contains NaN or inf (frames {times})")
        return f

    def _to_mv(self, fields: np.ndarray) -> torch.Tensor:
        mv = to_multivector(self.task.name, torch.from_numpy(np.ascontiguousarray(fields, dtype=np.float32)))
        if self.normalization is not None:
            mv = self.normalization.normalize(mv)
        return mv

    def trajectory(self, i: int) -> torch.Tensor:
        """Whole i-th trajectory as multivectors (T, *spatial, 2**n), normalised if set."""
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
        x, y = mv[:th], mv[th:]
        if self.task.time_as_axis:
            x, y = x[None], y[None]
        return x, y

    def __repr__(self) -> str:
        return (
            f"PDEDataset({str(self.path)!r}, task={self.task.name!r}, trajectories={self.num_trajectories}, "
            f"frames={self.num_frames}, spatial={self.spatial_shape}, windows={self.windows!r}, len={len(self)})"
        )
