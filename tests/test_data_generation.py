"""Physics sanity and end-to-end generation at tiny sizes (fast); full presets are slow."""

import dataclasses
import json
import math
import warnings

import h5py
import numpy as np
import pytest

from cscnn.data import PRESETS, TASKS, DataError, generate_dataset, generation, trajectory_seed

NS_TINY = dict(nx=16, ny=16, nt=6, skip_nt=1)
MX_TINY = dict(n_large=14, n=6, skip_nt=10, nt=3, sample_rate=4)
M2_TINY = dict(grid=8, size=4, frames=5, frames_per_call=1, n_oscillating=[1, 1], n_orbiting=[1, 1])


# ------------------------------------------------------------------ Navier-Stokes
def test_ns_projection_divergence_free_and_smoke_bounded():
    from cscnn.data.tasks import navier_stokes as ns

    p = generation.resolve_params("navier-stokes", "small", dict(nx=16, ny=16))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        smoke, vel = ns.initial_state(p, 0)
        step = ns.make_step(p)
        lo, hi = float(smoke.values.min), float(smoke.values.max)
        mass0 = float(smoke.values.sum)
        for _ in range(8):
            smoke, vel = step(smoke, vel)
            # pressure projection: discrete (staggered) divergence at the solver tolerance 1e-5
            assert np.abs(ns.divergence(vel)).max() < 1e-4
            # semi-Lagrangian advection with linear interpolation creates no new extrema
            assert lo - 1e-9 <= float(smoke.values.min) and float(smoke.values.max) <= hi + 1e-9
        # ... but it is not conservative: the smoke mass drifts (a few % per step near the walls)
        drift = float(smoke.values.sum) / mass0 - 1
        assert abs(drift) < 0.3
        # without the projection the buoyant velocity is far from divergence-free (test can fail)
        import phi.flow as flow

        unprojected = vel + p["dt"] * (smoke * (0, p["buoyancy_y"])).at(vel)
        assert np.abs(flow.field.divergence(unprojected).values.numpy("x,y")).max() > 1e-2


def test_ns_simulate_reproducible_and_seed_dependent():
    from cscnn.data.tasks import navier_stokes as ns

    p = generation.resolve_params("navier-stokes", "small", NS_TINY)
    a, b, c = ns.simulate(p, 5), ns.simulate(p, 5), ns.simulate(p, 6)
    assert a["u"].shape == (6, 16, 16) and a["vx"].shape == (6, 16, 16)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.array_equal(a["u"], c["u"])
    assert a["dt"] == 1.5 and a["buo_y"] == 0.5
    assert (a["u"] >= 0).all() and np.abs(a["vy"]).max() > 0  # buoyancy drives a flow


# seed of train trajectory 21 (base seed 0): with Solve('CG') under jit its pressure solve failed at step 9
# (|div v| ~ 2e4 after the projection, max |v| ~ 2.9e3 in the first stored frame)
NS_BLOWUP_SEED = 2123321389
NS_BLOWUP = dict(skip_nt=8, nt=2)  # 64x64 small preset, 10 steps: ~3 s


def test_ns_small_preset_previously_blowing_up_seed_stays_bounded():
    from cscnn.data.tasks import navier_stokes as ns

    p = generation.resolve_params("navier-stokes", "small", NS_BLOWUP)
    assert p["solve"] == "auto"
    out = ns.simulate(p, NS_BLOWUP_SEED)
    speed = np.hypot(out["vx"], out["vy"])
    assert 1.0 < speed.max() < 4.0  # buoyancy-driven flow of O(1) speed (2.06 measured), no blow-up


def test_ns_failed_pressure_solve_is_rejected(tmp_path):
    from cscnn.data.tasks import navier_stokes as ns

    # CG on phiml's bordered (indefinite) closed-box system breaks down for this seed; the guard catches it
    p = generation.resolve_params("navier-stokes", "small", dict(NS_BLOWUP, solve="CG"))
    with pytest.raises(DataError, match=rf"seed {NS_BLOWUP_SEED}, step 9 .*pressure solve 'CG' failed"):
        ns.simulate(p, NS_BLOWUP_SEED)


