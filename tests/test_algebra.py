import itertools
import math

import pytest
import torch

from cscnn import CliffordAlgebra
from cscnn.algebra import (
    boost,
    count_grid_symmetries,
    grid_symmetries,
    is_in_group,
    metric_tensor,
    sample_grid_symmetries,
    sample_group_elements,
)

D = torch.float64


def rand(alg, *shape, gen=None):
    return torch.randn(*shape, alg.n_blades, dtype=D, generator=gen)


def test_public_contract():
    alg = CliffordAlgebra((-1, 1, 1))
    assert alg.dim == 3 and alg.n_blades == 8
    assert alg.blades == ((), (0,), (1,), (2,), (0, 1), (0, 2), (1, 2), (0, 1, 2))
    assert alg.grades == (0, 1, 1, 1, 2, 2, 2, 3)
    assert CliffordAlgebra((1,) * 6).n_blades == 64


def test_shortlex_order_dim4():
    alg = CliffordAlgebra((1, 1, 1, 1))
    expected = [()] + [c for k in range(1, 5) for c in itertools.combinations(range(4), k)]
    assert list(alg.blades) == expected


def test_associativity_and_distributivity(alg, gen):
    a, b, c = (rand(alg, 7, gen=gen) for _ in range(3))
    gp = alg.geometric_product
    torch.testing.assert_close(gp(gp(a, b), c), gp(a, gp(b, c)), atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(gp(a, b + c), gp(a, b) + gp(a, c), atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(gp(a + b, c), gp(a, c) + gp(b, c), atol=1e-12, rtol=1e-12)


def test_basis_vectors_square_to_metric_and_anticommute(alg):
    e = alg.basis()
    vec = [e[alg.blade_index((i,))] for i in range(alg.dim)]
    one = e[0]
    for i, j in itertools.product(range(alg.dim), repeat=2):
        prod = alg.geometric_product(vec[i], vec[j])
        if i == j:
            torch.testing.assert_close(prod, alg.metric[i] * one)
        else:
            torch.testing.assert_close(prod, -alg.geometric_product(vec[j], vec[i]))
            assert prod[alg.blade_index(tuple(sorted((i, j))))].abs() == 1


def test_product_matches_dense_cayley_and_broadcasts(alg, gen):
    a = rand(alg, 3, 1, gen=gen)
    b = rand(alg, 1, 5, gen=gen)
    dense = torch.einsum("...i,ijk,...k->...j", a.expand(3, 5, -1), alg.cayley, b.expand(3, 5, -1))
    out = alg.geometric_product(a, b)
    assert out.shape == (3, 5, alg.n_blades)
    torch.testing.assert_close(out, dense)
    # exactly one nonzero output blade per pair of input blades
    assert ((alg.cayley != 0).sum(1) == 1).all()


def test_reversion_and_involution_of_products(alg, gen):
    a, b = rand(alg, 6, gen=gen), rand(alg, 6, gen=gen)
    gp = alg.geometric_product
    torch.testing.assert_close(alg.reverse(gp(a, b)), gp(alg.reverse(b), alg.reverse(a)))
    torch.testing.assert_close(alg.grade_involution(gp(a, b)), gp(alg.grade_involution(a), alg.grade_involution(b)))
    torch.testing.assert_close(alg.reverse(alg.reverse(a)), a)


def test_outer_and_inner_products_on_vectors(alg, gen):
    u = alg.embed_grade(torch.randn(4, alg.dim, dtype=D, generator=gen), 1)
    v = alg.embed_grade(torch.randn(4, alg.dim, dtype=D, generator=gen), 1)
    gp = alg.geometric_product(u, v)
    wedge = alg.outer_product(u, v)
    inner = alg.inner_product(u, v)
    torch.testing.assert_close(gp, wedge + inner)
    torch.testing.assert_close(wedge, -alg.outer_product(v, u))
    torch.testing.assert_close(inner[..., 0], alg.scalar_product(u, v))
    assert torch.allclose(alg.grade_project(wedge, 2), wedge)


def test_quadratic_form_is_reversion_scalar_part(alg, gen):
    x = rand(alg, 5, gen=gen)
    q = alg.geometric_product(alg.reverse(x), x)[..., 0]
    torch.testing.assert_close(alg.quadratic_form(x), q)
    torch.testing.assert_close(alg.grade_quadratic_forms(x).sum(-1), q)


def test_group_sampling_lands_in_group(alg, gen):
    g = sample_group_elements(alg, 16, max_rapidity=1.5, generator=gen)
    assert is_in_group(g, alg).all()
    assert not is_in_group(g + 0.1, alg).any()
    dets = torch.linalg.det(g)
    assert torch.allclose(dets.abs(), torch.ones_like(dets))
    if alg.signature[1] > 0 and alg.signature[0] > 0:  # boosts present: non-compact entries
        assert g.abs().max() > 1.01


def test_boost_rapidity_and_sign_checks():
    g = boost((-1, 1, 1), 0, 1, 0.7)
    assert is_in_group(g, (-1, 1, 1))
    assert torch.isclose(g[0, 0], torch.tensor(math.cosh(0.7), dtype=D))
    with pytest.raises(ValueError, match="opposite metric sign"):
        boost((-1, 1, 1), 1, 2, 0.3)


def test_grid_symmetries_count_and_membership(alg):
    sym = grid_symmetries(alg)
    assert len(sym) == count_grid_symmetries(alg)
    assert torch.equal(sym[0], torch.eye(alg.dim, dtype=D))
    assert is_in_group(sym, alg).all()
    assert len({tuple(s.flatten().tolist()) for s in sym}) == len(sym)


def test_outermorphism_is_automorphism_and_homomorphism(alg, gen):
    g, h = sample_group_elements(alg, 2, max_rapidity=1.2, generator=gen)
    a, b = rand(alg, 4, gen=gen), rand(alg, 4, gen=gen)
    gp = alg.geometric_product
    lhs = alg.act(g, gp(a, b))
    rhs = gp(alg.act(g, a), alg.act(g, b))
    scale = lhs.abs().max()
    assert (lhs - rhs).abs().max() / scale < 1e-12
    mg, mh = alg.outermorphism(g), alg.outermorphism(h)
    torch.testing.assert_close(alg.outermorphism(g @ h), mg @ mh, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(alg.outermorphism(torch.linalg.inv(g)), torch.linalg.inv(mg), atol=1e-10, rtol=1e-10)
    # on vectors it is g itself, and the pseudoscalar picks up det(g)
    torch.testing.assert_close(mg[alg.blade_slice(1), alg.blade_slice(1)], g)
    torch.testing.assert_close(mg[-1, -1], torch.linalg.det(g))
    # batched
    assert alg.outermorphism(torch.stack([g, h])).shape == (2, alg.n_blades, alg.n_blades)


def test_quadratic_forms_invariant_per_grade(alg, gen):
    g = sample_group_elements(alg, 1, max_rapidity=1.5, generator=gen)[0]
    x = rand(alg, 8, gen=gen)
    before = alg.grade_quadratic_forms(x)
    after = alg.grade_quadratic_forms(alg.act(g, x))
    assert ((after - before).abs() / before.abs().max()).max() < 1e-10
    torch.testing.assert_close(alg.norm(alg.act(g, x)), alg.norm(x), atol=1e-8, rtol=1e-8)


def test_norm_gradients_finite_at_zero(alg):
    x = torch.zeros(3, alg.n_blades, dtype=D, requires_grad=True)
    (alg.grade_norms(x).sum() + alg.norm(x).sum()).backward()
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dtypes_and_table_cache(dtype):
    alg = CliffordAlgebra((1, -1, 1))
    a = torch.randn(2, 8, dtype=dtype)
    assert alg.geometric_product(a, a).dtype == dtype
    assert alg.table("gather_sign", None, dtype) is alg.table("gather_sign", None, dtype)


def test_grade_embedding_roundtrip():
    alg = CliffordAlgebra((1, 1, 1))
    v = torch.randn(5, 3)
    mv = alg.embed_grade(v, 2)
    assert torch.equal(alg.get_grade(mv, 2), v)
    assert torch.equal(alg.grade_project(mv, [0, 1, 3]), torch.zeros_like(mv))
    e = alg.embed(torch.tensor([2.0]), [(0, 2)])
    assert e[alg.blade_index((0, 2))] == 2


@pytest.mark.parametrize(
    "metric, match",
    [((), "at least one"), ((1, 2), r"\+1 or -1"), ((1, 0), r"\+1 or -1"), (5, "sequence"), ((True, 1), r"\+1 or -1")],
)
def test_bad_metrics(metric, match):
    with pytest.raises((ValueError, TypeError), match=match):
        CliffordAlgebra(metric)


def test_bad_inputs_fail_early():
    alg = CliffordAlgebra((1, 1))
    with pytest.raises(ValueError, match="4 blade coefficients"):
        alg.geometric_product(torch.randn(3, 8), torch.randn(3, 4))
    with pytest.raises(ValueError, match="share dtype"):
        alg.geometric_product(torch.randn(3, 4), torch.randn(3, 4, dtype=D))
    with pytest.raises(ValueError, match=r"\(\.\.\., 2, 2\)"):
        alg.outermorphism(torch.eye(3))
    with pytest.raises(ValueError, match="grade must be"):
        alg.grade_project(torch.randn(4), 3)
    with pytest.raises(ValueError):
        metric_tensor((1, 3))


@pytest.mark.parametrize("metric", [(1,), (-1,), (1, 1, 1, 1, -1), (1, -1, 1, -1, 1, -1)], ids=str)
def test_small_and_large_dimensions(metric):
    alg = CliffordAlgebra(metric)
    gen = torch.Generator().manual_seed(1)
    a, b, c = (rand(alg, 2, gen=gen) for _ in range(3))
    gp = alg.geometric_product
    torch.testing.assert_close(gp(gp(a, b), c), gp(a, gp(b, c)), atol=1e-10, rtol=1e-10)
    g = sample_group_elements(alg, 1, max_rapidity=1.0, generator=gen)[0]
    torch.testing.assert_close(alg.act(g, gp(a, b)), gp(alg.act(g, a), alg.act(g, b)), atol=1e-9, rtol=1e-9)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, -0.5, "1"], ids=repr)
def test_sample_group_elements_rejects_bad_rapidity(bad):
    with pytest.raises(ValueError, match="max_rapidity must be a finite number >= 0"):
        sample_group_elements(CliffordAlgebra((-1, 1, 1)), 3, max_rapidity=bad)


@pytest.mark.parametrize("bad", [-1, 2.5, True, "3"], ids=repr)
def test_sample_group_elements_rejects_bad_count(bad):
    alg = CliffordAlgebra((-1, 1))
    with pytest.raises(ValueError, match="number of group elements must be an integer >= 0"):
        sample_group_elements(alg, bad)
    with pytest.raises(ValueError, match="number of group elements must be an integer >= 0"):
        sample_grid_symmetries(alg, bad)


def test_sample_group_elements_edge_counts():
    alg = CliffordAlgebra((-1, 1, 1))
    assert sample_group_elements(alg, 0).shape == (0, 3, 3)
    g = sample_group_elements(alg, torch.tensor(2), max_rapidity=0)  # 0-d integer tensors count too
    assert g.shape == (2, 3, 3) and bool(is_in_group(g, alg).all())
    # rapidity 0: no boost, so every element is a signed rotation (orthogonal in the Euclidean sense)
    torch.testing.assert_close(g.transpose(-1, -2) @ g, torch.eye(3, dtype=g.dtype).expand(2, 3, 3))


@pytest.mark.parametrize("metric", [(1, 1), (-1, -1, -1), (-1, 1, 1), (1, 1, -1, -1), (1,)])
def test_norm_matches_grade_split_definition(metric, gen):
    # definite metrics take a shortcut (no per-grade split); both must give sqrt(sum_k |qbar(x^(k))|)
    alg = CliffordAlgebra(metric)
    sq = alg.table("blade_metric")
    uniform = all(bool((sq[alg.blade_slice(k)] == sq[alg.blade_slice(k)][0]).all()) for k in range(alg.n_grades))
    assert alg._grade_signs_uniform == uniform and bool((sq.abs() == 1).all())
    x = rand(alg, 4, 3, gen=gen)
    ref = alg.grade_quadratic_forms(x).abs().sum(-1).sqrt()
    torch.testing.assert_close(alg.norm(x), ref, atol=1e-12, rtol=1e-12)
    xt = x.movedim(-1, 0).contiguous().movedim(0, -1)  # blade axis not innermost in memory
    torch.testing.assert_close(alg.norm(xt), ref, atol=1e-12, rtol=1e-12)
