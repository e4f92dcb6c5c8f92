"""Autoregressive rollout: feed a model's predictions back as its inputs.

Two layouts (see :mod:`cscnn.data`):

* time steps as channels (Navier-Stokes, Maxwell 3D): the model maps the last
  ``time_history`` frames ``(B, h, *spatial, 2^n)`` to the next ``time_future``
  frames ``(B, f, *spatial, 2^n)``;
* time as a grid axis (Maxwell 2D+1 on R^{1,2}): one channel, a block of ``h``
  frames ``(B, 1, h, X, Y, 2^n)`` maps to the next block of ``f`` frames
  ``(B, 1, f, X, Y, 2^n)``.

Trajectories are ``(T, *spatial, 2^n)`` or batched ``(B, T, *spatial, 2^n)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = ["RolloutResult", "pack_frames", "unpack_frames", "rollout", "rollout_mse_per_step"]


def pack_frames(frames: torch.Tensor, time_as_axis: bool) -> torch.Tensor:
    """Frames (B, h, *spatial, 2^n) -> model input: same tensor (channels) or (B, 1, h, *spatial, 2^n)."""
    return frames.unsqueeze(1) if time_as_axis else frames


def unpack_frames(y: torch.Tensor, time_as_axis: bool) -> torch.Tensor:
    """Model output -> frames (B, f, *spatial, 2^n) (inverse of :func:`pack_frames`)."""
    if time_as_axis:
        if y.shape[1] != 1:
            raise ValueError(f"time-as-axis models must output one channel, got shape {tuple(y.shape)}")
        return y[:, 0]
    return y


@dataclass
class RolloutResult:
    """``prediction`` and ``target``: (B, S, *spatial, 2^n), the S frames after the
    initial ``time_history``; ``mse_per_step``: (S,) mean over batch, grid and blades."""

    prediction: torch.Tensor
    target: torch.Tensor
    mse_per_step: torch.Tensor
    time_history: int


def rollout_mse_per_step(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(B, S, ...) x (B, S, ...) -> (S,) MSE of each predicted step."""
    d = (prediction.double() - target.double()) ** 2
    return d.transpose(0, 1).reshape(d.shape[1], -1).mean(1)


@torch.no_grad()
def rollout(model, trajectory: torch.Tensor, time_history: int, time_future: int, time_as_axis: bool = False,
            steps: int | None = None, progress: bool = False, task=None,
            constants: torch.Tensor | None = None) -> RolloutResult:
    """Autoregressive rollout of ``model`` from the first ``time_history`` frames of ``trajectory``.

    Args:
        model: maps packed frames to packed frames (see module docs), in its current mode.
        trajectory: (T, *spatial, 2^n) or (B, T, *spatial, 2^n), already normalised as the model expects.
        steps: number of predicted frames (default: all of ``T - time_history``).
        progress: a progress bar over the model calls.
        task: the :class:`cscnn.data.TaskSpec`, needed when its layout has ``C > 1`` multivectors per
            time step (The Well): ``trajectory`` is then ``(T, *spatial, C * 2^n)`` (as
            ``PDEDataset.trajectory``) and model inputs / outputs are folded into ``C`` channels per
            step (:meth:`TaskSpec.fold`); prediction and target come back unfolded.
        constants: the trajectory's constant scalar inputs for a task that has them
            (``task.constant_inputs``), as multivectors ``(k, 2^n)`` (``PDEDataset.constants``) or
            ``(B, k, 2^n)`` for a batch of trajectories: appended over the grid to every model input
            after the time steps, as the data set does for training.

    Returns a :class:`RolloutResult`; the predictions beyond ``T`` (the last block may
    overshoot) are dropped.
    """
    fold = task is not None and task.layout.channels > 1
    single = _is_single(trajectory, model, time_as_axis, task.layout.width if fold else None)
    traj = trajectory.unsqueeze(0) if single else trajectory
    T = traj.shape[1]
    h, f = int(time_history), int(time_future)
    if T <= h:
        raise ValueError(f"trajectory has {T} frames; a rollout needs more than time_history={h}")
    total = T - h if steps is None else min(int(steps), T - h)
    if total < 1:
        raise ValueError(f"rollout steps must be >= 1, got {steps}")
    param = next(iter(model.parameters()), None)
    device = param.device if param is not None else traj.device
    dtype = param.dtype if param is not None and param.is_floating_point() else traj.dtype
    frames = traj[:, :h].to(device=device, dtype=dtype)
    extra = _constant_channels(task, constants, traj.shape[0], traj.shape[2:-1], device, dtype)
    preds = []
    n_pred = 0
    calls = range(math.ceil(total / f))
    if progress:
        from tqdm.auto import tqdm

        calls = tqdm(calls, desc="rollout", unit="step", leave=False)
    for _ in calls:
        x = pack_frames(frames[:, -h:], time_as_axis)
        x = task.fold(x) if fold else x
        y = unpack_frames(model(x if extra is None else torch.cat([x, extra], 1)), time_as_axis)
        y = task.unfold(y) if fold else y
        if y.shape[1] != f:
            raise ValueError(f"model predicted {y.shape[1]} frames per step, expected time_future={f}")
        preds.append(y)
        n_pred += f
        frames = torch.cat([frames[:, -h:], y.to(frames.dtype)], 1) if h > 0 else y
    pred = torch.cat(preds, 1)[:, :total].float().cpu()
    target = traj[:, h:h + total].float().cpu()
    res = RolloutResult(pred, target, rollout_mse_per_step(pred, target), h)
    if single:
        res.prediction, res.target = res.prediction[0], res.target[0]
    return res


