"""PDEArena-style folders (written here with h5py, as PDEArena lays them out), resizing on load,
the data-keyed normalisation cache, and the data module's loaders (DDP split, resumable order, bad input)."""

import os

import h5py
import numpy as np
import pytest
import torch

from cscnn import CliffordAlgebra
from cscnn.algebra import grid_symmetries
from cscnn.data import (
    DataError,
    MissingDataError,
    PDEDataModule,
    PDEDataset,
    ResumableLoader,
    ResumableSampler,
    check_data_dir,
    compute_normalization,
    resize_fields,
)
from cscnn.testing import transform_field


def write_pdearena_ns(folder, split, seed, n, t=7, x=8, scale=1.0):
    """One PDEArena Navier-Stokes shard: NavierStokes2D_<split>_<seed>_0.50000_<n>.h5, no file attributes."""
    rng = np.random.default_rng(seed)
    path = folder / f"NavierStokes2D_{split}_{seed}_0.50000_{n}.h5"
    with h5py.File(path, "w") as f:
        g = f.create_group(split)
        for k in ("u", "vx", "vy"):
            g.create_dataset(k, data=(scale * rng.normal(size=(n, t, x, x))).astype(np.float32))
        g["buo_y"] = np.full(n, 0.5)
        g["t"] = np.tile(np.arange(t) * 1.5 + 18, (n, 1))
        g["x"] = np.tile((np.arange(x) + 0.5) * 32 / x, (n, 1))
        g["y"] = g["x"][()]
        g["dt"], g["dx"], g["dy"] = np.full(n, 1.5), np.full(n, 32 / x), np.full(n, 32 / x)
    return path


def write_pdearena_mx3(folder, split, seed, n, t=6, x=4):
    rng = np.random.default_rng(seed)
    path = folder / f"Maxwell3D_{split}_{seed}.h5"
    with h5py.File(path, "w") as f:
        g = f.create_group(split)
        g["d_field"] = rng.normal(size=(n, t, x, x, x, 3)).astype(np.float32)
        g["h_field"] = rng.normal(size=(n, t, x, x, x, 3)).astype(np.float32)
    return path


def ns_folder(tmp_path, x=8):
    a = write_pdearena_ns(tmp_path, "train", 11, 3, x=x)
    b = write_pdearena_ns(tmp_path, "train", 12, 2, x=x)
    write_pdearena_ns(tmp_path, "valid", 21, 2, x=x)
    write_pdearena_ns(tmp_path, "test", 31, 2, x=x)
    return a, b


def test_pdearena_ns_shards_read_together_lazily(tmp_path):
    a, b = ns_folder(tmp_path)
    before = sorted(os.listdir(tmp_path))
    files = check_data_dir(tmp_path, "navier-stokes")
    assert files["train"] == [a, b] and len(files["valid"]) == 1 and len(files["test"]) == 1
    ds = PDEDataset(tmp_path, "navier-stokes", split="train")
    assert ds.num_trajectories == 5 and ds.files == [a, b] and ds._handles == {}  # nothing read yet
    x, y = ds[3 * ds.windows_per_trajectory + 1]  # trajectory 3 = the first one of the second shard, window 1
    with h5py.File(b, "r") as f:
        np.testing.assert_array_equal(x[..., 0].numpy(), f["train/u"][0, 1:5])
        np.testing.assert_array_equal(y[0, ..., 2].numpy(), f["train/vy"][0, 5])
    assert set(ds._handles) == {1}  # only the shard that was read is open
    assert sorted(os.listdir(tmp_path)) == before  # no copy, no merged file
    # the data module counts trajectories across shards
    dm = PDEDataModule("navier-stokes", tmp_path, batch_size=2, num_trajectories=4, normalize=False)
    dm.setup()
    assert dm.train_dataset.num_trajectories == 4 and dm.train_dataset.files == [a, b]
    assert dm.val_dataset.num_trajectories == 2 and dm.test_dataset.num_trajectories == 2
    with pytest.raises(DataError, match="only 5 training trajectories"):
        PDEDataModule("navier-stokes", tmp_path, num_trajectories=6).setup()


