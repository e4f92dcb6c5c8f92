"""PDEDataset / PDEDataModule on small hand-written HDF5 files (no simulation needed)."""

import dataclasses
import pickle

import h5py
import numpy as np
import pytest
import torch

from cscnn import CliffordAlgebra
from cscnn.algebra import grid_symmetries, sample_group_elements
from cscnn.data import (
    TASKS,
    DataError,
    Normalization,
    PDEDataModule,
    PDEDataset,
    check_data_dir,
    compute_normalization,
    get_task,
)


def write_ns(path, n=3, t=7, x=8, nan_at=None, attrs=True, group="train"):
    """A PDEArena-layout Navier-Stokes file (float64, like PDEArena's)."""
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        g = f.create_group(group)
        for k in ("u", "vx", "vy"):
            g[k] = rng.normal(size=(n, t, x, x)) + (2.0 if k == "u" else 0.0)
        g["t"] = np.tile(np.arange(t, dtype=float), (n, 1))
        g["x"] = g["y"] = np.tile(np.linspace(0, 32, x), (n, 1))
        for k in ("dt", "dx", "dy", "buo_y"):
            g[k] = np.ones(n)
        if nan_at is not None:
            g["vx"][nan_at, 2, 1, 1] = np.nan
        if attrs:
            f.attrs["task"] = "navier-stokes"
    return path


def write_mx3(path, n=2, t=6, x=4):
    rng = np.random.default_rng(1)
    with h5py.File(path, "w") as f:
        g = f.create_group("valid")
        g["d_field"] = rng.normal(size=(n, t, x, x, x, 3)).astype(np.float32)
        g["h_field"] = rng.normal(size=(n, t, x, x, x, 3)).astype(np.float32)
    return path


def write_mx2(path, n=2, t=10, x=4):
    rng = np.random.default_rng(2)
    with h5py.File(path, "w") as f:
        g = f.create_group("train")
        g["faraday"] = rng.normal(size=(n, t, x, x, 3)).astype(np.float32)
        f.attrs["task"] = "maxwell2d"
    return path


def test_task_specs():
    assert {"navier-stokes", "maxwell3d", "maxwell2d"} <= set(TASKS)
    ns, m3, m2 = TASKS["navier-stokes"], TASKS["maxwell3d"], TASKS["maxwell2d"]
    assert (ns.metric, m3.metric, m2.metric) == ((1, 1), (1, 1, 1), (-1, 1, 1))
    assert (ns.spatial_dims, m3.spatial_dims, m2.spatial_dims) == (2, 3, 3)
    assert (ns.time_as_axis, m3.time_as_axis, m2.time_as_axis) == (False, False, True)
    assert (ns.time_history, m3.time_history, m2.time_history) == (4, 4, 16)
    assert (ns.time_future, m3.time_future, m2.time_future) == (1, 1, 16)
    assert (ns.in_channels, ns.out_channels, m3.in_channels, m2.in_channels, m2.out_channels) == (4, 1, 4, 1, 1)
    assert ns.field_names == ("u", "vx", "vy", "-")
    with pytest.raises(ValueError, match="valid tasks: .*maxwell2d.*maxwell3d.*navier-stokes"):
        get_task("burgers")
    with pytest.raises(dataclasses.FrozenInstanceError):
        ns.name = "x"


