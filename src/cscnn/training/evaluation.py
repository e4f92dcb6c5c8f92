"""Test a trained checkpoint: one-step and rollout errors as JSON (:func:`evaluate`) and figures (:func:`plot`)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

from .checkpoint import CheckpointError, find_checkpoint, load_module
from .checks import DataDirError, check_data, check_device, check_positive, resolve_task, task_options
from .json_safe import write_json

__all__ = ["load_for_eval", "run_dir", "run_data_dir", "evaluate", "plot"]


def run_dir(ckpt_path: Path) -> Path:
    """The run folder of a checkpoint (``<run>/checkpoints/x.ckpt``), else the checkpoint's folder."""
    return ckpt_path.parent.parent if ckpt_path.parent.name == "checkpoints" else ckpt_path.parent


def run_data_dir(ckpt_path: Path) -> Path:
    """``data.dir`` of the config.yaml in a checkpoint's run folder; :class:`DataDirError` without one."""
    for cand in (ckpt_path.parent.parent / "config.yaml", ckpt_path.parent / "config.yaml"):
        if cand.is_file():
            from .config import parse_yaml

            d = parse_yaml(cand.read_bytes(), str(cand)) or {}  # plain data only: ConfigError for tags
            if isinstance(d, dict) and isinstance(d.get("data"), dict) and d["data"].get("dir"):
                return Path(d["data"]["dir"])
    raise DataDirError(f"cannot tell the data folder of {ckpt_path} (no config.yaml in its run folder); pass --data")


def run_config(ckpt_path: Path) -> dict | None:
    """The config.yaml of a checkpoint's run folder as plain data, or None."""
    from .config import parse_yaml

    for cand in (ckpt_path.parent.parent / "config.yaml", ckpt_path.parent / "config.yaml"):
        if cand.is_file():
            d = parse_yaml(cand.read_bytes(), str(cand))  # plain data only: ConfigError for !!python/... tags
            return d if isinstance(d, dict) else None
    return None


def load_for_eval(ckpt, data_dir=None, split: str = "test", device="cpu"):
    """``(path, module, task, data_dir, dataset, normalization)`` of a checkpoint and its ``split`` data
    (every window, normalised and resized like the training data), after task / metric / data /
    device checks."""
    from ..data import PDEDataset
    from ..data.normalization import Normalization

    dev = check_device(device)
    path = find_checkpoint(ckpt)
    module = load_module(path, map_location="cpu")
    hp = dict(module.hparams)
    data_dir = Path(run_data_dir(path) if data_dir is None else data_dir)
    # a layout from the files (the-well): resolved from the data with the run's data.well options
    task = resolve_task(hp["task"], data_dir, task_options(run_config(path)))
    if tuple(hp["metric"]) != tuple(task.metric):
        where = f" of the data in {data_dir}" if task.source is not None else ""
        raise CheckpointError(f"{path}: metric {tuple(hp['metric'])} does not match task {task.name!r} "
                              f"(metric {tuple(task.metric)}{where})")
    if not task.time_as_axis and task.channels(hp["time_history"], hp["time_future"])[0] != hp["in_channels"]:
        raise CheckpointError(f"{path}: the model reads {hp['in_channels']} multivector channels, the {task.name} data "
                              f"in {data_dir} give {task.channels(hp['time_history'], hp['time_future'])[0]} "
                              f"({', '.join(task.components)}); another data set, or other data.well options?")
    files = check_data(task, data_dir, split)
    norm = Normalization.from_dict(hp["normalization"]) if hp.get("normalization") is not None else None
    ds = PDEDataset(files[split], task, time_history=hp["time_history"], time_future=hp["time_future"],
                    windows="all", normalization=norm, split=split, resolution=hp.get("resolution"))
    return path, module.to(dev), task, data_dir, ds, norm


def _trajectories(ds, n: int | None):
    """Normalised test trajectories (PDEDataset applies its normalisation); ``(trajectory, constants)``
    pairs for a task with constant scalar inputs."""
    count = ds.num_trajectories if n is None else min(n, ds.num_trajectories)
    for i in range(count):
        traj = torch.as_tensor(ds.trajectory(i)).float()
        yield (traj, ds.constants(i)) if ds.task.constant_inputs else traj


