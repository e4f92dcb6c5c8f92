"""Training and evaluation: LightningModule, configs, metrics, rollout, plots, and the
functions behind the ``cscnn`` command.

Modules: ``config`` (YAML schema), ``checks`` (input checks before any work), ``fit``
(:func:`train`), ``evaluation`` (:func:`evaluate`, :func:`plot`), ``inspection``
(:func:`equivariance`, :func:`info`), ``module`` (the LightningModule), ``checkpoint``
(safe loading), ``metrics``, ``rollout``, ``plots``, ``json_safe``.
"""

import importlib
import sys
import types
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the same names, for type checkers and the API reference (which read the source)
    from .checkpoint import CheckpointError, find_checkpoint, load_module, read_checkpoint
    from .checks import DataDirError
    from .config import ConfigError, ExperimentConfig, apply_overrides, config_from_dict, load_config, save_config
    from .evaluation import evaluate, plot
    from .fit import train
    from .inspection import equivariance, info
    from .metrics import ReferencePredictor, mse, one_step_metrics, per_field_mse, reference_metrics, rollout_metrics
    from .module import ForecastModule, TrainingDiverged
    from .rollout import RolloutResult, rollout

# name -> submodule; imported on first use, so that ``cscnn.training.config`` (and the ``cscnn``
# command's argument and config checks) load without torch and Lightning
_LAZY = {
    "CheckpointError": "checkpoint", "find_checkpoint": "checkpoint", "load_module": "checkpoint",
    "read_checkpoint": "checkpoint",
    "DataDirError": "checks",
    "ConfigError": "config", "ExperimentConfig": "config", "apply_overrides": "config", "config_from_dict": "config",
    "load_config": "config", "save_config": "config",
    "evaluate": "evaluation", "plot": "evaluation",
    "train": "fit",
    "equivariance": "inspection", "info": "inspection",
    "mse": "metrics", "one_step_metrics": "metrics", "per_field_mse": "metrics", "rollout_metrics": "metrics",
    "ReferencePredictor": "metrics", "reference_metrics": "metrics",
    "ForecastModule": "module", "TrainingDiverged": "module",
    "RolloutResult": "rollout", "rollout": "rollout",
}


def __getattr__(name: str):
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{mod}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


class _Package(types.ModuleType):
    """``cscnn.training.rollout`` is the function (as with the eager imports this package had), even
    after the submodule of the same name was imported, which binds the submodule here."""

    @property
    def rollout(self):
        return importlib.import_module(".rollout", __name__).rollout

    @rollout.setter
    def rollout(self, value):  # the import system binding the submodule: keep the function
        pass


sys.modules[__name__].__class__ = _Package


__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataDirError",
    "ExperimentConfig",
    "ForecastModule",
    "ReferencePredictor",
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
    "reference_metrics",
    "rollout",
    "rollout_metrics",
    "save_config",
    "train",
]