def test_pdearena_maxwell3d_folder(tmp_path):
    write_pdearena_mx3(tmp_path, "train", 1, 2)
    write_pdearena_mx3(tmp_path, "train", 2, 1)
    write_pdearena_mx3(tmp_path, "valid", 3, 1)
    write_pdearena_mx3(tmp_path, "test", 4, 1)
    dm = PDEDataModule("maxwell3d", tmp_path, batch_size=2)
    dm.setup()
    assert dm.train_dataset.num_trajectories == 3
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (2, 4, 4, 4, 4, 8) and y.shape == (2, 1, 4, 4, 4, 8)
    with pytest.raises(DataError, match=r"Maxwell3D_train_1.h5 holds 'maxwell3d' data"):
        check_data_dir(tmp_path, "navier-stokes")


def test_missing_split_and_disagreeing_shards_name_the_files(tmp_path):
    with pytest.raises(MissingDataError, match="does not exist"):
        check_data_dir(tmp_path / "nowhere", "navier-stokes")
    write_pdearena_ns(tmp_path, "train", 1, 2)
    with pytest.raises(MissingDataError, match=r"no 'test' data \(looked for test.h5 or \*test\*.h5\)"):
        check_data_dir(tmp_path, "navier-stokes")
    assert check_data_dir(tmp_path, "navier-stokes", require_test=False)["valid"] is None
    bad = write_pdearena_ns(tmp_path, "train", 2, 2, x=16)  # another grid
    with pytest.raises(DataError, match=r"NavierStokes2D_train_1_0.50000_2.h5 has grid \(8, 8\).*"
                                        r"NavierStokes2D_train_2_0.50000_2.h5 has grid \(16, 16\)"):
        check_data_dir(tmp_path, "navier-stokes", require_test=False)
    bad.unlink()
    other = tmp_path / "NavierStokes2D_train_3_0.50000_1.h5"
    with h5py.File(other, "w") as f:
        f.create_group("train")["u"] = np.zeros((1, 7, 8, 8), np.float32)  # vx, vy missing
    with pytest.raises(DataError, match=r"_3_0.50000_1.h5 is not a navier-stokes file: datasets \['vx', 'vy'\]"):
        PDEDataset(tmp_path, "navier-stokes", split="train")


# ------------------------------------------------------------------ resize
def test_resize_integer_factor_is_area_average():
    x = torch.randn(3, 8, 12, 2)
    out = resize_fields(x, (4, 3))
    ref = x.reshape(3, 4, 2, 3, 4, 2).mean((2, 4))
    torch.testing.assert_close(out, ref)
    arr = resize_fields(x.numpy(), (4, 3))
    assert isinstance(arr, np.ndarray) and arr.shape == (3, 4, 3, 2)


@pytest.mark.parametrize("size_in,size_out", [(8, 4), (12, 8), (6, 9), (7, 5)])
@pytest.mark.parametrize("metric", [(1, 1), (1, 1, 1)])
def test_resize_commutes_with_grid_symmetries(metric, size_in, size_out):
    """Area averaging and the anti-aliased linear filter (non-integer factors, upsampling) commute with
    every rotation by 90 degrees and reflection of the grid, acting on multivector fields."""
    alg = CliffordAlgebra(metric)
    d = len(metric)
    x = torch.randn(1, 2, *(size_in,) * d, alg.n_blades, dtype=torch.float64)

    def resize(t):  # (1, T, *grid, blades)
        return resize_fields(t[0], (size_out,) * d)[None]

    for g in grid_symmetries(metric):
        torch.testing.assert_close(resize(transform_field(alg, g, x)), transform_field(alg, g, resize(x)))


@pytest.mark.parametrize("size_in,size_out", [(12, 8), (7, 5), (6, 9), (5, 12)])
def test_linear_filter_matches_torch_antialiased_bilinear(size_in, size_out):
    x = torch.randn(2, size_in, size_in, 3, dtype=torch.float64)
    ref = torch.nn.functional.interpolate(x.permute(0, 3, 1, 2), size=(size_out, size_out), mode="bilinear",
                                          antialias=True, align_corners=False).permute(0, 2, 3, 1)
    torch.testing.assert_close(resize_fields(x, (size_out, size_out)), ref)