def test_ns_speed_guard_names_trajectory_and_seed(tmp_path):
    params = dict(NS_TINY, max_speed=1e-3)  # any buoyant flow exceeds this bound
    with pytest.raises(DataError, match=r"navier-stokes trajectory 0 \(seed \d+\): .*exceeds max_speed"):
        generate_dataset("navier-stokes", "train", 2, tmp_path, params=params, progress=False)
    assert not (tmp_path / "train.h5").exists()
    assert not list((tmp_path / ".train.work").glob("traj_*.h5"))  # nothing written


@pytest.mark.slow
def test_ns_small_preset_sweep_has_no_blowups():
    from cscnn.data.tasks import navier_stokes as ns

    p = generation.resolve_params("navier-stokes", "small")
    for i in range(32):  # seed 0 train trajectories; 9 of these 32 blew up with Solve('CG')
        out = ns.simulate(p, trajectory_seed(0, "train", i))  # raises on a failed solve or |v| > max_speed
        assert np.hypot(out["vx"], out["vy"]).max() < 10, i


# ----------------------------------------------------------------------- Maxwell
def test_maxwell3d_sources_inject_energy_and_fields_stay_finite():
    from cscnn.data.tasks import maxwell3d as mx

    p = generation.resolve_params("maxwell3d", "small", dict(n_large=14, n=6))
    empty = mx.build_grid(p, 0, sources=False)
    empty.run(20, progress_bar=False)
    assert mx.field_energy(empty) == 0.0
    grid = mx.build_grid(p, 0)
    assert len(grid.sources) == 18
    assert mx.field_energy(grid) == 0.0
    energies = []
    for _ in range(4):
        grid.run(10, progress_bar=False)
        energies.append(mx.field_energy(grid))
        assert np.isfinite(np.asarray(grid.E)).all() and np.isfinite(np.asarray(grid.H)).all()
    assert energies[-1] > 0


def test_maxwell3d_simulate_shapes():
    from cscnn.data.tasks import maxwell3d as mx

    p = generation.resolve_params("maxwell3d", "small", MX_TINY)
    out = mx.simulate(p, 1)
    assert out["d_field"].shape == (3, 6, 6, 6, 3) and out["h_field"].shape == (3, 6, 6, 6, 3)
    np.testing.assert_array_equal(out["d_field"], mx.simulate(p, 1)["d_field"])


# ------------------------------------------------------------- relativistic 2D+1
def _single_charge(q=1.0, center=(0.0, 0.0), box=100e-9):
    charges = np.zeros((2, 10))
    charges[0, :3] = [q, *center]  # at rest in its frame: a = b = 0, omega = 0
    charges[1, 9] = 10 * box  # padding: no charge, out of the plane
    return charges


def test_pycharge_static_charge_is_coulomb():
    from cscnn.data.tasks import maxwell2d as m2

    rng = np.random.default_rng(0)
    x, y = rng.uniform(-40e-9, 40e-9, (2, 1, 4, 4))
    t = np.full_like(x, 1e-17)
    f = m2.faraday_fields(_single_charge(q=-2.0, center=(5e-9, -3e-9)), np.zeros(2), x, y, t)
    k = 1 / (4 * math.pi * 8.8541878128e-12)
    rx, ry = x - 5e-9, y + 3e-9
    r3 = (rx**2 + ry**2) ** 1.5
    q = -2 * m2.ELEMENTARY_CHARGE
    np.testing.assert_allclose(f[..., 0], k * q * rx / r3, rtol=1e-6)
    np.testing.assert_allclose(f[..., 1], k * q * ry / r3, rtol=1e-6)
    np.testing.assert_allclose(f[..., 2], 0.0, atol=1e-6 * np.abs(f).max())


