"""LightningModule for autoregressive PDE forecasting with any registered model."""

from __future__ import annotations

import math

import lightning as L
import torch
import torch.nn.functional as F

from ..algebra import CliffordAlgebra

__all__ = ["ForecastModule", "HPARAM_KEYS", "TrainingDiverged", "adam", "physical_blades"]


def adam(params, fused: bool = True, **kwargs) -> torch.optim.Adam:
    """``torch.optim.Adam`` as one fused operator over all parameters where torch supports it (CPU from
    torch 2.4, CUDA), ``fused`` is True and every parameter is real, else as a few ``foreach`` operators
    over all of them.

    A CS-ResNet has hundreds of small parameter tensors (each kernel network has its own); torch's
    default Adam on CPU updates them one by one, about ten operators each (5,700 of the 11,700
    operators of the paper CS-ResNet's CPU training step; docs/results/step_speed.md). Pass
    ``fused=False`` under Lightning's mixed precision with gradient clipping (Lightning refuses to clip
    for an optimizer that unscales gradients itself, as a fused one does). A run resumed from a
    checkpoint continues with the implementation stored in its optimizer state."""
    params = list(params)
    if fused and all(torch.is_floating_point(p) for p in params):  # not complex ones (the FNO's spectral weights)
        try:
            return torch.optim.Adam(params, fused=True, **kwargs)
        except (RuntimeError, ValueError, TypeError):  # device or dtype without a fused kernel, or an old torch
            pass
    return torch.optim.Adam(params, foreach=True, **kwargs)


class TrainingDiverged(RuntimeError):
    """A training or validation loss (or a weight about to be saved) is NaN or infinite."""

# Everything a checkpoint needs to rebuild its model, stored as plain data in its hyper-parameters.
HPARAM_KEYS = (
    "model_name", "metric", "task", "in_channels", "out_channels", "hidden_channels", "model_kwargs",
    "time_history", "time_future", "time_as_axis", "lr", "weight_decay", "scheduler", "warmup_steps", "min_lr",
    "normalization", "resolution", "symmetry_breaking", "loss_blades",
)


