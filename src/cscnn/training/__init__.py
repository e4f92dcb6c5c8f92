"""Training and evaluation: LightningModule, configs, metrics, rollout, plots, and the
functions behind the ``cscnn`` command (train, evaluate, plot, equivariance, info)."""

from .checkpoint import CheckpointError, find_checkpoint, load_module, read_checkpoint
from .config import ConfigError, ExperimentConfig, apply_overrides, config_from_dict, load_config, save_config
from .metrics import mse, one_step_metrics, per_field_mse, rollout_metrics
from .module import ForecastModule
from .rollout import RolloutResult, rollout
from .runner import DataDirError, equivariance, evaluate, info, plot, train

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataDirError",
    "ExperimentConfig",
    "ForecastModule",
    "RolloutResult",
    "apply_overrides",
    "config_from_dict",
    "equivariance",
    "evaluate",
    "find_checkpoint",
    "info",
    "load_config",
    "load_module",
    "mse",
    "one_step_metrics",
    "per_field_mse",
    "plot",
    "read_checkpoint",
    "rollout",
    "rollout_metrics",
    "save_config",
    "train",
]