def test_boosted_charge_field_is_rho_of_coulomb():
    """A charge at rest, boosted to velocity beta: the lab field equals rho(Lambda^-1) of the
    Coulomb field at the rest-frame event (and Heaviside's formula for a moving charge)."""
    import torch

    from cscnn import CliffordAlgebra
    from cscnn.data.tasks import maxwell2d as m2
    from cscnn.fields import from_multivector, to_multivector

    c = m2.SPEED_OF_LIGHT
    beta = np.array([0.5, 0.2])
    rng = np.random.default_rng(1)
    x, y = rng.uniform(-40e-9, 40e-9, (2, 1, 4, 4))
    t = rng.uniform(-1e-16, 1e-16, x.shape)
    lab = m2.faraday_fields(_single_charge(), beta, x, y, t)
    gamma = 1 / math.sqrt(1 - beta @ beta)
    lam = np.eye(3)  # lab coordinates (ct, x, y) -> rest-frame coordinates
    lam[0, 0] = gamma
    lam[0, 1:] = lam[1:, 0] = -gamma * beta
    lam[1:, 1:] += (gamma - 1) * np.outer(beta, beta) / (beta @ beta)
    events = np.stack([c * t, x, y], -1) @ lam.T
    r = events[..., 1:]
    k = 1 / (4 * math.pi * 8.8541878128e-12) * m2.ELEMENTARY_CHARGE
    rest = np.concatenate([k * r / (r**2).sum(-1, keepdims=True) ** 1.5, np.zeros_like(r[..., :1])], -1)
    alg = CliffordAlgebra((-1, 1, 1))
    g = torch.linalg.inv(torch.tensor(lam))
    expected = from_multivector("maxwell2d", alg.act(g, to_multivector("maxwell2d", torch.tensor(rest))))
    np.testing.assert_allclose(lab, expected.numpy(), rtol=1e-5, atol=1e-6 * np.abs(lab).max())
    # Heaviside: E = k q (1 - b^2) R / (R^3 (1 - b^2 sin^2)^(3/2)), R from the present position
    rx, ry = x - beta[0] * c * t, y - beta[1] * c * t
    rn = np.sqrt(rx**2 + ry**2)
    sin2 = 1 - ((rx * beta[0] + ry * beta[1]) / (rn * np.linalg.norm(beta))) ** 2
    b2 = beta @ beta
    mag = k * (1 - b2) / (rn**3 * (1 - b2 * sin2) ** 1.5)
    np.testing.assert_allclose(lab[..., 0], mag * rx, rtol=1e-5)
    np.testing.assert_allclose(lab[..., 1], mag * ry, rtol=1e-5)
    np.testing.assert_allclose(lab[..., 2], beta[0] * mag * ry - beta[1] * mag * rx, rtol=1e-5, atol=1e-9 * mag.max())


def test_log_norm_rescale_commutes_with_boosts():
    import torch

    from cscnn import CliffordAlgebra
    from cscnn.algebra import sample_group_elements
    from cscnn.data.tasks.maxwell2d import log_norm_rescale
    from cscnn.fields import from_multivector, to_multivector

    alg = CliffordAlgebra((-1, 1, 1))
    f = np.random.default_rng(0).normal(size=(50, 3)) * 1e6
    for g in sample_group_elements((-1, 1, 1), 4, generator=torch.Generator().manual_seed(0)):

        def act(a, g=g):
            return from_multivector("maxwell2d", alg.act(g, to_multivector("maxwell2d", torch.tensor(a)))).numpy()

        np.testing.assert_allclose(log_norm_rescale(act(f)), act(log_norm_rescale(f)), rtol=1e-7, atol=1e-7)
    # below the floor the factor is log10(floor) / floor = 0 for the default floor of 1 V/m
    np.testing.assert_array_equal(log_norm_rescale(np.array([[0.1, 0.2, 0.0]])), 0.0)


def test_maxwell2d_simulate_tiny():
    from cscnn.data.tasks import maxwell2d as m2

    p = generation.resolve_params("maxwell2d", "small", M2_TINY)
    out = m2.simulate(p, 3)
    assert out["faraday"].shape == (5, 4, 4, 3)
    assert np.isfinite(out["faraday"]).all() and np.abs(out["faraday"]).max() > 0
    assert np.linalg.norm(out["boost_velocity"]) <= p["max_boost"]
    assert (out["charges"][:, 0] != 0).sum() == 2


# ---------------------------------------------------------------- end to end
def _patch_simulate(monkeypatch, task, fn):
    """Replace a task's simulator in the registry (what generate_dataset looks up)."""
    from cscnn.data import TASKS

    monkeypatch.setitem(TASKS, task, dataclasses.replace(TASKS[task], simulate=fn))


