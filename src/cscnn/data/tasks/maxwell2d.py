"""Relativistic electrodynamics on spacetime R^{1,2} with ``pycharge``.

Point charges move in the plane z = 0: ``n_oscillating`` charges oscillate
along a random line, ``n_orbiting`` charges run on circles; charges are
``±1..max_charge`` elementary charges, speeds up to ``max_speed`` c. The whole
system gets a random common Lorentz boost (velocity up to ``max_boost`` c in a
random in-plane direction), applied exactly to every worldline: in the rest
frame a charge follows ``x'(t')``; in the lab frame the event
``(t, x) = (gamma (t' + u.x'/c^2), x' + gamma^2/(c^2 (gamma+1)) (u.x') u + gamma u t')``,
where ``t'(t)`` is found by fixed-point iteration (a contraction for speeds < c).

Liénard-Wiechert fields (``pycharge.potentials_and_fields``) are evaluated on a
``grid x grid`` lattice of the box ``[-box/2, box/2]^2`` at ``frames`` times with
``c dt = box / grid`` (the fine lattice is isotropic in (ct, x, y)). In the
plane, ``Ez = Bx = By = 0``, so ``(Ex, Ey, c Bz)`` is the whole field: the
Faraday bivector of Cl(1,2) (see :mod:`cscnn.fields`). Each point is rescaled
by the logarithm of its Lorentz-invariant norm
``|F| = sqrt(|Ex^2 + Ey^2 - c^2 Bz^2|)``, ``F -> log10(|F|_c) F / |F|_c`` with
``|F|_c = max(|F|, norm_floor)`` (in V/m; with the default floor 1 V/m the
factor is >= 0), which commutes with boosts and rotations, and the frames are
average-pooled to ``size x size`` pixels.
"""

from __future__ import annotations

import math
from functools import partial

import numpy as np

from ...fields import MAXWELL2D_LAYOUT
from . import TaskSpec

__all__ = ["PRESETS", "TASK", "simulate", "sample_charges", "faraday_fields", "log_norm_rescale", "SPEED_OF_LIGHT"]

SPEED_OF_LIGHT = 299_792_458.0
ELEMENTARY_CHARGE = 1.602176634e-19

_PAPER = {
    "box": 100e-9,
    "grid": 256,
    "size": 32,
    "frames": 256,
    "n_oscillating": [3, 4],
    "n_orbiting": [5, 7],
    "max_charge": 3,
    "max_speed": 0.5,
    "max_boost": 0.5,
    "center_range": 0.3,
    "radius_range": [0.02, 0.1],
    "norm_floor": 1.0,
    "frames_per_call": 1,
}

PRESETS: dict[str, dict] = {
    # the paper's data set: 256 x 256 x 256 frames, resized to 32 x 32 (slow: ~1 h per trajectory on a core)
    "paper": _PAPER,
    # CPU-friendly: the 32 x 32 grid sampled directly, 64 frames
    "small": {**_PAPER, "grid": 32, "frames": 64, "frames_per_call": 16},
}
PRESETS["pdearena"] = PRESETS["paper"]  # alias: the full-size preset under the common name

# per-charge parameter vector: q [e], center (2), a (2), b (2), omega, phase, z offset
_N_PARAMS = 10
_BOOST_ITERATIONS = 30


