import math

import numpy as np
import pytest
import torch

from cscnn import CliffordAlgebra
from cscnn.algebra import boost, grid_symmetries, random_orthogonal, sample_group_elements
from cscnn.fields import (
    FIELD_LAYOUTS,
    faraday_from_multivector,
    faraday_to_multivector,
    from_multivector,
    maxwell3d_from_multivector,
    maxwell3d_to_multivector,
    multivector_field_names,
    navier_stokes_from_multivector,
    navier_stokes_to_multivector,
    to_multivector,
)

TASKS = ["navier-stokes", "maxwell3d", "maxwell2d"]


@pytest.mark.parametrize("task", TASKS)
def test_roundtrip_torch_and_numpy(task):
    lay = FIELD_LAYOUTS[task]
    f = torch.randn(5, 3, lay.n_components, dtype=torch.float64)
    mv = to_multivector(task, f)
    assert mv.shape == (5, 3, 2 ** len(lay.metric))
    torch.testing.assert_close(from_multivector(task, mv, check=True), f)
    mv_np = to_multivector(task, f.numpy())
    np.testing.assert_allclose(mv_np, mv.numpy())
    np.testing.assert_allclose(from_multivector(task, mv_np), f.numpy())


def test_bad_shapes_and_unused_blades():
    with pytest.raises(ValueError, match="3 components"):
        to_multivector("navier-stokes", torch.zeros(4, 2))
    with pytest.raises(ValueError, match="unknown task"):
        to_multivector("burgers", torch.zeros(4, 3))
    mv = torch.zeros(2, 4)
    mv[:, 3] = 1.0
    with pytest.raises(ValueError, match="unused blades"):
        from_multivector("navier-stokes", mv, check=True)


def test_named_helpers_and_blade_names():
    u, vx, vy = torch.randn(3, 6)
    mv = navier_stokes_to_multivector(u, vx, vy)
    torch.testing.assert_close(mv[..., 3], torch.zeros(6))
    for a, b in zip(navier_stokes_from_multivector(mv), (u, vx, vy)):
        torch.testing.assert_close(a, b)
    e, h = torch.randn(2, 7, 3)
    mv = maxwell3d_to_multivector(e, h)
    alg = CliffordAlgebra((1, 1, 1))
    # H = Hx e12 + Hy e20 + Hz e01 = Hx e12 - Hy e02 + Hz e01
    torch.testing.assert_close(mv[..., alg.blade_index((1, 2))], h[..., 0])
    torch.testing.assert_close(mv[..., alg.blade_index((0, 2))], -h[..., 1])
    torch.testing.assert_close(mv[..., alg.blade_index((0, 1))], h[..., 2])
    e2, hb = maxwell3d_from_multivector(mv)
    torch.testing.assert_close(e2, e)
    torch.testing.assert_close(hb, h)
    assert multivector_field_names("maxwell3d") == ("-", "Ex", "Ey", "Ez", "Hz", "-Hy", "Hx", "-")


def test_faraday_is_pure_bivector():
    alg = CliffordAlgebra((-1, 1, 1))
    e, cb = torch.randn(10, 2), torch.randn(10)
    mv = faraday_to_multivector(e, cb)
    torch.testing.assert_close(alg.grade_project(mv, 2), mv)
    e2, cb2 = faraday_from_multivector(mv)
    torch.testing.assert_close(e2, e)
    torch.testing.assert_close(cb2, cb)


def test_navier_stokes_rotation_is_rho():
    alg = CliffordAlgebra((1, 1))
    gs = torch.cat([grid_symmetries((1, 1)), random_orthogonal(2, (6,), torch.Generator().manual_seed(0))])
    f = torch.randn(20, 3, dtype=torch.float64)
    for g in gs:
        rotated = torch.cat([f[:, :1], f[:, 1:] @ g.T], -1)  # u invariant, v -> g v
        expected = alg.act(g, to_multivector("navier-stokes", f))
        torch.testing.assert_close(to_multivector("navier-stokes", rotated), expected)


