"""Evaluation metrics: one-step MSE, per-field MSE, The Well's VRMSE and rollout MSE over time.

All errors are mean squared errors averaged over samples, grid points and
components, in the units the model sees (the data set's normalisation, when
training used one) or, for :func:`one_step_metrics` given the normalisation,
in physical units; per-field errors average over a field's components.
"""

from __future__ import annotations

import math

import torch

from .rollout import rollout

__all__ = ["mse", "per_blade_mse", "split_fields", "per_field_mse", "vrmse", "one_step_metrics", "rollout_metrics",
           "ReferencePredictor", "reference_metrics"]

VRMSE_EPS = 1e-7  # The Well's eps (the_well.benchmark.metrics.VRMSE)


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

    lay = FIELD_LAYOUTS[task] if isinstance(task, str) else task.layout  # a TaskSpec: its (resolved) layout
    comps = from_multivector(lay, mv)
    if groups:
        return {g: comps[..., list(idx)] for g, idx in lay.groups}
    return {c: comps[..., i:i + 1] for i, c in enumerate(lay.components)}


def per_field_mse(task, prediction: torch.Tensor, target: torch.Tensor, groups: bool = False) -> dict[str, float]:
    """MSE per physical component, e.g. ``{"u": .., "vx": .., "vy": ..}`` for navier-stokes
    (``groups=True``: per field, ``{"smoke": .., "velocity": ..}``)."""
    p, t = split_fields(task, prediction.double(), groups), split_fields(task, target.double(), groups)
    return {k: float(((p[k] - t[k]) ** 2).mean()) for k in p}


def vrmse(task, prediction: torch.Tensor, target: torch.Tensor, eps: float = VRMSE_EPS) -> torch.Tensor:
    """The Well's variance-scaled RMSE of every physical component of every sample:
    ``sqrt(mean_grid((p - y)^2) / (var_grid(y) + eps))`` with the unbiased variance over the
    grid, as ``the_well.benchmark.metrics.VRMSE``.

    Args:
        prediction, target: multivector fields ``(..., *grid, width)`` (time steps unfolded,
            :meth:`cscnn.data.TaskSpec.unfold`), the last ``task.grid_dims`` axes before the blades
            being the grid, in the units to score (physical units for comparison with The Well).
    Returns:
        ``(..., n_components)`` float64.
    """
    from ..fields import from_multivector

    lay = task.layout
    p, y = from_multivector(lay, prediction.double()), from_multivector(lay, target.double())
    axes = tuple(range(-task.grid_dims - 1, -1))
    var = y.var(dim=axes, correction=1) if y[..., 0].numel() > 1 else torch.zeros_like(y.mean(dim=axes))
    return (((p - y) ** 2).mean(dim=axes) / (var + eps)).sqrt()


def _model_device(model) -> torch.device:
    p = next(iter(model.parameters()), None)
    return p.device if p is not None else torch.device("cpu")


