"""Incompressible Navier-Stokes on a periodic square without gravity: smoke and velocity (PhiFlow).

The worked example of a task file (docs/data.md, "Adding a PDE"): everything cscnn
needs about this PDE is here.

Physics: a passive smoke density ``u`` and a velocity ``v`` with
``du/dt + v . grad u = 0``, ``dv/dt + (v . grad) v = -grad p + nu lap v``, ``div v = 0``
on the periodic square ``[0, L)^2``. Without gravity and walls nothing singles out a
direction or a point, so the equations are symmetric under every isometry of the
torus; on the grid: every 90-degree rotation and reflection (and translation).
An exactly E(2)-equivariant model with circular padding (``TASK.padding``) therefore
has the symmetry of the physics.

Discretisation (PhiFlow 3, float64): smoke on cell centres, velocity on the
staggered (MAC) grid, per step semi-Lagrangian advection of both, explicit diffusion,
pressure projection with ``Solve('auto')`` (a sparse direct solve, divergence ~1e-15).
The periodic MAC grid is mapped onto itself by every grid symmetry, and each
operation is symmetric, so the discrete dynamics are equivariant up to round-off:
transforming the initial state by a grid symmetry transforms the whole trajectory
(tested: :func:`transform_state`, :func:`rollout`).

Initial state: smoke ``|Noise(scale, smoothness)|``, velocity a random
``Noise`` vector field times ``velocity_scale`` (made divergence-free by the first
step's projection; ``skip_nt`` warm-up steps are not stored). Stored (the
``datasets`` below): ``smoke`` (N, T, X, Y) and the velocity interpolated to the cell
centres ``velocity`` (N, T, X, Y, 2), plus ``t``, ``x``, ``y``, ``dt``, ``dx``, ``dy``.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np

from ..errors import DataError
from . import TaskSpec
from .navier_stokes import TASK as NS_TASK
from .navier_stokes import phiflow

__all__ = ["PRESETS", "TASK", "initial_state", "rollout", "simulate", "transform_state"]

_FULL = {
    "n": 128,
    "L": 32.0,
    "dt": 1.0,
    "skip_nt": 4,
    "nt": 56,
    "nu": 0.01,
    "noise_scale": 11.0,
    "noise_smoothness": 6.0,
    "velocity_scale": 0.5,
    "max_speed": 20.0,
    "backend": "auto",
}

PRESETS: dict[str, dict] = {
    "full": _FULL,  # the size of the paper's Navier-Stokes data (128^2, 56 steps)
    "small": {**_FULL, "n": 64, "nt": 32},  # CPU size
}
PRESETS["pdearena"] = PRESETS["full"]  # alias: the full-size preset under the name the other tasks use

_STEPS: dict = {}


def _step(params: dict):
    key = tuple(sorted((k, v) for k, v in params.items() if k in ("dt", "nu", "backend")))
    if key not in _STEPS:
        flow, jit = phiflow(params["backend"])
        dt, nu = params["dt"], params["nu"]

        def step(smoke, velocity):
            solve = flow.Solve("auto", 1e-10, 1e-10)
            smoke = flow.advect.semi_lagrangian(smoke, velocity, dt)
            velocity = flow.advect.semi_lagrangian(velocity, velocity, dt)
            velocity = flow.diffuse.explicit(velocity, nu, dt)
            velocity, _ = flow.fluid.make_incompressible(velocity, solve=solve)
            return smoke, velocity

        _STEPS[key] = (step, flow.math.jit_compile(step) if jit else step)
    return _STEPS[key]


def _grids(params: dict, smoke: np.ndarray, faces: np.ndarray):
    flow, _ = phiflow(params["backend"])
    flow.math.set_global_precision(64)
    n, box = params["n"], flow.Box(x=params["L"], y=params["L"])
    math = flow.math
    s = flow.CenteredGrid(math.tensor(smoke, math.spatial("x,y")), flow.extrapolation.PERIODIC, bounds=box, x=n, y=n)
    v = flow.StaggeredGrid(math.tensor(faces, math.spatial("x,y"), math.dual(vector="x,y")),
                           flow.extrapolation.PERIODIC, bounds=box, x=n, y=n)
    return s, v


def initial_state(params: dict, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Smoke at cell centres ``(n, n)`` and velocity (not yet projected) on the lower cell faces
    ``(n, n, 2)`` (``[..., 0]`` on x-faces, ``[..., 1]`` on y-faces) for ``seed``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        flow, _ = phiflow(params["backend"])
        flow.math.set_global_precision(64)
        flow.math.seed(int(seed))
        n, box, per = params["n"], flow.Box(x=params["L"], y=params["L"]), flow.extrapolation.PERIODIC
        noise = dict(scale=params["noise_scale"], smoothness=params["noise_smoothness"])
        smoke = abs(flow.CenteredGrid(flow.Noise(**noise), per, x=n, y=n, bounds=box))
        velocity = flow.StaggeredGrid(flow.Noise(vector="x,y", **noise), per, x=n, y=n, bounds=box)
        velocity = velocity * params["velocity_scale"]  # projected by the first step
        return smoke.values.numpy("x,y"), velocity.values.numpy("x,y,~vector")


def transform_state(smoke: np.ndarray, faces: np.ndarray, flip_x: bool = False, flip_y: bool = False,
                    transpose: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Apply a grid symmetry to a state of :func:`initial_state` (staggered velocity).

    The symmetry maps the point ``(x, y)`` to ``(y, x)`` if ``transpose``, then reverses
    the flipped axes (``x -> L - x``); these generate all 8 symmetries of the square.
    A lower x-face ``i`` goes to face ``(n - i) % n`` under ``x -> L - x``."""
    s, f = smoke, faces
    if transpose:
        s, f = s.T, np.stack([f[..., 1].T, f[..., 0].T], -1)
    for axis, flip in ((0, flip_x), (1, flip_y)):
        if flip:
            s = np.flip(s, axis)
            comp = np.flip(f[..., axis], axis)
            comp = -np.roll(comp, 1, axis)  # faces: index i -> (n - i) % n, the component changes sign
            other = np.flip(f[..., 1 - axis], axis)
            f = np.stack([comp, other] if axis == 0 else [other, comp], -1)
    return np.ascontiguousarray(s), np.ascontiguousarray(f)


