"""Experiment configuration: a dataclass schema, strict YAML loading and ``a.b=value`` overrides.

A config file is YAML with the sections below; every key is optional except ``task``
and ``model.name``. Unknown keys are an error that names the key and the valid ones::

    name: ns_cs_resnet            # run name (default: file stem)
    task: navier-stokes           # navier-stokes | maxwell3d | maxwell2d
    seed: 0
    out: outputs/ns_cs_resnet     # run folder: checkpoints/, logs/, config.yaml, eval/
    data:    {dir: data/navier-stokes, batch_size: 8, num_train: null, ...}
    model:   {name: cs_resnet, hidden_channels: 48, kwargs: {blocks: [2, 2, 2, 2], kernel_size: 7}}
    optim:   {lr: 0.001, weight_decay: 0.0, scheduler: cosine, warmup_steps: 0, loss: physical}
    trainer: {max_steps: 50000, accelerator: auto, devices: auto, precision: 32-true, ...}
                                  # (+ compile: null | default | reduce-overhead | max-autotune: torch.compile)
    eval:    {rollout_steps: null, num_rollout_trajectories: 8, batch_size: 16}
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

__all__ = [
    "ConfigError",
    "DataConfig",
    "GenerateConfig",
    "ModelConfig",
    "OptimConfig",
    "TrainerConfig",
    "EvalConfig",
    "ExperimentConfig",
    "load_config",
    "config_from_dict",
    "config_to_dict",
    "apply_overrides",
    "save_config",
]


class ConfigError(ValueError):
    """A config file or override that does not match the schema."""


@dataclass
class GenerateConfig:
    """How the data set was (or will be) generated: used by ``cscnn train --generate``
    and the demo, and printed as a hint when the data folder is missing."""

    preset: str = "small"  # small | pdearena (| paper for maxwell2d)
    train: int = 64
    valid: int = 8
    test: int = 8
    workers: int = 1
    seed: int = 0
    params: dict = field(default_factory=dict)  # simulator parameters overriding the preset's, e.g. {nx: 32}


@dataclass
class WellConfig:
    """Options of task ``the-well``, whose field layout comes from the files (see docs/data.md,
    "The Well", and :mod:`cscnn.data.tasks.the_well`); ignored by the other tasks."""

    tensor_fields: str = "refuse"  # refuse | decompose (t2 fields; decompose breaks equivariance)
    pseudovectors: list = field(default_factory=list)  # t1 fields read as bivectors (3D), beside the built-in table
    wall_padding: str = "zeros"  # padding_mode auto: the mode of an axis with a wall (periodic axes: circular)
    open_padding: str = "replicate"  # ... of an open axis
    # constant scalars (e.g. [Reynolds]) fed as invariant scalar input channels, or "all"; [] (default): none
    constant_scalars: list | str = field(default_factory=list)


@dataclass
class DataConfig:
    dir: str = "data/navier-stokes"
    batch_size: int = 8
    num_train: int | None = None  # number of training trajectories (None: all in train.h5)
    time_history: int | None = None  # None: the task's default
    time_future: int | None = None
    resolution: int | list | None = None  # resize the grid on load (int or one per axis); None: as stored
    normalize: bool = True
    num_workers: int = 0
    shuffle: bool = True
    # fields the task declares that the model reads as extra constant input channels (e.g. [gravity])
    symmetry_breaking: list = field(default_factory=list)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    well: WellConfig = field(default_factory=WellConfig)  # task the-well only


@dataclass
class ModelConfig:
    name: str = "cs_resnet"
    hidden_channels: int | None = None  # None: the model's default for the task
    metric: list | None = None  # optional check: must equal the task's metric (e.g. [1, 1] for navier-stokes)
    kwargs: dict = field(default_factory=dict)  # passed to cscnn.models.build_model


@dataclass
class OptimConfig:
    lr: float = 1e-3
    weight_decay: float = 0.0
    scheduler: str = "cosine"  # cosine | constant
    warmup_steps: int = 0
    min_lr: float = 0.0
    # the training loss (and val/test loss): the MSE over the task's physical components (the authors'
    # protocol: u, vx, vy for navier-stokes; E, H for maxwell3d; the Faraday bivector for maxwell2d), or
    # over every blade (all_blades)
    loss: str = "physical"  # physical | all_blades


@dataclass
class TrainerConfig:
    """Passed to ``lightning.Trainer`` (same names and meanings)."""

    max_steps: int = -1
    max_epochs: int | None = None
    max_time: str | None = None  # "DD:HH:MM:SS"
    accelerator: str = "auto"
    devices: int | str | list = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"  # 16-mixed / bf16-mixed for mixed precision on GPU
    gradient_clip_val: float | None = 1.0
    accumulate_grad_batches: int = 1
    log_every_n_steps: int = 10
    val_check_interval: int | float | None = None
    check_val_every_n_epoch: int | None = 1
    limit_train_batches: int | float | None = None
    limit_val_batches: int | float | None = None
    enable_progress_bar: bool = True
    deterministic: bool = False
    # cscnn's own (not lightning.Trainer arguments): train the model under torch.compile
    compile: str | None = None  # None: eager; a torch.compile mode: default | reduce-overhead | max-autotune | ...
    compile_backend: str = "inductor"  # torch.compile backend (torch._dynamo.list_backends())


@dataclass
class EvalConfig:
    rollout_steps: int | None = None  # None: the whole test trajectory
    num_rollout_trajectories: int | None = 8  # None: all test trajectories
    batch_size: int = 16
    limit_batches: int | None = None  # cap on one-step test batches (None: all)


@dataclass
class ExperimentConfig:
    task: str = ""
    name: str = "experiment"
    seed: int = 0
    out: str | None = None  # None: outputs/<name>
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def out_dir(self) -> Path:
        return Path(self.out if self.out else Path("outputs") / self.name)


_CHOICES = {
    "optim.scheduler": ("cosine", "constant"),
    "optim.loss": ("physical", "all_blades"),
    "data.well.tensor_fields": ("refuse", "decompose"),
    "data.well.wall_padding": ("zeros", "reflect", "replicate", "circular"),
    "data.well.open_padding": ("zeros", "reflect", "replicate", "circular"),
}


# ----------------------------------------------------------------- conversion
def _type_name(tp) -> str:
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _coerce(value, tp, key: str):
    """Check ``value`` against annotation ``tp``; ints are accepted for floats."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, key)
            except ConfigError as e:
                errors.append(e)
        raise ConfigError(f"config key '{key}' must be {_type_name(tp)}, got {value!r}")
    if dataclasses.is_dataclass(tp):
        if value is None:
            return tp()
        if not isinstance(value, dict):
            raise ConfigError(f"config section '{key}' must be a mapping, got {value!r}")
        return _from_dict(tp, value, key)
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "1e-3" as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif tp is str:
        if isinstance(value, str):
            return value
    elif tp in (dict, list) or origin in (dict, list):
        base = origin or tp
        if isinstance(value, base):
            return value
        if base is list and isinstance(value, tuple):
            return list(value)
    else:  # pragma: no cover - schema uses only the types above
        return value
    raise ConfigError(f"config key '{key}' must be {_type_name(tp)}, got {value!r}")


