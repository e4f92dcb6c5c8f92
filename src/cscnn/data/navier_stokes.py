"""2D smoke with buoyancy (PDEArena's Navier-Stokes setup) simulated with PhiFlow 3.

Per step: semi-Lagrangian advection of smoke and velocity, buoyancy force
``(0, buoyancy_y) * smoke`` resampled to the staggered velocity, explicit
diffusion, pressure projection (``make_incompressible``) in a closed box
(zero-velocity walls). Float64 precision and ``Solve(method, 1e-5, 1e-5)``;
phiflow's default solve diverges. When JAX is installed the step runs
through PhiFlow's JAX backend with ``jit_compile`` (about 30x faster than the
NumPy backend, which is used otherwise).

Stored: smoke ``u`` at cell centres and the velocity interpolated to cell
centres (PDEArena stores the lower-face staggered values instead; same layout,
but centred values transform correctly under grid rotations and reflections).
"""

from __future__ import annotations

import warnings

import numpy as np

__all__ = ["PRESETS", "simulate", "initial_state", "make_step", "divergence"]

PRESETS: dict[str, dict] = {
    # PDEArena: tmin 18, tmax 102, 56 stored steps -> dt = 1.5
    "pdearena": {
        "nx": 128,
        "ny": 128,
        "Lx": 32.0,
        "Ly": 32.0,
        "dt": 1.5,
        "skip_nt": 8,
        "nt": 56,
        "nu": 0.01,
        "buoyancy_y": 0.5,
        "noise_scale": 11.0,
        "noise_smoothness": 6.0,
        "solve": "CG",
        "tolerance": 1e-5,
        "backend": "auto",
    },
    # CPU-friendly: the paper's 64x64 resolution simulated directly, fewer steps
    "small": {
        "nx": 64,
        "ny": 64,
        "Lx": 32.0,
        "Ly": 32.0,
        "dt": 1.5,
        "skip_nt": 8,
        "nt": 32,
        "nu": 0.01,
        "buoyancy_y": 0.5,
        "noise_scale": 11.0,
        "noise_smoothness": 6.0,
        "solve": "CG",
        "tolerance": 1e-5,
        "backend": "auto",
    },
}

_STEP_CACHE: dict = {}


def _flow(backend: str):
    """phiflow's namespace for the requested backend ('auto' = jax if installed)."""
    if backend in ("auto", "jax"):
        try:
            import phi.jax.flow as flow

            return flow, True
        except ImportError:
            if backend == "jax":
                raise
    import phi.flow as flow

    return flow, False


def _setup(params):
    flow, jit = _flow(params["backend"])
    flow.math.set_global_precision(64)
    return flow, jit


def initial_state(params: dict, seed: int):
    """(smoke CenteredGrid, zero StaggeredGrid velocity) for ``seed``."""
    flow, _ = _setup(params)
    flow.math.seed(int(seed))
    bounds = flow.Box(x=params["Lx"], y=params["Ly"])
    noise = flow.Noise(scale=params["noise_scale"], smoothness=params["noise_smoothness"])
    smoke = abs(flow.CenteredGrid(noise, flow.extrapolation.BOUNDARY, x=params["nx"], y=params["ny"], bounds=bounds))
    velocity = flow.StaggeredGrid(0, flow.extrapolation.ZERO, x=params["nx"], y=params["ny"], bounds=bounds)
    return smoke, velocity


def make_step(params: dict):
    """One time step ``(smoke, velocity) -> (smoke, velocity)``, jit-compiled when possible.

    Cached per process and parameter set, so a worker compiles it only once."""
    key = tuple(sorted((k, v) for k, v in params.items() if k not in ("nt", "skip_nt")))
    if key in _STEP_CACHE:
        return _STEP_CACHE[key]
    flow, jit = _setup(params)
    dt, nu, buo = params["dt"], params["nu"], params["buoyancy_y"]
    solve = flow.Solve(params["solve"], params["tolerance"], params["tolerance"])

    def step(smoke, velocity):
        smoke = flow.advect.semi_lagrangian(smoke, velocity, dt)
        force = (smoke * (0, buo)).at(velocity)
        velocity = flow.advect.semi_lagrangian(velocity, velocity, dt) + dt * force
        velocity = flow.diffuse.explicit(velocity, nu, dt)
        velocity, _ = flow.fluid.make_incompressible(velocity, solve=solve)
        return smoke, velocity

    fn = flow.math.jit_compile(step) if jit else step
    _STEP_CACHE[key] = fn
    return fn


def divergence(velocity) -> np.ndarray:
    """Discrete divergence of a staggered velocity at cell centres, (X, Y) numpy."""
    import phi.flow as flow

    return flow.field.divergence(velocity).values.numpy("x,y")


def simulate(params: dict, seed: int) -> dict[str, np.ndarray]:
    """One trajectory in PDEArena's per-trajectory layout (float32 fields)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # phiflow's rank-deficiency / sparse-format notes
        smoke, velocity = initial_state(params, seed)
        step = make_step(params)
        nt, skip = params["nt"], params["skip_nt"]
        us, vs = [], []
        for i in range(skip + nt):
            smoke, velocity = step(smoke, velocity)
            if i >= skip:
                us.append(smoke.values.numpy("x,y"))
                vs.append(velocity.at_centers().values.numpy("x,y,vector"))
    u = np.stack(us).astype(np.float32)
    v = np.stack(vs).astype(np.float32)
    nx, ny, dt = params["nx"], params["ny"], params["dt"]
    dx, dy = params["Lx"] / nx, params["Ly"] / ny
    t0 = dt * (skip + 1)
    return {
        "u": u,
        "vx": v[..., 0],
        "vy": v[..., 1],
        "t": (t0 + dt * np.arange(nt)).astype(np.float64),
        "x": ((np.arange(nx) + 0.5) * dx).astype(np.float64),
        "y": ((np.arange(ny) + 0.5) * dy).astype(np.float64),
        "dt": np.float64(dt),
        "dx": np.float64(dx),
        "dy": np.float64(dy),
        "buo_y": np.float64(params["buoyancy_y"]),
    }