def _constant_channels(task, constants, batch: int, grid, device, dtype) -> torch.Tensor | None:
    """``constants`` ``(k, 2^n)`` or ``(B, k, 2^n)`` -> model channels ``(B, k, *grid, 2^n)``; None without."""
    names = tuple(getattr(task, "constant_inputs", ()) or ())
    if constants is None:
        if names:
            raise ValueError(f"task {task.name} feeds the constant scalars {list(names)} to the model: pass "
                             "rollout(..., constants=) (PDEDataset.constants(i), shape (k, 2^n))")
        return None
    c = torch.as_tensor(constants).to(device=device, dtype=dtype)
    c = c.unsqueeze(0) if c.ndim == 2 else c
    if c.ndim != 3 or c.shape[0] not in (1, batch) or (names and c.shape[1] != len(names)):
        raise ValueError(f"constants must be (k, 2^n) or ({batch}, k, 2^n) with k = {len(names)} "
                         f"({', '.join(names) or 'the constant inputs'}), got {tuple(c.shape)}")
    return c.reshape(c.shape[0], c.shape[1], *([1] * len(grid)), c.shape[2]).expand(batch, -1, *grid, -1)


def _is_single(trajectory: torch.Tensor, model, time_as_axis: bool, width: int | None = None) -> bool:
    """Whether ``trajectory`` is unbatched (T, *spatial, 2^n); the model's ``.alg`` gives the grid rank."""
    alg = getattr(model, "alg", None)
    if alg is None:
        raise ValueError("rollout needs a model with an .alg attribute (a cscnn.CliffordAlgebra)")
    spatial = alg.dim - (1 if time_as_axis else 0)  # time is one of the algebra's axes in spacetime tasks
    width = alg.n_blades if width is None else width
    if trajectory.shape[-1] != width:
        raise ValueError(f"trajectory must end in {width} coefficients for metric {alg.metric}, "
                         f"got shape {tuple(trajectory.shape)}")
    if trajectory.ndim == spatial + 2:
        return True
    if trajectory.ndim == spatial + 3:
        return False
    raise ValueError(f"trajectory must be (T, *spatial, {alg.n_blades}) or (B, T, *spatial, {alg.n_blades}) "
                     f"with {spatial} spatial axes, got shape {tuple(trajectory.shape)}")
