"""Checks that run before any work: task, metric, data folder, device, and what a resumed run may change.

Each raises a one-line error (:class:`ConfigError`, :class:`DataDirError`,
:class:`CheckpointError`) that names what was expected; the CLI prints it
with exit status 2.
"""

from __future__ import annotations

import json

import torch

from ..data import MissingDataError, check_data_dir, get_task
from .checkpoint import CheckpointError
from .config import ConfigError, ExperimentConfig

__all__ = ["DataDirError", "SPLITS", "resolve_task", "task_options", "check_metric", "check_data", "check_device",
           "check_resume", "check_positive"]

SPLITS = ("train", "valid", "test")


# The data layer's error for a missing data folder or split (also a FileNotFoundError), under the
# name cscnn.training has always exported.
DataDirError = MissingDataError


def resolve_task(name: str, data_dir=None, options: dict | None = None):
    """The :class:`cscnn.data.TaskSpec` of ``name``; :class:`ConfigError` listing the tasks otherwise.

    With ``data_dir``, a task whose layout comes from the files (``the-well``) is resolved from
    them with ``options`` (``data.well``; :class:`cscnn.data.DataError` naming a bad file,
    :class:`DataDirError` when there are none)."""
    try:
        spec = get_task(name)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if data_dir is not None and spec.source is not None:
        try:
            spec = spec.resolve(data_dir, **(options or {}))
        except ValueError as e:  # a bad option (a bad file is a DataError, raised as it is)
            raise ConfigError(str(e)) from None
    return spec


def task_options(cfg: ExperimentConfig | dict | None) -> dict:
    """The options of a task whose layout comes from the files: ``data.well`` of a config
    (an :class:`ExperimentConfig` or its plain dict, e.g. a run's config.yaml); ``{}`` without."""
    import dataclasses

    if cfg is None:
        return {}
    if isinstance(cfg, ExperimentConfig):
        return dataclasses.asdict(cfg.data.well)
    well = (cfg.get("data") or {}).get("well") if isinstance(cfg.get("data"), dict) else None
    return dict(well) if isinstance(well, dict) else {}


def check_metric(cfg_metric, task, what: str = "model") -> None:
    """``cfg_metric`` (a config's optional ``model.metric``) must equal the task's metric."""
    if cfg_metric is not None and tuple(cfg_metric) != tuple(task.metric):
        from ..algebra import CliffordAlgebra

        p, q = CliffordAlgebra(cfg_metric).signature
        P, Q = CliffordAlgebra(task.metric).signature
        raise ConfigError(f"metric mismatch: the {what} uses Cl({p},{q}) with metric {tuple(cfg_metric)}, "
                          f"but task {task.name!r} lives in Cl({P},{Q}) with metric {tuple(task.metric)}")


def check_data(task, data_dir, split: str = "train", cfg: ExperimentConfig | None = None) -> dict:
    """``{split: [files] or None}`` of ``data_dir`` (:func:`cscnn.data.check_data_dir`: cscnn or
    PDEArena files, each holding ``task``), requiring ``split``.

    Raises :class:`DataDirError` (missing folder or split) with the commands that generate
    the data (sizes from ``cfg.data.generate`` when a config is given), or
    :class:`cscnn.data.DataError` (a file of another task, unreadable or mismatched shards).
    """
    hint = None
    if cfg is not None and task.source is None and task.simulate is not None:  # tasks cscnn simulates
        g = cfg.data.generate
        sets = (" --set " + " ".join(f"{k}={json.dumps(v)}" for k, v in g.params.items())) if g.params else ""
        hint = (f"generate it with `cscnn generate {task.name} --split train --num {g.train} --out {data_dir} "
                f"--preset {g.preset}{sets}` (likewise --split valid --num {g.valid}, --split test --num {g.test}), "
                "or pass --generate to `cscnn train` (sizes from the config's data.generate)")
    return check_data_dir(data_dir, task, splits=[split], hint=hint)


def check_device(device) -> torch.device:
    """``device`` as a :class:`torch.device` that exists on this machine; ValueError naming the choices."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"unknown device {device!r}; expected e.g. 'cpu', 'cuda' or 'cuda:0'") from None
    if dev.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            raise ValueError(f"device {device!r} requested but CUDA is not available on this machine; use --device cpu")
        if dev.index is not None and dev.index >= n:
            raise ValueError(f"device {device!r} requested but this machine has {n} CUDA device(s) (cuda:0..{n - 1})")
    elif dev.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ValueError(f"device {device!r} requested but MPS is not available on this machine; use --device cpu")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"unsupported device {device!r}; expected 'cpu', 'cuda[:i]' or 'mps'")
    return dev


# Keys a resumed run must keep: the restored optimizer state, schedule, data order and
# normalisation were made with them. (Budgets such as trainer.max_steps may change.)
RESUME_FIXED = ("task", "seed", "model", "optim", "data.num_train", "data.batch_size", "data.time_history",
                "data.time_future", "data.resolution", "data.normalize", "data.shuffle", "data.well",
                "data.symmetry_breaking", "trainer.accumulate_grad_batches")


_MISSING = object()


def _get(d: dict, key: str):
    for part in key.split("."):
        if not isinstance(d, dict) or part not in d:
            return _MISSING
        d = d[part]
    return d


def check_resume(recorded: dict, cfg: ExperimentConfig, path) -> None:
    """Refuse to resume when ``cfg`` changes a key of :data:`RESUME_FIXED` against the
    ``recorded`` config (the run's config.yaml; keys it lacks are not compared); the message
    lists every changed key."""
    from .config import config_to_dict

    new = config_to_dict(cfg)
    changed = []
    for key in RESUME_FIXED:
        a, b = _get(recorded, key), _get(new, key)
        if a is _MISSING:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            for k in sorted(a):  # (a setting the record lacks, e.g. one newer than the run, is not compared)
                if a.get(k) != b.get(k):
                    changed.append(f"{key}.{k}: {a.get(k)!r} -> {b.get(k)!r}")
        elif a != b:
            changed.append(f"{key}: {a!r} -> {b!r}")
    if changed:
        raise CheckpointError(f"cannot resume the run in {path} with changed settings ({'; '.join(changed)}): "
                              "the saved optimizer state, schedule and data normalisation were made with the "
                              "recorded values; resume with them or start a new run (another --out)")


def check_positive(what: str, value, allow_none: bool = False) -> None:
    """ValueError unless ``value`` is an integer >= 1 (or None when ``allow_none``)."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be an integer >= 1, got {value!r}")
