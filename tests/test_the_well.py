"""Task `the-well`: small files written here in The Well's documented HDF5 layout (2D periodic,
3D, a wall boundary, a t2 field, a pseudovector field), their multivector layout, equivariance
of the embedding, VRMSE, bad files, and train / evaluate / plot / equivariance through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

h5py = pytest.importorskip("h5py")
pytest.importorskip("lightning")

from cscnn import CliffordAlgebra  # noqa: E402
from cscnn.data import DataError, MissingDataError, PDEDataModule, PDEDataset, get_task  # noqa: E402
from cscnn.data.tasks.the_well import describe_file, read_scalars  # noqa: E402
from cscnn.fields import from_multivector, to_multivector  # noqa: E402

AXES = "xyz"


def write_well_file(path: Path, name: str = "shear_flow", grid=(8, 8), n_traj: int = 2, n_steps: int = 6,
                    t0=("tracer", "pressure"), t1=("velocity",), t2=(), bc=("PERIODIC", "PERIODIC"),
                    grid_type: str = "cartesian", seed: int = 0, skip_group: str | None = None,
                    constant_t0=(), scalars=(("Reynolds", 1e4),), time_varying_scalars=()) -> Path:
    """One file in The Well's layout (the_well.data.WellDataset's reading of it): file attrs,
    dimensions, boundary_conditions, scalars, t0/t1/t2_fields with per-field attrs. A scalar given
    one value per trajectory (a list) is sample-varying; ``time_varying_scalars`` adds scalars with
    one value per time step."""
    rng = np.random.default_rng(seed)
    d = len(grid)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.attrs["dataset_name"] = name
        f.attrs["grid_type"] = grid_type
        f.attrs["n_spatial_dims"] = d
        f.attrs["n_trajectories"] = n_traj
        f.attrs["simulation_parameters"] = ["Reynolds"]
        dims = f.create_group("dimensions")
        dims.attrs["spatial_dims"] = list(AXES[:d])
        t = dims.create_dataset("time", data=np.linspace(0, 1, n_steps, dtype=np.float32))
        t.attrs["sample_varying"] = False
        for a, n in zip(AXES, grid):
            c = dims.create_dataset(a, data=np.linspace(0, 1, n, endpoint=False, dtype=np.float32))
            c.attrs["sample_varying"] = False
            c.attrs["time_varying"] = False
        bcs = f.create_group("boundary_conditions")
        for a, kind, n in zip(AXES, bc, grid):
            g = bcs.create_group(f"{a}_{kind.lower()}")
            g.attrs["bc_type"] = kind
            g.attrs["associated_dims"] = [a]
            g.attrs["associated_fields"] = []
            g.attrs["sample_varying"] = False
            g.attrs["time_varying"] = False
            mask = np.zeros(n, bool)
            mask[[0, -1]] = True
            g.create_dataset("mask", data=mask)
        sc = f.create_group("scalars")
        sc.attrs["field_names"] = [s for s, _ in scalars] + list(time_varying_scalars)
        for s, v in scalars:
            ds = sc.create_dataset(s, data=np.asarray(v, np.float32))
            ds.attrs["sample_varying"] = np.ndim(v) > 0
            ds.attrs["time_varying"] = False
        for s in time_varying_scalars:
            ds = sc.create_dataset(s, data=np.linspace(0, 1, n_steps, dtype=np.float32))
            ds.attrs["sample_varying"] = False
            ds.attrs["time_varying"] = True
        for order, names in enumerate((t0, t1, t2)):
            grp = f.create_group(f"t{order}_fields")
            listed = list(names) + (list(constant_t0) if order == 0 else [])
            grp.attrs["field_names"] = listed
            for fname in names:
                shape = (n_traj, n_steps, *grid) + (d,) * order
                ds = grp.create_dataset(fname, data=rng.standard_normal(shape).astype(np.float32))
                ds.attrs["dim_varying"] = [True] * d
                ds.attrs["sample_varying"] = True
                ds.attrs["time_varying"] = True
            if order == 0:
                for fname in constant_t0:  # a constant mask: not time-varying, not read
                    ds = grp.create_dataset(fname, data=np.ones(grid, np.float32))
                    ds.attrs["dim_varying"] = [True] * d
                    ds.attrs["sample_varying"] = False
                    ds.attrs["time_varying"] = False
        if skip_group is not None:
            del f[skip_group]
    return path


def well_dataset(root: Path, name: str = "shear_flow", n_train: int = 3, **kw) -> Path:
    """``root/datasets/<name>`` with data/train (two files), data/valid and data/test."""
    base = root / "datasets" / name
    write_well_file(base / "data" / "train" / f"{name}_a.hdf5", name, n_traj=2, seed=1, **kw)
    if n_train > 2:
        write_well_file(base / "data" / "train" / f"{name}_b.hdf5", name, n_traj=n_train - 2, seed=2, **kw)
    write_well_file(base / "data" / "valid" / f"{name}_v.hdf5", name, n_traj=1, seed=3, **kw)
    write_well_file(base / "data" / "test" / f"{name}_t.hdf5", name, n_traj=1, seed=4, **kw)
    return base


# ------------------------------------------------------------------ layout
def test_2d_periodic_layout_packs_scalars_and_reads_components(tmp_path):
    base = well_dataset(tmp_path)
    task = get_task("the-well").resolve(base)
    assert task.metric == (1, 1) and task.grid_dims == 2 and task.padding == "circular"
    lay = task.layout
    # tracer + velocity share multivector 0, pressure goes to multivector 1 (the scalar blade is taken)
    assert lay.channels == 2 and lay.width == 8
    assert lay.components == ("tracer", "pressure", "velocity_x", "velocity_y")
    assert lay.blades == (0, 4, 1, 2)
    assert task.channels(4, 1) == (8, 2)
    ds = PDEDataset(base, "the-well", time_history=2, time_future=1, split="train")
    assert ds.num_trajectories == 3 and ds.num_frames == 6 and len(ds) == 3 * 4
    raw = ds.raw_fields(2, slice(1, 3))  # trajectory 0 of the second file
    with h5py.File(base / "data" / "train" / "shear_flow_b.hdf5") as f:
        np.testing.assert_array_equal(raw[..., 1], f["t0_fields/pressure"][0, 1:3])
        np.testing.assert_array_equal(raw[..., 2:], f["t1_fields/velocity"][0, 1:3])
    x, y = ds[0]
    assert x.shape == (4, 8, 8, 4) and y.shape == (2, 8, 8, 4)  # 2 steps x 2 multivectors, step-major
    mv = ds.trajectory(0)
    assert mv.shape == (6, 8, 8, 8)
    torch.testing.assert_close(x, task.fold(mv[:2]))
    torch.testing.assert_close(task.unfold(x), mv[:2])
    assert read_scalars(base / "data" / "train" / "shear_flow_a.hdf5", 0) == {"Reynolds": 1e4}


def test_matches_the_well_loader(tmp_path):
    """Components equal the_well.data.WellDataset's input_fields (t0, t1 (x, y) order), when installed."""
    the_well = pytest.importorskip("the_well.data")
    base = well_dataset(tmp_path, n_train=2)
    ref = the_well.WellDataset(path=str(base / "data" / "train"), n_steps_input=2, n_steps_output=1,
                               use_normalization=False)
    ours = PDEDataset(base, "the-well", time_history=2, time_future=1, split="train")
    for i in (0, 5):
        traj, w = divmod(i, ours.windows_per_trajectory)
        np.testing.assert_allclose(ours.raw_fields(traj, slice(w, w + 2)), ref[i]["input_fields"].numpy())