def test_trajectory_seed_depends_on_seed_split_index_only():
    s = trajectory_seed(0, "train", 3)
    assert s == trajectory_seed(0, "train", 3)
    assert len({s, trajectory_seed(1, "train", 3), trajectory_seed(0, "test", 3), trajectory_seed(0, "train", 4)}) == 4


@pytest.mark.parametrize(
    "task,params,keys",
    [
        ("navier-stokes", NS_TINY, {"u": (6, 16, 16), "vx": (6, 16, 16), "t": (6,), "x": (16,), "buo_y": ()}),
        ("maxwell3d", MX_TINY, {"d_field": (3, 6, 6, 6, 3), "h_field": (3, 6, 6, 6, 3)}),
        ("maxwell2d", M2_TINY, {"faraday": (5, 4, 4, 3), "t": (5,), "boost_velocity": (2,)}),
    ],
)
def test_generate_end_to_end(tmp_path, task, params, keys):
    path = generate_dataset(task, "valid", 2, tmp_path, params=params, progress=False, seed=7)
    assert path == tmp_path / "valid.h5" and not (tmp_path / ".valid.work").exists()
    with h5py.File(path, "r") as f:
        assert f.attrs["task"] == task and f.attrs["seed"] == 7 and f.attrs["num_trajectories"] == 2
        assert json.loads(f.attrs["params"])["nt" if task != "maxwell2d" else "frames"] > 0
        assert "numpy" in json.loads(f.attrs["versions"]) and f.attrs["created"]
        for key, shape in keys.items():
            assert f["valid"][key].shape == (2, *shape)
        assert np.isfinite(f["valid"][next(iter(keys))][()]).all()
    # a second call is a no-op
    mtime = path.stat().st_mtime_ns
    assert generate_dataset(task, "valid", 2, tmp_path, params=params, progress=False, seed=7) == path
    assert path.stat().st_mtime_ns == mtime


def test_generation_resumes_after_interruption(tmp_path, monkeypatch):
    from cscnn.data.tasks import navier_stokes as ns

    calls = []
    real = ns.simulate

    def flaky(params, seed):
        calls.append(seed)
        if seed == trajectory_seed(0, "train", 2):
            raise KeyboardInterrupt  # the user pressed Ctrl-C during trajectory 2
        return real(params, seed)

    _patch_simulate(monkeypatch, "navier-stokes", flaky)
    with pytest.raises(KeyboardInterrupt):
        generate_dataset("navier-stokes", "train", 4, tmp_path, params=NS_TINY, progress=False)
    assert not (tmp_path / "train.h5").exists()
    shards = sorted(p.name for p in (tmp_path / ".train.work").glob("traj_*.h5"))
    assert shards == ["traj_000000.h5", "traj_000001.h5"]
    calls.clear()
    _patch_simulate(monkeypatch, "navier-stokes", lambda p, s: calls.append(s) or real(p, s))
    path = generate_dataset("navier-stokes", "train", 4, tmp_path, params=NS_TINY, progress=False)
    assert calls == [trajectory_seed(0, "train", i) for i in (2, 3)]  # finished ones not recomputed
    # extending the file computes only the new trajectories and keeps the old ones
    calls.clear()
    generate_dataset("navier-stokes", "train", 5, tmp_path, params=NS_TINY, progress=False)
    assert calls == [trajectory_seed(0, "train", 4)]
    with h5py.File(path, "r") as f:
        u = f["train/u"][()]
    assert u.shape[0] == 5
    np.testing.assert_array_equal(u[3], real(generation.resolve_params("navier-stokes", "small", NS_TINY),
                                             trajectory_seed(0, "train", 3))["u"])


@pytest.mark.slow  # starting two loky workers (torch + fdtd imports) takes ~20 s on 2 busy cores
def test_parallel_workers_give_identical_data(tmp_path):
    a = generate_dataset("maxwell3d", "train", 3, tmp_path / "a", params=MX_TINY, progress=False, workers=1)
    b = generate_dataset("maxwell3d", "train", 3, tmp_path / "b", params=MX_TINY, progress=False, workers=2)
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        np.testing.assert_array_equal(fa["train/d_field"][()], fb["train/d_field"][()])
        np.testing.assert_array_equal(fa["train/h_field"][()], fb["train/h_field"][()])