@torch.no_grad()
def one_step_metrics(model, loader, task=None, limit_batches: int | None = None, progress: bool = False,
                     normalization=None, data_normalization=None) -> dict:
    """One-step test errors of ``model`` over ``loader`` batches ``(x, y)``.

    Returns ``{"mse": float, "per_field": {component: float}, "per_group": {field: float},
    "per_blade": [..], "num_samples": int, "units": str}`` (``per_field``/``per_group`` only when
    ``task`` is given). With ``task``, ``mse`` is the mean over the task's physical components (blades
    that carry no field are left out, as in the paper's metric) and ``mse_all_blades`` the mean over
    every blade; without, the mean over every blade. Errors are in the units of the batches
    (``"units": "model"``), or, with
    ``normalization`` (the :class:`cscnn.data.Normalization` the batches were normalised with), in
    physical units (``"units": "physical"``): predictions and targets are de-normalised first, so
    models trained on different training sets compare directly; ``"mse_normalized"`` then keeps the
    MSE in the model's units.

    With ``task`` also The Well's VRMSE (:func:`vrmse`, per sample and output step, then averaged):
    ``"vrmse"`` (the mean over components, as The Well's tables), ``"vrmse_per_field"``
    ``{component: float}`` and ``"vrmse_units"``. It is computed in physical units when the batches'
    normalisation is known (``normalization``, or ``data_normalization``, which leaves the MSEs in the
    model's units). Batches of a layout with several multivectors per step are unfolded first
    (:meth:`cscnn.data.TaskSpec.unfold`), so ``per_blade`` has ``layout.width`` entries.
    """
    if isinstance(task, str):
        from ..data import get_task

        task = get_task(task)
    stats_norm = normalization if normalization is not None else data_normalization
    vr, vr_count = None, 0
    was_training = model.training
    model.eval()
    device = _model_device(model)
    n, sq, sq_model, blade, fields, groups, fields_model = 0, 0.0, 0.0, None, {}, {}, {}
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
        if task is not None:
            pred, y = task.unfold(pred), task.unfold(y)
            p_phys, y_phys = (pred, y) if stats_norm is None else (stats_norm.denormalize(pred),
                                                                   stats_norm.denormalize(y))
            v = vrmse(task, p_phys, y_phys)
            v = v.reshape(-1, v.shape[-1])
            vr = v.sum(0) if vr is None else vr + v.sum(0)
            vr_count += v.shape[0]
        if normalization is not None:
            sq_model += float(((pred - y) ** 2).reshape(b, -1).mean(1).sum())
            if task is not None:
                for k, v in per_field_mse(task, pred, y).items():
                    fields_model[k] = fields_model.get(k, 0.0) + v * b
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
        per = (vr / vr_count).tolist()
        out["vrmse"] = sum(per) / len(per)
        out["vrmse_per_field"] = dict(zip(task.components, per))
        out["vrmse_units"] = "model" if stats_norm is None else "physical"
        # with a task, "mse" is over its physical components only (the paper's metric): blades that carry no
        # field (the pseudoscalar of navier-stokes, the scalar and pseudoscalar of maxwell3d) are left out.
        # Their normalisation scale is 1, so in physical units they would swamp small fields (maxwell3d's E
        # and H have scales ~0.02-0.07). The MSE over every blade stays as "mse_all_blades".
        out["mse_all_blades"] = out["mse"]
        out["mse"] = sum(out["per_field"].values()) / len(out["per_field"])
        if normalization is not None:
            out["mse_normalized_all_blades"] = out["mse_normalized"]
            out["mse_normalized"] = sum(fields_model.values()) / n / len(fields_model)
    return out


class ReferencePredictor(torch.nn.Module):
    """A parameter-free forecast to read a trained model's error against.

    ``kind="zero"`` predicts the zero field (in physical units: under a normalisation that shifts a
    scalar field, the normalised value of 0); ``kind="persistence"`` repeats the last input frame for
    every output step. A model that does not beat both has not learnt the dynamics.

    Args:
        task: the :class:`cscnn.data.TaskSpec` of the batches (its time layout and field layout).
        time_history, time_future: input and output steps of a sample.
        kind: ``"zero"`` or ``"persistence"``.
        normalization: the :class:`cscnn.data.Normalization` the batches were normalised with, if any.

    ``forward(x)``: a model input ``(B, C_in, *spatial, 2**n)`` -> ``(B, C_out, *spatial, 2**n)``, the
    layout of the task's targets (time as the first grid axis for a spacetime task: ``(B, 1, T, ...)``;
    otherwise steps stacked as channels, with any constant scalar input channels after them ignored).
    """

    KINDS = ("zero", "persistence")

    def __init__(self, task, time_history: int, time_future: int, kind: str, normalization=None):
        super().__init__()
        if kind not in self.KINDS:
            raise ValueError(f"reference predictor kind must be one of {self.KINDS}, got {kind!r}")
        self.task, self.kind, self.normalization = task, kind, normalization
        self.time_history, self.time_future = int(time_history), int(time_future)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.task.time_as_axis:  # (B, 1, T_in, *grid, n) -> (B, 1, T_out, *grid, n)
            last = x[:, :1, -1:]
            out = last.expand(-1, -1, self.time_future, *last.shape[3:])
        else:  # (B, T_in * C (+ constants), *grid, n) -> (B, T_out * C, *grid, n)
            c = self.task.layout.channels
            last = x[:, (self.time_history - 1) * c:self.time_history * c]
            out = last.repeat(1, self.time_future, *([1] * (x.ndim - 2)))
        if self.kind == "persistence":
            return out.clone()
        zero = torch.zeros_like(self.task.unfold(out))
        if self.normalization is not None:
            zero = self.normalization.normalize(zero)
        return self.task.fold(zero)


