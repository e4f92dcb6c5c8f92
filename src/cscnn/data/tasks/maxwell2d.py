"""Relativistic electrodynamics on spacetime R^{1,2}: the data of Zhdanov et al. (ICML 2024).

This task follows the generator the authors of "Clifford-Steerable Convolutional Neural
Networks" (Zhdanov et al., ICML 2024, arXiv:2402.14730) published with their code
(github.com/maxxxzdn/clifford-group-equivariant-cnns @ d87f739,
``datasets/data/maxwell2d/datagen/main.py``; line numbers below refer to that file). It
computes the same fields from the same source distribution with a vectorised solver, so
a trajectory costs a fraction of the original's time; reference frames computed with the
authors' script (pycharge 1.1.0) are matched to float32 rounding (tests/test_maxwell2d.py).

**Grid** (main.py:298-302, 409-416). The box ``[-lim, lim]^2`` with ``lim = 50 nm`` is
sampled at ``grid x grid`` points of ``linspace(-lim, lim, grid)`` (endpoints included,
first array axis x, second y, plane z = 0) at the times ``t_f = f dt``, ``f = 0 ..
frames-1``, ``dt = 2 pi / 7.5e16 / 256 * 8 s = 2.618e-18 s`` (their 256-frame step; it
stays the same when ``frames`` is smaller). Light moves ``c dt = 0.785 nm`` per frame:
about 0.25 pixel of a 32 x 32 output grid.

**Sources** (main.py:306-402). ``n_oscillating`` (3-4) oscillating and ``n_orbiting``
(5-7) orbiting point charges, each ``q`` in ``charges`` (+-1, 2 or 3 e), drawn with
exactly the calls of the authors' ``gen_sources`` on numpy's legacy global generator, so
``np.random.RandomState(s)`` gives the sources their script draws after
``np.random.seed(s)``. Origins uniform in ``[-0.3 lim, 0.3 lim]^2``, redrawn until
``min_distance`` (0.1 lim) apart; every source drifts with ``0.5 (v_abs + v_rel_i)``
(``|v_abs| = 0.12 c`` common, ``|v_rel_i| = 0.08 c`` each, random in-plane directions,
main.py:361-362, 381, 394). An oscillating charge moves along a random unit vector ``d``:
``x(t) = A d cos(w t) + v t + o`` with ``A`` in ``[0.02, 0.04] lim`` and ``w`` in
``[0.67, 1] 0.3 c / (0.04 lim)`` (main.py:71-77, 322-325); an orbiting charge runs
counter-clockwise on a circle: ``x(t) = R (cos w t, sin w t) + v t`` with ``R`` in
``[0.025, 0.05] lim`` and ``w`` in ``[0.75, 1] 0.3 c / (0.05 lim)`` (main.py:240-254,
329-332). Source speeds stay below about 0.4 c; periods are 50-90 frames.

**Fields**. The Liénard-Wiechert fields (Griffiths eq. 10.72, as pycharge 1.1.0's
``Simulation.calculate_E`` / ``calculate_B`` with ``pcharge_field="Total"``, main.py:422-427)
of all charges, ``(Ex, Ey, c Bz)`` at z = 0 (``Ez = Bx = By = 0`` in the plane): the
Faraday bivector ``Ex e01 + Ey e02 + cBz e12`` of Cl(1,2). The retarded time of every
(frame, charge, point) solves ``|x - x_q(t_r)| = c (t - t_r)`` with the iteration pycharge
1.1.0 runs, scipy's secant method (``scipy.optimize.newton`` without derivative) from
``t_r = -1e-12 s`` with tolerance 1e-22 s and at most 50 iterations, vectorised over the
frames, charges and points of a chunk (each (frame, charge) stops when scipy's would).

**Rescaling and resize** (main.py:431-456). With the Minkowski norm
``|F| = sqrt(|Ex^2 + Ey^2 - c^2 Bz^2|)``, ``F -> log10(|F|) F / max(|F|, norm_floor)``
(floor 1e7 V/m; the logarithm takes the unclipped norm, as theirs), then every frame is
resized from ``grid`` to ``size`` points per axis as torchvision's ``resize`` does on a
float tensor: ``interpolate(mode="bilinear", align_corners=False, antialias=antialias)``.
Their script calls ``resize`` without ``antialias``: torchvision >= 0.17 then
antialiases (``antialias=True``, the presets' value); torchvision <= 0.16 did not
(``antialias=False``). A trajectory whose result has standard deviation >= ``max_std``
(20, main.py:468; NaN counts as too large) is redrawn with the next sources of the same
generator.

**Quirks of their code, matched in** ``variant="authors"`` **(every preset)**:

* an oscillating charge reports the velocity ``-(A w sin(w t) d + v)`` (main.py:119-130),
  the drift with the sign opposite to its motion; the fields use that velocity;
* an orbiting charge ignores its sampled origin and circles the box centre
  (main.py:240-254);
* a retarded-time solve that leaves some points unconverged after 50 secant iterations
  makes scipy warn "some failed to converge after 50 iterations", which their script
  turns into an error and answers by redrawing the trajectory (main.py:1-7, 472-473); so
  does this generator (``redraws`` counts every redraw). Such failures are rare: none
  occurred in the trajectories we generated.

``variant="consistent"`` is the physically consistent version: velocities are the time
derivatives of the positions and orbits circle their origins (the convergence and std
redraws stay).

Presets differ only in the fine grid, the output size and the number of frames:
``paper`` (= ``pdearena``) 256 x 256 points, 256 frames, resized to 32 x 32, as theirs;
``small`` 64 x 64 points, 64 frames, resized to 32 x 32 (the same physics and time step
at a CPU size).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ...fields import MAXWELL2D_LAYOUT
from ..errors import DataError
from . import TaskSpec

__all__ = [
    "PRESETS",
    "SPEED_OF_LIGHT",
    "TASK",
    "Sources",
    "faraday_fields",
    "log_norm_rescale",
    "pycharge_field_function",
    "pycharge_fields",
    "render",
    "resize_frames",
    "retarded_times",
    "sample_sources",
    "simulate",
]

SPEED_OF_LIGHT = 299_792_458.0  # m/s (exact; scipy.constants.c)
ELEMENTARY_CHARGE = 1.602176634e-19  # C (exact; scipy.constants.e)
#: the time step of the authors' generator: 2 pi / 7.5e16 / 256 * 8 s (main.py:416 with N_FRAMES = 256)
PAPER_DT = 2 * np.pi / 7.5e16 / 256 * 8

# pycharge 1.1.0's retarded-time solve: scipy.optimize.newton(f, -1e-12 s, tol=1e-22) (secant, 50 iterations)
_SECANT_START = -1e-12
_SECANT_TOL = 1e-22
_SECANT_MAXITER = 50
#: elements (frames x charges x points) solved at once; bounds the memory of one chunk (~15 arrays of this size)
_CHUNK_ELEMENTS = 1 << 20

_PAPER = {
    "lim": 50e-9,  # half the box side, m
    "grid": 256,  # fine grid points per axis
    "size": 32,  # output points per axis
    "frames": 256,
    "dt": PAPER_DT,  # s
    "n_oscillating": [3, 4],
    "n_orbiting": [5, 7],
    "charges": [3, 2, 1, -1, -2, -3],  # in e, drawn uniformly
    "origin_range": 0.3,  # origins uniform in [-0.3 lim, 0.3 lim]^2 ...
    "min_distance": 0.1,  # ... at least 0.1 lim apart
    "max_speed": 0.5,  # V_MAX in c
    "drift_fraction": 0.4,  # V_FRAC_CONST: share of max_speed in drifts (the rest: oscillation / orbit)
    "relative_drift_fraction": 0.4,  # V_FRAC_REL: share of the drift that differs between sources
    "drift_factor": 0.5,  # BOOST_FACTOR: drift = drift_factor (v_abs + v_rel_i)
    "amplitude_range": [0.02, 0.04],  # oscillation amplitude in lim
    "oscillation_omega_min": 0.67,  # lowest oscillation frequency as a fraction of the highest
    "radius_range": [0.025, 0.05],  # orbit radius in lim
    "orbit_omega_min": 0.75,  # lowest orbit frequency as a fraction of the highest
    "norm_floor": 1e7,  # V/m
    "max_std": 20.0,
    "antialias": True,
    "variant": "authors",  # or "consistent"
    "max_redraws": 100,
}

PRESETS: dict[str, dict] = {
    # the authors' data set: 256 x 256 points x 256 frames, resized to 32 x 32
    "paper": _PAPER,
    # the same physics and time step at a CPU size: 64 x 64 points x 64 frames, resized to 32 x 32
    "small": {**_PAPER, "grid": 64, "frames": 64},
}
PRESETS["pdearena"] = PRESETS["paper"]  # alias: the full-size preset under the common name

VARIANTS = ("authors", "consistent")
#: columns of the stored per-source table ``sources`` (one row per source, padded with q = 0, kind = -1)
SOURCE_COLUMNS = ("q_e", "kind", "origin_x", "origin_y", "drift_x", "drift_y", "direction_x", "direction_y",
                  "amplitude", "omega")


@dataclass(frozen=True)
class Sources:
    """The point charges of one trajectory, oscillating ones first (``K`` in all).

    Attributes (SI units): ``q (K,)`` charge in C; ``kind (K,)`` 0 oscillating, 1 orbiting;
    ``origin (K, 2)``; ``drift (K, 2)`` constant velocity; ``direction (K, 2)`` unit vector of
    the oscillation (zero for orbits); ``amplitude (K,)`` oscillation amplitude or orbit radius;
    ``omega (K,)`` angular frequency."""

    q: np.ndarray
    kind: np.ndarray
    origin: np.ndarray
    drift: np.ndarray
    direction: np.ndarray
    amplitude: np.ndarray
    omega: np.ndarray

    @property
    def n_oscillating(self) -> int:
        return int((self.kind == 0).sum())

    def table(self, rows: int) -> np.ndarray:
        """``(rows, 10)`` float64 table with the columns :data:`SOURCE_COLUMNS`, padded with
        ``q = 0, kind = -1`` rows (what the HDF5 file stores)."""
        k = len(self.q)
        if rows < k:
            raise ValueError(f"{k} sources do not fit into {rows} rows")
        out = np.zeros((rows, len(SOURCE_COLUMNS)))
        out[:, 1] = -1
        out[:k] = np.column_stack([self.q / ELEMENTARY_CHARGE, self.kind, self.origin, self.drift, self.direction,
                                   self.amplitude, self.omega])
        return out

    @classmethod
    def from_table(cls, table: np.ndarray) -> Sources:
        """Inverse of :meth:`table` (padding rows dropped)."""
        t = np.asarray(table, dtype=np.float64)
        t = t[t[:, 1] >= 0]
        return cls(q=t[:, 0] * ELEMENTARY_CHARGE, kind=t[:, 1].astype(np.int64), origin=t[:, 2:4], drift=t[:, 4:6],
                   direction=t[:, 6:8], amplitude=t[:, 8], omega=t[:, 9])


# ------------------------------------------------------------------ sources
def _unit_vectors(rng: np.random.RandomState, n: int) -> np.ndarray:
    """``n`` random in-plane unit vectors drawn as main.py:339-343 draws them: ``(n, 3)``, z = 0."""
    v = rng.normal(size=(n, 3))
    v[:, -1] = 0
    v /= np.linalg.norm(v, axis=-1, keepdims=True)
    return v


def sample_sources(params: dict, rng: np.random.RandomState) -> Sources:
    """Draw the sources of one trajectory with the calls (and their order) of the authors'
    ``gen_sources`` (main.py:346-402), from a legacy ``np.random.RandomState``."""
    c, lim = SPEED_OF_LIGHT, params["lim"]
    v_max = params["max_speed"] * c
    f_const, f_rel = params["drift_fraction"], params["relative_drift_fraction"]
    a_lo, a_hi = (f * lim for f in params["amplitude_range"])
    r_lo, r_hi = (f * lim for f in params["radius_range"])
    osc_w_hi = (1 - f_const) * v_max / a_hi
    osc_w_lo = params["oscillation_omega_min"] * (1 - f_const) * v_max / a_hi
    orb_w_hi = (1 - f_const) * v_max / r_hi
    orb_w_lo = params["orbit_omega_min"] * (1 - f_const) * v_max / r_hi
    origin_lim, origin_dist = params["origin_range"] * lim, params["min_distance"] * lim

    n_osc = rng.randint(params["n_oscillating"][0], params["n_oscillating"][1] + 1)
    n_orb = rng.randint(params["n_orbiting"][0], params["n_orbiting"][1] + 1)
    n = n_osc + n_orb
    q = rng.choice(np.asarray(params["charges"], dtype=np.float64) * ELEMENTARY_CHARGE, size=n)
    origins: list[np.ndarray] = []
    while len(origins) < n:
        o = rng.uniform(-origin_lim, origin_lim, size=3)
        o[2] = 0
        if all(math.sqrt((o[0] - p[0]) ** 2 + (o[1] - p[1]) ** 2) >= origin_dist for p in origins):
            origins.append(o)
    v_abs = v_max * f_const * (1 - f_rel) * _unit_vectors(rng, 1)[0]
    v_rel = v_max * f_const * f_rel * _unit_vectors(rng, n)
    directions = _unit_vectors(rng, n_osc)
    amplitudes = rng.uniform(a_lo, a_hi, size=n_osc)
    osc_omegas = rng.uniform(osc_w_lo, osc_w_hi, size=n_osc)
    radii = rng.uniform(r_lo, r_hi, size=n_orb)
    orb_omegas = rng.uniform(orb_w_lo, orb_w_hi, size=n_orb)

    drift = (v_abs + v_rel) * params["drift_factor"]
    # the charge class normalises its direction once more (main.py:65)
    directions = directions / np.linalg.norm(directions, axis=-1, keepdims=True)
    return Sources(
        q=q,
        kind=np.repeat([0, 1], [n_osc, n_orb]),
        origin=np.asarray(origins)[:, :2],
        drift=drift[:, :2],
        direction=np.concatenate([directions[:, :2], np.zeros((n_orb, 2))]),
        amplitude=np.concatenate([amplitudes, radii]),
        omega=np.concatenate([osc_omegas, orb_omegas]),
    )


# --------------------------------------------------------------- kinematics
class _Motion:
    """Positions, velocities and accelerations of the sources of one kind (``kind`` 0: oscillating,
    1: orbiting) at times ``tau (F, K, P)`` (or broadcastable), each component like ``tau``,
    evaluated with the operations (and their order) of the authors' charge classes
    (main.py:71-117, 240-254), so the retarded times match theirs bit for bit."""

    def __init__(self, src: Sources, kind: int, variant: str):
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
        sel = src.kind == kind
        self.kind = kind
        col = lambda a: np.asarray(a, dtype=np.float64)[sel][:, None]  # noqa: E731  (K,) -> (k, 1)
        self.q, self.w = col(src.q), col(src.omega)
        self.vx, self.vy = col(src.drift[:, 0]), col(src.drift[:, 1])
        self.ox, self.oy = col(src.origin[:, 0]), col(src.origin[:, 1])
        if kind == 0:  # oscillation A d cos(w t) + v t + o
            self.ax, self.ay = col(src.direction[:, 0] * src.amplitude), col(src.direction[:, 1] * src.amplitude)
        else:  # orbit R (cos w t, sin w t) + v t (+ o)
            self.radius = col(src.amplitude)
            if variant == "authors":  # their orbits circle the box centre
                self.ox, self.oy = np.zeros_like(self.ox), np.zeros_like(self.oy)
        # the velocity the fields use: the authors' oscillating charges report the drift with a flipped sign
        self.drift_sign = -1.0 if (kind == 0 and variant == "authors") else 1.0

    def __len__(self) -> int:
        return len(self.w)

    def position(self, tau: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        phase = self.w * tau
        if self.kind == 0:
            cos = np.cos(phase)
            return self.ax * cos + self.vx * tau + self.ox, self.ay * cos + self.vy * tau + self.oy
        return (self.radius * np.cos(phase) + self.vx * tau + self.ox,
                self.radius * np.sin(phase) + self.vy * tau + self.oy)

    def solve_time(self, tau: np.ndarray, x: np.ndarray, y: np.ndarray, t: np.ndarray, out: np.ndarray,
                   work: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        """``|r - r_q(tau)| - c (t - tau)`` (pycharge 1.1.0's ``Charge.solve_time``) into ``out``,
        ``tau`` and the buffers ``out``, ``work`` of one shape ``(F, K, P)``: the operations of
        :meth:`position` and the distance in the same order, in place (the same bits, fewer
        temporaries)."""
        a, b = work
        np.multiply(self.w, tau, out=a)  # phase
        if self.kind == 0:
            np.cos(a, out=a)
            np.multiply(self.ax, a, out=b)
            np.multiply(self.ay, a, out=a)
        else:
            np.cos(a, out=b)
            np.sin(a, out=a)
            b *= self.radius
            a *= self.radius
        for pos, drift, origin, point in ((b, self.vx, self.ox, x), (a, self.vy, self.oy, y)):
            np.multiply(drift, tau, out=out)
            pos += out
            pos += origin
            np.subtract(point, pos, out=pos)
            np.square(pos, out=pos)
        a += b
        np.sqrt(a, out=a)
        np.subtract(t, tau, out=out)
        out *= SPEED_OF_LIGHT
        np.subtract(a, out, out=out)
        return out

    def velocity_acceleration(self, tau: np.ndarray) -> tuple[np.ndarray, ...]:
        phase = self.w * tau
        cos, sin = np.cos(phase), np.sin(phase)
        w, s = self.w, self.drift_sign
        if self.kind == 0:
            return (-(self.ax * w * sin) + s * self.vx, -(self.ay * w * sin) + s * self.vy,
                    -(self.ax * w**2 * cos), -(self.ay * w**2 * cos))
        return (-self.radius * w * sin + self.vx, self.radius * w * cos + self.vy,
                -self.radius * w**2 * cos, -self.radius * w**2 * sin)


def _motions(src: Sources, variant: str) -> list[_Motion]:
    return [m for m in (_Motion(src, 0, variant), _Motion(src, 1, variant)) if len(m)]


# ----------------------------------------------------------- retarded times
def _secant(motion: _Motion, x: np.ndarray, y: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Retarded times ``(F, K, P)`` of the charges seen from the points ``x, y (P,)`` at the times
    ``t (F,)``, and ``(F, K)`` True where scipy would warn "some failed to converge".

    The secant iteration of ``scipy.optimize.newton(f, x0, tol)`` for array ``x0`` without a
    derivative, one independent run per (frame, charge) over all points: each run stops at the
    first iteration in which no point with a nonzero secant slope moved by ``tol`` or more, as
    scipy's does, and returns that iteration's values."""
    c = SPEED_OF_LIGHT
    shape = (len(t), len(motion), len(x))
    tt = t[:, None, None]

    def f(tau):  # pycharge 1.1.0's Charge.solve_time: |r - r_q(tau)| - c (t - tau)
        px, py = motion.position(tau)
        return ((x - px) ** 2 + (y - py) ** 2) ** 0.5 - c * (tt - tau)

    # the first two iterates are the same time everywhere: one position per charge, broadcast
    start = np.full((1, shape[1], 1), _SECANT_START)
    step = np.finfo(float).eps ** 0.33
    start1 = start * (1 + step) + np.where(start >= 0, step, -step)
    p, p1, new, q0, q1 = (np.empty(shape) for _ in range(5))
    p[...], p1[...], q0[...], q1[...] = start, start1, f(start), f(start1)
    dp, den, work = np.empty(shape), np.empty(shape), (np.empty(shape), np.empty(shape))
    active = np.ones(shape, dtype=bool)
    failures = np.ones(shape, dtype=bool)
    nz, moving = np.ones(shape, dtype=bool), np.empty(shape, dtype=bool)
    done = np.zeros(shape[:2], dtype=bool)
    out = np.empty(shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        for _ in range(_SECANT_MAXITER):
            np.not_equal(q1, q0, out=nz)
            flat = ~nz.any(-1) & ~done  # no slope anywhere: scipy halves the last step and stops
            if flat.any():
                out[flat] = ((p1 + p) / 2)[flat]
                done |= flat
                if done.all():
                    break
            # the secant step q1 (p1 - p) / (q1 - q0), where the slope is not zero
            np.subtract(p1, p, out=dp)
            dp *= q1
            np.subtract(q1, q0, out=den)
            dp /= den
            np.subtract(p1, dp, out=new)
            np.copyto(new, p, where=~nz)
            zero_slope = ~nz & active
            if zero_slope.any():
                np.copyto(new, (p1 + p) / 2, where=zero_slope)
            active &= nz
            np.abs(dp, out=dp)
            np.greater_equal(dp, _SECANT_TOL, out=moving)  # not yet converged
            np.copyto(failures, moving, where=nz)
            np.logical_and(failures, nz, out=moving)
            stop = ~moving.any(-1) & ~done
            if stop.any():
                out[stop] = new[stop]
                done |= stop
                if done.all():
                    break
            p, p1, new = p1, new, p
            q0, q1 = q1, motion.solve_time(p1, x, y, tt, q0, work)
        else:  # 50 iterations: scipy returns the iterate before the last one (its final swap)
            out[~done] = p[~done]
    # scipy's verdict after 50 iterations: "some/all failed to converge" unless a point ended on a zero slope
    unconverged = ~done & (failures & nz).any(-1) & ~(~nz & failures).any(-1)
    return out, unconverged


def retarded_times(src: Sources, x, y, t, variant: str = "authors") -> tuple[np.ndarray, np.ndarray]:
    """Retarded times ``(F, K, P)`` of the ``K`` sources (in the order of ``src``) for observers at
    the points ``x, y`` (``(P,)``, metres, z = 0) at the times ``t`` (``(F,)``, s), and ``(F, K)``
    True where the secant iteration of pycharge 1.1.0 would leave points unconverged."""
    x, y, t = (np.asarray(a, dtype=np.float64).ravel() for a in (x, y, t))
    parts = [_secant(m, x, y, t) for m in _motions(src, variant)]
    order = np.argsort(np.concatenate([np.flatnonzero(src.kind == m.kind) for m in _motions(src, variant)]))
    return (np.concatenate([a for a, _ in parts], 1)[:, order], np.concatenate([b for _, b in parts], 1)[:, order])


def _fields_of(motion: _Motion, x: np.ndarray, y: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(F, P, 3)`` fields of one kind of sources and its ``(F, k)`` convergence flags."""
    from scipy.constants import epsilon_0

    c = SPEED_OF_LIGHT
    tau, unconverged = _secant(motion, x, y, t)
    px, py = motion.position(tau)
    vx, vy, ax, ay = motion.velocity_acceleration(tau)
    rx, ry = x - px, y - py
    r = (rx**2 + ry**2) ** 0.5
    ux, uy = c * rx / r - vx, c * ry / r - vy
    r_dot_u = rx * ux + ry * uy
    r_dot_a = rx * ax + ry * ay
    v2 = vx**2 + vy**2
    k = motion.q / (4 * np.pi * epsilon_0) * r / r_dot_u**3
    ex = k * ((c**2 - v2) * ux + r_dot_a * ux - r_dot_u * ax)
    ey = k * ((c**2 - v2) * uy + r_dot_a * uy - r_dot_u * ay)
    cbz = (rx * ey - ry * ex) / r
    return np.stack([ex.sum(1), ey.sum(1), cbz.sum(1)], -1), unconverged


def faraday_fields(src: Sources, x, y, t, variant: str = "authors") -> tuple[np.ndarray, bool]:
    """Liénard-Wiechert ``(Ex, Ey, c Bz)`` in V/m of all sources at the points ``x, y (P,)``
    (metres, z = 0) and times ``t (F,)`` (s): ``(F, P, 3)`` float64, and whether every
    retarded-time solve converged.

    Per charge (Griffiths eq. 10.72, as pycharge 1.1.0 writes it): with ``r`` from the retarded
    position to the point, ``u = c r/|r| - v``,
    ``E = q / (4 pi eps0) |r| / (r.u)^3 ((c^2 - v^2) u + (r.a) u - (r.u) a)`` and
    ``c B = r/|r| x E``; velocity ``v`` and acceleration ``a`` at the retarded time."""
    x, y, t = (np.asarray(a, dtype=np.float64).ravel() for a in (x, y, t))
    total, converged = np.zeros((len(t), len(x), 3)), True
    for motion in _motions(src, variant):
        f, unconverged = _fields_of(motion, x, y, t)
        total += f
        converged &= not unconverged.any()
    return total, converged


def pycharge_fields(src: Sources, x, y, t, variant: str = "consistent") -> np.ndarray:
    """The fields of :func:`faraday_fields` computed by pycharge 2 (JAX, float64): ``(F, P, 3)``.

    A slow reference for checks and benchmarks (see :func:`pycharge_field_function`)."""
    return pycharge_field_function(src, variant)(x, y, t)


def pycharge_field_function(src: Sources, variant: str = "consistent"):
    """``fn(x (P,), y (P,), t (F,)) -> (F, P, 3)``: ``(Ex, Ey, c Bz)`` of the sources from pycharge 2's
    ``potentials_and_fields``, jit-compiled once per shape.

    pycharge 2 differentiates the positions to get velocities, so only ``variant="consistent"``
    (velocity = d position / dt) can be expressed."""
    if variant != "consistent":
        raise ValueError("pycharge derives velocities from positions: only variant='consistent' has a pycharge "
                         f"reference, got {variant!r}")
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import pycharge as pc

    charges = []
    for k in range(len(src.q)):
        o, v, w, amp = src.origin[k], src.drift[k], float(src.omega[k]), float(src.amplitude[k])
        if src.kind[k] == 0:
            d = src.direction[k]

            def pos(tau, o=o, v=v, w=w, a=amp * d):
                xy = o + v * tau + a * jnp.cos(w * tau)
                return jnp.stack([xy[0], xy[1], 0.0 * tau])
        else:

            def pos(tau, o=o, v=v, w=w, r=amp):
                xy = o + v * tau + r * jnp.stack([jnp.cos(w * tau), jnp.sin(w * tau)])
                return jnp.stack([xy[0], xy[1], 0.0 * tau])

        charges.append(pc.Charge(pos, q=float(src.q[k])))
    jitted = jax.jit(pc.potentials_and_fields(charges))

    def fields(x, y, t):
        x, y, t = (np.asarray(a, dtype=np.float64).ravel() for a in (x, y, t))
        xx, tt = np.meshgrid(x, t)
        yy, _ = np.meshgrid(y, t)
        out = jitted(xx, yy, np.zeros_like(xx), tt)
        e, b = np.asarray(out.electric), np.asarray(out.magnetic)
        return np.stack([e[..., 0], e[..., 1], SPEED_OF_LIGHT * b[..., 2]], -1)

    return fields


# ------------------------------------------------------- rescaling, resize
def log_norm_rescale(f: np.ndarray, floor: float = 1e7) -> np.ndarray:
    """``F -> log10(|F|) F / max(|F|, floor)`` with the Minkowski norm
    ``|F| = sqrt(|Ex^2 + Ey^2 - cBz^2|)`` (main.py:432-438): ``(..., 3) -> (..., 3)``.

    The logarithm takes the unclipped norm (as theirs); a point with ``|F| = 0`` gives NaN there."""
    norm = np.sqrt(np.abs(f[..., 0] ** 2 + f[..., 1] ** 2 - f[..., 2] ** 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        return f * (np.log10(norm) / np.maximum(norm, floor))[..., None]


def resize_frames(frames: np.ndarray, size: int, antialias: bool = True) -> np.ndarray:
    """``(F, N, N, C) -> (F, size, size, C)`` float64 as torchvision's ``resize`` of a float tensor
    (``interpolate(mode="bilinear", align_corners=False, antialias=antialias)``, main.py:454-456)."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(frames, dtype=np.float64)).permute(0, 3, 1, 2)
    if tuple(x.shape[-2:]) != (size, size):
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                                            antialias=bool(antialias))
    return x.permute(0, 2, 3, 1).contiguous().numpy()


def output_coordinates(params: dict) -> np.ndarray:
    """Coordinates (m) of the ``size`` output points per axis: where the resize samples the
    ``linspace(-lim, lim, grid)`` input (pixel centres aligned, align_corners=False)."""
    n, s, lim = params["grid"], params["size"], params["lim"]
    index = (np.arange(s) + 0.5) * n / s - 0.5
    return -lim + index * (2 * lim / (n - 1))


def render(src: Sources, params: dict, frames=None) -> tuple[np.ndarray, bool]:
    """The rescaled, resized frames ``(len(frames), size, size, 3)`` float64 of the sources
    (``frames``: indices, default all ``params["frames"]``), and False if a retarded-time solve
    did not converge (then the frames computed so far are returned and the rest are NaN)."""
    n, size, lim = int(params["grid"]), int(params["size"]), params["lim"]
    variant = params.get("variant", "authors")
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
    if n < 2 or size < 1:
        raise ValueError(f"grid must be >= 2 and size >= 1, got grid {n}, size {size}")
    index = np.arange(int(params["frames"])) if frames is None else np.asarray(frames, dtype=np.int64)
    times = index * params["dt"]
    axis = np.linspace(-lim, lim, n)
    xs, ys = (a.ravel() for a in np.meshgrid(axis, axis, indexing="ij"))
    out = np.full((len(index), size, size, 3), np.nan)
    chunk = max(1, _CHUNK_ELEMENTS // (len(src.q) * n * n))
    for start in range(0, len(index), chunk):
        part = slice(start, start + chunk)
        f, converged = faraday_fields(src, xs, ys, times[part], variant)
        if not converged:
            return out, False
        f = log_norm_rescale(f.reshape(-1, n, n, 3), params["norm_floor"])
        out[part] = resize_frames(f, size, params.get("antialias", True))
    return out, True


# ----------------------------------------------------------------- simulate
def simulate(params: dict, seed: int) -> dict[str, np.ndarray]:
    """One trajectory: ``faraday`` (frames, size, size, 3) float32, the times ``t``, the output
    coordinates ``x``, ``y``, the ``sources`` table (:data:`SOURCE_COLUMNS`) and ``redraws``.

    Sources come from ``np.random.RandomState(seed)`` as the authors' ``main`` draws them after
    ``np.random.seed(seed)``; a draw whose retarded-time solve does not converge or whose frames
    have standard deviation >= ``max_std`` is replaced by the next one (main.py:461-473)."""
    rng = np.random.RandomState(int(seed) % 2**32)
    rows = int(params["n_oscillating"][1]) + int(params["n_orbiting"][1])
    for redraws in range(int(params["max_redraws"]) + 1):
        src = sample_sources(params, rng)
        frames, converged = render(src, params)
        if converged and frames.std(ddof=1) < params["max_std"]:  # NaN fails the test, as theirs
            coords = output_coordinates(params)
            return {
                "faraday": frames.astype(np.float32),
                "t": np.arange(int(params["frames"])) * params["dt"],
                "x": coords,
                "y": coords,
                "sources": src.table(rows),
                "redraws": np.int64(redraws),
            }
    raise DataError(f"no source draw passed the checks in {int(params['max_redraws']) + 1} draws (seed {seed})")


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
