"""The task registry (one file per PDE) and the fourth task, incompressible Navier-Stokes on a periodic square."""

import dataclasses

import h5py
import numpy as np
import pytest
import torch

from cscnn import CliffordAlgebra
from cscnn.algebra import grid_symmetries
from cscnn.data import PRESETS, TASKS, PDEDataset, TaskSpec, generate_dataset, get_task, register_task, resolve_params
from cscnn.fields import FIELD_LAYOUTS, FieldLayout, from_multivector, to_multivector
from cscnn.testing import transform_field
from cscnn.training.synthetic import write_synthetic_splits

NSP_TINY = dict(n=16, L=8.0, nt=3, skip_nt=1, noise_scale=4.0, noise_smoothness=3.0)


def test_every_task_is_one_registered_file_and_consistent(tmp_path):
    assert {"navier-stokes", "maxwell3d", "maxwell2d", "navier-stokes-periodic"} <= set(TASKS)
    for name, spec in TASKS.items():
        assert spec.name == name and spec.layout is FIELD_LAYOUTS[name] and PRESETS[name] is spec.presets
        if spec.source is not None:  # layout from the files (the-well): tests/test_the_well.py
            continue
        assert "small" in spec.presets and spec.padding in ("zeros", "circular")
        assert len(spec.field_names) == spec.n_blades == 2 ** len(spec.metric)
        # storage layout <-> components round trip
        fields = np.random.default_rng(0).normal(size=(2, 3, *(4,) * spec.grid_dims, spec.layout.n_components))
        parts = spec.split_components(fields)
        assert set(parts) == set(spec.keys)
        assert all(parts[k].ndim == spec.dataset_ndim(k) for k in spec.keys)
        np.testing.assert_array_equal(spec.read(parts, 1, slice(0, 2)), fields[1, :2])
        # synthetic data of every task load as multivectors of its algebra
        data = write_synthetic_splits(name, tmp_path / name, 2, 1, 1, steps=spec.time_history + spec.time_future,
                                      size=4)
        x, y = PDEDataset(data / "train.h5", name)[0]
        assert x.shape[-1] == y.shape[-1] == spec.n_blades
    assert TASKS["navier-stokes-periodic"].padding == "circular" and TASKS["maxwell3d"].padding == "circular"


def _heat_simulate(params, seed):
    """A toy PDE for the registry test: periodic diffusion of a random scalar field (N, T, X)."""
    rng = np.random.default_rng(seed)
    u = rng.normal(size=params["n"])
    frames = []
    for _ in range(params["nt"]):
        u = u + params["k"] * (np.roll(u, 1) - 2 * u + np.roll(u, -1))
        frames.append(u.copy())
    return {"temperature": np.asarray(frames, dtype=np.float32)}


def test_a_new_pde_is_one_task_spec(tmp_path, monkeypatch):
    heat = TaskSpec(
        name="heat1d", metric=(1,), grid_dims=1, time_as_axis=False, time_history=2, time_future=1,
        layout=FieldLayout(task="heat1d", metric=(1,), components=("T",), blades=(0,), signs=(1.0,),
                           groups=(("temperature", (0,)),)),
        datasets=(("temperature", None),), simulate=_heat_simulate, presets={"small": {"n": 8, "nt": 5, "k": 0.1}},
        padding="circular", description="1D heat equation (test)")
    monkeypatch.delitem(TASKS, "heat1d", raising=False)
    register_task(heat)
    try:
        with pytest.raises(ValueError, match="already registered"):
            register_task(dataclasses.replace(heat))
        path = generate_dataset("heat1d", "train", 3, tmp_path, progress=False)
        ds = PDEDataset(path, "heat1d")
        x, y = ds[0]
        assert x.shape == (2, 8, 2) and y.shape == (1, 8, 2) and get_task("heat1d").field_names == ("T", "-")
        torch.testing.assert_close(from_multivector("heat1d", to_multivector("heat1d", torch.ones(8, 1))),
                                   torch.ones(8, 1))
    finally:
        TASKS.pop("heat1d", None)
    with pytest.raises(ValueError, match="datasets hold 2 components, layout has 1"):
        dataclasses.replace(heat, datasets=(("temperature", 2),))