def test_generation_bad_input(tmp_path):
    with pytest.raises(ValueError, match="valid tasks"):
        generate_dataset("burgers", "train", 1, tmp_path)
    with pytest.raises(ValueError, match="unknown preset"):
        generate_dataset("maxwell3d", "train", 1, tmp_path, preset="huge")
    with pytest.raises(ValueError, match="unknown parameter"):
        generate_dataset("maxwell3d", "train", 1, tmp_path, params={"nx": 3})
    with pytest.raises(ValueError, match="positive"):
        generate_dataset("maxwell3d", "train", 0, tmp_path)
    generate_dataset("maxwell3d", "train", 2, tmp_path, params=MX_TINY, progress=False)
    with pytest.raises(DataError, match="different settings"):
        generate_dataset("maxwell3d", "train", 2, tmp_path, params=MX_TINY, progress=False, seed=1)
    with pytest.raises(DataError, match="already holds 2"):
        generate_dataset("maxwell3d", "train", 1, tmp_path, params=MX_TINY, progress=False)


def test_nonfinite_trajectory_is_rejected(tmp_path, monkeypatch):

    def broken(params, seed):
        return {"d_field": np.full((2, 2, 2, 2, 3), np.nan), "h_field": np.zeros((2, 2, 2, 2, 3))}

    _patch_simulate(monkeypatch, "maxwell3d", broken)
    with pytest.raises(DataError, match=r"trajectory 0 .*NaN"):
        generate_dataset("maxwell3d", "train", 1, tmp_path, params=MX_TINY, progress=False)


def test_presets_exist():
    assert set(PRESETS) == set(TASKS) >= {"navier-stokes", "maxwell3d", "maxwell2d", "navier-stokes-periodic"}
    assert PRESETS["navier-stokes"]["pdearena"]["nx"] == 128 and PRESETS["navier-stokes"]["pdearena"]["nt"] == 56
    for ns_preset in PRESETS["navier-stokes"].values():
        assert ns_preset["solve"] == "auto" and ns_preset["max_speed"] > 5  # see docs/data.md, Physics
    assert PRESETS["maxwell3d"]["pdearena"]["n_large"] == 64 and PRESETS["maxwell3d"]["pdearena"]["skip_nt"] == 250
    assert PRESETS["maxwell2d"]["paper"]["grid"] == 256 and PRESETS["maxwell2d"]["paper"]["size"] == 32
    for task in PRESETS:
        if TASKS[task].source is None:  # tasks with a simulator (the-well reads files made elsewhere)
            assert "small" in PRESETS[task]
        else:
            assert not PRESETS[task]


# ------------------------------------------------------------- full presets (slow)
@pytest.mark.slow
@pytest.mark.parametrize("task", ["navier-stokes", "maxwell3d"])
def test_full_preset_one_trajectory(tmp_path, task):
    path = generate_dataset(task, "test", 1, tmp_path, preset="pdearena", progress=False)
    with h5py.File(path, "r") as f:
        key = "u" if task == "navier-stokes" else "d_field"
        shape = (1, 56, 128, 128) if task == "navier-stokes" else (1, 8, 32, 32, 32, 3)
        assert f["test"][key].shape == shape
        assert np.isfinite(f["test"][key][()]).all()


@pytest.mark.slow
@pytest.mark.parametrize("task", ["navier-stokes", "maxwell3d", "maxwell2d"])
def test_small_preset_one_trajectory(tmp_path, task):
    path = generate_dataset(task, "test", 1, tmp_path, preset="small", progress=False)
    with h5py.File(path, "r") as f:
        assert f.attrs["preset"] == "small"


def test_fdtd_import_leaves_torch_state_alone():
    """fdtd switches autograd off and float64 on when imported; our wrapper undoes that."""
    import subprocess
    import sys

    code = (
        "import torch; from cscnn.data.tasks.maxwell3d import _import_fdtd; _import_fdtd(); "
        "assert torch.is_grad_enabled() and torch.get_default_dtype() == torch.float32; print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip().endswith("ok"), out.stderr
