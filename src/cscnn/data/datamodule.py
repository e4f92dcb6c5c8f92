"""Lightning data module for every registered task.

Reads cscnn's ``train.h5`` / ``valid.h5`` / ``test.h5`` or a PDEArena-style folder
(every ``*.h5`` whose name contains the split, read together; see :mod:`cscnn.data.hdf5`).
Validation data are optional: without them, the last ``max(1, N // 10)`` training
trajectories are held out for validation (and never used for training); with a
single training trajectory validation is skipped (no val loader).

``resolution`` resizes every sample on load (:mod:`cscnn.data.resize`); the
normalisation statistics come from the training trajectories actually used, at
that resolution, and are cached in ``data_dir/train.norm-<digest>.json`` where the
digest covers the data themselves (:meth:`PDEDataset.fingerprint`: the SHA-256 of every
byte of the files, :mod:`cscnn.data.checksum`), so any edit of a file gives new statistics.
The checksums of the training and validation files are saved in checkpoints
(:meth:`PDEDataModule.state_dict`); a resumed run refuses files that changed.

Loaders: the training order is a function of ``(seed, epoch)`` only, each DDP
process reads its own part (:class:`~cscnn.data.sampler.ResumableSampler`, set up
from the attached trainer's ``world_size`` / ``global_rank``), and the position in
the epoch is saved in checkpoints, so a run resumed mid-epoch sees the same batches
as an uninterrupted one. Lightning's own sampler injection is not needed (and not
applied, since the sampler is a ``DistributedSampler``).
"""

from __future__ import annotations

import json
from pathlib import Path

from .checksum import file_checksum
from .datasets import PDEDataset
from .errors import DataError, MissingDataError
from .hdf5 import check_data_dir
from .normalization import Normalization, compute_normalization
from .sampler import ResumableLoader, ResumableSampler
from .tasks import get_task

try:
    import lightning.pytorch as pl

    _Base = pl.LightningDataModule
except ImportError:  # pragma: no cover - lightning is in the `train` extra
    _Base = object

__all__ = ["PDEDataModule", "check_data_dir"]


def _positive_int(name: str, value, allow_none: bool = False, minimum: int = 1):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{name} must be {what}{' or None' if allow_none else ''}, got {value!r}")
    return value


