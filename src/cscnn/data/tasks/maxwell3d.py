"""3D Maxwell equations (PDEArena's setup) simulated with the ``fdtd`` package.

A periodic cube of ``n_large**3`` cells (spacing ``L / n_large``), uniform
permittivity and permeability, 18 planar hard sources placed in the corner
cube ``[0, outer)**3`` with ``outer = (n_large - n) // 2``: 6 per plane
orientation (xy, xz, yz), each with random in-plane extent (2..5 cells),
position, amplitude, phase, in-plane polarisation and period
``wavelength / c * U(0.001, 1000)``. After ``skip_nt`` steps, ``nt`` frames are
stored every ``sample_rate`` steps from the inner ``n**3`` cube.

Deviation from PDEArena: periods are rounded to at least 2 time steps (fdtd
rounds a period given in seconds to whole steps, and a period of 0 or 1 step
would divide by zero or emit nothing).
"""

from __future__ import annotations

import math

import numpy as np

from ...fields import MAXWELL3D_LAYOUT
from . import TaskSpec

__all__ = ["PRESETS", "TASK", "simulate", "build_grid", "field_energy"]

SPEED_OF_LIGHT = 299_792_458.0

PRESETS: dict[str, dict] = {
    "pdearena": {
        "n_large": 64,
        "n": 32,
        "L": 3.2e-5,
        "permittivity": 10.0,
        "permeability": 1.0,
        "wavelength": 1e-5,
        "amplitude": 1.0,
        "sources_per_plane": 6,
        "skip_nt": 250,
        "nt": 8,
        "sample_rate": 25,
        "backend": "numpy",
    },
    "small": {
        "n_large": 32,
        "n": 16,
        "L": 1.6e-5,
        "permittivity": 10.0,
        "permeability": 1.0,
        "wavelength": 1e-5,
        "amplitude": 1.0,
        "sources_per_plane": 6,
        "skip_nt": 125,
        "nt": 8,
        "sample_rate": 12,
        "backend": "numpy",
    },
}


def _source_specs(params: dict, rng: np.random.Generator) -> list[dict]:
    """Random planar sources: list of dicts with slices, amplitude, phase, polarisation, period."""
    outer = (params["n_large"] - params["n"]) // 2
    if outer < 3:
        raise ValueError(f"n_large - n must be at least 6 to place sources, got {params}")
    lo, hi = 2, min(6, outer)  # extent in cells: 2..5 (PDEArena), smaller on tiny grids

    def extent():
        length = int(rng.integers(lo, hi))
        start = int(rng.integers(0, outer - length + 1))
        return slice(start, start + length)

    specs = []
    # (flat axis, polarisation choices): xy-plane (z flat), xz-plane (y flat), yz-plane (x flat)
    for flat, pols in ((2, "xy"), (1, "xz"), (0, "yz")):
        for _ in range(params["sources_per_plane"]):
            where = [extent(), extent(), extent()]
            where[flat] = int(rng.integers(0, outer))
            factor = rng.uniform(0.001, 1e3)
            specs.append(
                {
                    "where": tuple(where),
                    "amplitude": float(rng.random() * params["amplitude"]),
                    "phase": float(rng.uniform(0.0, 2 * math.pi)),
                    "polarization": pols[int(rng.integers(0, 2))],
                    "period_s": params["wavelength"] / SPEED_OF_LIGHT * factor,
                }
            )
    return specs


def _import_fdtd():
    """Import fdtd without its global side effects on torch.

    fdtd's backend module, when imported, sets torch's default dtype to float64
    and switches autograd off for the whole process; both are restored here so
    that generating data never breaks training in the same process."""
    import torch

    dtype, grad = torch.get_default_dtype(), torch.is_grad_enabled()
    try:
        import fdtd
    finally:
        torch.set_default_dtype(dtype)
        torch.set_grad_enabled(grad)
    return fdtd


def build_grid(params: dict, seed: int, sources: bool = True):
    """The fdtd Grid of one trajectory (periodic boundaries, random sources)."""
    fdtd = _import_fdtd()

    fdtd.set_backend(params["backend"])
    n_large, L = params["n_large"], params["L"]
    spacing = L / n_large
    grid = fdtd.Grid(
        (n_large, n_large, n_large),
        grid_spacing=spacing,
        permittivity=params["permittivity"],
        permeability=params["permeability"],
    )
    grid[0, :, :] = fdtd.PeriodicBoundary(name="xbounds")
    grid[:, 0, :] = fdtd.PeriodicBoundary(name="ybounds")
    grid[:, :, 0] = fdtd.PeriodicBoundary(name="zbounds")
    if sources:
        rng = np.random.default_rng(seed)
        for k, spec in enumerate(_source_specs(params, rng)):
            period = max(2, int(round(spec["period_s"] / grid.time_step)))
            grid[spec["where"]] = fdtd.PlaneSource(
                period=period,
                amplitude=spec["amplitude"],
                phase_shift=spec["phase"],
                polarization=spec["polarization"],
                name=f"source{k}",
            )
    return grid


def field_energy(grid) -> float:
    """Discrete field energy sum(eps |E|^2 + mu |H|^2) / 2 in fdtd's scaled units."""
    e = np.asarray(grid.E, dtype=np.float64)
    h = np.asarray(grid.H, dtype=np.float64)
    eps = np.asarray(1.0 / np.asarray(grid.inverse_permittivity, dtype=np.float64))
    mu = np.asarray(1.0 / np.asarray(grid.inverse_permeability, dtype=np.float64))
    return float(0.5 * ((eps * e**2).sum() + (mu * h**2).sum()))


def simulate(params: dict, seed: int) -> dict[str, np.ndarray]:
    """One trajectory: ``d_field``, ``h_field`` (nt, n, n, n, 3) float32 (PDEArena layout)."""
    grid = build_grid(params, seed)
    outer = (params["n_large"] - params["n"]) // 2
    inner = slice(outer, outer + params["n"])
    grid.run(params["skip_nt"], progress_bar=False)
    es, hs = [], []
    for _ in range(params["nt"]):
        grid.run(params["sample_rate"], progress_bar=False)
        es.append(np.asarray(grid.E[inner, inner, inner, :], dtype=np.float32).copy())
        hs.append(np.asarray(grid.H[inner, inner, inner, :], dtype=np.float32).copy())
    return {"d_field": np.stack(es), "h_field": np.stack(hs)}


TASK = TaskSpec(
    name="maxwell3d",
    metric=(1, 1, 1),
    grid_dims=3,
    time_as_axis=False,
    time_history=4,
    time_future=1,
    layout=MAXWELL3D_LAYOUT,  # defined (and documented) in cscnn.fields
    datasets=(("d_field", 3), ("h_field", 3)),
    simulate=simulate,
    presets=PRESETS,
    padding="circular",
    description="3D Maxwell (FDTD), E vector + H bivector in Cl(3,0)",
    file_prefix="Maxwell3D",
)
