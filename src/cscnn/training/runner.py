"""High-level train / evaluate / plot / equivariance / info functions used by the CLI and the demo.

Run folder layout (``cfg.out``, default ``outputs/<name>``)::

    config.yaml                 the resolved config of the run
    checkpoints/best.ckpt       lowest val/loss
    checkpoints/last.ckpt       latest (resume point)
    logs/csv/version_k/metrics.csv
    logs/tensorboard/version_k/events.*
    eval/metrics.json           written by ``evaluate``
    plots/*.png, plots/rollout.gif   written by ``plot``
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import lightning as L
import torch

from .callbacks import ValidateAtEnd
from .checkpoint import CheckpointError, check_compatible, checkpoint_hparams, describe, load_module, read_checkpoint
from .config import ConfigError, ExperimentConfig, config_to_dict, save_config

__all__ = [
    "DataDirError",
    "resolve_task",
    "check_data",
    "generate_missing",
    "build_module",
    "make_datamodule",
    "make_trainer",
    "train",
    "evaluate",
    "plot",
    "equivariance",
    "info",
    "count_parameters",
]

SPLITS = ("train", "valid", "test")


class DataDirError(FileNotFoundError):
    """The data folder or one of its split files is missing or holds another task."""


# --------------------------------------------------------------------- checks
def resolve_task(name: str):
    from ..data import get_task

    try:
        return get_task(name)
    except ValueError as e:
        raise ConfigError(str(e)) from None


def _generate_hint(task_name: str, data_dir, cfg: ExperimentConfig | None, splits) -> str:
    g = cfg.data.generate if cfg is not None else None
    lines = []
    for s in splits:
        num = getattr(g, s, 8) if g is not None else 8
        preset = g.preset if g is not None else "small"
        lines.append(f"  cscnn generate {task_name} --split {s} --num {num} --out {data_dir} --preset {preset}")
    return "generate it with\n" + "\n".join(lines) + "\n(or pass --generate to `cscnn train`)"


def check_data(task, data_dir, splits=("train",), cfg: ExperimentConfig | None = None) -> Path:
    """Check that ``data_dir`` holds ``splits`` (cscnn's ``<split>.h5`` or PDEArena shards) and that
    every split there holds ``task`` data; clear errors otherwise (see :func:`cscnn.data.check_data_dir`).
    (Validation data are optional for training: without them the data module holds out 10% of the
    training trajectories.)"""
    from ..data import DataError, check_data_dir

    try:
        check_data_dir(data_dir, task, splits=splits, hint=_generate_hint(task.name, data_dir, cfg, SPLITS))
    except DataError as e:
        raise DataDirError(str(e)) from None
    return Path(data_dir)


def check_metric(cfg_metric, task, what: str = "model") -> None:
    if cfg_metric is not None and tuple(cfg_metric) != tuple(task.metric):
        from ..algebra import CliffordAlgebra

        p, q = CliffordAlgebra(cfg_metric).signature
        P, Q = CliffordAlgebra(task.metric).signature
        raise ConfigError(f"metric mismatch: the {what} uses Cl({p},{q}) with metric {tuple(cfg_metric)}, "
                          f"but task {task.name!r} lives in Cl({P},{Q}) with metric {tuple(task.metric)}")


def generate_missing(cfg: ExperimentConfig, task, splits=SPLITS, progress: bool = True) -> Path:
    """Generate the split files of ``cfg.data.dir`` that do not exist yet (resumable)."""
    from ..data import generate_dataset, split_files

    data_dir = Path(cfg.data.dir)
    g = cfg.data.generate
    for s in splits:
        if not split_files(data_dir, s):
            n = getattr(g, s)
            print(f"generating {n} {task.name} trajectories ({g.preset} preset) -> {data_dir / (s + '.h5')}")
            generate_dataset(task.name, s, n, data_dir, preset=g.preset, workers=g.workers, seed=g.seed,
                             progress=progress)
    return data_dir


# ---------------------------------------------------------------- components
def make_datamodule(cfg: ExperimentConfig, task):
    from ..data import PDEDataModule

    return PDEDataModule(task.name, cfg.data.dir, batch_size=cfg.data.batch_size,
                         time_history=cfg.data.time_history, time_future=cfg.data.time_future,
                         num_trajectories=cfg.data.num_train, normalize=cfg.data.normalize,
                         num_workers=cfg.data.num_workers, seed=cfg.seed, resolution=cfg.data.resolution,
                         shuffle=cfg.data.shuffle)


def _plain(x):
    """Tensors / arrays / tuples inside ``x`` -> lists, so ``torch.load(weights_only=True)`` accepts it."""
    import numpy as np

    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, torch.Tensor):
        return x.tolist()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, Path):
        return str(x)
    return x


def module_hparams(cfg: ExperimentConfig, task, normalization: dict | None = None) -> dict:
    th = cfg.data.time_history or task.time_history
    tf = cfg.data.time_future or task.time_future
    cin, cout = task.channels(th, tf)
    return {
        "model_name": cfg.model.name, "metric": list(task.metric), "task": task.name, "in_channels": cin,
        "out_channels": cout, "hidden_channels": cfg.model.hidden_channels, "model_kwargs": _plain(cfg.model.kwargs),
        "time_history": th, "time_future": tf, "time_as_axis": task.time_as_axis, "lr": cfg.optim.lr,
        "weight_decay": cfg.optim.weight_decay, "scheduler": cfg.optim.scheduler,
        "warmup_steps": cfg.optim.warmup_steps, "min_lr": cfg.optim.min_lr, "normalization": normalization,
    }


def build_module(cfg: ExperimentConfig, task, normalization: dict | None = None):
    from .module import ForecastModule

    hp = module_hparams(cfg, task, normalization)
    try:
        return ForecastModule(**hp)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"cannot build model {cfg.model.name!r} with hidden_channels={cfg.model.hidden_channels} "
                          f"and kwargs {cfg.model.kwargs}: {e}") from e


def make_trainer(cfg: ExperimentConfig, out: Path, callbacks=(), loggers: bool = True, **overrides):
    from lightning.pytorch.callbacks import ModelCheckpoint

    t = cfg.trainer
    ckpt_cb = ModelCheckpoint(dirpath=out / "checkpoints", filename="best", monitor="val/loss", mode="min",
                              save_top_k=1, save_last=True, enable_version_counter=False, auto_insert_metric_name=False)
    callbacks = [ckpt_cb, ValidateAtEnd(), *callbacks]
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
        enable_model_summary=False, use_distributed_sampler=False,  # our loaders set their samplers
    )
    kwargs.update(overrides)
    if kwargs["max_epochs"] is None and kwargs["max_steps"] not in (-1, None):
        kwargs["max_epochs"] = -1  # step budget only
    return L.Trainer(**kwargs)


# ---------------------------------------------------------------------- train
def train(cfg: ExperimentConfig, resume: bool = False, generate: bool = False, callbacks=(),
          progress: bool = True) -> dict:
    """Train ``cfg``; returns ``{"out", "best", "last", "global_step", "val_loss", "seconds"}``.

    All inputs are checked (task, model, metric, data folder and its task, model
    construction, resume checkpoint) before any training step. With ``resume``
    training continues from ``<out>/checkpoints/last.ckpt`` (optimizer, schedule,
    step counter and callbacks included) when it exists.
    """
    from .config import validate_config

    validate_config(cfg)
    task = resolve_task(cfg.task)
    check_metric(cfg.model.metric, task)
    out = cfg.out_dir()
    if generate:
        generate_missing(cfg, task, SPLITS, progress)
    check_data(task, cfg.data.dir, ("train",), cfg)

    L.seed_everything(cfg.seed, workers=True, verbose=False)
    dm = make_datamodule(cfg, task)
    dm.setup("fit")
    _check_sample(dm.train_dataset, task, cfg.data.dir)
    norm = dm.normalization
    norm_dict = _plain(norm.to_dict()) if norm is not None else None
    module = build_module(cfg, task, norm_dict)

    ckpt_path = None
    last = out / "checkpoints" / "last.ckpt"
    if resume:
        if last.is_file():
            hp = checkpoint_hparams(read_checkpoint(last), last)
            check_compatible(hp, dict(module.hparams), last)
            ckpt_path = str(last)
        else:
            print(f"note: --resume given but {last} does not exist; starting a new run")
    elif last.is_file():
        raise CheckpointError(f"{out} already holds a run ({last}); pass --resume to continue it "
                              "or choose another --out")

    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    trainer = make_trainer(cfg, out, callbacks=list(callbacks), enable_progress_bar=cfg.trainer.enable_progress_bar
                           and progress)
    t0 = time.time()
    trainer.fit(module, datamodule=_LoaderModule(dm, cfg), ckpt_path=ckpt_path, weights_only=True)
    seconds = time.time() - t0
    best = out / "checkpoints" / "best.ckpt"
    val = trainer.callback_metrics.get("val/loss")
    return {"out": str(out), "best": str(best) if best.is_file() else None,
            "last": str(last) if last.is_file() else None, "global_step": int(trainer.global_step),
            "val_loss": None if val is None else float(val), "seconds": seconds}


def _check_sample(dataset, task, data_dir) -> None:
    x, y = dataset[0]
    if x.shape[-1] != task.n_blades:
        raise DataDirError(f"samples in {data_dir} have {x.shape[-1]} blades, but task {task.name!r} "
                           f"(metric {tuple(task.metric)}) needs {task.n_blades}")


class _LoaderModule(L.LightningDataModule):
    """Wraps a set-up PDEDataModule: its datasets, our loaders.

    Under DDP each process gets a ``DistributedSampler`` that shuffles only when
    ``data.shuffle`` is true (Lightning's automatic sampler always shuffles training
    data), so a run without shuffling sees exactly the batches of a single process
    with ``world_size`` times the batch size.
    """

    def __init__(self, dm, cfg: ExperimentConfig):
        super().__init__()
        self.dm, self.cfg = dm, cfg

    def _loader(self, ds, shuffle: bool):
        from torch.utils.data import DataLoader, DistributedSampler

        nw = self.cfg.data.num_workers
        kw = {"batch_size": self.cfg.data.batch_size, "num_workers": nw, "persistent_workers": nw > 0}
        trainer = self.trainer
        if trainer is not None and trainer.world_size > 1:
            sampler = DistributedSampler(ds, num_replicas=trainer.world_size, rank=trainer.global_rank,
                                         shuffle=shuffle, seed=self.cfg.seed)
            return DataLoader(ds, sampler=sampler, **kw)
        gen = torch.Generator().manual_seed(self.cfg.seed) if shuffle else None
        return DataLoader(ds, shuffle=shuffle, generator=gen, **kw)

    def train_dataloader(self):
        return self._loader(self.dm.train_dataset, self.cfg.data.shuffle)

    def val_dataloader(self):
        if self.dm.val_dataset is None:  # a single training trajectory and no valid.h5
            return []
        return self._loader(self.dm.val_dataset, False)


# ------------------------------------------------------------------- evaluate
def _load_for_eval(ckpt, data_dir=None, split: str = "test", device: str = "cpu"):
    """Module, task, data dir and test dataset for a checkpoint (with task / metric checks)."""
    from ..data import PDEDataset

    path = find_ckpt(ckpt)
    module = load_module(path, map_location="cpu")
    hp = dict(module.hparams)
    task = resolve_task(hp["task"])
    if tuple(hp["metric"]) != tuple(task.metric):
        raise CheckpointError(f"{path}: metric {tuple(hp['metric'])} does not match task {task.name!r}")
    if data_dir is None:
        data_dir = _run_data_dir(path)
    data_dir = Path(data_dir)
    check_data(task, data_dir, (split,))
    norm = _normalization(hp.get("normalization"))
    ds = PDEDataset(data_dir, task, split=split, time_history=hp["time_history"], time_future=hp["time_future"],
                    windows="all", normalization=norm, resolution=_run_data_config(path).get("resolution"))
    _check_sample(ds, task, data_dir)
    module = module.to(device)
    return path, module, task, data_dir, ds, norm


def _run_dir(ckpt_path: Path) -> Path:
    """The run folder of a checkpoint (``<run>/checkpoints/x.ckpt``), else the checkpoint's folder."""
    return ckpt_path.parent.parent if ckpt_path.parent.name == "checkpoints" else ckpt_path.parent


def find_ckpt(ckpt) -> Path:
    from .checkpoint import find_checkpoint

    return find_checkpoint(ckpt)


def _run_data_config(ckpt_path: Path) -> dict:
    """The ``data`` section of the run's config.yaml ({} if there is none)."""
    for cand in (ckpt_path.parent.parent / "config.yaml", ckpt_path.parent / "config.yaml"):
        if cand.is_file():
            import yaml

            with open(cand) as f:
                d = yaml.safe_load(f) or {}
            if isinstance(d.get("data"), dict):
                return d["data"]
    return {}


def _run_data_dir(ckpt_path: Path) -> Path:
    d = _run_data_config(ckpt_path)
    if d.get("dir"):
        return Path(d["dir"])
    raise DataDirError(f"cannot tell the data folder of {ckpt_path} (no config.yaml in its run folder); pass --data")


def _normalization(d):
    if d is None:
        return None
    from ..data.normalization import Normalization

    return Normalization.from_dict(d)


def _trajectories(ds, n: int | None):
    """Normalised test trajectories (PDEDataset applies its normalisation)."""
    count = ds.num_trajectories if n is None else min(n, ds.num_trajectories)
    for i in range(count):
        yield torch.as_tensor(ds.trajectory(i)).float()


def evaluate(ckpt, data_dir=None, out=None, split: str = "test", rollout_steps: int | None = None,
             num_rollout_trajectories: int | None = 8, batch_size: int = 16, limit_batches: int | None = None,
             device: str = "cpu", progress: bool = True) -> dict:
    """One-step test MSE, per-field MSE and rollout MSE over time of a checkpoint; saved as JSON.

    Errors are in the normalised units the model was trained in. Writes
    ``<out>/metrics.json`` (default out: ``<run>/eval``) and returns the dict.
    """
    from torch.utils.data import DataLoader

    from .metrics import one_step_metrics, rollout_metrics

    path, module, task, data_dir, ds, norm = _load_for_eval(ckpt, data_dir, split, device)
    hp = dict(module.hparams)
    loader = DataLoader(ds, batch_size=batch_size, shuffle=False)
    t0 = time.time()
    one = one_step_metrics(module.model, loader, task, limit_batches=limit_batches, progress=progress)
    roll = rollout_metrics(module.model, _trajectories(ds, num_rollout_trajectories), hp["time_history"],
                           hp["time_future"], task.time_as_axis, rollout_steps, task, progress=progress)
    result = {
        "checkpoint": str(path), "task": task.name, "metric": list(task.metric), "model": hp["model_name"],
        "split": split, "data_dir": str(data_dir), "num_parameters": count_parameters(module.model),
        "normalized_units": norm is not None,
        "one_step": one, "rollout": roll, "seconds": time.time() - t0,
    }
    out = Path(out) if out is not None else _run_dir(path) / "eval"
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "metrics.json", "w") as f:
        json.dump(result, f, indent=2)
    result["path"] = str(out / "metrics.json")
    return result