def rollout(params: dict, smoke: np.ndarray, faces: np.ndarray, where: str = "") -> dict[str, np.ndarray]:
    """Run ``skip_nt + nt`` steps from a state; stored frames: ``smoke`` (nt, n, n) and the
    centred ``velocity`` (nt, n, n, 2), float32. Raises ``DataError`` if the speed exceeds
    ``max_speed``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s, v = _grids(params, smoke, faces)
        eager, compiled = _step(params)
        us, vs = [], []
        for i in range(params["skip_nt"] + params["nt"]):
            # the first step runs eagerly: grids built from arrays have another internal layout than the
            # step's outputs, and tracing the compiled step for both leaks JAX tracers inside phiml
            s, v = (compiled if i else eager)(s, v)
            centred = v.at_centers().values.numpy("x,y,vector")
            speed = float(np.sqrt((centred**2).sum(-1)).max())
            if not speed <= params["max_speed"]:
                raise DataError(f"{where} step {i + 1}: max |v| = {speed:.4g} exceeds max_speed = "
                                f"{params['max_speed']:g}")
            if i >= params["skip_nt"]:
                us.append(s.values.numpy("x,y"))
                vs.append(centred)
    return {"smoke": np.stack(us).astype(np.float32), "velocity": np.stack(vs).astype(np.float32)}


def simulate(params: dict, seed: int) -> dict[str, np.ndarray]:
    """One trajectory in this task's layout (see the module docstring)."""
    out = rollout(params, *initial_state(params, seed), where=f"navier-stokes-periodic seed {seed},")
    n, dt, skip = params["n"], params["dt"], params["skip_nt"]
    dx = params["L"] / n
    centres = ((np.arange(n) + 0.5) * dx).astype(np.float64)
    out.update(t=(dt * (skip + 1 + np.arange(params["nt"]))).astype(np.float64), x=centres, y=centres,
               dt=np.float64(dt), dx=np.float64(dx), dy=np.float64(dx))
    return out


TASK = TaskSpec(
    name="navier-stokes-periodic",
    metric=(1, 1),
    grid_dims=2,
    time_as_axis=False,
    time_history=4,
    time_future=1,
    # smoke u -> scalar, velocity (vx, vy) -> vector, as in navier-stokes
    layout=dataclasses.replace(NS_TASK.layout, task="navier-stokes-periodic"),
    datasets=(("smoke", None), ("velocity", 2)),
    simulate=simulate,
    presets=PRESETS,
    padding="circular",
    description="2D incompressible smoke + velocity on a periodic square, no gravity (PhiFlow), Cl(2,0)",
    file_prefix="NavierStokesPeriodic2D",
)