def evaluate(ckpt, data_dir=None, out=None, split: str = "test", rollout_steps: int | None = None,
             num_rollout_trajectories: int | None = 8, batch_size: int = 16, limit_batches: int | None = None,
             device: str = "cpu", progress: bool = True) -> dict:
    """One-step test MSE, per-field MSE and rollout MSE over time of a checkpoint; saved as JSON.

    Errors are in the normalised units the model was trained in; The Well's VRMSE (overall and per
    component, ``one_step["vrmse"]``, ``["vrmse_per_field"]``) in physical units. Writes strict JSON to
    ``<out>/metrics.json`` (default out: ``<run>/eval``): non-finite values (a diverged
    model) are written as ``null`` and listed under ``"non_finite"``. ``"reference"`` holds the one-step
    MSE of the zero predictor and of last-frame persistence on the same windows and in the same units
    (:func:`cscnn.training.reference_metrics`): a model that does not beat both has not learnt the
    dynamics. Returns the dict
    (with the float values, NaN included), plus ``"path"`` and ``"non_finite"``.
    """
    from torch.utils.data import DataLoader

    from ..models import count_parameters
    from .metrics import one_step_metrics, reference_metrics, rollout_metrics

    check_positive("batch_size", batch_size)
    check_positive("limit_batches", limit_batches, allow_none=True)
    check_positive("rollout_steps", rollout_steps, allow_none=True)
    check_positive("num_rollout_trajectories", num_rollout_trajectories, allow_none=True)
    path, module, task, data_dir, ds, norm = load_for_eval(ckpt, data_dir, split, device)
    hp = dict(module.hparams)
    loader = DataLoader(ds, batch_size=batch_size, shuffle=False)
    t0 = time.time()
    one = one_step_metrics(module.model, loader, task, limit_batches=limit_batches, progress=progress,
                           data_normalization=norm)
    ref = reference_metrics(loader, task, hp["time_history"], hp["time_future"], norm, physical_units=False,
                            limit_batches=limit_batches)
    n_roll = ds.num_trajectories if num_rollout_trajectories is None else min(num_rollout_trajectories,
                                                                              ds.num_trajectories)
    roll = rollout_metrics(module.model, _trajectories(ds, n_roll), hp["time_history"], hp["time_future"],
                           task.time_as_axis, rollout_steps, task, progress=progress, total=n_roll)
    result = {
        "checkpoint": str(path), "task": task.name, "metric": list(task.metric), "model": hp["model_name"],
        "split": split, "data_dir": str(data_dir), "num_parameters": count_parameters(module.model),
        "normalized_units": norm is not None,
        "one_step": one, "rollout": roll,
        "reference": {k: {"mse": v["mse"], "per_field": v["per_field"]} for k, v in ref.items()},
        "seconds": time.time() - t0,
    }
    out = Path(out) if out is not None else run_dir(path) / "eval"
    result["non_finite"] = write_json(result, out / "metrics.json")
    result["path"] = str(out / "metrics.json")
    return result


def plot(ckpt, data_dir=None, out=None, split: str = "test", index: int = 0, rollout_steps: int | None = None,
         gif: bool = True, fps: int = 4, device: str = "cpu", progress: bool = False) -> list[Path]:
    """Target / prediction / error PNGs (one-step and last rollout step), a rollout-MSE curve
    and an animated rollout GIF of test trajectory ``index``. Returns the written paths.
    ``progress``: bars for the rollout and the GIF frames, and a line per file written."""
    from .plots import plot_fields, plot_rollout_mse, rollout_gif
    from .rollout import rollout

    check_positive("fps (frames per second)", fps)
    check_positive("rollout_steps", rollout_steps, allow_none=True)
    path, module, task, data_dir, ds, norm = load_for_eval(ckpt, data_dir, split, device)
    hp = dict(module.hparams)
    if not 0 <= index < ds.num_trajectories:
        raise ValueError(f"trajectory index {index} out of range: {split} has {ds.num_trajectories} "
                         f"(0..{ds.num_trajectories - 1})")
    out = Path(out) if out is not None else run_dir(path) / "plots"
    traj = torch.as_tensor(ds.trajectory(index)).float()
    res = rollout(module.model, traj, hp["time_history"], hp["time_future"], task.time_as_axis, rollout_steps,
                  progress=progress, task=task, constants=ds.constants(index) if task.constant_inputs else None)
    pred, target = res.prediction, res.target
    if norm is not None:  # show physical units
        pred, target = norm.denormalize(pred), norm.denormalize(target)
    name = f"{task.name} / {hp['model_name']}"
    jobs = [lambda: plot_fields(task, target[0], pred[0], out / "one_step.png", f"{name}: one-step prediction"),
            lambda: plot_fields(task, target[-1], pred[-1], out / "rollout_last.png",
                                f"{name}: rollout step {pred.shape[0]}"),
            lambda: plot_rollout_mse({hp["model_name"]: res.mse_per_step.tolist()}, out / "rollout_mse.png",
                                     f"{task.name}: rollout MSE (normalised units)", hp["time_history"])]
    if gif:
        jobs.append(lambda: rollout_gif(task, target, pred, out / "rollout.gif", fps=fps, progress=progress))
    paths = []
    for k, job in enumerate(jobs):
        paths.append(job())
        if progress:
            print(f"[{k + 1}/{len(jobs)}] wrote {paths[-1]}", file=sys.stderr, flush=True)
    return paths