# ----------------------------------------------------------------------- plot
def plot(ckpt, data_dir=None, out=None, split: str = "test", index: int = 0, rollout_steps: int | None = None,
         gif: bool = True, fps: int = 4, device: str = "cpu") -> list[Path]:
    """Target / prediction / error PNGs (one-step and last rollout step), a rollout-MSE curve
    and an animated rollout GIF of test trajectory ``index``. Returns the written paths."""
    from .plots import plot_fields, plot_rollout_mse, rollout_gif
    from .rollout import rollout

    path, module, task, data_dir, ds, norm = _load_for_eval(ckpt, data_dir, split, device)
    hp = dict(module.hparams)
    if not 0 <= index < ds.num_trajectories:
        raise ValueError(f"trajectory index {index} out of range: {split} has {ds.num_trajectories}")
    out = Path(out) if out is not None else _run_dir(path) / "plots"
    traj = torch.as_tensor(ds.trajectory(index)).float()
    res = rollout(module.model, traj, hp["time_history"], hp["time_future"], task.time_as_axis, rollout_steps)
    pred, target = res.prediction, res.target
    if norm is not None:  # show physical units
        pred, target = norm.denormalize(pred), norm.denormalize(target)
    name = f"{task.name} / {hp['model_name']}"
    paths = [plot_fields(task, target[0], pred[0], out / "one_step.png", f"{name}: one-step prediction"),
             plot_fields(task, target[-1], pred[-1], out / "rollout_last.png",
                         f"{name}: rollout step {pred.shape[0]}"),
             plot_rollout_mse({hp["model_name"]: res.mse_per_step.tolist()}, out / "rollout_mse.png",
                              f"{task.name}: rollout MSE (normalised units)", hp["time_history"])]
    if gif:
        paths.append(rollout_gif(task, target, pred, out / "rollout.gif", fps=fps))
    return paths


