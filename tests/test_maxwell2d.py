"""Maxwell 2D+1 data: the authors' generator reproduced (reference frames), the secant solve as
scipy runs it, and the fields against pycharge 2."""

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest

from cscnn.data import DataError, resolve_params
from cscnn.data.tasks import maxwell2d as m2

FIXTURES = sorted((Path(__file__).parent / "fixtures" / "maxwell2d_authors").glob("seed*_grid*_size*.npz"))


def _reference(path):
    ref = np.load(path)
    meta = json.loads(str(ref["meta"]))
    params = resolve_params("maxwell2d", "paper", {"grid": meta["grid"], "size": meta["size"], "frames": 256})
    return ref, meta, params


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_sources_are_drawn_as_the_authors_draw_them(path):
    ref, meta, params = _reference(path)
    rng = np.random.RandomState(meta["seed"])  # their script: np.random.seed(seed), then gen_sources per draw
    for _ in range(int(ref["draws"])):
        src = m2.sample_sources(params, rng)
    n = src.n_oscillating
    assert n == len(ref["osc_q"]) and len(src.q) - n == len(ref["orb_q"])
    np.testing.assert_array_equal(src.q, np.concatenate([ref["osc_q"], ref["orb_q"]]))
    np.testing.assert_array_equal(src.origin, np.concatenate([ref["osc_origin"], ref["orb_origin"]])[:, :2])
    np.testing.assert_array_equal(src.drift, np.concatenate([ref["osc_drift"], ref["orb_drift"]])[:, :2])
    np.testing.assert_array_equal(src.amplitude, np.concatenate([ref["osc_amplitude"], ref["orb_radius"]]))
    np.testing.assert_array_equal(src.omega, np.concatenate([ref["osc_omega"], ref["orb_omega"]]))
    # their charge class normalises the (unit) direction once more: equal up to rounding
    np.testing.assert_allclose(src.direction[:n], ref["osc_direction"][:, :2], rtol=0, atol=1e-15)
    # drift: 0.5 (v_abs + v_rel_i) with |v_abs| = 0.12 c, |v_rel_i| = 0.08 c
    assert np.all(np.linalg.norm(src.drift, axis=1) <= 0.1 * m2.SPEED_OF_LIGHT * (1 + 1e-12))


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_frames_equal_the_authors_generator(path):
    """Given the same sources, our frames equal their output rounded to float32 (they are float64
    in their run; ours are computed with the same operations and agree to the last float32 bit)."""
    ref, meta, params = _reference(path)
    rng = np.random.RandomState(meta["seed"])
    for _ in range(int(ref["draws"])):
        src = m2.sample_sources(params, rng)
    frames, converged = m2.render(src, params, frames=ref["frames"])
    assert converged
    np.testing.assert_allclose(frames, ref["faraday"], rtol=2**-23, atol=0)
    assert np.abs(ref["faraday"]).max() > 1  # log-rescaled fields, not zeros


@pytest.mark.slow  # all 256 frames of the fixture's trajectory (a few seconds at 64 x 64)
def test_whole_trajectory_std_equals_the_authors():
    ref, meta, params = _reference(FIXTURES[0])
    rng = np.random.RandomState(meta["seed"])
    for _ in range(int(ref["draws"])):
        src = m2.sample_sources(params, rng)
    frames, _ = m2.render(src, params)
    assert frames.std(ddof=1) == pytest.approx(float(ref["std"]), rel=1e-12)


def test_simulate_reproduces_the_authors_trajectory_for_their_seed():
    """simulate(seed) draws from RandomState(seed) as their main() after np.random.seed(seed)."""
    ref, meta, params = _reference(FIXTURES[0])
    frames = 2
    assert list(ref["frames"][:2]) == [0, 1]
    out = m2.simulate(dict(params, frames=frames), meta["seed"])
    assert out["faraday"].shape == (frames, meta["size"], meta["size"], 3) and out["redraws"] == 0
    np.testing.assert_allclose(out["faraday"], ref["faraday"][:2], rtol=2**-23, atol=0)
    src = m2.Sources.from_table(out["sources"])
    assert len(src.q) == len(ref["osc_q"]) + len(ref["orb_q"]) and out["sources"].shape == (11, 10)
    np.testing.assert_allclose(out["t"], np.arange(frames) * 2 * math.pi / 7.5e16 / 256 * 8, rtol=1e-15)