def test_3d_wall_t2_and_pseudovector(tmp_path):
    f = write_well_file(tmp_path / "mhd.hdf5", "MHD_64", grid=(4, 4, 4), t0=("density",),
                        t1=("magnetic_field", "velocity"), bc=("PERIODIC", "WALL", "OPEN"))
    task = get_task("the-well").resolve(f)
    # per axis: periodic -> circular, wall -> zeros (data.well.wall_padding), open -> replicate (open_padding)
    assert task.metric == (1, 1, 1) and task.padding == ("circular", "zeros", "replicate")
    assert task.source.axis_boundaries == ("PERIODIC", "WALL", "OPEN")
    lay = task.layout
    # density scalar + B bivector (Bx e12, By e20, Bz e01) + velocity vector: one multivector
    assert lay.channels == 1
    assert lay.blades == (0, 6, 5, 4, 1, 2, 3) and lay.signs == (1, 1, -1, 1, 1, 1, 1)
    # the magnetic field turns as a pseudovector: rho(g) on the bivector = det(g) g B
    alg = CliffordAlgebra((1, 1, 1))
    fields = torch.randn(5, 7, dtype=torch.float64)
    for g in (torch.diag(torch.tensor([-1.0, 1, 1], dtype=torch.float64)),
              torch.tensor([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]], dtype=torch.float64)):
        out = from_multivector(lay, alg.act(g, to_multivector(lay, fields)))
        torch.testing.assert_close(out[:, 1:4], torch.det(g) * fields[:, 1:4] @ g.T)
        torch.testing.assert_close(out[:, 4:], fields[:, 4:] @ g.T)
        torch.testing.assert_close(out[:, 0], fields[:, 0])
    # an open axis: replicate, or the documented option; one mode on every axis collapses to the string
    f2 = write_well_file(tmp_path / "open.hdf5", grid=(6, 6), bc=("PERIODIC", "OPEN"))
    assert get_task("the-well").resolve(f2).padding == ("circular", "replicate")
    assert get_task("the-well").resolve(f2, open_padding="zeros").padding == ("circular", "zeros")
    assert get_task("the-well").resolve(f2, open_padding="circular").padding == "circular"
    f3 = write_well_file(tmp_path / "walls.hdf5", grid=(6, 6), bc=("WALL", "WALL"))
    assert get_task("the-well").resolve(f3).padding == "zeros"
    assert get_task("the-well").resolve(f3, wall_padding="reflect").padding == "reflect"


