"""Tiny synthetic data sets in the storage layout of :mod:`cscnn.data` (for smoke tests).

The fields are smooth random patterns translated by one cell per time step on a
periodic grid, so a model can learn them quickly; they are not physical solutions.
Files carry the ``task`` attribute and the same datasets as generated files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["write_synthetic_dataset", "write_synthetic_splits"]


def _smooth_field(rng, shape, components: int) -> np.ndarray:
    """Sum of a few random low-frequency plane waves per component: (*shape, components)."""
    grids = np.meshgrid(*[np.arange(s) / s for s in shape], indexing="ij")
    out = np.zeros((*shape, components))
    for c in range(components):
        for _ in range(3):
            k = rng.integers(-2, 3, size=len(shape))
            phase = rng.uniform(0, 2 * np.pi)
            out[..., c] += rng.normal() * np.cos(2 * np.pi * sum(ki * g for ki, g in zip(k, grids)) + phase)
    return out


def write_synthetic_dataset(task: str, path, split: str = "train", num: int = 4, steps: int = 8, size: int = 8,
                            seed: int = 0) -> Path:
    """Write ``num`` synthetic trajectories of ``steps`` frames on a ``size``^d grid to ``path``."""
    import h5py

    from ..data import get_task

    spec = get_task(task)
    rng = np.random.default_rng(seed)
    dims = spec.grid_dims
    shape = (size,) * dims
    trajs = []
    for _ in range(num):
        base = _smooth_field(rng, shape, spec.layout.n_components)
        shift = rng.integers(0, dims)
        trajs.append(np.stack([np.roll(base, t, axis=shift) for t in range(steps)]).astype(np.float32))
    data = np.stack(trajs)  # (N, T, *shape, C)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        g = f.create_group(split)
        for key, arr in spec.split_components(data).items():
            g.create_dataset(key, data=arr)
        g.create_dataset("t", data=np.tile(np.arange(steps, dtype=np.float32), (num, 1)))
        task = spec.name
        f.attrs["task"] = task
        f.attrs["split"] = split
        f.attrs["preset"] = "synthetic"
        f.attrs["num_trajectories"] = num
    return path


def write_synthetic_splits(task: str, out_dir, num_train: int = 4, num_valid: int = 2, num_test: int = 2,
                           steps: int = 8, size: int = 8, seed: int = 0) -> Path:
    """``train.h5``, ``valid.h5`` and ``test.h5`` of synthetic data in ``out_dir``."""
    out_dir = Path(out_dir)
    for i, (split, n) in enumerate((("train", num_train), ("valid", num_valid), ("test", num_test))):
        write_synthetic_dataset(task, out_dir / f"{split}.h5", split, n, steps, size, seed + 1000 * i)
    return out_dir