# ---------------------------------------------------------------- equivariance
def equivariance(ckpt, data_dir=None, num_elements: int = 8, split: str = "test", grid: int | None = None,
                 seed: int = 0, dtype=torch.float64) -> dict:
    """Worst relative equivariance error ``|f(g.x) - g.f(x)| / |g.f(x)|`` of a checkpoint's model
    under sampled grid-symmetry group elements (cscnn.testing), on a test sample (or a random
    field of size ``grid`` when no data is given)."""
    from ..testing import equivariance_error, sample_elements

    path = find_ckpt(ckpt)
    module = load_module(path)
    hp = dict(module.hparams)
    task = resolve_task(hp["task"])
    model = module.model.to(dtype)
    alg = module.alg
    gen = torch.Generator().manual_seed(seed)
    if grid is None:
        if data_dir is None:
            try:
                data_dir = _run_data_dir(path)
            except DataDirError:
                data_dir = None
        from ..data import split_files

        if data_dir is not None and split_files(data_dir, split):
            _, _, _, _, ds, _ = _load_for_eval(path, data_dir, split)
            x = ds[0][0].unsqueeze(0).to(dtype)
            source = f"{split} data in {data_dir}, sample 0"
        else:
            grid = 16
    if grid is not None:
        spatial = [grid] * task.spatial_dims
        if task.time_as_axis:
            spatial[0] = hp["time_history"]
        x = torch.randn(1, hp["in_channels"], *spatial, alg.n_blades, generator=gen, dtype=dtype)
        source = f"random field {tuple(x.shape)}"
    gs = sample_elements(alg, num_elements, "grid", generator=gen, dtype=dtype)
    errors = [equivariance_error(model, alg, x, g) for g in gs]
    return {"checkpoint": str(path), "model": hp["model_name"], "task": task.name, "metric": list(alg.metric),
            "input": source, "num_elements": len(errors), "worst": max(errors), "mean": sum(errors) / len(errors),
            "errors": errors, "elements": [g.tolist() for g in gs], "dtype": str(dtype).replace("torch.", "")}


