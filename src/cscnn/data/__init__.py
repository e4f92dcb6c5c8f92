"""The paper's PDE data sets: local generation, HDF5 storage, multivector datasets.

Generators need the ``data`` extra (phiflow, fdtd, pycharge + jax, h5py, joblib);
they are imported only when used.
"""

from .datamodule import PDEDataModule, check_data_dir
from .datasets import PDEDataset
from .normalization import Normalization, compute_normalization
from .storage import PRESETS, DataError, generate_dataset, trajectory_seed
from .tasks import TASKS, TaskSpec, get_task

__all__ = [
    "PRESETS",
    "TASKS",
    "DataError",
    "Normalization",
    "PDEDataModule",
    "PDEDataset",
    "TaskSpec",
    "check_data_dir",
    "compute_normalization",
    "generate_dataset",
    "get_task",
    "trajectory_seed",
]
