"""Evaluation metrics: one-step MSE, per-field MSE and rollout MSE over time.

All errors are mean squared errors averaged over samples, grid points and
components, in the units the model sees (the data set's normalisation, when
training used one) or, for :func:`one_step_metrics` given the normalisation,
in physical units; per-field errors average over a field's components.
"""

from __future__ import annotations

import math

import torch

from .rollout import rollout

__all__ = ["mse", "per_blade_mse", "split_fields", "per_field_mse", "one_step_metrics", "rollout_metrics"]


def mse(prediction: torch.Tensor, target: torch.Tensor) -> float:
    """Mean squared error over all entries."""
    return float(((prediction.double() - target.double()) ** 2).mean())


def per_blade_mse(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(..., n_blades) x (..., n_blades) -> (n_blades,) MSE of each blade coefficient."""
    d = (prediction.double() - target.double()) ** 2
    return d.reshape(-1, d.shape[-1]).mean(0)


def _task_name(task) -> str:
    return task if isinstance(task, str) else task.name


def split_fields(task, mv: torch.Tensor, groups: bool = False) -> dict[str, torch.Tensor]:
    """Physical components of multivectors ``mv: (..., 2^n)`` as ``{name: (..., 1)}`` using
    :func:`cscnn.fields.from_multivector` (e.g. ``u, vx, vy`` for navier-stokes); with
    ``groups=True`` one entry per physical field instead (``{"smoke": (..., 1), "velocity": (..., 2)}``)."""
    from ..fields import FIELD_LAYOUTS, from_multivector

    name = _task_name(task)
    lay = FIELD_LAYOUTS[name]
    comps = from_multivector(name, mv)
    if groups:
        return {g: comps[..., list(idx)] for g, idx in lay.groups}
    return {c: comps[..., i:i + 1] for i, c in enumerate(lay.components)}


def per_field_mse(task, prediction: torch.Tensor, target: torch.Tensor, groups: bool = False) -> dict[str, float]:
    """MSE per physical component, e.g. ``{"u": .., "vx": .., "vy": ..}`` for navier-stokes
    (``groups=True``: per field, ``{"smoke": .., "velocity": ..}``)."""
    p, t = split_fields(task, prediction.double(), groups), split_fields(task, target.double(), groups)
    return {k: float(((p[k] - t[k]) ** 2).mean()) for k in p}


def _model_device(model) -> torch.device:
    p = next(iter(model.parameters()), None)
    return p.device if p is not None else torch.device("cpu")


@torch.no_grad()
def one_step_metrics(model, loader, task=None, limit_batches: int | None = None, progress: bool = False,
                     normalization=None) -> dict:
    """One-step test errors of ``model`` over ``loader`` batches ``(x, y)``.

    Returns ``{"mse": float, "per_field": {component: float}, "per_group": {field: float},
    "per_blade": [..], "num_samples": int, "units": str}`` (``per_field``/``per_group`` only when
    ``task`` is given). Errors are in the units of the batches (``"units": "model"``), or, with
    ``normalization`` (the :class:`cscnn.data.Normalization` the batches were normalised with), in
    physical units (``"units": "physical"``): predictions and targets are de-normalised first, so
    models trained on different training sets compare directly; ``"mse_normalized"`` then keeps the
    MSE in the model's units.
    """
    was_training = model.training
    model.eval()
    device = _model_device(model)
    n, sq, sq_model, blade, fields, groups = 0, 0.0, 0.0, None, {}, {}
    it = loader
    if progress:
        from tqdm.auto import tqdm

        total = len(loader) if limit_batches is None else min(len(loader), limit_batches)
        it = tqdm(loader, total=total, desc="one-step test", leave=False)
    for i, (x, y) in enumerate(it):
        if limit_batches is not None and i >= limit_batches:
            break
        pred = model(x.to(device)).cpu().double()
        y = y.double()
        b = x.shape[0]
        if normalization is not None:
            sq_model += float(((pred - y) ** 2).reshape(b, -1).mean(1).sum())
            pred, y = normalization.denormalize(pred), normalization.denormalize(y)
        sq += float(((pred - y) ** 2).reshape(b, -1).mean(1).sum())
        pb = per_blade_mse(pred, y) * b
        blade = pb if blade is None else blade + pb
        if task is not None:
            for k, v in per_field_mse(task, pred, y).items():
                fields[k] = fields.get(k, 0.0) + v * b
            for k, v in per_field_mse(task, pred, y, groups=True).items():
                groups[k] = groups.get(k, 0.0) + v * b
        n += b
    model.train(was_training)
    if n == 0:
        raise ValueError("one_step_metrics: the loader produced no samples")
    out = {"mse": sq / n, "per_blade": (blade / n).tolist(), "num_samples": n,
           "units": "model" if normalization is None else "physical"}
    if normalization is not None:
        out["mse_normalized"] = sq_model / n
    if task is not None:
        out["per_field"] = {k: v / n for k, v in fields.items()}
        out["per_group"] = {k: v / n for k, v in groups.items()}
    return out


@torch.no_grad()
def rollout_metrics(model, trajectories, time_history: int, time_future: int, time_as_axis: bool = False,
                    steps: int | None = None, task=None, progress: bool = False) -> dict:
    """Rollout MSE over time averaged over ``trajectories`` (an iterable of normalised
    (T, *spatial, 2^n) tensors).

    Returns ``{"mse_per_step": [S floats], "mse_mean": float, "per_field_per_step": {name: [S]},
    "num_trajectories": int}``.
    """
    was_training = model.training
    model.eval()
    acc, fields, count = None, {}, 0
    it = trajectories
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(trajectories, desc="rollout", leave=False)
    for traj in it:
        res = rollout(model, traj, time_history, time_future, time_as_axis, steps)
        per = res.mse_per_step
        if acc is not None and per.shape != acc.shape:
            s = min(per.shape[0], acc.shape[0])
            per, acc = per[:s], acc[:s]
            fields = {k: v[:s] for k, v in fields.items()}
        acc = per.clone() if acc is None else acc + per
        if task is not None:
            for k in split_fields(task, res.prediction[:1]):
                pf = torch.tensor([per_field_mse(task, res.prediction[s], res.target[s])[k]
                                   for s in range(per.shape[0])], dtype=torch.float64)
                fields[k] = pf if k not in fields else fields[k][:pf.shape[0]] + pf[:fields[k].shape[0]]
        count += 1
    model.train(was_training)
    if count == 0:
        raise ValueError("rollout_metrics: no trajectories given")
    mean = (acc / count).tolist()
    out = {"mse_per_step": mean, "mse_mean": float(sum(mean) / len(mean)), "num_trajectories": count,
           "time_history": time_history, "time_future": time_future}
    if task is not None:
        out["per_field_per_step"] = {k: (v / count).tolist() for k, v in fields.items()}
    finite = [m for m in mean if math.isfinite(m)]
    out["mse_final"] = finite[-1] if finite else float("nan")
    return out