def test_dataset_resolution_and_normalisation_at_that_resolution(tmp_path):
    ns_folder(tmp_path, x=16)
    full = PDEDataset(tmp_path, "navier-stokes", split="train")
    half = PDEDataset(tmp_path, "navier-stokes", split="train", resolution=8)
    odd = PDEDataset(tmp_path, "navier-stokes", split="train", resolution=[12, 10])
    assert full.spatial_shape == (16, 16) and half.spatial_shape == (8, 8) and odd.spatial_shape == (12, 10)
    x, y = half[0]
    assert x.shape == (4, 8, 8, 4) and y.shape == (1, 8, 8, 4) and odd[0][0].shape == (4, 12, 10, 4)
    torch.testing.assert_close(x, full[0][0].reshape(4, 8, 2, 8, 2, 4).mean((2, 4)))
    torch.testing.assert_close(y, full[0][1].reshape(1, 8, 2, 8, 2, 4).mean((2, 4)))
    n_half = compute_normalization(half)
    traj = np.concatenate([half.raw_fields(i) for i in range(5)])
    assert n_half.scale[0].item() == pytest.approx(traj[..., 0].std(), rel=1e-5)
    assert n_half.scale[1].item() == pytest.approx(np.sqrt((traj[..., 1:] ** 2).mean()), rel=1e-5)
    assert n_half.scale[1] < 0.8 * compute_normalization(full).scale[1]  # averaging white noise shrinks it
    dm = PDEDataModule("navier-stokes", tmp_path, batch_size=2, resolution=8)
    dm.setup()
    assert dm.train_dataset.spatial_shape == dm.test_dataset.spatial_shape == (8, 8)
    with pytest.raises(ValueError, match="resolution must be an int or a list of 2 ints"):
        PDEDataset(tmp_path, "navier-stokes", split="train", resolution="64")
    with pytest.raises(ValueError, match="has 3 entries"):
        PDEDataset(tmp_path, "navier-stokes", split="train", resolution=[8, 8, 8])


# ------------------------------------------------------- normalisation cache
def test_normalization_cache_is_keyed_by_the_data(tmp_path, monkeypatch):
    """A train file replaced by one of the same name and size without a `created` attribute but with
    100x the values gets new statistics; unchanged data reuse the cache."""
    write_pdearena_ns(tmp_path, "train", 1, 4, scale=1.0)
    path = tmp_path / "NavierStokes2D_train_1_0.50000_4.h5"
    dm = PDEDataModule("navier-stokes", tmp_path)
    dm.setup("fit")
    caches = list(tmp_path.glob("train.norm-*.json"))
    assert len(caches) == 1
    size = path.stat().st_size
    path.unlink()
    write_pdearena_ns(tmp_path, "train", 1, 4, scale=100.0)
    assert path.stat().st_size == size
    dm2 = PDEDataModule("navier-stokes", tmp_path)
    dm2.setup("fit")
    ratio = (dm2.normalization.scale / dm.normalization.scale).tolist()
    assert ratio[:3] == pytest.approx([100.0] * 3, rel=1e-4)
    x = torch.stack([dm2.train_dataset[i][0] for i in range(len(dm2.train_dataset))])
    assert float(x[..., 1:3].pow(2).mean().sqrt()) == pytest.approx(1.0, rel=0.1)  # not 100
    assert len(list(tmp_path.glob("train.norm-*.json"))) == 2

    import cscnn.data.datamodule as dmod

    def fail(_):
        raise AssertionError("statistics recomputed although the data did not change")

    monkeypatch.setattr(dmod, "compute_normalization", fail)
    dm3 = PDEDataModule("navier-stokes", tmp_path)
    dm3.setup("fit")
    assert dm3.normalization.to_dict() == dm2.normalization.to_dict()


# ----------------------------------------------------------------- loaders
class _FakeTrainer:
    def __init__(self, world_size, global_rank):
        self.world_size, self.global_rank = world_size, global_rank


def _batches(loader):
    return [x for x, _ in loader]


def test_loaders_split_the_data_between_ddp_processes(tmp_path):
    ns_folder(tmp_path)
    seen = []
    for rank in range(2):
        dm = PDEDataModule("navier-stokes", tmp_path, batch_size=1, normalize=False, seed=3)
        dm.trainer = _FakeTrainer(2, rank)
        loader = dm.train_dataloader()
        assert isinstance(loader.sampler, torch.utils.data.DistributedSampler)  # Lightning keeps it
        assert loader.sampler.num_replicas == 2 and loader.sampler.rank == rank
        seen.append(list(loader.sampler))
        val = dm.val_dataloader()
        assert val.sampler.num_replicas == 2 and not val.sampler.shuffle
    n = len(dm.train_dataset)  # 5 trajectories x 3 windows = 15: one index padded
    assert len(seen[0]) == len(seen[1]) == (n + 1) // 2
    assert set(seen[0]) | set(seen[1]) == set(range(n))
    single = PDEDataModule("navier-stokes", tmp_path, batch_size=1, normalize=False, seed=3)
    assert sorted(single.train_dataloader().sampler) == list(range(n))