def test_maxwell3d_rotation_is_rho():
    """E is a vector, H a pseudovector: H -> det(R) R H; both are rho(R) of the multivector."""
    alg = CliffordAlgebra((1, 1, 1))
    gs = random_orthogonal(3, (10,), torch.Generator().manual_seed(1))  # reflections included
    f = torch.randn(20, 6, dtype=torch.float64)
    for g in gs:
        det = torch.linalg.det(g)
        rotated = torch.cat([f[:, :3] @ g.T, det * (f[:, 3:] @ g.T)], -1)
        torch.testing.assert_close(to_multivector("maxwell3d", rotated), alg.act(g, to_multivector("maxwell3d", f)))


def _textbook_boost(e, cb, beta):
    """Fields seen in a frame moving with velocity beta*c (in-plane), E in V/m, cB in V/m."""
    b2 = float(beta @ beta)
    gamma = 1 / math.sqrt(1 - b2)
    e3 = torch.cat([e, torch.zeros(len(e), 1, dtype=e.dtype)], -1)
    cb3 = torch.zeros_like(e3)
    cb3[:, 2] = cb
    bvec = torch.tensor([beta[0], beta[1], 0.0], dtype=e.dtype).expand_as(e3)
    par = lambda v: (v * bvec).sum(-1, keepdim=True) * bvec / b2  # noqa: E731
    e_new = par(e3) + gamma * (e3 - par(e3) + torch.cross(bvec, cb3, dim=-1))
    cb_new = par(cb3) + gamma * (cb3 - par(cb3) - torch.cross(bvec, e3, dim=-1))
    return e_new[:, :2], cb_new[:, 2]


def test_faraday_boost_is_rho():
    """The coordinate Lorentz transformation Lambda of (ct, x, y) into a frame moving with
    velocity beta maps the Faraday bivector by rho(Lambda), reproducing the textbook formulas."""
    alg = CliffordAlgebra((-1, 1, 1))
    e, cb = torch.randn(30, 2, dtype=torch.float64), torch.randn(30, dtype=torch.float64)
    for beta in ([0.6, 0.0], [0.0, -0.3], [0.3, 0.5]):
        beta = torch.tensor(beta, dtype=torch.float64)
        b2 = float(beta @ beta)
        gamma = 1 / math.sqrt(1 - b2)
        lam = torch.eye(3, dtype=torch.float64)
        lam[0, 0] = gamma
        lam[0, 1:] = lam[1:, 0] = -gamma * beta
        lam[1:, 1:] += (gamma - 1) * torch.outer(beta, beta) / b2
        assert torch.allclose(lam.T @ torch.diag(torch.tensor([-1.0, 1, 1], dtype=torch.float64)) @ lam,
                              torch.diag(torch.tensor([-1.0, 1, 1], dtype=torch.float64)))
        e_new, cb_new = _textbook_boost(e, cb, beta)
        torch.testing.assert_close(faraday_to_multivector(e_new, cb_new), alg.act(lam, faraday_to_multivector(e, cb)))
    # the library's boost helper along x with rapidity -artanh(beta) is the same matrix
    g = boost((-1, 1, 1), 0, 1, -math.atanh(0.6))
    e_new, cb_new = _textbook_boost(e, cb, torch.tensor([0.6, 0.0], dtype=torch.float64))
    torch.testing.assert_close(faraday_to_multivector(e_new, cb_new), alg.act(g, faraday_to_multivector(e, cb)))


def test_faraday_rotation_reflection_is_rho():
    alg = CliffordAlgebra((-1, 1, 1))
    e, cb = torch.randn(30, 2, dtype=torch.float64), torch.randn(30, dtype=torch.float64)
    for r in random_orthogonal(2, (6,), torch.Generator().manual_seed(2)):
        g = torch.eye(3, dtype=torch.float64)
        g[1:, 1:] = r
        expected = faraday_to_multivector(e @ r.T, torch.linalg.det(r) * cb)
        torch.testing.assert_close(expected, alg.act(g, faraday_to_multivector(e, cb)))


def test_faraday_invariant_norm_preserved_by_group():
    alg = CliffordAlgebra((-1, 1, 1))
    f = faraday_to_multivector(torch.randn(10, 2, dtype=torch.float64), torch.randn(10, dtype=torch.float64))
    q = alg.quadratic_form(f)
    torch.testing.assert_close(q, f[:, 6] ** 2 - f[:, 4] ** 2 - f[:, 5] ** 2)
    for g in sample_group_elements((-1, 1, 1), 5, generator=torch.Generator().manual_seed(3)):
        torch.testing.assert_close(alg.quadratic_form(alg.act(g, f)), q)
