"""Names the ``cscnn`` command needs before it imports torch: tasks and their presets, models,
Lightning precisions.

A static copy of the registries (:data:`cscnn.data.TASKS`, :data:`cscnn.models.MODELS`, Lightning's
precision strings), so that ``cscnn --help``, ``cscnn <command> --help``, argument errors and config
validation answer in a fraction of the time ``import torch`` takes. ``tests/test_cli_startup.py``
checks that it matches the registries; a new task or model is added here as well. Names found only
in the live registries (tasks from an entry point or :func:`cscnn.data.register_task`, models added to
``MODELS``) are still accepted: see :func:`task_names` and :func:`model_names`.

This module imports nothing from cscnn and nothing heavy.
"""

from __future__ import annotations

import sys

__all__ = ["TASK_PRESETS", "TASK_DESCRIPTIONS", "MODEL_NAMES", "PRECISIONS", "task_names", "model_names"]

#: task -> its simulation presets (``cscnn generate --preset``); ``pdearena`` is the full size for every task
TASK_PRESETS: dict[str, tuple[str, ...]] = {
    "maxwell2d": ("paper", "small", "pdearena"),
    "maxwell3d": ("pdearena", "small"),
    "navier-stokes": ("pdearena", "small"),
    "navier-stokes-periodic": ("full", "small", "pdearena"),
    "the-well": (),  # read from downloaded files, not simulated
}

#: task -> one line for help texts (``TaskSpec.description``)
TASK_DESCRIPTIONS: dict[str, str] = {
    "maxwell2d": "2D+1 electrodynamics (pycharge), Faraday bivector in Cl(1,2)",
    "maxwell3d": "3D Maxwell (FDTD), E vector + H bivector in Cl(3,0)",
    "navier-stokes": "2D smoke with buoyancy (PhiFlow), [u, vx, vy, 0] in Cl(2,0)",
    "navier-stokes-periodic": "2D incompressible smoke + velocity on a periodic square, no gravity (PhiFlow), Cl(2,0)",
    "the-well": "The Well (PolymathicAI): 2D/3D cartesian data sets, layout from the files (--data BASE/datasets/NAME)",
}

#: the names of :data:`cscnn.models.MODELS`
MODEL_NAMES: tuple[str, ...] = ("cs_resnet", "cs_unet", "cond_cs_resnet", "cond_cs_unet", "cs_resnet_two_sided",
                                "resnet", "clifford_resnet", "steerable_resnet", "fno", "gfno")

#: Lightning's ``Trainer(precision=...)`` strings (``lightning.fabric.connector._PRECISION_INPUT_STR`` and aliases)
PRECISIONS: tuple[str, ...] = ("transformer-engine", "transformer-engine-float16", "16-true", "16-mixed", "bf16-true",
                               "bf16-mixed", "32-true", "64-true", "64", "32", "16", "bf16")


def _entry_point_tasks() -> list[str]:
    try:
        from importlib.metadata import entry_points

        return [ep.name for ep in entry_points(group="cscnn.tasks")]
    except Exception:  # pragma: no cover - broken metadata: only the built-in tasks
        return []


def task_names() -> list[str]:
    """Built-in tasks, entry-point tasks (by entry-point name, not loaded) and, when the registry is
    already imported in this process, every registered task; without importing torch."""
    names = list(TASK_PRESETS)
    names += [n for n in _entry_point_tasks() if n not in names]
    reg = sys.modules.get("cscnn.data.tasks")
    if reg is not None:
        names += [n for n in getattr(reg, "TASKS", {}) if n not in names]
    return names


def model_names() -> list[str]:
    """Built-in model names and, when the registry is already imported, every registered one."""
    names = list(MODEL_NAMES)
    reg = sys.modules.get("cscnn.models.registry")
    if reg is not None:
        names += [n for n in getattr(reg, "MODELS", {}) if n not in names]
    return names