def test_loader_order_is_seeded_and_resumable(tmp_path):
    ns_folder(tmp_path)
    dm = PDEDataModule("navier-stokes", tmp_path, batch_size=2, normalize=False, seed=5)
    a = dm.train_dataloader()
    a.sampler.set_epoch(1)
    full = _batches(a)
    assert len(full) == 8  # 15 windows
    it = iter(a)
    for _ in range(3):
        next(it)
    state = a.state_dict()
    assert state["epoch"] == 1 and state["batches"] == 3
    b = PDEDataModule("navier-stokes", tmp_path, batch_size=2, normalize=False, seed=5).train_dataloader()
    b.load_state_dict(state)
    rest = _batches(b)
    assert len(rest) == 5 and all(torch.equal(p, q) for p, q in zip(rest, full[3:]))
    assert len(b) == 8  # the epoch length stays whole (Lightning counts resumed batches itself)
    assert len(_batches(b)) == 8  # the next pass is a whole epoch again
    other = PDEDataModule("navier-stokes", tmp_path, batch_size=2, normalize=False, seed=6).train_dataloader()
    other.sampler.set_epoch(1)
    assert not all(torch.equal(p, q) for p, q in zip(_batches(other), full))
    assert isinstance(a, ResumableLoader) and isinstance(a.sampler, ResumableSampler)
    unshuffled = PDEDataModule("navier-stokes", tmp_path, batch_size=15, normalize=False, shuffle=False)
    assert list(unshuffled.train_dataloader().sampler) == list(range(15))


def test_datamodule_bad_input(tmp_path):
    ns_folder(tmp_path)
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        PDEDataModule("navier-stokes", tmp_path, batch_size=0)
    with pytest.raises(ValueError, match="num_workers must be an integer >= 0, got -1"):
        PDEDataModule("navier-stokes", tmp_path, num_workers=-1)
    with pytest.raises(ValueError, match="num_trajectories must be a positive integer or None, got 0"):
        PDEDataModule("navier-stokes", tmp_path, num_trajectories=0)
    with pytest.raises(ValueError, match="num_trajectories must be a positive integer"):
        PDEDataset(tmp_path, "navier-stokes", split="train", num_trajectories=0)


def test_cli_trains_and_evaluates_on_a_pdearena_folder_at_another_resolution(tmp_path):
    pytest.importorskip("lightning")
    from cscnn.cli import main

    data = tmp_path / "pdearena"
    data.mkdir()
    ns_folder(data, x=16)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(
        "task: navier-stokes\nname: t\nmodel: {name: cs_resnet, hidden_channels: 2, kwargs: {blocks: [1], "
        "kernel_size: 3, kernel_num_layers: 2, kernel_hidden_channels: 4}}\n"
        "data: {batch_size: 4, resolution: 8}\n"
        "trainer: {max_steps: 2, accelerator: cpu, devices: 1, enable_progress_bar: false, log_every_n_steps: 1}\n"
        "eval: {num_rollout_trajectories: 1, batch_size: 4}\n")
    out = tmp_path / "run"
    assert main(["train", "--config", str(cfg), "--data", str(data), "--out", str(out), "--no-progress"]) == 0
    assert main(["evaluate", str(out), "--data", str(data), "--num-rollout", "1", "--no-progress"]) == 0
    assert main(["plot", str(out), "--data", str(data), "--no-gif", "--rollout-steps", "2"]) == 0
    assert list((out / "plots").glob("*.png"))
    assert main(["equivariance", str(out), "--data", str(data), "--num", "2"]) == 0
    from cscnn.training.evaluation import load_for_eval

    assert load_for_eval(out, data)[4].spatial_shape == (8, 8)  # evaluated at the training resolution
    assert list(data.glob("train.norm-*.json"))  # statistics cached next to the shards
