"""LightningModule for autoregressive PDE forecasting with any registered model."""

from __future__ import annotations

import math

import lightning as L
import torch
import torch.nn.functional as F

from ..algebra import CliffordAlgebra

__all__ = ["ForecastModule", "HPARAM_KEYS", "TrainingDiverged", "adam"]


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
    "normalization", "resolution", "symmetry_breaking",
)


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

    Batches are ``(x, y)``: ``x: (B, in_channels, *grid, 2^n)``, ``y: (B, out_channels, *grid, 2^n)``.
    All hyper-parameters are plain Python data, so checkpoints load with ``torch.load(weights_only=True)``.
    """

    def __init__(self, model_name: str, metric, task: str, in_channels: int, out_channels: int,
                 hidden_channels: int | None = None, model_kwargs: dict | None = None, time_history: int = 1,
                 time_future: int = 1, time_as_axis: bool = False, lr: float = 1e-3, weight_decay: float = 0.0,
                 scheduler: str = "cosine", warmup_steps: int = 0, min_lr: float = 0.0,
                 normalization: dict | None = None, resolution=None, symmetry_breaking=None):
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
        return F.mse_loss(pred.float(), y.float())

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