def test_ns_windows_shapes_and_values(tmp_path):
    path = write_ns(tmp_path / "train.h5")
    ds = PDEDataset(path, "navier-stokes")
    assert len(ds) == 3 * (7 - 5 + 1) and ds.num_trajectories == 3
    x, y = ds[4]  # trajectory 1, window 1
    assert x.shape == (4, 8, 8, 4) and y.shape == (1, 8, 8, 4) and x.dtype == torch.float32
    with h5py.File(path, "r") as f:
        np.testing.assert_allclose(x[..., 0].numpy(), f["train/u"][1, 1:5], rtol=1e-6)
        np.testing.assert_allclose(y[0, ..., 2].numpy(), f["train/vy"][1, 5], rtol=1e-6)
    assert (x[..., 3] == 0).all()
    traj = ds.trajectory(2)
    assert traj.shape == (7, 8, 8, 4)
    sub = PDEDataset(path, "navier-stokes", num_trajectories=2, time_history=2, time_future=2, windows="random")
    assert len(sub) == 2 and sub[1][0].shape == (2, 8, 8, 4) and sub.in_channels == 2
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_maxwell_shapes(tmp_path):
    ds = PDEDataset(write_mx3(tmp_path / "m3.h5"), "maxwell3d")  # PDEArena file: no attributes
    x, y = ds[0]
    assert x.shape == (4, 4, 4, 4, 8) and y.shape == (1, 4, 4, 4, 8)
    assert (x[..., [0, 7]] == 0).all()
    ds2 = PDEDataset(write_mx2(tmp_path / "m2.h5"), "maxwell2d", time_history=3, time_future=4, stride=2)
    x, y = ds2[1]
    assert x.shape == (1, 3, 4, 4, 8) and y.shape == (1, 4, 4, 4, 8)
    assert len(ds2) == 2 * ((10 - 7) // 2 + 1)
    alg = CliffordAlgebra((-1, 1, 1))
    torch.testing.assert_close(alg.grade_project(x, 2), x)


def test_lazy_open_and_pickling(tmp_path):
    ds = PDEDataset(write_ns(tmp_path / "train.h5"), "navier-stokes")
    assert ds._handles == {}  # nothing opened by the constructor
    ds[0]
    assert ds._handles
    clone = pickle.loads(pickle.dumps(ds))  # what DataLoader workers get
    assert clone._handles == {}
    torch.testing.assert_close(clone[3][0], ds[3][0])
    ds._pid = -1  # as seen from another (forked) process: the handle is reopened, not shared
    old = ds._handles[0]
    ds[0]
    assert ds._handles[0] is not old
    xb, yb = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
    assert xb.shape == (4, 4, 8, 8, 4)


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.h5"):
        PDEDataset(tmp_path / "nope.h5", "navier-stokes")
    corrupt = tmp_path / "corrupt.h5"
    corrupt.write_bytes(b"\x89HDF\r\n\x1a\n" + b"garbage" * 50)
    with pytest.raises(DataError, match="corrupt.h5"):
        PDEDataset(corrupt, "navier-stokes")
    ns = write_ns(tmp_path / "ns.h5")
    with pytest.raises(DataError, match="holds 'navier-stokes' data .*but 'maxwell3d' data"):
        PDEDataset(ns, "maxwell3d")
    mx = write_mx3(tmp_path / "m3.h5")
    with pytest.raises(DataError, match="m3.h5 holds 'maxwell3d' data"):
        PDEDataset(mx, "navier-stokes")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f.create_group("train")["pressure"] = np.zeros((1, 2, 3, 3))
    with pytest.raises(DataError, match=r"other.h5 is not a navier-stokes file: datasets \['u', 'vx', 'vy'\]"):
        PDEDataset(tmp_path / "other.h5", "navier-stokes")
    with pytest.raises(DataError, match=r"need 8 frames, trajectories have only 7"):
        PDEDataset(ns, "navier-stokes", time_history=6, time_future=2)
    with pytest.raises(DataError, match="only 3 trajectories"):
        PDEDataset(ns, "navier-stokes", num_trajectories=5)
    nan = write_ns(tmp_path / "nan.h5", nan_at=1)
    ds = PDEDataset(nan, "navier-stokes")
    ds[0]  # trajectory 0 is fine
    with pytest.raises(DataError, match=r"nan.h5: trajectory 1 contains NaN"):
        ds[ds.windows_per_trajectory]


def test_normalization_is_equivariant_and_invertible(tmp_path):
    ds = PDEDataset(write_ns(tmp_path / "train.h5"), "navier-stokes")
    norm = compute_normalization(ds)
    assert norm.scale[1] == norm.scale[2] and norm.shift[1:].abs().sum() == 0 and norm.shift[0] > 1
    x = ds[0][0]
    torch.testing.assert_close(norm.denormalize(norm.normalize(x)), x)
    alg = CliffordAlgebra((1, 1))
    for g in grid_symmetries((1, 1)):
        torch.testing.assert_close(norm.normalize(alg.act(g, x)), alg.act(g, norm.normalize(x)), rtol=1e-5, atol=1e-5)
    again = Normalization.from_dict(norm.to_dict())
    torch.testing.assert_close(again.scale, norm.scale)
    normed = PDEDataset(ds.path, "navier-stokes", normalization=norm)
    allx = torch.stack([normed.trajectory(i) for i in range(3)])
    assert abs(float(allx[..., 0].mean())) < 1e-5 and abs(float(allx[..., 0].std()) - 1) < 0.01
    with pytest.raises(ValueError, match="only the scalar blade"):
        Normalization("navier-stokes", [0, 1.0, 0, 0], [1, 1, 1, 1])
    # Cl(1,2): one scale for the bivector commutes with boosts
    m2 = PDEDataset(write_mx2(tmp_path / "m2.h5"), "maxwell2d", time_history=2, time_future=2)
    n2 = compute_normalization(m2)
    alg2 = CliffordAlgebra((-1, 1, 1))
    y = m2.trajectory(0).double()
    for g in sample_group_elements((-1, 1, 1), 3, generator=torch.Generator().manual_seed(0)):
        torch.testing.assert_close(n2.normalize(alg2.act(g, y)), alg2.act(g, n2.normalize(y)))


def test_datamodule(tmp_path):
    with pytest.raises(FileNotFoundError, match="train.h5"):
        check_data_dir(tmp_path, "navier-stokes")
    write_ns(tmp_path / "train.h5", n=10)
    with pytest.raises(FileNotFoundError, match="test.h5"):
        PDEDataModule("navier-stokes", tmp_path).setup()
    write_ns(tmp_path / "test.h5", n=2, group="test")
    dm = PDEDataModule("navier-stokes", tmp_path, batch_size=2)
    dm.setup()
    # no valid.h5: the last 10% of train is held out
    assert dm.train_dataset.indices == list(range(9)) and dm.val_dataset.indices == [9]
    assert dm.test_dataset.num_trajectories == 2
    assert len(list(tmp_path.glob("train.norm-*.json"))) == 1
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (2, 4, 8, 8, 4) and y.shape == (2, 1, 8, 8, 4)
    write_ns(tmp_path / "valid.h5", n=2, group="valid")
    dm2 = PDEDataModule("navier-stokes", tmp_path, num_trajectories=4, normalize=False)
    dm2.setup()
    assert dm2.train_dataset.num_trajectories == 4 and dm2.val_dataset.path.name == "valid.h5"
    assert dm2.normalization is None
    dm3 = PDEDataModule("navier-stokes", tmp_path, num_trajectories=4)
    dm3.setup()
    assert dm3.normalization.to_dict() != dm.normalization.to_dict()  # statistics of the subset used
    with pytest.raises(DataError, match="only 10"):
        PDEDataModule("navier-stokes", tmp_path, num_trajectories=11).setup()
