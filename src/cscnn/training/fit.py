"""Training a config: data module, model, Lightning Trainer, resume checks, and :func:`train`.

Run folder layout (``cfg.out``, default ``outputs/<name>``)::

    config.yaml                 the resolved config of the run
    train.lock                  held (flock) by the training run writing the folder
    checkpoints/best.ckpt       lowest val/loss
    checkpoints/last.ckpt       latest state (resume point): after every validation, at the end, on SIGINT/SIGTERM
    logs/csv/version_k/metrics.csv
    logs/tensorboard/version_k/events.*
    eval/metrics.json           written by ``evaluate``
    plots/*.png, plots/rollout.gif   written by ``plot``
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import lightning as L

from .callbacks import LatestCheckpoint, RestoreDataPosition, ValidateAtEnd, stop_on_signals
from .checkpoint import (
    AtomicCheckpointIO,
    CheckpointError,
    check_compatible,
    checkpoint_hparams,
    plain_data,
    read_checkpoint,
)
from .checks import SPLITS, check_data, check_metric, check_resume, resolve_task, task_options
from .config import ConfigError, ExperimentConfig, save_config, validate_config
from .run_folder import check_run_folder, check_writable, remove_checkpoints
from .run_lock import lock_run_folder

__all__ = ["generate_missing", "make_datamodule", "module_hparams", "build_module", "make_trainer", "train",
           "saved_activation_bytes"]


def generate_missing(cfg: ExperimentConfig, task, splits=SPLITS, progress: bool = True) -> Path:
    """Generate the splits of ``cfg.data.dir`` that have no files yet (resumable)."""
    from ..data import generate_dataset, split_files

    data_dir = Path(cfg.data.dir)
    g = cfg.data.generate
    for s in splits:
        if not split_files(data_dir, s):
            n = getattr(g, s)
            print(f"generating {n} {task.name} trajectories ({g.preset} preset) -> {data_dir / (s + '.h5')}")
            generate_dataset(task.name, s, n, data_dir, preset=g.preset, workers=g.workers, seed=g.seed,
                             progress=progress, params=g.params or None)
    return data_dir


def make_datamodule(cfg: ExperimentConfig, task):
    """The :class:`cscnn.data.PDEDataModule` of ``cfg.data`` (its loaders shard the data under DDP and
    resume mid-epoch in the same order)."""
    from ..data import PDEDataModule

    d = cfg.data
    return PDEDataModule(task, d.dir, batch_size=d.batch_size, time_history=d.time_history,
                         time_future=d.time_future, num_trajectories=d.num_train, normalize=d.normalize,
                         num_workers=d.num_workers, seed=cfg.seed, resolution=d.resolution, shuffle=d.shuffle,
                         task_options=task_options(cfg) if task.source is not None else None)


def module_hparams(cfg: ExperimentConfig, task, normalization: dict | None = None) -> dict:
    """The :class:`ForecastModule` arguments of a config (plain data, stored in checkpoints)."""
    from .module import physical_blades

    th = cfg.data.time_history or task.time_history
    tf = cfg.data.time_future or task.time_future
    cin, cout = task.channels(th, tf)
    model_kwargs = plain_data(cfg.model.kwargs)
    if model_kwargs.get("padding_mode") == "auto":  # the task's boundary conditions (the-well: from the files)
        model_kwargs["padding_mode"] = plain_data(task.padding)  # one mode, or a list of one per axis
    return {
        "model_name": cfg.model.name, "metric": list(task.metric), "task": task.name, "in_channels": cin,
        "out_channels": cout, "hidden_channels": cfg.model.hidden_channels,
        "model_kwargs": model_kwargs,
        "time_history": th, "time_future": tf, "time_as_axis": task.time_as_axis, "lr": cfg.optim.lr,
        "weight_decay": cfg.optim.weight_decay, "scheduler": cfg.optim.scheduler,
        "warmup_steps": cfg.optim.warmup_steps, "min_lr": cfg.optim.min_lr, "normalization": normalization,
        "resolution": plain_data(cfg.data.resolution), "symmetry_breaking": list(cfg.data.symmetry_breaking),
        "loss_blades": physical_blades(task) if cfg.optim.loss == "physical" else None,
    }


def build_module(cfg: ExperimentConfig, task, normalization: dict | None = None, copies: int = 1,
                 sample_shape=None):
    """The :class:`ForecastModule` of a config; :class:`ConfigError` when the model cannot be built.

    The model is first built on the meta device (nothing allocated): when its parameters and buffers,
    ``copies`` times (4 for training: weights, gradients and Adam's two moments), exceed the memory
    available, :class:`cscnn._memory.MemoryEstimateError` gives the estimate instead. A model whose
    constructor reads tensor values (the Clifford ResNet baseline: cliffordlayers checks its signature
    with ``.item()``) cannot be built on the meta device and is built without the estimate.

    With ``sample_shape`` (one training input, ``(C, *grid, 2^n)``) a ``kernel_size`` reaching beyond
    every grid axis is refused, and the estimate of a training step adds what one forward pass on a batch of
    ``data.batch_size`` such inputs saves for the backward pass (activations, dense kernels and their
    kernel-network activations), measured on the meta device (:func:`saved_activation_bytes`) and
    compared with the memory of the device that trains (host memory, or the GPU's)."""
    import torch

    from .._memory import MemoryEstimateError, check_memory
    from .module import ForecastModule

    hp = module_hparams(cfg, task, normalization)
    if sample_shape is not None:
        _check_kernel_fits_grid(cfg, tuple(sample_shape[1:-1]))
    try:
        with torch.device("meta"):
            meta = ForecastModule(**hp).model
    except MemoryEstimateError:
        raise
    except (TypeError, ValueError) as e:
        raise ConfigError(f"cannot build model {cfg.model.name!r} with hidden_channels={cfg.model.hidden_channels} "
                          f"and kwargs {cfg.model.kwargs}: {e}") from e
    except (RuntimeError, NotImplementedError):
        # a model whose constructor reads tensor values (e.g. cliffordlayers' signature check calls .item()):
        # it cannot be sized on the meta device, so it is built without the estimate
        meta = None
    if meta is not None:
        nbytes = sum(t.numel() * t.element_size() for t in (*meta.parameters(), *meta.buffers()))
        what = "training" if copies > 1 else "building"
        label = f"model {cfg.model.name!r} (hidden_channels={cfg.model.hidden_channels})"
        check_memory(nbytes * copies, f"{what} {label}",
                     "lower model.hidden_channels (or the kernel size, the number of blocks)")
        if sample_shape is not None:
            _check_training_step(cfg, meta, nbytes * copies, sample_shape, label)
    try:
        return ForecastModule(**hp)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"cannot build model {cfg.model.name!r} with hidden_channels={cfg.model.hidden_channels} "
                          f"and kwargs {cfg.model.kwargs}: {e}") from e


def _check_kernel_fits_grid(cfg: ExperimentConfig, grid: tuple[int, ...]) -> None:
    """ConfigError for a ``kernel_size`` whose taps reach farther than any two grid points are apart
    (``kernel_size // 2 > max(grid) - 1``): its outer taps would only ever meet padding."""
    k = (cfg.model.kwargs or {}).get("kernel_size")
    if isinstance(k, int) and not isinstance(k, bool) and grid and k // 2 > max(grid) - 1:
        shape = "x".join(map(str, grid))
        raise ConfigError(f"model.kwargs.kernel_size={k} is larger than the data's grid ({shape}) allows: its taps "
                          f"reach {k // 2} points either way, but no two grid points are more than {max(grid) - 1} "
                          f"apart, so its outer taps only ever meet padding; choose a kernel_size of at most "
                          f"{2 * max(grid) - 1}")


def saved_activation_bytes(model, input_shape, dtype=None) -> int | None:
    """Bytes that autograd saves for the backward pass in one forward pass of ``model`` (built on the
    meta device) on an input of ``input_shape``, the model's own parameters not counted: intermediate
    activations, dense kernels and the kernel networks' activations. Measured with
    ``torch.autograd.graph.saved_tensors_hooks`` on meta tensors (nothing allocated); None when the
    model cannot run on the meta device."""
    import torch

    params = {id(p) for p in model.parameters()}
    seen: dict[int, torch.Tensor] = {}

    def pack(t):
        if id(t) not in params:
            seen.setdefault(id(t), t)  # (held, so ids stay unique)
        return t

    p = next(model.parameters(), None)
    dtype = dtype or (p.dtype if p is not None else torch.float32)
    try:
        with torch.device("meta"), torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            model(torch.empty(tuple(input_shape), device="meta", dtype=dtype))
    except Exception:  # an operator without a meta implementation, a value read with .item(), ...
        return None
    return sum(t.numel() * t.element_size() for t in seen.values())


def _check_training_step(cfg: ExperimentConfig, meta, state_bytes: int, sample_shape, label: str) -> None:
    import torch

    from .._memory import check_memory

    batch = (cfg.data.batch_size, *sample_shape)
    saved = saved_activation_bytes(meta, batch)
    if saved is None:
        return
    if str(cfg.trainer.precision) in ("64", "64-true"):
        saved *= 2  # measured in the model's float32
    # the backward pass's own transients: measured peak RSS of a CPU forward + backward was 1.27x (ResNet)
    # to 1.55x (CS-ResNet) the saved bytes (configs/cpu/ns_*.yaml, batch 8 at 128x128, batch 16 at 64x64)
    saved = int(saved * 1.5)
    total = state_bytes + saved
    what = (f"a training step of {label} on a batch of {batch[0]} x {'x'.join(map(str, sample_shape[1:-1]))} grids "
            f"(weights, gradients and Adam moments {_fmt(state_bytes)}, activations and kernels kept for the "
            f"backward pass {_fmt(saved)})")
    hint = "lower data.batch_size, model.hidden_channels or the kernel size"
    accel = str(cfg.trainer.accelerator)
    if accel in ("gpu", "cuda") or (accel == "auto" and torch.cuda.is_available()):
        if torch.cuda.is_available():
            check_memory(total, what, hint, available=torch.cuda.get_device_properties(0).total_memory,
                         where="GPU memory")
        return
    check_memory(total, what, hint)


def _fmt(n: int) -> str:
    from .._memory import format_bytes

    return format_bytes(n)


def check_compile_backend(backend: str) -> None:
    """:class:`ConfigError` unless ``backend`` is one of ``torch._dynamo.list_backends()``."""
    import torch

    if backend not in torch._dynamo.list_backends(exclude_tags=()):  # (debug backends accepted, not listed)
        raise ConfigError(f"config key 'trainer.compile_backend' must be a torch.compile backend such as "
                          f"{', '.join(torch._dynamo.list_backends())}; got {backend!r}")


def compile_model(model, mode: str, backend: str = "inductor") -> None:
    """Compile ``model`` in place with ``torch.compile`` (``nn.Module.compile``: its parameters, state_dict
    keys and checkpoints stay as they are); the first training step compiles (minutes for a CS-ResNet with
    inductor on a CPU). ``mode="reduce-overhead"`` adds CUDA graphs on a GPU, which remove the per-operator
    launch cost that dominates small models. An unknown backend is a :class:`ConfigError`."""
    check_compile_backend(backend)
    model.compile(mode=None if mode == "default" else mode, backend=backend)


def make_trainer(cfg: ExperimentConfig, out: Path, callbacks=(), loggers: bool = True, **overrides) -> L.Trainer:
    """A Lightning Trainer from ``cfg.trainer`` saving ``best``/``last`` checkpoints in ``out/checkpoints``,
    with CSV (and TensorBoard, when installed) logs in ``out/logs``; settings Lightning rejects raise
    :class:`ConfigError`.

    ``best.ckpt`` is Lightning's ModelCheckpoint on ``val/loss``; ``last.ckpt`` is
    :class:`cscnn.training.callbacks.LatestCheckpoint` (the latest state, also when the validation loss
    stops improving). Every checkpoint is written atomically (:class:`AtomicCheckpointIO`)."""
    from lightning.fabric.utilities.exceptions import MisconfigurationException
    from lightning.pytorch.callbacks import ModelCheckpoint

    from .quiet import quiet_third_party

    quiet_third_party()  # no advertising tips, no third-party deprecation warnings
    t = cfg.trainer
    ckpt_cb = ModelCheckpoint(dirpath=out / "checkpoints", filename="best", monitor="val/loss", mode="min",
                              save_top_k=1, save_last=False, enable_version_counter=False,
                              auto_insert_metric_name=False)
    # checkpoint callbacks run after the others, in this order: last.ckpt holds the updated best score
    callbacks = [ckpt_cb, LatestCheckpoint(out / "checkpoints" / "last.ckpt"), ValidateAtEnd(), RestoreDataPosition(),
                 *callbacks]
    logger = False
    if loggers:
        from lightning.pytorch.loggers import CSVLogger

        logger = [CSVLogger(save_dir=str(out / "logs"), name="csv")]
        try:
            from lightning.pytorch.loggers import TensorBoardLogger

            logger.append(TensorBoardLogger(save_dir=str(out / "logs"), name="tensorboard", default_hp_metric=False))
        except ModuleNotFoundError:  # tensorboard not installed: CSV only
            pass
    kwargs = dict(
        max_steps=t.max_steps, max_epochs=t.max_epochs, max_time=t.max_time, accelerator=t.accelerator,
        devices=t.devices, num_nodes=t.num_nodes, strategy=t.strategy, precision=t.precision,
        gradient_clip_val=t.gradient_clip_val, accumulate_grad_batches=t.accumulate_grad_batches,
        log_every_n_steps=t.log_every_n_steps, val_check_interval=t.val_check_interval,
        check_val_every_n_epoch=t.check_val_every_n_epoch, limit_train_batches=t.limit_train_batches,
        limit_val_batches=t.limit_val_batches, enable_progress_bar=t.enable_progress_bar,
        deterministic=t.deterministic, default_root_dir=str(out), callbacks=callbacks, logger=logger,
        plugins=[AtomicCheckpointIO()],
        enable_model_summary=False, use_distributed_sampler=False,  # PDEDataModule sets its samplers
    )
    kwargs.update(overrides)
    if kwargs["max_epochs"] is None and kwargs["max_steps"] not in (-1, None):
        kwargs["max_epochs"] = -1  # step budget only
    try:
        return L.Trainer(**kwargs)
    except (MisconfigurationException, ValueError) as e:
        raise ConfigError(f"Lightning rejects the trainer.* settings: {str(e).splitlines()[0]}") from None


def _recorded_config(out: Path, hp: dict) -> dict:
    """The config a run was started with: its config.yaml, else the optimizer keys of its checkpoint."""
    path = out / "config.yaml"
    if path.is_file():
        from .config import parse_yaml

        d = parse_yaml(path.read_bytes(), str(path))  # plain data only: ConfigError for !!python/... tags
        if isinstance(d, dict):
            return d
    return {"optim": {k: hp[k] for k in ("lr", "weight_decay", "scheduler", "warmup_steps", "min_lr") if k in hp}}


def _same_numbers(a, b, rtol: float = 1e-6) -> bool:
    """Nested dicts / lists equal, floats up to ``rtol``."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_numbers(a[k], b[k], rtol) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same_numbers(x, y, rtol) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        try:
            return math.isclose(float(a), float(b), rel_tol=rtol, abs_tol=1e-12)
        except (TypeError, ValueError):
            return False
    return a == b


def _check_resumable(last: Path, out: Path, cfg: ExperimentConfig, module, dm=None) -> None:
    ckpt = read_checkpoint(last)
    hp = checkpoint_hparams(ckpt, last)
    check_resume(_recorded_config(out, hp), cfg, out)  # every changed key in one line
    check_compatible(hp, dict(module.hparams), last)  # (a folder without config.yaml: from the checkpoint)
    changed = dm.changed_data(ckpt.get(type(dm).__qualname__)) if hasattr(dm, "changed_data") else []
    if changed:
        raise CheckpointError(f"cannot resume the run in {out}: its data changed since {last} was written: "
                              f"{'; '.join(changed)}; resume with the original data or start a new run "
                              "(another --out)")
    new = module.hparams.get("normalization")
    if "normalization" in hp and not _same_numbers(hp["normalization"], new):
        raise CheckpointError(f"cannot resume the run in {out}: the training data's normalisation differs from "
                              f"the one in {last} (has {cfg.data.dir}/train.h5 changed?); resume with the "
                              "original data or start a new run (another --out)")


def train(cfg: ExperimentConfig, resume: bool = False, generate: bool = False, callbacks=(),
          progress: bool = True, overwrite: bool = False) -> dict:
    """Train ``cfg``; returns ``{"out", "best", "last", "global_step", "val_loss", "seconds"}``.

    All inputs are checked (task, model, metric, data folder and its task, model
    construction, trainer settings, resume checkpoint and the settings it was made
    with) before any training step. With ``resume`` training continues from
    ``<out>/checkpoints/last.ckpt`` (optimizer, schedule, step counter and callbacks
    included) when it exists; a changed optimizer or data setting is refused
    (:func:`cscnn.training.checks.check_resume`), and so is training or validation data whose
    content changed (SHA-256 checksums saved in the checkpoint). A run folder holding checkpoints
    is never overwritten unless ``overwrite`` (which deletes them first; see
    :mod:`cscnn.training.run_folder`). A non-finite loss stops training with
    :class:`cscnn.training.module.TrainingDiverged`; no non-finite checkpoint is written.

    The run holds the lock of its folder throughout (:func:`cscnn.training.run_lock.lock_run_folder`):
    a second run into the same folder is refused at once. ``last.ckpt`` always holds the latest state
    (:class:`cscnn.training.callbacks.LatestCheckpoint`); SIGINT or SIGTERM stops training after the
    current step with that state saved and raises :class:`cscnn.training.callbacks.TrainingInterrupted`
    (its ``signum``, ``step`` and ``path``), so that no caller mistakes the run for a finished one.
    """
    validate_config(cfg)
    if cfg.trainer.compile is not None:
        check_compile_backend(cfg.trainer.compile_backend)
    task = resolve_task(cfg.task, cfg.data.dir, task_options(cfg))
    check_metric(cfg.model.metric, task)
    out = cfg.out_dir()
    if resume and overwrite:
        check_run_folder(out, resume, overwrite)  # the one-line refusal, before the folder is touched
    check_writable(out)
    with lock_run_folder(out):
        return _train_locked(cfg, task, out, resume, generate, callbacks, progress, overwrite)


def _train_locked(cfg, task, out: Path, resume, generate, callbacks, progress, overwrite) -> dict:
    last = out / "checkpoints" / "last.ckpt"
    stale = check_run_folder(out, resume, overwrite)
    for tmp in (out / "checkpoints").glob(".*.ckpt.*.tmp"):  # a write cut off by a kill (we hold the folder)
        tmp.unlink(missing_ok=True)
    if generate:
        generate_missing(cfg, task, SPLITS, progress)
    check_data(task, cfg.data.dir, "train", cfg)

    L.seed_everything(cfg.seed, workers=True, verbose=False)
    dm = make_datamodule(cfg, task)
    dm.setup("fit")
    norm = dm.normalization
    sample = dm.train_dataset[0][0]  # one input, (C, *grid, 2^n): sizes the training step
    module = build_module(cfg, task, plain_data(norm.to_dict()) if norm is not None else None, copies=4,
                          sample_shape=tuple(sample.shape))
    if str(cfg.trainer.precision) in ("64", "64-true"):
        # float64 before Lightning restores a checkpoint (its precision plugin converts the module only
        # afterwards, which would round restored float64 weights to float32 first)
        module = module.double()

    if cfg.trainer.compile is not None:
        compile_model(module.model, cfg.trainer.compile, cfg.trainer.compile_backend)

    ckpt_path = None
    if resume:
        if last.is_file():
            _check_resumable(last, out, cfg, module, dm)
            ckpt_path = str(last)
        else:
            print(f"note: --resume given but {last} does not exist; starting a new run")

    trainer = make_trainer(cfg, out, callbacks=list(callbacks), enable_progress_bar=cfg.trainer.enable_progress_bar
                           and progress)
    latest = next(cb for cb in trainer.callbacks if isinstance(cb, LatestCheckpoint))
    remove_checkpoints(stale)  # --overwrite: the old run's checkpoints, now that every check passed
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    t0 = time.time()
    with stop_on_signals(latest):
        trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path, weights_only=True)
    seconds = time.time() - t0
    best = out / "checkpoints" / "best.ckpt"
    val = trainer.callback_metrics.get("val/loss")
    return {"out": str(out), "best": str(best) if best.is_file() else None,
            "last": str(last) if last.is_file() else None, "global_step": int(trainer.global_step),
            "val_loss": None if val is None else float(val), "seconds": seconds}