class PDEDataModule(_Base):
    """Train/validation/test data for ``task`` with equivariant normalisation.

    Args:
        task: task name.
        data_dir: folder with ``train.h5``, optional ``valid.h5``, ``test.h5``, or PDEArena shards.
        batch_size, num_workers: DataLoader settings (batch_size >= 1, num_workers >= 0).
        time_history / time_future: window lengths (task defaults if None).
        num_trajectories: number of training trajectories (sample-efficiency studies).
        normalize: compute/load normalisation from the training trajectories.
        seed: seed of the training order.
        resolution: grid shape to resize to on load (int or one per axis), None: as stored.
        shuffle: shuffle the training windows (each epoch another order, from ``seed``).
        task_options: options of a task whose layout comes from the files (``the-well``, see
            :mod:`cscnn.data.tasks.the_well`); the task is resolved from ``data_dir`` in :meth:`setup`.
    """

    def __init__(
        self,
        task: str,
        data_dir,
        batch_size: int = 8,
        time_history: int | None = None,
        time_future: int | None = None,
        num_trajectories: int | None = None,
        normalize: bool = True,
        num_workers: int = 0,
        seed: int = 0,
        resolution=None,
        shuffle: bool = True,
        task_options: dict | None = None,
    ):
        super().__init__()
        self.task = get_task(task)
        self.task_options = dict(task_options or {})
        self.data_dir = Path(data_dir)
        self.batch_size = _positive_int("batch_size", batch_size)
        self.time_history = self.task.time_history if time_history is None else time_history
        self.time_future = self.task.time_future if time_future is None else time_future
        self.num_trajectories = _positive_int("num_trajectories", num_trajectories, allow_none=True)
        self.normalize = normalize
        self.num_workers = _positive_int("num_workers", num_workers, minimum=0)
        self.seed = seed
        self.resolution = resolution
        self.shuffle = shuffle
        self.files: dict | None = None
        self.train_dataset = self.val_dataset = self.test_dataset = None
        self.normalization: Normalization | None = None

    def _kwargs(self):
        return {"time_history": self.time_history, "time_future": self.time_future, "resolution": self.resolution,
                "task_options": self.task_options}

    def setup(self, stage: str | None = None) -> None:
        if self.train_dataset is not None:
            if stage in (None, "test") and self.test_dataset is None:
                self._setup_test()
            return
        if self.task.source is not None and self.data_dir.is_dir():  # layout from the files (the-well)
            self.task = self.task.resolve(self.data_dir, **self.task_options)
        self.files = files = check_data_dir(self.data_dir, self.task, require_test=stage in (None, "test"))
        task = self.task
        n_train = PDEDataset(files["train"], task, split="train", **self._kwargs()).num_trajectories
        train_idx, val_idx = list(range(n_train)), None
        if files["valid"] is None and n_train > 1:
            k = max(1, n_train // 10)
            train_idx, val_idx = train_idx[:-k], train_idx[-k:]
        if self.num_trajectories is not None:
            if self.num_trajectories > len(train_idx):
                raise DataError(
                    f"{self.data_dir}: num_trajectories={self.num_trajectories} requested but only "
                    f"{len(train_idx)} training trajectories available"
                    + (" (10% are held out because there is no validation split)" if val_idx else "")
                )
            train_idx = train_idx[: self.num_trajectories]
        raw_train = PDEDataset(files["train"], task, indices=train_idx, split="train", **self._kwargs())
        if self.normalize and self.normalization is None:
            self.normalization = self._load_or_compute_normalization(raw_train)
        norm = self.normalization
        self.train_dataset = PDEDataset(files["train"], task, indices=train_idx, normalization=norm, split="train",
                                        **self._kwargs())
        if files["valid"] is not None:
            self.val_dataset = PDEDataset(files["valid"], task, normalization=norm, split="valid", **self._kwargs())
        elif val_idx:
            self.val_dataset = PDEDataset(files["train"], task, indices=val_idx, normalization=norm, split="train",
                                          **self._kwargs())
        self._setup_test()

    def _setup_test(self) -> None:
        files = check_data_dir(self.data_dir, self.task, splits=())
        if files["test"] is not None:
            self.test_dataset = PDEDataset(files["test"], self.task, normalization=self.normalization, split="test",
                                           **self._kwargs())

    def _load_or_compute_normalization(self, dataset: PDEDataset) -> Normalization:
        digest = dataset.fingerprint()
        cache = self.data_dir / f"train.norm-{digest[:16]}.json"
        if cache.exists():
            try:
                d = json.loads(cache.read_text())
                if d.get("source") == digest and d.get("task") == self.task.name:
                    return Normalization.from_dict(d)
            except (ValueError, KeyError):
                pass
        norm = compute_normalization(dataset)
        d = norm.to_dict()
        d["source"] = digest
        try:
            tmp = cache.with_name(f".{cache.name}.tmp")
            tmp.write_text(json.dumps(d, indent=1))
            tmp.replace(cache)
        except OSError:  # read-only data folder: just don't cache
            pass
        return norm

    # --------------------------------------------------------------- loaders
    def _replicas(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        if trainer is not None and trainer.world_size > 1:
            return int(trainer.world_size), int(trainer.global_rank)
        return 1, 0

    def _loader(self, ds, shuffle: bool):
        replicas, rank = self._replicas()
        sampler = ResumableSampler(ds, num_replicas=replicas, rank=rank, shuffle=shuffle, seed=self.seed)
        return ResumableLoader(ds, sampler, batch_size=self.batch_size, num_workers=self.num_workers,
                               persistent_workers=self.num_workers > 0)

    def train_dataloader(self):
        self.setup("fit")
        return self._loader(self.train_dataset, self.shuffle)

    def val_dataloader(self):
        self.setup("fit")
        return self._loader(self.val_dataset, False) if self.val_dataset is not None else []

    def test_dataloader(self):
        self.setup("test")
        if self.test_dataset is None:
            raise MissingDataError(f"no test data in {self.data_dir} (test.h5 or *test*.h5)")
        return self._loader(self.test_dataset, False)

    def data_checksums(self) -> dict[str, list[list[str]]]:
        """``{split: [[file name, checksum], ...]}`` of the training and validation files
        (:func:`cscnn.data.checksum.file_checksum`, SHA-256 of the content), computed once per data
        module. Saved in checkpoints (:meth:`state_dict`), so that a resumed run can refuse data
        that changed since (:meth:`changed_data`)."""
        if getattr(self, "_checksums", None) is None:
            if self.files is None:
                self.setup("fit")
            self._checksums = {s: [[p.name, file_checksum(p)] for p in self.files[s]]
                               for s in ("train", "valid") if self.files.get(s)}
        return self._checksums

    def changed_data(self, state: dict | None) -> list[str]:
        """The training and validation files that differ from the ones recorded in ``state`` (a
        :meth:`state_dict` read from a checkpoint), one line each naming the file; ``[]`` when they
        are the same or ``state`` records none (checkpoints written before checksums were kept)."""
        recorded = (state or {}).get("data_files")
        if not isinstance(recorded, dict):
            return []
        now = self.data_checksums()
        out = []
        for split in sorted(set(recorded) | set(now)):
            old = {str(n): str(c) for n, c in recorded.get(split) or []}
            new = {n: c for n, c in now.get(split) or []}
            folder = self.files[split][0].parent if self.files.get(split) else self.data_dir
            for name in sorted(set(old) | set(new)):
                path = folder / name
                if name not in new:
                    out.append(f"{path} is missing (a {split} file of the run)")
                elif name not in old:
                    out.append(f"{path} was not a {split} file of the run")
                elif old[name] != new[name]:
                    out.append(f"{path} has changed (content {old[name][:19]}... when the checkpoint was "
                               f"written, now {new[name][:19]}...)")
        return out

    def state_dict(self) -> dict:
        return {"normalization": self.normalization.to_dict() if self.normalization else None,
                "data_files": self.data_checksums() if self.files is not None else None}

    def load_state_dict(self, state: dict) -> None:
        if state.get("normalization"):
            self.normalization = Normalization.from_dict(state["normalization"])
            for ds in (self.train_dataset, self.val_dataset, self.test_dataset):
                if ds is not None:
                    ds.normalization = self.normalization
