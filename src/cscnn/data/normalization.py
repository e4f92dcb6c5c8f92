"""Equivariant normalisation of multivector fields.

Each physical field (a group of whole grades, see :class:`cscnn.fields.FieldLayout`)
is divided by one positive scalar (its RMS component value on the training
data). Only purely scalar fields (grade 0, e.g. the smoke density) are also
shifted by their mean: a scalar is O(p,q)-invariant, whereas shifting vector
or bivector components would break equivariance.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from ..fields import FIELD_LAYOUTS

__all__ = ["Normalization", "compute_normalization"]


class Normalization:
    """Per-blade ``shift`` and ``scale`` for one task: ``normalize(x) = (x - shift) / scale``.

    Args:
        task: task name.
        shift: (width,) non-zero only on scalar fields.
        scale: (width,) constant over the blades of each physical field.
        n_blades: blades of one multivector (default: from the registered task's layout, whose
            ``width`` then is the expected length). The width is ``C * n_blades`` for a layout of
            ``C`` multivectors per time step (The Well); multivector ``c`` is entries
            ``c * n_blades ... (c + 1) * n_blades - 1``.
    """

    def __init__(self, task: str, shift, scale, n_blades: int | None = None):
        if n_blades is None:
            lay = FIELD_LAYOUTS[task]
            n_blades, width = 2 ** len(lay.metric), lay.width
        else:
            width = torch.as_tensor(shift).numel()
        self.task, self.n_blades = task, int(n_blades)
        self.shift = torch.as_tensor(shift, dtype=torch.float64).reshape(width)
        self.scale = torch.as_tensor(scale, dtype=torch.float64).reshape(width)
        if width % self.n_blades:
            raise ValueError(f"normalisation of {width} coefficients is not whole multivectors of {n_blades} blades")
        if (self.scale <= 0).any() or not torch.isfinite(self.scale).all():
            raise ValueError(f"normalisation scales must be positive and finite, got {self.scale.tolist()}")
        scalar_blade = torch.arange(width) % self.n_blades == 0
        if (self.shift[~scalar_blade] != 0).any():
            raise ValueError("only the scalar blade may be shifted (equivariance)")

    def _cast(self, x: torch.Tensor):
        return self.shift.to(x.device, x.dtype), self.scale.to(x.device, x.dtype)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., width) -> (..., width)`` (``width = n_blades`` unless several multivectors per step)."""
        shift, scale = self._cast(x)
        return (x - shift) / scale

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`normalize`."""
        shift, scale = self._cast(x)
        return x * scale + shift

    @property
    def width(self) -> int:
        """Coefficients of one time step."""
        return self.shift.numel()

    def to_dict(self) -> dict:
        d = {"task": self.task, "shift": self.shift.tolist(), "scale": self.scale.tolist()}
        lay = FIELD_LAYOUTS.get(self.task)
        if lay is None or not lay.n_components or (lay.width, 2 ** len(lay.metric)) != (self.width, self.n_blades):
            d["n_blades"] = self.n_blades  # a layout from the files (the-well): not the registry's
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Normalization:
        return cls(d["task"], d["shift"], d["scale"], d.get("n_blades"))

    def save(self, path) -> None:
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(self.to_dict(), indent=1))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path) -> Normalization:
        return cls.from_dict(json.loads(Path(path).read_text()))

    def __repr__(self) -> str:
        return f"Normalization(task={self.task!r}, shift={self.shift.tolist()}, scale={self.scale.tolist()})"


def compute_normalization(dataset) -> Normalization:
    """Statistics over every trajectory of a :class:`~cscnn.data.PDEDataset`, read one
    trajectory at a time (raw physical values, before any normalisation)."""
    lay = dataset.task.layout
    n, n_blades = lay.width, 2 ** len(lay.metric)
    sums = np.zeros(lay.n_components)
    sq = np.zeros(lay.n_components)
    count = 0
    for i in range(dataset.num_trajectories):
        f = dataset.raw_fields(i).astype(np.float64)
        f = f.reshape(-1, lay.n_components)
        sums += f.sum(0)
        sq += (f**2).sum(0)
        count += f.shape[0]
    shift = np.zeros(n)
    scale = np.ones(n)
    for _name, comps in lay.groups:
        comps = list(comps)
        blades = [lay.blades[c] for c in comps]
        if len(comps) == 1 and blades[0] % n_blades == 0:  # a scalar field: mean and std
            mean = sums[comps[0]] / count
            var = sq[comps[0]] / count - mean**2
            shift[blades[0]] = mean
            s = float(np.sqrt(max(var, 0.0)))
        else:  # one RMS over all components of the field
            s = float(np.sqrt(sq[comps].sum() / (count * len(comps))))
        for b in blades:
            scale[b] = s if s > 1e-12 else 1.0
    return Normalization(dataset.task.name, shift, scale, n_blades)