# ----------------------------------------------------------------------- info
def count_parameters(model) -> int:
    """Trainable real parameters (complex ones count twice), as :func:`cscnn.models.count_parameters`."""
    from ..models import count_parameters as count

    return count(model)


def info(source, overrides=()) -> dict:
    """Model size of a config file (YAML) or a checkpoint / run folder."""
    from .config import load_config

    src = Path(source)
    if src.suffix in (".yaml", ".yml"):
        cfg = load_config(src, overrides)
        task = resolve_task(cfg.task)
        check_metric(cfg.model.metric, task)
        module = build_module(cfg, task)
        hp, origin = dict(module.hparams), "config"
    else:
        path = find_ckpt(src)
        module = load_module(path)
        hp, origin = dict(module.hparams), "checkpoint"
        ckpt = read_checkpoint(path)
        hp["global_step"] = ckpt.get("global_step")
        hp["epoch"] = ckpt.get("epoch")
    n = count_parameters(module.model)
    size = sum(p.numel() * p.element_size() for p in module.model.parameters())
    size += sum(b.numel() * b.element_size() for b in module.model.buffers())
    res = {"source": str(src), "kind": origin, "description": describe(hp), "num_parameters": n,
           "size_mb": size / 2**20}
    for k in ("model_name", "task", "metric", "in_channels", "out_channels", "hidden_channels", "model_kwargs",
              "time_history", "time_future", "global_step", "epoch"):
        if k in hp:
            res[k] = hp[k]
    return res


def _fmt(x) -> str:
    if isinstance(x, float):
        return f"{x:.4e}" if (x != 0 and (abs(x) < 1e-2 or abs(x) >= 1e4)) or math.isnan(x) else f"{x:.4f}"
    return str(x)


def config_summary(cfg: ExperimentConfig) -> str:
    return json.dumps(config_to_dict(cfg), indent=2)