def test_t2_refused_by_default_and_decomposed_on_request(tmp_path):
    f = write_well_file(tmp_path / "am.hdf5", "active_matter", grid=(6, 6), t0=("concentration",),
                        t1=("velocity",), t2=("D",), constant_t0=("mask",))
    with pytest.raises(DataError, match=r"am.hdf5: t2 field 'D' .*tensor_fields: decompose") as e:
        get_task("the-well").resolve(f)
    assert "\n" not in str(e.value)
    task = get_task("the-well").resolve(f, tensor_fields="decompose")
    assert not task.source.equivariant
    assert task.components == ("concentration", "velocity_x", "velocity_y", "D_trace", "D_anti_xy",
                               "D_sym_xx", "D_sym_xy")
    assert "mask" not in task.components  # constant fields are not predicted
    ds = PDEDataset([f], task, time_history=1, time_future=1)
    comp = ds.raw_fields(1, slice(2, 3))[0]
    with h5py.File(f) as h:
        t = h["t2_fields/D"][1, 2]
    np.testing.assert_allclose(comp[..., 3], t[..., 0, 0] + t[..., 1, 1], rtol=1e-6)
    np.testing.assert_allclose(comp[..., 4], (t[..., 0, 1] - t[..., 1, 0]) / 2, rtol=1e-6)
    np.testing.assert_allclose(comp[..., 5], (t[..., 0, 0] - t[..., 1, 1]) / 2, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(comp[..., 6], (t[..., 0, 1] + t[..., 1, 0]) / 2, rtol=1e-6)
    # trace -> scalar, antisymmetric part -> pseudoscalar e01 of a multivector with a free grade
    lay = task.layout
    assert lay.channels == 4 and lay.blades[3] % 4 == 0 and lay.blades[4] == 3


def test_pseudovector_in_2d_refused(tmp_path):
    f = write_well_file(tmp_path / "b2.hdf5", grid=(6, 6), t0=("rho",), t1=("B",))
    with pytest.raises(DataError, match=r"b2.hdf5: t1 field 'B' is a pseudovector"):
        get_task("the-well").resolve(f, pseudovectors=["B"])


@pytest.mark.parametrize("bad, match", [
    ({"skip_group": "t1_fields"}, r"bad.hdf5: group 't1_fields' missing"),
    ({"grid_type": "spherical"}, r"bad.hdf5: grid_type 'spherical' is not supported"),
])
def test_bad_files_name_the_file(tmp_path, bad, match):
    f = write_well_file(tmp_path / "bad.hdf5", **bad)
    with pytest.raises(DataError, match=match) as e:
        describe_file(f)
    assert "\n" not in str(e.value)


def test_mixed_resolutions_and_short_trajectories_name_the_file(tmp_path):
    base = well_dataset(tmp_path, n_train=2)
    write_well_file(base / "data" / "train" / "shear_flow_z.hdf5", grid=(4, 4))
    with pytest.raises(DataError, match=r"shear_flow_a.hdf5 has grid \(8, 8\), .*shear_flow_z.hdf5 has grid \(4, 4\)"):
        PDEDataset(base, "the-well", split="train")
    (base / "data" / "train" / "shear_flow_z.hdf5").unlink()
    with pytest.raises(DataError, match=r"shear_flow_a.hdf5.*need 8 frames, trajectories have only 6"):
        PDEDataset(base, "the-well", time_history=7, time_future=1, split="train")
    with pytest.raises(MissingDataError, match=r"nothing_here' does not exist; .*the-well-download"):
        PDEDataModule("the-well", tmp_path / "datasets" / "nothing_here").setup("fit")
    (tmp_path / "datasets" / "empty").mkdir()
    with pytest.raises(MissingDataError, match=r"empty' holds no data set of The Well \(looked for data/train/"):
        PDEDataModule("the-well", tmp_path / "datasets" / "empty").setup("fit")


def test_vrmse_matches_the_well_definition(tmp_path):
    from cscnn.training.metrics import vrmse

    task = get_task("the-well").resolve(well_dataset(tmp_path, n_train=2))
    y = torch.randn(3, 2, 8, 8, 8, dtype=torch.float64)
    p = y + 0.1 * torch.randn_like(y)
    v = vrmse(task, p, y)  # (3, 2, 4 components)
    comps_p, comps_y = from_multivector(task.layout, p), from_multivector(task.layout, y)
    ref = torch.sqrt(((comps_p - comps_y) ** 2).mean((2, 3)) / (torch.std(comps_y, dim=(2, 3)) ** 2 + 1e-7))
    torch.testing.assert_close(v, ref)


# ------------------------------------------------------------------ CLI
def _config(path: Path, data: Path, out: Path, model: str = "cs_resnet", **data_kw) -> Path:
    cfg = yaml.safe_load((Path(__file__).resolve().parents[1] / "configs" / "cpu" / "well_cs_resnet.yaml").read_text())
    cfg.update(out=str(out))
    cfg["data"].update(dir=str(data), batch_size=4, time_history=2, num_train=None, **data_kw)
    cfg["model"].update(name=model, hidden_channels=2)
    cfg["model"]["kwargs"] = {"blocks": [1], "kernel_size": 3, "padding_mode": "auto"}
    if model == "cs_resnet":
        cfg["model"]["kwargs"].update(kernel_num_layers=2, kernel_hidden_channels=4)
    cfg["trainer"] = {"max_steps": 2, "accelerator": "cpu", "devices": 1, "enable_progress_bar": False,
                      "log_every_n_steps": 1, "val_check_interval": 2, "check_val_every_n_epoch": None,
                      "limit_val_batches": 1}
    cfg["eval"] = {"num_rollout_trajectories": 1, "batch_size": 4}
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_cli_train_evaluate_plot_equivariance(tmp_path, capsys):
    from cscnn.cli import main

    base = well_dataset(tmp_path, n_train=2, grid=(8, 8), bc=("PERIODIC", "WALL"))
    out = tmp_path / "run"
    cfg = _config(tmp_path / "c.yaml", tmp_path / "elsewhere", out)
    assert main(["train", "--config", str(cfg), "--data", str(base), "--no-progress"]) == 0
    hp = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["hyper_parameters"]
    # padding_mode auto: periodic x -> circular, wall y -> zeros, per axis (plain data in the checkpoint)
    assert hp["task"] == "the-well" and hp["in_channels"] == 4
    assert hp["model_kwargs"]["padding_mode"] == ["circular", "zeros"]
    from cscnn.nn import CliffordSteerableConv
    from cscnn.training import load_module

    convs = [m for m in load_module(out / "checkpoints" / "last.ckpt").modules()
             if isinstance(m, CliffordSteerableConv)]
    assert convs and {c.padding_mode for c in convs} == {("circular", "zeros")}
    capsys.readouterr()
    assert main(["evaluate", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "VRMSE" in text
    m = json.loads((out / "eval" / "metrics.json").read_text())
    one = m["one_step"]
    assert set(one["vrmse_per_field"]) == {"tracer", "pressure", "velocity_x", "velocity_y"}
    assert one["vrmse_units"] == "physical" and np.isfinite(one["vrmse"])
    assert len(m["rollout"]["mse_per_step"]) == 4  # 6 steps - 2 history
    assert main(["plot", str(out), "--no-gif"]) == 0
    assert (out / "plots" / "one_step.png").is_file()
    capsys.readouterr()
    assert main(["equivariance", str(out), "--num", "4", "--json", str(tmp_path / "eq.json")]) == 0
    eq = json.loads((tmp_path / "eq.json").read_text())
    assert eq["worst"] < 1e-9, eq
    # periodic x, walled y: only the symmetries mapping each axis onto itself (flips), no axis swap
    assert eq["num_elements"] == 4 and all(abs(g[0][1]) == 0 for g in eq["elements"]), eq["elements"]


def test_cli_3d_resnet_and_resolution(tmp_path):
    from cscnn.cli import main

    base = well_dataset(tmp_path, "MHD_64", n_train=2, grid=(4, 4, 4), t0=("density",),
                        t1=("magnetic_field", "velocity"), bc=("PERIODIC",) * 3)
    out = tmp_path / "run3"
    cfg = _config(tmp_path / "c.yaml", base, out, model="resnet", resolution=2)
    # a per-axis padding_mode given as a YAML list: a tuple in the model, a list in the checkpoint
    d = yaml.safe_load(cfg.read_text())
    d["model"]["kwargs"]["padding_mode"] = ["circular", "zeros", "replicate"]
    cfg.write_text(yaml.safe_dump(d))
    assert main(["train", "--config", str(cfg), "--no-progress", "--evaluate"]) == 0
    m = json.loads((out / "eval" / "metrics.json").read_text())
    assert m["metric"] == [1, 1, 1] and "magnetic_field_x" in m["one_step"]["vrmse_per_field"]
    from cscnn.training import load_module
    from cscnn.training.checkpoint import check_compatible, read_checkpoint

    hp = read_checkpoint(out / "checkpoints" / "last.ckpt")["hyper_parameters"]
    assert hp["model_kwargs"]["padding_mode"] == ["circular", "zeros", "replicate"]
    model = load_module(out / "checkpoints" / "last.ckpt").model
    assert model.padding_mode == ("circular", "zeros", "replicate")
    check_compatible(hp, {"model_kwargs": {**hp["model_kwargs"], "padding_mode": ("circular", "zeros", "replicate")}})


# ------------------------------------------------------------------ constant scalars as inputs
def _reynolds_dataset(root: Path, bc=("PERIODIC", "PERIODIC")) -> Path:
    """shear_flow-like files whose Reynolds number differs between files (as The Well stores a
    parameter sweep) and Schmidt number between the trajectories of a file (sample-varying)."""
    base = root / "datasets" / "shear_flow"
    files = {"train/a": (2, 1, 1e4, [1.0, 2.0]), "train/b": (1, 2, 1e5, [3.0]), "valid/v": (1, 3, 5e4, [1.0]),
             "test/t": (2, 4, 1e6, [2.0, 5.0])}
    for name, (n, seed, re, sc) in files.items():
        write_well_file(base / "data" / f"{name}.hdf5", n_traj=n, seed=seed, bc=bc,
                        scalars=(("Reynolds", re), ("Schmidt", sc)), time_varying_scalars=("t_s",))
    return base


def test_constant_scalars_option_resolves_and_is_checked(tmp_path):
    base = _reynolds_dataset(tmp_path)
    well = get_task("the-well")
    assert well.resolve(base).constant_inputs == ()  # default: none, as The Well's benchmark
    task = well.resolve(base, constant_scalars=["Reynolds"])
    assert task.constant_inputs == ("Reynolds",) and task.channels(2, 1) == (2 * 2 + 1, 2)
    assert well.resolve(base, constant_scalars="all").constant_inputs == ("Reynolds", "Schmidt")  # not t_s
    for bad, match in ((["t_s"], r"a.hdf5: constant scalar 't_s' .* is time-varying; its constant scalars are "
                                 r"\['Reynolds', 'Schmidt'\]"),
                       (["Mach"], r"a.hdf5: constant scalar 'Mach' .* is not in its scalars group")):
        with pytest.raises(DataError, match=match) as e:
            well.resolve(base, constant_scalars=bad)
        assert "\n" not in str(e.value)
    for bad in ("Reynolds", ["Reynolds", "Reynolds"], [1]):
        with pytest.raises(ValueError, match="constant_scalars"):
            well.resolve(base, constant_scalars=bad)
    # every file of a split must hold them: a file without names itself
    write_well_file(base / "data" / "train" / "c.hdf5", n_traj=1, scalars=(("Schmidt", 1.0),))
    with pytest.raises(DataError, match=r"c.hdf5 has no constant scalar 'Reynolds'"):
        PDEDataset(base, task, split="train")


def test_constant_scalars_reach_every_input_normalised(tmp_path):
    base = _reynolds_dataset(tmp_path)
    dm = PDEDataModule("the-well", base, batch_size=2, time_history=2,
                       task_options={"constant_scalars": ["Reynolds", "Schmidt"]})
    dm.setup("fit")
    stats = dm.normalization.constants
    # Reynolds 1e4, 1e4, 1e5 over the training trajectories spans a decade: standardised in log10
    assert stats["Reynolds"]["log"] and stats["Schmidt"]["log"] is False
    np.testing.assert_allclose(stats["Reynolds"]["mean"], np.mean([4, 4, 5]))
    np.testing.assert_allclose(stats["Schmidt"]["std"], np.std([1.0, 2.0, 3.0]))
    ds = dm.train_dataset
    for traj, (re, sc) in enumerate([(1e4, 1.0), (1e4, 2.0), (1e5, 3.0)]):
        x, y = ds[traj * ds.windows_per_trajectory]
        assert x.shape == (2 * 2 + 2, 8, 8, 4) and y.shape == (2, 8, 8, 4)
        want = dm.normalization.normalize_constants(("Reynolds", "Schmidt"), [re, sc])
        for j in range(2):  # the value on the scalar blade at every grid point, nothing on the other blades
            torch.testing.assert_close(x[4 + j, ..., 0], torch.full((8, 8), float(want[j])))
            assert not x[4 + j, ..., 1:].any()
    assert "constants" in dm.normalization.to_dict()
    assert dm.normalization.from_dict(dm.normalization.to_dict()).constants == stats


def test_cli_constant_scalar_input_trains_evaluates_and_stays_equivariant(tmp_path, capsys):
    from cscnn.cli import main
    from cscnn.training import load_module
    from cscnn.training.evaluation import load_for_eval
    from cscnn.training.rollout import rollout

    base = _reynolds_dataset(tmp_path)
    out = tmp_path / "run"
    cfg = _config(tmp_path / "c.yaml", base, out, well={"constant_scalars": ["Reynolds"]})
    assert main(["train", "--config", str(cfg), "--no-progress"]) == 0
    hp = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["hyper_parameters"]
    assert hp["in_channels"] == 2 * 2 + 1  # 2 steps x 2 multivectors + the Reynolds channel
    assert set(hp["normalization"]["constants"]) == {"Reynolds"}
    module = load_module(out / "checkpoints" / "last.ckpt")
    assert module.model.embedding[0].in_channels == 5
    # the value reaches the model: in every one-step input and at every rollout step
    _, _, task, _, ds, norm = load_for_eval(out / "checkpoints" / "last.ckpt")
    assert task.constant_inputs == ("Reynolds",)
    for i, re in enumerate((1e6, 1e6)):
        want = float(norm.normalize_constants(("Reynolds",), [re])[0])
        torch.testing.assert_close(ds[i * ds.windows_per_trajectory][0][-1, ..., 0], torch.full((8, 8), want))
    seen = []
    module.model.register_forward_pre_hook(lambda m, inp: seen.append(inp[0][:, -1].clone()))
    res = rollout(module.model, ds.trajectory(1), 2, 1, task=task, constants=ds.constants(1))
    assert len(seen) == 4 and res.prediction.shape == (4, 8, 8, 8)
    assert all(torch.equal(s[..., 0], torch.full_like(s[..., 0], want)) and not s[..., 1:].any() for s in seen)
    with pytest.raises(ValueError, match=r"feeds the constant scalars \['Reynolds'\] to the model: pass "):
        rollout(module.model, ds.trajectory(1), 2, 1, task=task)
    capsys.readouterr()
    assert main(["evaluate", str(out), "--no-progress"]) == 0
    m = json.loads((out / "eval" / "metrics.json").read_text())
    assert np.isfinite(m["one_step"]["vrmse"]) and len(m["rollout"]["mse_per_step"]) == 4
    assert main(["plot", str(out), "--no-gif"]) == 0
    assert main(["equivariance", str(out), "--num", "8", "--json", str(tmp_path / "eq.json")]) == 0
    eq = json.loads((tmp_path / "eq.json").read_text())
    assert eq["num_elements"] == 8 and eq["worst"] < 1e-9, eq  # periodic square grid: every grid symmetry


def test_cli_plot_gif_with_several_multivector_channels(tmp_path, monkeypatch):
    """Two vector fields and a scalar: two multivectors per step (density + velocity, momentum);
    `cscnn plot` draws the rollout GIF and the PNGs with every component, from the right data."""
    from PIL import Image

    import cscnn.training.plots as plots
    from cscnn.cli import main

    base = well_dataset(tmp_path, "two_vectors", n_train=2, t0=("density",), t1=("velocity", "momentum"))
    task = get_task("the-well").resolve(base)
    assert task.layout.channels == 2 and task.layout.blades == (0, 1, 2, 5, 6)  # momentum: the second multivector
    out = tmp_path / "run"
    cfg = _config(tmp_path / "c.yaml", base, out)
    assert main(["train", "--config", str(cfg), "--no-progress"]) == 0
    drawn = {}
    original = plots.rollout_gif

    def spy(task, target, prediction, path, **kw):
        drawn.update(task=task, target=target, prediction=prediction)
        return original(task, target, prediction, path, **kw)

    monkeypatch.setattr(plots, "rollout_gif", spy)
    assert main(["plot", str(out), "--no-progress", "--fps", "2"]) == 0
    assert drawn["target"].shape == drawn["prediction"].shape == (4, 8, 8, 8)  # 4 steps, 2 multivectors each
    images = plots.field_images(drawn["task"], drawn["target"][1])  # step 2 + 1 of test trajectory 0
    assert list(images) == ["density", "velocity_x", "velocity_y", "momentum_x", "momentum_y"]
    with h5py.File(base / "data" / "test" / "two_vectors_t.hdf5") as f:
        np.testing.assert_allclose(images["momentum_y"], f["t1_fields/momentum"][0, 3, ..., 1], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(images["density"], f["t0_fields/density"][0, 3], rtol=1e-4, atol=1e-5)
    with Image.open(out / "plots" / "rollout.gif") as im:
        assert im.format == "GIF" and im.n_frames == 4  # 6 steps - 2 history
        w, h = im.size
    assert h > 1.5 * w  # five rows (one per component) of three panels
    for name in ("one_step.png", "rollout_last.png", "rollout_mse.png"):
        assert (out / "plots" / name).stat().st_size > 1000


def test_cli_bad_file_one_line_exit_2(tmp_path, capsys):
    from cscnn.cli import main

    base = well_dataset(tmp_path, n_train=2, t2=("D",))
    cfg = _config(tmp_path / "c.yaml", base, tmp_path / "run")
    assert main(["train", "--config", str(cfg), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "t2 field 'D'" in err and "shear_flow_a.hdf5" in err


def test_constant_scalar_outside_its_training_values_warns():
    """A constant the model never saw (outside the training range; or varying where training held it
    fixed) is fed, but not silently: one warning naming it and the range. Normalisations written before
    the range was kept (no min / max) still load and normalise without warning."""
    import warnings

    import numpy as np

    from cscnn.data import Normalization
    from cscnn.data.normalization import constant_statistics

    stats = constant_statistics(["Re", "Sc"], np.array([[100.0, 1.0], [1000.0, 1.0]]))
    assert stats["Re"]["log"] and (stats["Re"]["min"], stats["Re"]["max"]) == (100.0, 1000.0)
    norm = Normalization("the-well", torch.zeros(4), torch.ones(4), 4, stats)
    again = Normalization.from_dict(norm.to_dict())  # the range survives the checkpoint round trip
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_allclose(again.normalize_constants(["Re", "Sc"], [300.0, 1.0]),
                                   [(np.log10(300.0) - 2.5) / 0.5, 0.0])
        old = {k: {"log": v["log"], "mean": v["mean"], "std": v["std"]} for k, v in stats.items()}
        Normalization("the-well", torch.zeros(4), torch.ones(4), 4, old).normalize_constants(["Sc"], [5.0])
    with pytest.warns(UserWarning, match=r"'Re' = 5000 is outside its training values \(100 to 1000\)"):
        again.normalize_constants(["Re", "Sc"], [5000.0, 1.0])
    with pytest.warns(UserWarning, match=r"'Sc' = 2 is outside its training values \(1\): the model never saw it "
                                         r"vary; its input is 1"):
        again.normalize_constants(["Re", "Sc"], [300.0, 2.0])
    with pytest.raises(ValueError, match="no statistics for the constant scalar 'Pr'"):
        again.check_constants(["Re", "Pr"])


# ------------------------------------------------------------- bad files and caveats
def _replace(path: Path, key: str, values) -> None:
    with h5py.File(path, "r+") as f:
        attrs = dict(f[key].attrs)
        del f[key]
        f[key] = values
        f[key].attrs.update(attrs)


@pytest.mark.parametrize("values, message", [
    (lambda s: np.ones(s, np.complex64) * (1 + 2j), r"dataset 't0_fields/tracer' is complex-valued \(complex64\)"),
    (lambda s: np.full(s, "0.5", dtype="S3"), r"dataset 't0_fields/tracer' holds byte strings \(\|S3\), not numbers"),
    (lambda s: np.full(s, "x", object).astype(h5py.string_dtype()), r"dataset 't0_fields/tracer' holds strings"),
    (lambda s: np.ones(s, bool), r"dataset 't0_fields/tracer' holds booleans"),
])
def test_non_real_fields_are_refused_naming_file_and_dataset(tmp_path, capsys, values, message):
    base = well_dataset(tmp_path, n_train=2)
    bad = base / "data" / "train" / "shear_flow_a.hdf5"
    _replace(bad, "t0_fields/tracer", values((2, 6, 8, 8)))
    with pytest.raises(DataError, match=str(bad).replace(".", r"\.") + ": the-well " + message):
        describe_file(bad)
    from cscnn.cli import main

    assert main(["train", "--config", str(_config(tmp_path / "c.yaml", base, tmp_path / "run")), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {bad}: the-well dataset 't0_fields/tracer' ") and "\n" not in err, err


def test_a_string_constant_scalar_input_is_refused_naming_it(tmp_path):
    f = write_well_file(tmp_path / "s.hdf5")
    _replace(f, "scalars/Reynolds", np.array(b"1e4"))
    describe_file(f)  # not an input by default: the file reads
    with pytest.raises(DataError, match=r"s\.hdf5: the-well dataset 'scalars/Reynolds' holds byte strings"):
        get_task("the-well").resolve(f, constant_scalars=["Reynolds"])


@pytest.mark.parametrize("dims", [None, [], ["q"]])
def test_boundary_condition_without_an_axis_is_refused_naming_it(tmp_path, dims):
    f = write_well_file(tmp_path / "bc.hdf5")
    with h5py.File(f, "r+") as h:
        g = h["boundary_conditions/y_periodic"]
        del g.attrs["associated_dims"]
        if dims is not None:
            g.attrs["associated_dims"] = dims
    with pytest.raises(DataError, match=r"bc\.hdf5: boundary condition 'y_periodic' \(PERIODIC\) names no grid axis "
                                        r"in its attribute 'associated_dims'.*expected one or more of \['x', 'y'\]"):
        describe_file(f)


def test_equivariance_states_when_the_layout_is_not_equivariant(tmp_path, capsys):
    """tensor_fields: decompose carries t2 parts on scalar blades: the model's error under the multivector
    action is tiny, and `cscnn equivariance` says beside it that the layout breaks the data's symmetries."""
    from cscnn.cli import main

    base = well_dataset(tmp_path, n_train=2, name="active_matter", t0=("concentration",), t1=("velocity",),
                        t2=("D",))
    out = tmp_path / "run"
    cfg = _config(tmp_path / "c.yaml", base, out, well={"tensor_fields": "decompose"})
    assert main(["train", "--config", str(cfg), "--no-progress"]) == 0
    capsys.readouterr()
    for extra in ([], ["--grid", "8"]):  # a test sample (layout from the files), a random field (from the options)
        assert main(["equivariance", str(out), "--num", "2", *extra]) == 0
        text = capsys.readouterr().out
        assert "caveat: " in text and "(data.well.tensor_fields: decompose)" in text, text
        assert "not under the data's symmetries" in text
    plain = tmp_path / "plain"
    base2 = well_dataset(tmp_path / "p", n_train=2)
    assert main(["train", "--config", str(_config(tmp_path / "c2.yaml", base2, plain)), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["equivariance", str(plain), "--num", "2"]) == 0
    assert "caveat" not in capsys.readouterr().out