# ------------------------------------------------------------------ the secant solve
def _motion_function(src, k):
    """pycharge 1.1.0's retarded-time equation for source k, with our kinematics."""
    motion = m2._Motion(src, int(src.kind[k]), "authors")
    j = int(np.flatnonzero(np.flatnonzero(src.kind == src.kind[k]) == k)[0])

    def f(tau, t, x, y):
        px, py = motion.position(np.broadcast_to(tau, (1, len(motion), tau.size)).copy())
        return ((x - px[0, j]) ** 2 + (y - py[0, j]) ** 2) ** 0.5 - m2.SPEED_OF_LIGHT * (t - tau)

    return f


def _small_problem():
    params = resolve_params("maxwell2d", "small")
    src = m2.sample_sources(params, np.random.RandomState(5))
    rng = np.random.default_rng(0)
    x, y = rng.uniform(-50e-9, 50e-9, (2, 300))
    t = np.array([0, 7, 63]) * params["dt"]
    return src, x, y, t


def test_retarded_times_equal_scipy_newton():
    """Each (frame, charge) gives the roots scipy.optimize.newton (secant, x0 = -1e-12 s,
    tol = 1e-22 s) returns, bit for bit, and they solve |x - x_q(t_r)| = c (t - t_r)."""
    from scipy import optimize

    src, x, y, t = _small_problem()
    tau, unconverged = m2.retarded_times(src, x, y, t)
    assert tau.shape == (3, len(src.q), 300) and not unconverged.any()
    for k in range(len(src.q)):
        f = _motion_function(src, k)
        for i, ti in enumerate(t):
            expected = optimize.newton(f, np.full(x.shape, -1e-12), args=(ti, x, y), tol=1e-22)
            np.testing.assert_array_equal(tau[i, k], expected)
            assert np.abs(f(tau[i, k], ti, x, y)).max() < 1e-18  # metres (of distances ~1e-8 m): the root
    assert np.all(tau <= t[:, None, None])  # retarded: in the past


def test_convergence_verdict_matches_scipy(monkeypatch):
    """With the iteration limit lowered, a (frame, charge) is flagged exactly when scipy warns
    'some failed to converge'; simulate() then redraws and gives up after max_redraws."""
    from scipy import optimize

    src, x, y, t = _small_problem()
    flagged = {}
    for limit in (3, 6, 7, 8):
        monkeypatch.setattr(m2, "_SECANT_MAXITER", limit)
        _, unconverged = m2.retarded_times(src, x, y, t)
        flagged[limit] = int(unconverged.sum())
        for k in range(len(src.q)):
            f = _motion_function(src, k)
            for i, ti in enumerate(t):
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    try:
                        optimize.newton(f, np.full(x.shape, -1e-12), args=(ti, x, y), tol=1e-22, maxiter=limit)
                        failed = any("some failed to converge" in str(w.message) for w in caught)
                    except RuntimeError:  # scipy: "all failed to converge"
                        failed = True
                assert unconverged[i, k] == failed, (limit, i, k)
    # not vacuous: 6 iterations leave every run unconverged, 7 some, 8 none (of 3 frames x 11 charges)
    assert flagged[3] == flagged[6] == 33 and 0 < flagged[7] < 33 and flagged[8] == 0
    monkeypatch.setattr(m2, "_SECANT_MAXITER", 2)
    params = resolve_params("maxwell2d", "small", {"grid": 8, "size": 4, "frames": 2, "max_redraws": 2})
    with pytest.raises(DataError, match="3 draws"):
        m2.simulate(params, 0)


# ------------------------------------------------------------------ physics
@pytest.mark.parametrize("counts", [pytest.param(None, marks=pytest.mark.slow), [1, 1]], ids=["full-draw", "two"])
def test_fields_equal_pycharge2(counts):
    """Liénard-Wiechert fields of a source draw (variant 'consistent', which pycharge 2 can
    express) equal pycharge 2's at random points and frames to 1e-6 relative. The full draw
    (9 charges here) is slow only because pycharge compiles a graph per charge."""
    pytest.importorskip("pycharge")
    params = resolve_params("maxwell2d", "paper", counts and {"n_oscillating": counts, "n_orbiting": counts})
    src = m2.sample_sources(params, np.random.RandomState(1))
    rng = np.random.default_rng(0)
    x, y = rng.uniform(-50e-9, 50e-9, (2, 64))
    t = np.array([0, 90, 255]) * params["dt"]
    ours, converged = m2.faraday_fields(src, x, y, t, "consistent")
    ref = m2.pycharge_fields(src, x, y, t)
    assert converged and ours.shape == ref.shape == (3, 64, 3) and len(src.q) == (2 if counts else 9)
    rel = np.linalg.norm(ours - ref, axis=-1) / np.linalg.norm(ref, axis=-1)
    assert rel.max() < 1e-6
    with pytest.raises(ValueError, match="consistent"):
        m2.pycharge_fields(src, x, y, t, "authors")