def reference_metrics(loader, task, time_history: int, time_future: int, normalization=None,
                      physical_units: bool = True, limit_batches: int | None = None) -> dict:
    """:func:`one_step_metrics` of the zero predictor and of last-frame persistence
    (:class:`ReferencePredictor`) over ``loader``: ``{"zero": {...}, "persistence": {...}}``.

    ``normalization``: the :class:`cscnn.data.Normalization` the batches were normalised with (None:
    raw data). The errors are then in physical units, like a trained model's in
    :func:`one_step_metrics` given the normalisation, or with ``physical_units=False`` in the
    normalised units the model sees."""
    return {kind: one_step_metrics(ReferencePredictor(task, time_history, time_future, kind, normalization),
                                   loader, task, limit_batches=limit_batches,
                                   normalization=normalization if physical_units else None)
            for kind in ReferencePredictor.KINDS}


@torch.no_grad()
def rollout_metrics(model, trajectories, time_history: int, time_future: int, time_as_axis: bool = False,
                    steps: int | None = None, task=None, progress: bool = False, total: int | None = None) -> dict:
    """Rollout MSE over time averaged over ``trajectories`` (an iterable of normalised
    (T, *spatial, 2^n) tensors, or of ``(trajectory, constants)`` pairs for a task with constant
    scalar inputs, ``constants`` as ``PDEDataset.constants(i)``); ``total``: their number, for the
    progress bar (default: ``len()`` when they have one).

    Returns ``{"mse_per_step": [S floats], "mse_mean": float, "per_field_per_step": {name: [S]},
    "num_trajectories": int}``. Trajectories of a layout with several multivectors per step are
    ``(T, *spatial, layout.width)`` (``PDEDataset.trajectory``); ``task`` is then required.
    """
    if isinstance(task, str):
        from ..data import get_task

        task = get_task(task)
    was_training = model.training
    model.eval()
    acc, fields, count = None, {}, 0
    it = trajectories
    if progress:
        from tqdm.auto import tqdm

        if total is None and hasattr(trajectories, "__len__"):
            total = len(trajectories)
        it = tqdm(trajectories, desc="rollout", unit="trajectory", total=total, leave=False)
    for traj in it:
        traj, constants = traj if isinstance(traj, (tuple, list)) else (traj, None)
        res = rollout(model, traj, time_history, time_future, time_as_axis, steps, task=task, constants=constants)
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
    out = {"num_trajectories": count, "time_history": time_history, "time_future": time_future}
    if task is not None:
        out["per_field_per_step"] = {k: (v / count).tolist() for k, v in fields.items()}
        out["mse_per_step_all_blades"] = mean
        # over the physical components only, as one_step_metrics' "mse"
        mean = (sum(fields.values()) / len(fields) / count).tolist()
    out["mse_per_step"] = mean
    out["mse_mean"] = float(sum(mean) / len(mean))
    finite = [m for m in mean if math.isfinite(m)]
    out["mse_final"] = finite[-1] if finite else float("nan")
    return out