def sample_charges(params: dict, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random charges (K, 10) padded with q = 0 entries to the maximal count, and the
    boost velocity (2,) in units of c."""
    box, c = params["box"], SPEED_OF_LIGHT
    n_osc = int(rng.integers(params["n_oscillating"][0], params["n_oscillating"][1] + 1))
    n_orb = int(rng.integers(params["n_orbiting"][0], params["n_orbiting"][1] + 1))
    k_max = params["n_oscillating"][1] + params["n_orbiting"][1]
    out = np.zeros((k_max, _N_PARAMS))
    out[:, 9] = 10 * box  # padding charges sit far out of the plane (and carry no charge)
    r_lo, r_hi = params["radius_range"]
    for k in range(n_osc + n_orb):
        sign = rng.choice([-1.0, 1.0])
        q = sign * rng.integers(1, params["max_charge"] + 1)
        center = rng.uniform(-params["center_range"], params["center_range"], 2) * box
        radius = rng.uniform(r_lo, r_hi) * box
        speed = rng.uniform(0.1, params["max_speed"]) * c
        theta = rng.uniform(0, 2 * math.pi)
        d = np.array([math.cos(theta), math.sin(theta)])
        a = radius * d
        if k < n_osc:  # oscillation along d
            b = np.zeros(2)
        else:  # circle, random orientation
            b = rng.choice([-1.0, 1.0]) * radius * np.array([-d[1], d[0]])
        out[k] = [q, *center, *a, *b, speed / radius, rng.uniform(0, 2 * math.pi), 0.0]
    phi = rng.uniform(0, 2 * math.pi)
    beta = params["max_boost"] * math.sqrt(rng.random())  # uniform over the disc of velocities
    boost = np.array([beta * math.cos(phi), beta * math.sin(phi)])
    return out, boost


def _position(p, beta, t):
    """Lab-frame position (3,) at lab time t of the charge with parameters p under boost beta."""
    import jax.numpy as jnp

    c = SPEED_OF_LIGHT
    u = beta * c
    gamma = 1.0 / jnp.sqrt(1.0 - jnp.dot(beta, beta))

    def rest(tp):
        ph = p[7] * tp + p[8]
        return p[1:3] + p[3:5] * jnp.cos(ph) + p[5:7] * jnp.sin(ph)

    import jax

    tp = jax.lax.fori_loop(
        0, _BOOST_ITERATIONS, lambda _, tp: t / gamma - jnp.dot(u, rest(tp)) / c**2, t / gamma
    )
    xr = rest(tp)
    x = xr + gamma**2 / (c**2 * (gamma + 1.0)) * jnp.dot(u, xr) * u + gamma * u * tp
    return jnp.stack([x[0], x[1], p[9]])


def _jax():
    import jax

    jax.config.update("jax_enable_x64", True)
    return jax


_FIELD_FN = {}


def _field_fn():
    """jit-compiled (charges (K,10), beta (2,), x, y, t) -> (Ex, Ey, cBz); compiled once per shape."""
    if "fn" in _FIELD_FN:
        return _FIELD_FN["fn"]
    jax = _jax()
    import jax.numpy as jnp
    import pycharge as pc

    config = pc.SolverConfig(root_find_throw=False)

    def one_charge(p, beta, x, y, t):
        charge = pc.Charge(partial(_position, p, beta), q=p[0] * ELEMENTARY_CHARGE, solver_config=config)
        out = pc.potentials_and_fields([charge])(x, y, jnp.zeros_like(x), t)
        return jnp.stack([out.electric[..., 0], out.electric[..., 1], SPEED_OF_LIGHT * out.magnetic[..., 2]])

    def fields(charges, beta, x, y, t):
        # superposition; vmapping over the charges compiles the Liénard-Wiechert graph once
        total = jax.vmap(one_charge, in_axes=(0, None, None, None, None))(charges, beta, x, y, t).sum(0)
        return total[0], total[1], total[2]

    _FIELD_FN["fn"] = jax.jit(fields)
    return _FIELD_FN["fn"]


def faraday_fields(charges: np.ndarray, beta: np.ndarray, x, y, t) -> np.ndarray:
    """Raw ``(Ex, Ey, cBz)`` in V/m at lab points (x, y, z=0, t) in SI units: (..., 3) numpy."""
    fn = _field_fn()
    ex, ey, cbz = fn(np.asarray(charges, float), np.asarray(beta, float), *(np.asarray(a, float) for a in (x, y, t)))
    return np.stack([np.asarray(ex), np.asarray(ey), np.asarray(cbz)], -1)


def log_norm_rescale(f: np.ndarray, floor: float = 1.0) -> np.ndarray:
    """``F -> log10(|F|_c) F / |F|_c`` with the invariant norm ``|F| = sqrt(|Ex^2+Ey^2-cBz^2|)``
    clipped below at ``floor``: (..., 3) -> (..., 3)."""
    norm = np.sqrt(np.abs(f[..., 0] ** 2 + f[..., 1] ** 2 - f[..., 2] ** 2))
    norm = np.maximum(norm, floor)
    return f * (np.log10(norm) / norm)[..., None]


def simulate(params: dict, seed: int) -> dict[str, np.ndarray]:
    """One trajectory: ``faraday`` (frames, size, size, 3) float32 plus coordinates."""
    rng = np.random.default_rng(seed)
    charges, beta = sample_charges(params, rng)
    n, size, frames, box = params["grid"], params["size"], params["frames"], params["box"]
    if n % size:
        raise ValueError(f"grid {n} must be a multiple of size {size}")
    dx = box / n
    dt = dx / SPEED_OF_LIGHT
    coords = (np.arange(n) + 0.5) * dx - box / 2
    times = np.arange(frames) * dt
    t_mid = times[frames // 2]
    per = max(1, int(params["frames_per_call"]))
    out = np.empty((frames, size, size, 3), dtype=np.float32)
    pool = n // size
    for start in range(0, frames, per):
        ts = times[start : start + per]
        tt = np.concatenate([ts, np.full(per - len(ts), ts[-1])])  # pad the last chunk: one compiled shape
        t3, x3, y3 = np.meshgrid(tt - t_mid, coords, coords, indexing="ij")
        f = faraday_fields(charges, beta, x3, y3, t3)[: len(ts)]
        if not np.isfinite(f).all():
            raise FloatingPointError(f"non-finite Liénard-Wiechert field (seed {seed}, frames from {start})")
        f = log_norm_rescale(f, params["norm_floor"])
        f = f.reshape(len(ts), size, pool, size, pool, 3).mean((2, 4))
        out[start : start + len(ts)] = f
    centers = (np.arange(size) + 0.5) * (box / size) - box / 2
    return {
        "faraday": out,
        "t": times,
        "x": centers,
        "y": centers,
        "boost_velocity": beta,
        "charges": charges,
    }


TASK = TaskSpec(
    name="maxwell2d",
    metric=(-1, 1, 1),
    grid_dims=2,
    time_as_axis=True,
    time_history=16,
    time_future=16,
    layout=MAXWELL2D_LAYOUT,  # defined (and documented) in cscnn.fields
    datasets=(("faraday", 3),),
    simulate=simulate,
    presets=PRESETS,
    padding="zeros",
    # the observer's time direction e_0 (grid axis 0): lets a Lorentz-equivariant model tell future from past
    symmetry_breaking={"time": (0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)},
    description="2D+1 electrodynamics (pycharge), Faraday bivector in Cl(1,2)",
    file_prefix="Maxwell2D",
)
