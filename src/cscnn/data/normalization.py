"""Equivariant normalisation of multivector fields.

Each physical field (a group of whole grades, see :class:`cscnn.fields.FieldLayout`)
is divided by one positive scalar (its RMS component value on the training
data). Only purely scalar fields (grade 0, e.g. the smoke density) are also
shifted by their mean: a scalar is O(p,q)-invariant, whereas shifting vector
or bivector components would break equivariance.

Constant scalar inputs of a task (``TaskSpec.constant_inputs``, e.g. The Well's Reynolds
number, one value per trajectory) are standardised over the training trajectories: in log10
when every training value is positive and they span at least a decade (:data:`LOG_SPAN`;
physical parameters are usually swept over decades), linearly otherwise; a value that is the
same for every training trajectory becomes 0. They are scalars, so any map of them keeps
equivariance.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from ..fields import FIELD_LAYOUTS

__all__ = ["LOG_SPAN", "Normalization", "compute_normalization", "constant_statistics"]

#: constant scalar inputs whose positive training values span at least this factor are standardised in log10
LOG_SPAN = 10.0


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
        constants: statistics of the task's constant scalar inputs (``TaskSpec.constant_inputs``),
            ``{name: {"log": bool, "mean": float, "std": float}}`` (:func:`constant_statistics`),
            applied by :meth:`normalize_constants`; None when the task has none.
    """

    def __init__(self, task: str, shift, scale, n_blades: int | None = None, constants: dict | None = None):
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
        self.constants = None
        if constants:
            # min / max: the training range (absent in normalisations written before it was kept)
            self.constants = {str(k): {"log": bool(v["log"]), "mean": float(v["mean"]), "std": float(v["std"]),
                                       **{b: float(v[b]) for b in ("min", "max") if b in v}}
                              for k, v in constants.items()}
            bad = [k for k, v in self.constants.items() if not (np.isfinite(v["mean"]) and v["std"] > 0)]
            if bad:
                raise ValueError(f"normalisation of constant scalar {bad[0]!r} needs a finite mean and std > 0, "
                                 f"got {self.constants[bad[0]]}")

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

    def check_constants(self, names) -> None:
        """A ``ValueError`` naming the first of ``names`` without statistics here."""
        missing = [n for n in names if n not in (self.constants or {})]
        if missing:
            raise ValueError(f"the normalisation of {self.task} has no statistics for the constant scalar "
                             f"{missing[0]!r} (computed without it in data.well.constant_scalars?)")

    def normalize_constants(self, names, values) -> np.ndarray:
        """Raw constant scalar inputs ``values`` ``(..., len(names))`` -> normalised, float64; a
        ``ValueError`` names a constant without statistics here."""
        values = np.asarray(values, dtype=np.float64)
        self.check_constants(names)
        out = np.empty_like(values)
        for j, n in enumerate(names):
            st = self.constants[n]
            v = values[..., j]
            if "min" in st and ((v < st["min"]) | (v > st["max"])).any():
                bad = float(v[(v < st["min"]) | (v > st["max"])].flat[0])
                seen = f"{st['min']:g}" if st["min"] == st["max"] else f"{st['min']:g} to {st['max']:g}"
                warnings.warn(f"constant scalar {n!r} = {bad:g} is outside its training values ({seen}): the model "
                              "never saw it" + (" vary; its input is " + f"{(bad - st['mean']) / st['std']:g}"
                                                if st["min"] == st["max"] and not st["log"] else ""),
                              stacklevel=2)
            if st["log"]:
                v = np.log10(np.maximum(v, np.finfo(np.float64).tiny))
            out[..., j] = (v - st["mean"]) / st["std"]
        return out

    @property
    def width(self) -> int:
        """Coefficients of one time step."""
        return self.shift.numel()

    def to_dict(self) -> dict:
        d = {"task": self.task, "shift": self.shift.tolist(), "scale": self.scale.tolist()}
        lay = FIELD_LAYOUTS.get(self.task)
        if lay is None or not lay.n_components or (lay.width, 2 ** len(lay.metric)) != (self.width, self.n_blades):
            d["n_blades"] = self.n_blades  # a layout from the files (the-well): not the registry's
        if self.constants:
            d["constants"] = {k: dict(v) for k, v in self.constants.items()}
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Normalization:
        return cls(d["task"], d["shift"], d["scale"], d.get("n_blades"), d.get("constants"))

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
    constants = None
    names = getattr(dataset.task, "constant_inputs", ())
    if names:
        values = np.stack([dataset.raw_constants(i) for i in range(dataset.num_trajectories)])
        constants = constant_statistics(names, values)
    return Normalization(dataset.task.name, shift, scale, n_blades, constants)


def constant_statistics(names, values) -> dict:
    """Statistics of constant scalar inputs over training trajectories: ``values`` ``(N, len(names))``
    raw -> ``{name: {"log", "mean", "std"}}``. ``log`` when all N values are positive and
    ``max / min >= LOG_SPAN``; ``std`` 1 where the values do not vary; ``min`` / ``max`` the raw range
    (values outside it warn when normalised)."""
    values = np.asarray(values, dtype=np.float64).reshape(-1, len(names))
    out = {}
    for j, n in enumerate(names):
        v = values[:, j]
        log = bool((v > 0).all() and v.max() / v.min() >= LOG_SPAN)
        f = np.log10(v) if log else v
        mean, std = float(f.mean()), float(f.std())
        out[n] = {"log": log, "mean": mean, "std": std if std > 1e-12 * max(1.0, abs(mean)) else 1.0,
                  "min": float(v.min()), "max": float(v.max())}
    return out
