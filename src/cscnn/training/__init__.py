"""Training and evaluation: LightningModule, configs, metrics, rollout, plots, and the
functions behind the ``cscnn`` command.

Modules: ``config`` (YAML schema), ``checks`` (input checks before any work), ``fit``
(:func:`train`), ``evaluation`` (:func:`evaluate`, :func:`plot`), ``inspection``
(:func:`equivariance`, :func:`info`), ``module`` (the LightningModule), ``checkpoint``
(safe loading), ``metrics``, ``rollout``, ``plots``, ``json_safe``.
"""

from .checkpoint import CheckpointError, find_checkpoint, load_module, read_checkpoint
from .checks import DataDirError
from .config import ConfigError, ExperimentConfig, apply_overrides, config_from_dict, load_config, save_config
from .evaluation import evaluate, plot
from .fit import train
from .inspection import equivariance, info
from .metrics import mse, one_step_metrics, per_field_mse, rollout_metrics
from .module import ForecastModule, TrainingDiverged
from .rollout import RolloutResult, rollout

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataDirError",
    "ExperimentConfig",
    "ForecastModule",
    "RolloutResult",
    "TrainingDiverged",
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
