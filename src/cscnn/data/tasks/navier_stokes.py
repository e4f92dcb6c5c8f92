"""2D smoke with buoyancy (PDEArena's Navier-Stokes setup) simulated with PhiFlow 3.

Per step: semi-Lagrangian advection of smoke and velocity, buoyancy force
``(0, buoyancy_y) * smoke`` resampled to the staggered velocity, explicit
diffusion, pressure projection (``make_incompressible``) in a closed box
(zero-velocity walls). Float64 precision and ``Solve('auto', 1e-5, 1e-5)``;
phiflow's default solve diverges. When JAX is installed the step runs
through PhiFlow's JAX backend with ``jit_compile`` (about 30x faster than the
NumPy backend, which is used otherwise).

Pressure solve: the closed-box Poisson matrix is singular (pressure is defined
up to a constant); phiml makes it regular by bordering it with a Lagrange
multiplier row and column of ones, which gives a symmetric *indefinite* system.
``'auto'`` then uses a sparse direct solve (``scipy-direct``, exact to ~1e-12).
``'CG'`` is not guaranteed to converge on an indefinite system; the jit-compiled
CG solve failed now and then (about 2 % of the frames; a quarter of the ``small``
trajectories, 3 of 4 ``pdearena`` ones tried), and under ``jit_compile`` phiml
cannot raise ``Diverged``/``NotConverged`` (the flags are traced values), so the
failed projection (|div v| ~ 1e4) went through silently and the velocity blew up
to |v| ~ 40-3000. :func:`simulate` therefore checks every step (warm-up included):
the projected divergence must stay below ``100 * tolerance`` and the speed below
``max_speed``; otherwise it raises :class:`~cscnn.data.DataError`.

Stored: smoke ``u`` at cell centres and the velocity interpolated to cell
centres (PDEArena stores the lower-face staggered values instead; same layout,
but centred values transform correctly under grid rotations and reflections).
"""

from __future__ import annotations

import warnings

import numpy as np

from ...fields import NAVIER_STOKES_LAYOUT
from ..errors import DataError
from . import TaskSpec

__all__ = ["PRESETS", "TASK", "simulate", "initial_state", "make_step", "divergence", "phiflow"]

# PDEArena: tmin 18, tmax 102, 56 stored steps -> dt = 1.5
_PDEARENA = {
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
    "solve": "auto",
    "tolerance": 1e-5,
    "max_speed": 20.0,
    "backend": "auto",
}

PRESETS: dict[str, dict] = {
    "pdearena": _PDEARENA,
    # CPU-friendly: the paper's 64x64 resolution simulated directly, fewer steps
    "small": {**_PDEARENA, "nx": 64, "ny": 64, "nt": 32},
}

# max_speed: the buoyant free-fall speed over the box height, sqrt(2 * buoyancy_y * u_max * Ly) = 8 for the
# largest initial smoke density u_max ~ 2, bounds the physical flow; clean data reach |v| <= ~5, blow-ups 40-3000.

_STEP_CACHE: dict = {}


def phiflow(backend: str):
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
    flow, jit = phiflow(params["backend"])
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


def make_step(params: dict, diagnostics: bool = False):
    """One time step ``(smoke, velocity) -> (smoke, velocity)``, jit-compiled when possible.

    With ``diagnostics=True`` it also returns ``(max_speed, max_divergence)`` of the projected
    velocity (scalar tensors; cell-centred speed, staggered divergence), computed inside the
    compiled step. Cached per process and parameter set, so a worker compiles it only once."""
    key = (bool(diagnostics), *sorted((k, v) for k, v in params.items() if k not in ("nt", "skip_nt", "max_speed")))
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
        if not diagnostics:
            return smoke, velocity
        speed = flow.math.max(flow.math.vec_length(velocity.at_centers().values))
        div = flow.math.max(abs(flow.field.divergence(velocity).values))
        return smoke, velocity, speed, div

    fn = flow.math.jit_compile(step) if jit else step
    _STEP_CACHE[key] = fn
    return fn


def divergence(velocity) -> np.ndarray:
    """Discrete divergence of a staggered velocity at cell centres, (X, Y) numpy."""
    import phi.flow as flow

    return flow.field.divergence(velocity).values.numpy("x,y")


def simulate(params: dict, seed: int) -> dict[str, np.ndarray]:
    """One trajectory in PDEArena's per-trajectory layout (float32 fields).

    Raises:
        DataError: the pressure solve failed (projected divergence above ``100 * tolerance``)
            or the speed exceeded ``max_speed`` in some step (warm-up included); names the seed."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # phiflow's rank-deficiency / sparse-format notes
        smoke, velocity = initial_state(params, seed)
        step = make_step(params, diagnostics=True)
        nt, skip = params["nt"], params["skip_nt"]
        max_speed, max_div = float(params["max_speed"]), 100 * float(params["tolerance"])
        us, vs = [], []
        for i in range(skip + nt):
            smoke, velocity, speed, div = step(smoke, velocity)
            speed, div = float(speed), float(div)
            where = f"navier-stokes seed {seed}, step {i + 1} of {skip + nt} (warm-up {skip})"
            if not div <= max_div:
                raise DataError(
                    f"{where}: pressure solve {params['solve']!r} failed, max |div v| = {div:.3g} after the "
                    f"projection (allowed {max_div:.3g} = 100 * tolerance); use solve='auto'"
                )
            if not speed <= max_speed:
                raise DataError(f"{where}: max |v| = {speed:.4g} exceeds max_speed = {max_speed:g} (solver blow-up)")
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


TASK = TaskSpec(
    name="navier-stokes",
    metric=(1, 1),
    grid_dims=2,
    time_as_axis=False,
    time_history=4,
    time_future=1,
    layout=NAVIER_STOKES_LAYOUT,  # defined (and documented) in cscnn.fields
    datasets=(("u", None), ("vx", None), ("vy", None)),
    simulate=simulate,
    presets=PRESETS,
    padding="zeros",
    description="2D smoke with buoyancy (PhiFlow), [u, vx, vy, 0] in Cl(2,0)",
    file_prefix="NavierStokes2D",
    # the direction of the buoyancy force (+y, grid axis 1 = blade e_1); gravity points the other way
    symmetry_breaking={"gravity": (0.0, 0.0, 1.0, 0.0)},
)