def _one_source(kind, q=1.0, origin=(0.0, 0.0), drift=(0.0, 0.0), direction=(1.0, 0.0), amplitude=0.0, omega=0.0):
    return m2.Sources(q=np.array([q * m2.ELEMENTARY_CHARGE]), kind=np.array([kind]), origin=np.array([origin]),
                      drift=np.array([drift]), direction=np.array([direction]), amplitude=np.array([amplitude]),
                      omega=np.array([omega]))


def test_static_charge_is_coulomb():
    rng = np.random.default_rng(0)
    x, y = rng.uniform(-40e-9, 40e-9, (2, 16))
    src = _one_source(0, q=-2.0, origin=(5e-9, -3e-9))
    f, converged = m2.faraday_fields(src, x, y, [1e-17])
    from scipy.constants import epsilon_0

    k = -2 * m2.ELEMENTARY_CHARGE / (4 * math.pi * epsilon_0)
    rx, ry = x - 5e-9, y + 3e-9
    r3 = (rx**2 + ry**2) ** 1.5
    assert converged
    np.testing.assert_allclose(f[0, :, 0], k * rx / r3, rtol=1e-12)
    np.testing.assert_allclose(f[0, :, 1], k * ry / r3, rtol=1e-12)
    np.testing.assert_allclose(f[0, :, 2], 0.0, atol=1e-12 * np.abs(f).max())


@pytest.mark.parametrize("variant", ["consistent", "authors"])
def test_uniformly_moving_charge_is_heaviside(variant):
    """A charge drifting with beta = (0.05, -0.08) (orbit radius 0): Heaviside's field of a
    uniformly moving charge, E = k q (1 - b^2) R / (R^3 (1 - b^2 sin^2)^(3/2)) from the present
    position, c B = beta x E. Orbiting sources keep the drift's sign in both variants."""
    from scipy.constants import epsilon_0

    c = m2.SPEED_OF_LIGHT
    beta = np.array([0.05, -0.08])
    rng = np.random.default_rng(1)
    x, y = rng.uniform(-40e-9, 40e-9, (2, 16))
    t = np.array([0.0, 3e-16])
    src = _one_source(1, drift=tuple(beta * c), amplitude=0.0, omega=1e16)
    f, _ = m2.faraday_fields(src, x, y, t, variant)
    k = m2.ELEMENTARY_CHARGE / (4 * math.pi * epsilon_0)
    rx, ry = x - beta[0] * c * t[:, None], y - beta[1] * c * t[:, None]
    rn = np.sqrt(rx**2 + ry**2)
    sin2 = 1 - ((rx * beta[0] + ry * beta[1]) / (rn * np.linalg.norm(beta))) ** 2
    b2 = beta @ beta
    mag = k * (1 - b2) / (rn**3 * (1 - b2 * sin2) ** 1.5)
    np.testing.assert_allclose(f[..., 0], mag * rx, rtol=1e-9)
    np.testing.assert_allclose(f[..., 1], mag * ry, rtol=1e-9)
    np.testing.assert_allclose(f[..., 2], beta[0] * mag * ry - beta[1] * mag * rx, rtol=1e-9, atol=1e-12 * mag.max())


def test_variants_differ_only_where_the_quirks_act():
    """'authors' flips the drift in the oscillating charges' velocity and centres the orbits;
    'consistent' does neither. Sources at rest in the box centre: both agree."""
    rng = np.random.default_rng(2)
    x, y = rng.uniform(-40e-9, 40e-9, (2, 32))
    t = [0.0, 1e-16]
    osc = _one_source(0, origin=(10e-9, 0.0), drift=(3e6, 1e6), direction=(0.6, 0.8), amplitude=1e-9, omega=4e16)
    a, _ = m2.faraday_fields(osc, x, y, t, "authors")
    b, _ = m2.faraday_fields(osc, x, y, t, "consistent")
    assert np.abs(a - b).max() > 1e-3 * np.abs(b).max()  # the velocity's drift sign
    tau_a, _ = m2.retarded_times(osc, x, y, t, "authors")
    tau_b, _ = m2.retarded_times(osc, x, y, t, "consistent")
    np.testing.assert_array_equal(tau_a, tau_b)  # same worldline
    orb = _one_source(1, origin=(10e-9, -5e-9), amplitude=2e-9, omega=3e16)
    a, _ = m2.faraday_fields(orb, x, y, t, "authors")
    b, _ = m2.faraday_fields(orb, x, y, t, "consistent")
    shifted = _one_source(1, origin=(0.0, 0.0), amplitude=2e-9, omega=3e16)
    np.testing.assert_allclose(a, m2.faraday_fields(shifted, x, y, t, "consistent")[0], rtol=1e-12)
    assert np.abs(a - b).max() > 1e-2 * np.abs(b).max()  # the authors' orbit ignores its origin
    rest = _one_source(0, origin=(0.0, 0.0), direction=(1.0, 0.0), amplitude=1e-9, omega=4e16)
    np.testing.assert_array_equal(m2.faraday_fields(rest, x, y, t, "authors")[0],
                                  m2.faraday_fields(rest, x, y, t, "consistent")[0])
    with pytest.raises(ValueError, match="variant must be one of"):
        m2.faraday_fields(rest, x, y, t, "lorentz")