def test_periodic_ns_generates_and_loads(tmp_path):
    params = dict(NSP_TINY, backend="numpy")  # no JAX compile: fast enough for the default suite
    path = generate_dataset("navier-stokes-periodic", "train", 1, tmp_path, params=params, progress=False)
    with h5py.File(path, "r") as f:
        g = f["train"]
        assert g["smoke"].shape == (1, 3, 16, 16) and g["velocity"].shape == (1, 3, 16, 16, 2)
        smoke, vel = g["smoke"][0], g["velocity"][0]
    assert np.isfinite(vel).all() and 0.05 < np.abs(vel).max() < 5
    assert not np.allclose(smoke[0], smoke[-1])  # the flow moves the smoke
    ds = PDEDataset(path, "navier-stokes-periodic", time_history=2, time_future=1)
    x, _ = ds[0]
    np.testing.assert_allclose(x[..., 1:3].numpy(), vel[:2], rtol=1e-6)


def _transform_centred(u, v, flip_x, flip_y, transpose):
    """The grid symmetry of :func:`transform_state` on stored fields u (T, X, Y), v (T, X, Y, 2)."""
    if transpose:
        u, v = u.transpose(0, 2, 1), v.transpose(0, 2, 1, 3)[..., ::-1]
    if flip_x:
        u, v = u[:, ::-1], v[:, ::-1] * np.array([-1, 1])
    if flip_y:
        u, v = u[:, :, ::-1], v[:, :, ::-1] * np.array([1, -1])
    return u, v


@pytest.mark.slow  # compiles the JAX step (~35 s on 2 busy cores)
def test_periodic_ns_dynamics_are_equivariant_under_grid_symmetries():
    """Transforming the initial state by a grid symmetry transforms the whole simulated trajectory."""
    from cscnn.data.tasks import navier_stokes_periodic as nsp

    p = resolve_params("navier-stokes-periodic", "small", NSP_TINY)
    s, f = nsp.initial_state(p, 3)
    ref = nsp.rollout(p, s, f)
    scale = np.abs(ref["velocity"]).max()
    for g in [(True, False, False), (False, True, False), (False, False, True), (True, False, True),
              (False, True, True), (True, True, False)]:
        out = nsp.rollout(p, *nsp.transform_state(s, f, *g))
        u, v = _transform_centred(ref["smoke"], ref["velocity"], *g)
        assert not np.allclose(out["smoke"], ref["smoke"], atol=1e-3)  # the symmetry did change the state
        np.testing.assert_allclose(out["smoke"], u, atol=1e-6 * np.abs(u).max())
        np.testing.assert_allclose(out["velocity"], v, atol=1e-6 * scale)


def test_transform_state_is_the_multivector_grid_action():
    """The stored (centred) fields transform by the grid symmetries of cscnn: x'(v) = rho(g) x(g^-1 v)."""
    alg = CliffordAlgebra((1, 1))
    rng = np.random.default_rng(0)
    u, v = rng.normal(size=(2, 6, 6)), rng.normal(size=(2, 6, 6, 2))
    mv = to_multivector("navier-stokes-periodic", torch.from_numpy(np.concatenate([u[..., None], v], -1)))[None]
    found = set()
    for g in grid_symmetries((1, 1)):
        want = transform_field(alg, g, mv)[0]
        for flags in [(a, b, c) for a in (0, 1) for b in (0, 1) for c in (0, 1)]:
            u2, v2 = _transform_centred(u, v, *flags)
            got = to_multivector("navier-stokes-periodic",
                                 torch.from_numpy(np.concatenate([u2[..., None], v2], -1).copy()))
            if torch.allclose(got, want):
                found.add(flags)
                break
        else:
            raise AssertionError(f"no flip/transpose combination matches {g.tolist()}")
    assert len(found) == 8  # all 8 symmetries of the square


@pytest.mark.slow
def test_periodic_ns_small_preset_one_trajectory(tmp_path):
    path = generate_dataset("navier-stokes-periodic", "test", 1, tmp_path, preset="small", progress=False)
    ds = PDEDataset(path, "navier-stokes-periodic")
    assert ds.spatial_shape == (64, 64) and ds.num_frames == 32
    assert np.isfinite(ds.raw_fields(0)).all()