def physical_blades(task) -> list[list[int]]:
    """The blades of a task's physical components, one list per multivector channel of a time step
    (``loss_blades`` of :class:`ForecastModule`): ``[[0, 1, 2]]`` for navier-stokes (u, vx, vy),
    ``[[1, 2, 3, 4, 5, 6]]`` for maxwell3d (E and H), ``[[4, 5, 6]]`` for maxwell2d (Ex, Ey, cBz)."""
    layout = task.layout
    n = 2 ** len(layout.metric)
    out: list[list[int]] = [[] for _ in range(layout.channels)]
    for b in sorted(set(layout.blades)):
        out[b // n].append(b % n)
    return out


def _check_loss_blades(blades, n_blades: int, out_channels: int) -> list[list[int]] | None:
    """``loss_blades`` as plain lists, or ValueError."""
    if blades is None:
        return None
    ok = isinstance(blades, (list, tuple)) and len(blades) >= 1 and out_channels % len(blades) == 0 and all(
        isinstance(c, (list, tuple)) and all(isinstance(b, int) and not isinstance(b, bool) and 0 <= b < n_blades
                                             for b in c) for c in blades) and any(len(c) for c in blades)
    if not ok:
        raise ValueError(f"loss_blades must be one list of blade indices (0..{n_blades - 1}) per multivector channel "
                         f"of a time step ({out_channels} output channels), not all empty, got {blades!r}")
    return [sorted({int(b) for b in c}) for c in blades]


def _select_blades(t: torch.Tensor, blades: list[list[int]]) -> torch.Tensor:
    """The coefficients ``blades`` of every output step of ``t: (B, K * C, *spatial, n)`` as one flat
    tensor per sample, C = ``len(blades)`` multivector channels per step."""
    c = len(blades)
    if c == 1:
        return t[..., blades[0]]
    steps = t.unflatten(1, (t.shape[1] // c, c))  # (B, K, C, *spatial, n)
    return torch.cat([steps[:, :, i, ..., idx].flatten(2) for i, idx in enumerate(blades) if idx], -1)


class ForecastModule(L.LightningModule):
    """Next-step(s) forecasting: ``x -> model(x) ~ y`` with an MSE loss, Adam and a cosine or
    constant learning-rate schedule (per optimizer step, with optional linear warm-up).

    Args:
        model_name: a name in :data:`cscnn.models.MODELS`; the model is built with
            ``build_model(model_name, CliffordAlgebra(metric), in_channels, out_channels,
            hidden_channels, **model_kwargs)``.
        metric: the task's metric, e.g. ``(1, 1)``.
        task: the task name (stored for evaluation and checks).
        normalization: ``Normalization.to_dict()`` of the training data (plain data) or None.
        resolution: the grid the data were resized to on load (``data.resolution``), stored so
            evaluation resizes test data alike; None: as stored.
        symmetry_breaking: names of fields the task declares (``TaskSpec.symmetry_breaking``, e.g.
            ``["gravity"]``) that the model reads as extra constant input channels: ``self.model`` is
            then a :class:`cscnn.models.WithConstantFields` around a model with ``in_channels + k``
            input channels, and still maps the data's ``(B, in_channels, ...)`` fields.
        loss_blades: the blades the loss covers, one list per multivector channel of a time step, e.g.
            ``[[0, 1, 2]]`` (u, vx, vy of navier-stokes; :func:`physical_blades` of a task) or ``[[4, 5, 6]]``
            (the Faraday bivector of maxwell2d); the MSE is the mean over these coefficients of every
            output step. None: over every blade of every output channel.

    Batches are ``(x, y)``: ``x: (B, in_channels, *grid, 2^n)``, ``y: (B, out_channels, *grid, 2^n)``.
    All hyper-parameters are plain Python data, so checkpoints load with ``torch.load(weights_only=True)``.
    """

    def __init__(self, model_name: str, metric, task: str, in_channels: int, out_channels: int,
                 hidden_channels: int | None = None, model_kwargs: dict | None = None, time_history: int = 1,
                 time_future: int = 1, time_as_axis: bool = False, lr: float = 1e-3, weight_decay: float = 0.0,
                 scheduler: str = "cosine", warmup_steps: int = 0, min_lr: float = 0.0,
                 normalization: dict | None = None, resolution=None, symmetry_breaking=None,
                 loss_blades: list | None = None):
        super().__init__()
        from ..data import get_task
        from ..models import WithConstantFields, build_model

        if scheduler not in ("cosine", "constant"):
            raise ValueError(f"scheduler must be 'cosine' or 'constant', got {scheduler!r}")
        metric = [int(m) for m in metric]
        model_kwargs = dict(model_kwargs or {})
        self.save_hyperparameters({
            "model_name": model_name, "metric": metric, "task": task, "in_channels": int(in_channels),
            "out_channels": int(out_channels), "hidden_channels": hidden_channels, "model_kwargs": model_kwargs,
            "time_history": int(time_history), "time_future": int(time_future), "time_as_axis": bool(time_as_axis),
            "lr": float(lr), "weight_decay": float(weight_decay), "scheduler": scheduler,
            "warmup_steps": int(warmup_steps), "min_lr": float(min_lr), "normalization": normalization,
            "resolution": resolution, "symmetry_breaking": list(symmetry_breaking or []),
            "loss_blades": _check_loss_blades(loss_blades, 2 ** len(metric), int(out_channels)),
        })
        self.alg = CliffordAlgebra(metric)
        extra = get_task(task).symmetry_breaking_fields(symmetry_breaking) if symmetry_breaking else None
        k = 0 if extra is None else len(extra)
        self.model = build_model(model_name, self.alg, in_channels + k, out_channels, hidden_channels,
                                 **model_kwargs)
        if extra is not None:
            self.model = WithConstantFields(self.model, extra.astype('float32'))
        model_alg = getattr(self.model, "alg", None)
        if model_alg is not None and tuple(model_alg.metric) != tuple(metric):
            raise ValueError(f"model {model_name!r} was built for metric {model_alg.metric}, expected {tuple(metric)}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    # -------------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Keep only tensors in the saved state dict, so it loads with ``weights_only=True``
        (neuraloperator's FNO adds a ``_metadata`` entry holding Python functions), and
        refuse to save non-finite weights (:class:`TrainingDiverged`)."""
        sd = checkpoint.get("state_dict", {})
        for k in [k for k, v in sd.items() if not isinstance(v, torch.Tensor)]:
            del sd[k]
        bad = [k for k, v in sd.items() if (v.is_floating_point() or v.is_complex()) and not torch.isfinite(v).all()]
        if bad:
            raise TrainingDiverged(f"not saving a checkpoint at step {checkpoint.get('global_step')}: weights "
                                   f"{', '.join(bad[:5])}{' ...' if len(bad) > 5 else ''} are not finite; "
                                   f"lower optim.lr (now {self.hparams.lr:g}) or check the data")

    def _check_finite(self, loss: torch.Tensor, what: str, batch_idx: int) -> None:
        """Raise :class:`TrainingDiverged` (on every process under DDP) when ``loss`` is NaN or inf."""
        bad = not bool(torch.isfinite(loss.detach()))
        if self._trainer is not None:
            bad = self.trainer.strategy.reduce_boolean_decision(bad, all=False)
        if bad:
            raise TrainingDiverged(
                f"{what} loss is {float(loss)} at step {self.global_step} (epoch {self.current_epoch}, batch "
                f"{batch_idx}): training stopped, no checkpoint of the diverged weights was saved; lower "
                f"optim.lr (now {self.hparams.lr:g}) or check the data")

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        state_dict = {k: v for k, v in state_dict.items() if isinstance(v, torch.Tensor)}
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def _loss(self, batch) -> torch.Tensor:
        x, y = batch
        pred = self.model(x)
        if pred.shape != y.shape:
            raise ValueError(f"model output {tuple(pred.shape)} does not match target {tuple(y.shape)}")
        blades = self.hparams.get("loss_blades")
        if blades is None:
            return F.mse_loss(pred.float(), y.float())
        return F.mse_loss(_select_blades(pred, blades).float(), _select_blades(y, blades).float())

    def training_step(self, batch, batch_idx):
        loss = self._loss(batch)
        self._check_finite(loss, "the training", batch_idx)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch[0].shape[0])
        return loss

    def validation_step(self, batch, batch_idx):
        loss = self._loss(batch)
        self._check_finite(loss, "the validation", batch_idx)
        self.log("val/loss", loss, prog_bar=True, sync_dist=True, batch_size=batch[0].shape[0])
        return loss

    def test_step(self, batch, batch_idx):
        loss = self._loss(batch)
        self.log("test/mse", loss, sync_dist=True, batch_size=batch[0].shape[0])
        return loss

    def on_train_batch_start(self, batch, batch_idx):
        opt = self.trainer.optimizers[0] if self.trainer.optimizers else None
        if opt is not None:
            self.log("train/lr", opt.param_groups[0]["lr"], batch_size=batch[0].shape[0])

    def configure_optimizers(self):
        hp = self.hparams
        mixed = self._trainer is not None and "mixed" in str(self.trainer.precision)
        opt = adam(self.parameters(), fused=not mixed, lr=hp.lr, weight_decay=hp.weight_decay)
        total = max(1, int(self.trainer.estimated_stepping_batches)) if self._trainer is not None else 1
        if not math.isfinite(total):
            total = 1
        warm, floor = hp.warmup_steps, hp.min_lr / hp.lr
        cosine = hp.scheduler == "cosine"

        def factor(step: int) -> float:
            if warm > 0 and step < warm:
                return (step + 1) / warm
            if not cosine:
                return 1.0
            t = min(1.0, (step - warm) / max(1, total - warm))
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step", "frequency": 1}}