def test_log_norm_rescale_is_theirs_and_commutes_with_boosts():
    import torch

    from cscnn import CliffordAlgebra
    from cscnn.algebra import sample_group_elements
    from cscnn.fields import from_multivector, to_multivector

    f = np.array([[3e9, 4e9, 0.0], [2e6, 0.0, 1e6], [1e8, 0.0, 1e8]])
    out = m2.log_norm_rescale(f)
    np.testing.assert_allclose(out[0], f[0] * math.log10(5e9) / 5e9)
    # below the floor (1e7 V/m) the logarithm keeps the unclipped norm: log10(|F|) F / 1e7
    np.testing.assert_allclose(out[1], f[1] * math.log10(math.sqrt(3e12)) / 1e7)
    assert not np.isfinite(out[2]).any()  # a null field (|F| = 0): -inf / NaN, which the std test rejects
    alg = CliffordAlgebra((-1, 1, 1))
    f = np.random.default_rng(0).normal(size=(50, 3)) * 1e9
    for g in sample_group_elements((-1, 1, 1), 4, generator=torch.Generator().manual_seed(0)):

        def act(a, g=g):
            return from_multivector("maxwell2d", alg.act(g, to_multivector("maxwell2d", torch.tensor(a)))).numpy()

        np.testing.assert_allclose(m2.log_norm_rescale(act(f)), act(m2.log_norm_rescale(f)), rtol=1e-7, atol=1e-7)


def test_resize_is_torchvisions_bilinear():
    """256 -> 32 with antialias (torchvision >= 0.17's default) is the 8 x 8 tent filter; without it,
    bilinear sampling between two fine points."""
    rng = np.random.default_rng(0)
    a = rng.normal(size=(2, 16, 16, 3))
    down = m2.resize_frames(a, 4)
    no_aa = m2.resize_frames(a, 4, antialias=False)
    # align_corners=False without antialias: output i samples input 4 i + 1.5, halfway between 4i+1 and 4i+2
    rows = (a[:, 1::4] + a[:, 2::4]) / 2
    expected = (rows[:, :, 1::4] + rows[:, :, 2::4]) / 2
    np.testing.assert_allclose(no_aa, expected, rtol=1e-12)
    w = np.array([1, 3, 5, 7, 7, 5, 3, 1], dtype=float)  # the tent over 8 inputs centred at 4 i + 1.5
    inner = np.einsum("i,j,fijc->fc", w, w, a[:, 2:10, 2:10]) / w.sum() ** 2
    np.testing.assert_allclose(down[:, 1, 1], inner, rtol=1e-12)
    np.testing.assert_array_equal(m2.resize_frames(a, 16), a)


def test_output_coordinates_follow_the_resize():
    p = resolve_params("maxwell2d", "small")
    x = m2.output_coordinates(p)
    assert x.shape == (32,)
    np.testing.assert_allclose(x, -x[::-1], atol=1e-20)  # symmetric about the centre
    fine = np.linspace(-p["lim"], p["lim"], p["grid"])
    np.testing.assert_allclose(x[0], (fine[0] + fine[1]) / 2, rtol=1e-12)  # 64 -> 32: halfway between 0 and 1


def test_presets_differ_only_in_size():
    paper, small = m2.PRESETS["paper"], m2.PRESETS["small"]
    differ = {k for k in paper if paper[k] != small[k]}
    assert differ <= {"grid", "size", "frames"}
    assert paper["grid"] == 256 and paper["frames"] == 256 and paper["size"] == 32
    assert paper["dt"] == small["dt"] == pytest.approx(2.6179938779914945e-18, rel=1e-15)
    assert paper["norm_floor"] == 1e7 and paper["variant"] == "authors" and paper["lim"] == 50e-9
    assert m2.PRESETS["pdearena"] is paper