def _from_dict(cls, d: dict, prefix: str = ""):
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if k not in names:
            where = f"section '{prefix}'" if prefix else "the top level"
            close = difflib.get_close_matches(str(k), names, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(f"unknown config key '{key}'{hint}; valid keys in {where}: {', '.join(names)}")
        val = _coerce(v, hints[k], key)
        if key in _CHOICES and val not in _CHOICES[key]:
            raise ConfigError(f"config key '{key}' must be one of {_CHOICES[key]}, got {val!r}")
        kwargs[k] = val
    return cls(**kwargs)


def config_from_dict(d: dict, name: str | None = None, validate: bool = True) -> ExperimentConfig:
    """Build an :class:`ExperimentConfig` from a plain dict; unknown keys raise :class:`ConfigError`."""
    if not isinstance(d, dict):
        raise ConfigError(f"a config must be a mapping at the top level, got {type(d).__name__}")
    import copy

    d = copy.deepcopy(d)
    if name is not None and "name" not in d:
        d["name"] = name
    cfg = _from_dict(ExperimentConfig, d)
    if validate:
        validate_config(cfg)
    return cfg


def validate_config(cfg: ExperimentConfig) -> None:
    """Check task and model names and value ranges (clear errors before any training). Task and model
    names come from :mod:`cscnn._catalog`, so this imports neither torch nor Lightning."""
    from .._catalog import model_names, task_names

    tasks, models = task_names(), model_names()
    if not cfg.task:
        raise ConfigError(f"config key 'task' is required; one of {sorted(tasks)}")
    if cfg.task not in tasks:
        raise ConfigError(f"unknown task {cfg.task!r}; valid tasks: {', '.join(sorted(tasks))} (a task of another "
                          "package reaches every process through an entry point in the group 'cscnn.tasks')")
    if cfg.model.name not in models:
        raise ConfigError(f"unknown model {cfg.model.name!r}; valid models: {', '.join(sorted(models))}")
    if cfg.data.symmetry_breaking:  # the task's declared fields: needs the registry (imports torch)
        from ..data import get_task

        _check_symmetry_breaking(cfg.data.symmetry_breaking, get_task(cfg.task))
    for key, val in (("data.batch_size", cfg.data.batch_size), ("trainer.num_nodes", cfg.trainer.num_nodes),
                     ("eval.batch_size", cfg.eval.batch_size)):
        if val < 1:
            raise ConfigError(f"config key '{key}' must be >= 1, got {val}")
    for key, val in (("data.num_train", cfg.data.num_train), ("data.time_history", cfg.data.time_history),
                     ("data.time_future", cfg.data.time_future), ("model.hidden_channels", cfg.model.hidden_channels)):
        if val is not None and val < 1:
            raise ConfigError(f"config key '{key}' must be >= 1 or null, got {val}")
    for key, val, strict in (("optim.lr", cfg.optim.lr, True), ("optim.weight_decay", cfg.optim.weight_decay, False),
                             ("optim.min_lr", cfg.optim.min_lr, False),
                             ("trainer.gradient_clip_val", cfg.trainer.gradient_clip_val, True)):
        if val is not None and (not math.isfinite(val) or val < 0 or (strict and val == 0)):
            raise ConfigError(f"config key '{key}' must be a finite number {'> 0' if strict else '>= 0'}, got {val}")
    for key, val in (("optim.warmup_steps", cfg.optim.warmup_steps), ("data.num_workers", cfg.data.num_workers)):
        if val < 0:
            raise ConfigError(f"config key '{key}' must be >= 0, got {val}")
    for key, val in (("trainer.accumulate_grad_batches", cfg.trainer.accumulate_grad_batches),
                     ("trainer.log_every_n_steps", cfg.trainer.log_every_n_steps)):
        if val < 1:
            raise ConfigError(f"config key '{key}' must be >= 1, got {val}")
    _check_precision(cfg.trainer.precision)
    _check_compile(cfg.trainer.compile, cfg.trainer.compile_backend)
    _check_devices(cfg.trainer.devices)
    for key, val in (("trainer.max_steps", cfg.trainer.max_steps), ("trainer.max_epochs", cfg.trainer.max_epochs)):
        if val is not None and val != -1 and val < 1:
            raise ConfigError(f"config key '{key}' must be >= 1 (or -1: no limit), got {val}")
    if cfg.trainer.max_steps in (-1, None) and cfg.trainer.max_epochs is None and cfg.trainer.max_time is None:
        raise ConfigError("set one of trainer.max_steps, trainer.max_epochs or trainer.max_time")


def _check_symmetry_breaking(names: list, task) -> None:
    """``data.symmetry_breaking``: distinct names of fields ``task`` declares."""
    if not all(isinstance(n, str) for n in names):
        raise ConfigError(f"config key 'data.symmetry_breaking' must be a list of field names, got {names!r}")
    try:
        task.symmetry_breaking_fields(names)
    except ValueError as e:
        raise ConfigError(f"config key 'data.symmetry_breaking': {e}") from None


def _check_precision(precision: str) -> None:
    from .._catalog import PRECISIONS as valid  # Lightning's strings, without importing Lightning

    if precision not in valid:
        raise ConfigError(f"config key 'trainer.precision' must be one of {', '.join(valid)}; got {precision!r}")


#: torch.compile's modes (``torch._inductor.list_mode_options``), listed here so that configs are checked
#: without importing torch
COMPILE_MODES = ("default", "lite", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def _check_compile(mode, backend) -> None:
    """``trainer.compile``: null or one of :data:`COMPILE_MODES`; ``trainer.compile_backend``: a name."""
    if mode is not None and mode not in COMPILE_MODES:
        raise ConfigError(f"config key 'trainer.compile' must be null (eager) or a torch.compile mode, one of "
                          f"{', '.join(COMPILE_MODES)}; got {mode!r}")
    if not isinstance(backend, str) or not backend:
        raise ConfigError(f"config key 'trainer.compile_backend' must be a torch.compile backend name such as "
                          f"'inductor'; got {backend!r}")


def _check_devices(devices) -> None:
    """``trainer.devices``: a count >= 1 (-1: all), "auto", device indices as a list or "0,1"."""
    expected = "a count >= 1 (-1: all), 'auto', or device indices such as [0, 1] or '0,1'"
    if isinstance(devices, int):
        ok = devices >= 1 or devices == -1
    elif isinstance(devices, str) and devices != "auto":
        parts = [p.strip() for p in devices.split(",") if p.strip()]
        ok = bool(parts) and all(p.isdigit() or p == "-1" for p in parts)
        if ok and "," not in devices:  # "2": a count, as Lightning reads it
            ok = int(parts[0]) >= 1 or parts[0] == "-1"
    elif isinstance(devices, str):
        ok = True
    else:
        ok = bool(devices) and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in devices)
    if not ok:
        raise ConfigError(f"config key 'trainer.devices' must be {expected}; got {devices!r}")


def config_to_dict(cfg) -> dict:
    """Plain-data (YAML/JSON friendly) dict of a config."""
    return dataclasses.asdict(cfg)


def load_config(path, overrides=(), validate: bool = True) -> ExperimentConfig:
    """Read a YAML config and apply ``overrides`` (``["trainer.max_steps=100", ...]``).

    ``path``: a YAML file, or the name of a config that ships with cscnn (``cpu/ns_cs_resnet``, with or
    without ``.yaml``; ``cscnn configs`` lists them); an existing file wins over a packaged name."""
    from .._configs import resolve_config

    try:
        path = resolve_config(path)
    except FileNotFoundError as e:
        raise ConfigError(str(e)) from None
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read config file {str(path)!r}: {e.strerror or e}") from None
    d = parse_yaml(raw, str(path)) or {}
    if not isinstance(d, dict):
        raise ConfigError(f"{path}: a config must be a mapping at the top level, got {type(d).__name__}")
    d = apply_overrides(d, overrides)
    try:
        return config_from_dict(d, name=path.stem, validate=validate)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


def parse_yaml(text: bytes | str, where: str):
    """Plain YAML data (``yaml.safe_load``) of ``text``; :class:`ConfigError` naming ``where`` (a file
    or an override) and the line for text that is not UTF-8, not YAML, or uses tags such as
    ``!!python/object`` (only plain data is allowed)."""
    import yaml

    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ConfigError(f"{where} is not a text (UTF-8) YAML file: byte {text[e.start]:#04x} at offset "
                              f"{e.start}") from None
    try:
        return yaml.safe_load(text)
    except yaml.constructor.ConstructorError as e:
        mark = e.problem_mark
        line = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(f"{where}{line}: {e.problem}; a config holds plain YAML data only "
                          "(no !!python/... or other tags)") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{where} is not valid YAML{line}: {problem}") from None


def apply_overrides(d: dict, overrides) -> dict:
    """Return a copy of ``d`` with ``key.sub=value`` overrides applied (values parsed as YAML).

    Keys are checked against the schema, so a typo fails with the list of valid keys.
    """
    import copy

    d = copy.deepcopy(d)
    for item in overrides or ():
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key.sub=value, e.g. trainer.max_steps=100")
        key, raw = item.split("=", 1)
        key = key.strip()
        parts = key.split(".")
        _check_key_path(parts)
        value = parse_yaml(raw, f"override {item!r}") if raw.strip() else None
        node = d
        for p in parts[:-1]:
            if not isinstance(node.get(p), dict):
                node[p] = {}
            node = node[p]
        node[parts[-1]] = value
    return d


def _check_key_path(parts: list[str]) -> None:
    cls = ExperimentConfig
    for i, p in enumerate(parts):
        if cls is dict:  # free-form (model.kwargs.*)
            return
        if not dataclasses.is_dataclass(cls):
            raise ConfigError(f"override key '{'.'.join(parts)}': '{'.'.join(parts[:i])}' is not a section")
        names = [f.name for f in dataclasses.fields(cls)]
        if p not in names:
            prefix = ".".join(parts[:i])
            where = f"section '{prefix}'" if prefix else "the top level"
            close = difflib.get_close_matches(p, names, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(f"unknown config key '{'.'.join(parts[: i + 1])}'{hint}; "
                              f"valid keys in {where}: {', '.join(names)}")
        tp = typing.get_type_hints(cls)[p]
        cls = tp if (dataclasses.is_dataclass(tp) or tp is dict) else None
        if cls is None and i < len(parts) - 1:
            raise ConfigError(f"override key '{'.'.join(parts)}': '{'.'.join(parts[: i + 1])}' is not a section")


def save_config(cfg: ExperimentConfig, path) -> None:
    import yaml

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        yaml.safe_dump(config_to_dict(cfg), f, sort_keys=False)
