"""Lightning data module for the three tasks.

Reads ``data_dir/train.h5``, ``data_dir/valid.h5`` and ``data_dir/test.h5``.
``valid.h5`` is optional: without it, the last ``max(1, N // 10)`` training
trajectories are held out for validation (and never used for training);
with a single training trajectory validation is skipped (no val loader).
Normalisation statistics come from the training trajectories actually used
and are cached in ``data_dir/train.norm-n<N>.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from .datasets import PDEDataset
from .normalization import Normalization, compute_normalization
from .storage import DataError, open_h5
from .tasks import get_task

try:
    import lightning.pytorch as pl

    _Base = pl.LightningDataModule
except ImportError:  # pragma: no cover - lightning is in the `train` extra
    _Base = object

__all__ = ["PDEDataModule", "check_data_dir"]


def check_data_dir(data_dir, task: str, require_test: bool = True) -> dict[str, Path | None]:
    """Paths of train/valid/test files; raises ``FileNotFoundError`` naming what is missing."""
    task = get_task(task).name
    data_dir = Path(data_dir)
    files = {s: data_dir / f"{s}.h5" for s in ("train", "valid", "test")}
    needed = ["train"] + (["test"] if require_test else [])
    missing = [str(files[s]) for s in needed if not files[s].exists()]
    if missing:
        raise FileNotFoundError(
            f"missing data for {task}: {', '.join(missing)}. Generate it with "
            f"`cscnn generate {task} --split train --num N --out {data_dir}` (and --split test)"
        )
    return {s: (p if p.exists() else None) for s, p in files.items()}


class PDEDataModule(_Base):
    """Train/validation/test data for ``task`` with equivariant normalisation.

    Args:
        task: task name.
        data_dir: folder with ``train.h5``, optional ``valid.h5``, ``test.h5``.
        batch_size, num_workers: DataLoader settings.
        time_history / time_future: window lengths (task defaults if None).
        num_trajectories: number of training trajectories (sample-efficiency studies).
        normalize: compute/load normalisation from the training trajectories.
        seed: seed of the training shuffle.
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
    ):
        super().__init__()
        self.task = get_task(task)
        self.data_dir = Path(data_dir)
        self.batch_size = batch_size
        self.time_history = self.task.time_history if time_history is None else time_history
        self.time_future = self.task.time_future if time_future is None else time_future
        self.num_trajectories = num_trajectories
        self.normalize = normalize
        self.num_workers = num_workers
        self.seed = seed
        self.train_dataset = self.val_dataset = self.test_dataset = None
        self.normalization: Normalization | None = None

    def _kwargs(self):
        return {"time_history": self.time_history, "time_future": self.time_future}

    def setup(self, stage: str | None = None) -> None:
        if self.train_dataset is not None:
            return
        files = check_data_dir(self.data_dir, self.task.name, require_test=stage in (None, "test"))
        name = self.task.name
        n_train = PDEDataset(files["train"], name, **self._kwargs()).num_trajectories
        train_idx, val_idx = list(range(n_train)), None
        if files["valid"] is None and n_train > 1:
            k = max(1, n_train // 10)
            train_idx, val_idx = train_idx[:-k], train_idx[-k:]
        if self.num_trajectories is not None:
            if self.num_trajectories > len(train_idx):
                raise DataError(
                    f"{files['train']}: num_trajectories={self.num_trajectories} requested but only "
                    f"{len(train_idx)} training trajectories available"
                    + (" (10% are held out because valid.h5 is missing)" if val_idx else "")
                )
            train_idx = train_idx[: self.num_trajectories]
        raw_train = PDEDataset(files["train"], name, indices=train_idx, **self._kwargs())
        if self.normalize:
            self.normalization = self._load_or_compute_normalization(raw_train, files["train"])
        norm = self.normalization
        self.train_dataset = PDEDataset(files["train"], name, indices=train_idx, normalization=norm, **self._kwargs())
        if files["valid"] is not None:
            self.val_dataset = PDEDataset(files["valid"], name, normalization=norm, **self._kwargs())
        elif val_idx:
            self.val_dataset = PDEDataset(files["train"], name, indices=val_idx, normalization=norm, **self._kwargs())
        if files["test"] is not None:
            self.test_dataset = PDEDataset(files["test"], name, normalization=norm, **self._kwargs())

    def _load_or_compute_normalization(self, dataset: PDEDataset, train_file: Path) -> Normalization:
        with open_h5(train_file) as f:
            created = str(f.attrs.get("created", ""))
        key = {"indices": [dataset.indices[0], dataset.indices[-1], len(dataset.indices)], "created": created}
        cache = self.data_dir / f"train.norm-n{dataset.num_trajectories}.json"
        if cache.exists():
            try:
                d = json.loads(cache.read_text())
                if d.get("source") == key and d.get("task") == self.task.name:
                    return Normalization.from_dict(d)
            except (ValueError, KeyError):
                pass
        norm = compute_normalization(dataset)
        d = norm.to_dict()
        d["source"] = key
        try:
            tmp = cache.with_name(f".{cache.name}.tmp")
            tmp.write_text(json.dumps(d, indent=1))
            tmp.replace(cache)
        except OSError:  # read-only data folder: just don't cache
            pass
        return norm

    def _loader(self, ds, shuffle: bool):
        gen = torch.Generator().manual_seed(self.seed) if shuffle else None
        return DataLoader(
            ds,
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            generator=gen,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self):
        self.setup("fit")
        return self._loader(self.train_dataset, True)

    def val_dataloader(self):
        self.setup("fit")
        return self._loader(self.val_dataset, False) if self.val_dataset is not None else []

    def test_dataloader(self):
        self.setup("test")
        if self.test_dataset is None:
            raise FileNotFoundError(f"no test data: {self.data_dir / 'test.h5'} is missing")
        return self._loader(self.test_dataset, False)

    def state_dict(self) -> dict:
        return {"normalization": self.normalization.to_dict() if self.normalization else None}

    def load_state_dict(self, state: dict) -> None:
        if state.get("normalization"):
            self.normalization = Normalization.from_dict(state["normalization"])
