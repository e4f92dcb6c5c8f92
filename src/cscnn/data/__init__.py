"""The PDE data sets: task registry, generation, HDF5 storage, multivector datasets.

One file per PDE in :mod:`cscnn.data.tasks` holds everything about it. Generators
need the ``data`` extra (phiflow, fdtd, pycharge + jax, h5py, joblib; Dask clusters:
the ``dask`` extra); they are imported only when used.
"""

from .datamodule import PDEDataModule
from .datasets import PDEDataset
from .errors import DataError, MissingDataError
from .generation import PRESETS, generate_dataset, merge_shards, parse_shard, resolve_params, trajectory_seed
from .hdf5 import check_data_dir, split_files
from .normalization import Normalization, compute_normalization
from .resize import resize_fields
from .sampler import ResumableLoader, ResumableSampler
from .tasks import TASKS, TaskSpec, get_task, load_entry_point_tasks, register_task
from .well_writer import write_well_dataset

__all__ = [
    "PRESETS",
    "TASKS",
    "DataError",
    "MissingDataError",
    "Normalization",
    "PDEDataModule",
    "PDEDataset",
    "ResumableLoader",
    "ResumableSampler",
    "TaskSpec",
    "check_data_dir",
    "compute_normalization",
    "generate_dataset",
    "get_task",
    "merge_shards",
    "parse_shard",
    "register_task",
    "resize_fields",
    "resolve_params",
    "split_files",
    "trajectory_seed",
    "write_well_dataset",
]

load_entry_point_tasks()  # last: a plug-in task module may import from cscnn.data
