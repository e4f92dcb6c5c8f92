import functools

import pytest
import torch

from cscnn import CliffordAlgebra
from cscnn.algebra import sample_group_elements
from cscnn.nn import MVGELU, GradeNorm, MVGate, MVLayerNorm, MVLinear, MVSiLU, SteerableGeometricProduct
from cscnn.nn.product import weighted_geometric_product
from cscnn.testing import assert_equivariant


@functools.cache
def dense_path_of(metric) -> torch.Tensor:
    """(n, n, n) long: path id (index in ``alg.path_table()``) of the Cayley entry C[l, j, k], 0 where C is zero."""
    alg = CliffordAlgebra(metric)
    g = alg.grade_index
    ids = {path: i for i, path in enumerate(alg.path_table())}
    n = alg.n_blades
    return torch.tensor([[[ids.get((int(g[i]), int(g[k]), int(g[j])), 0) for k in range(n)] for j in range(n)]
                         for i in range(n)])


def dense_weighted_geometric_product(alg, left, right, path_weight) -> torch.Tensor:
    """Reference for the sparse product: ``out_o = sum_i sum_paths w[o,i,path] <left_i^(a) right_i^(b)>_c`` through
    the dense (out, in, n, n, n) weighted Cayley tensor. left, right: (B, in, *, n); path_weight: (out, in, n_paths)."""
    w = path_weight[:, :, dense_path_of(alg.metric).to(left.device)] * alg.cayley.to(left)  # (out, in, l, j, k)
    return torch.einsum("bi...l,oiljk,bi...k->bo...j", left, w, right)

LAYERS = {
    "linear": lambda alg: MVLinear(alg, 3, 5),
    "gp": lambda alg: SteerableGeometricProduct(alg, 3, 5),
    "gradenorm": lambda alg: GradeNorm(alg, 3),
    "layernorm": lambda alg: MVLayerNorm(alg, 3),
    "gelu": lambda alg: MVGELU(alg),
    "silu": lambda alg: MVSiLU(alg),
}


def _randomise(module):
    # move learnable scales away from their symmetric init so the test sees them
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return module


@pytest.mark.parametrize("name", list(LAYERS))
def test_layers_commute_with_opq_float64(alg, name, gen):
    layer = _randomise(LAYERS[name](alg).double())
    x = torch.randn(2, 3, 4, alg.n_blades, dtype=torch.float64, generator=gen)
    err = assert_equivariant(layer, alg, x, n_samples=4, spatial=False, max_rapidity=1.5, rtol=1e-10, generator=gen)
    assert err < 1e-10


@pytest.mark.parametrize("name", list(LAYERS))
def test_layers_commute_with_opq_float32(name, gen):
    alg = CliffordAlgebra((-1, 1, 1))
    layer = _randomise(LAYERS[name](alg))
    x = torch.randn(2, 3, 4, alg.n_blades, generator=gen)
    assert_equivariant(layer, alg, x, n_samples=4, spatial=False, max_rapidity=1.0, rtol=1e-4, generator=gen)


def test_reflection_and_boost_explicitly():
    alg = CliffordAlgebra((-1, 1, 1))
    layer = _randomise(SteerableGeometricProduct(alg, 2, 2).double())
    x = torch.randn(1, 2, 3, 8, dtype=torch.float64)
    reflection = torch.diag(torch.tensor([1.0, -1.0, 1.0], dtype=torch.float64))
    boost = sample_group_elements(alg, 1, max_rapidity=1.5, reflections=False)[0]
    for g in (reflection, boost, reflection @ boost):
        torch.testing.assert_close(layer(alg.act(g, x)), alg.act(g, layer(x)), atol=1e-10, rtol=1e-10)


def test_equivariance_check_can_fail():
    """A layer mixing blades of different grades is not equivariant, and the helper says so."""
    alg = CliffordAlgebra((1, 1))

    class Broken(torch.nn.Module):
        def forward(self, x):
            return x.roll(1, -1)

    with pytest.raises(AssertionError, match="equivariance error"):
        assert_equivariant(Broken(), alg, torch.randn(2, 1, 3, 4, dtype=torch.float64), spatial=False)


def test_sparse_geometric_product_matches_dense(alg, gen):
    left = torch.randn(2, 3, 5, alg.n_blades, dtype=torch.float64, generator=gen)
    right = torch.randn(2, 3, 5, alg.n_blades, dtype=torch.float64, generator=gen)
    w = torch.randn(4, 3, alg.n_paths, dtype=torch.float64, generator=gen)
    torch.testing.assert_close(
        weighted_geometric_product(alg, left, right, w), dense_weighted_geometric_product(alg, left, right, w)
    )


def test_mvlinear_bias_only_on_scalar_and_per_grade():
    alg = CliffordAlgebra((1, 1, 1))
    lin = MVLinear(alg, 2, 3)
    with torch.no_grad():
        lin.bias.fill_(1.0)
    y = lin(torch.zeros(1, 2, 8))
    assert torch.equal(y[..., 0], torch.ones(1, 3)) and torch.equal(y[..., 1:], torch.zeros(1, 3, 7))
    assert lin.weight.shape == (3, 2, 4)


def test_gelu_gate_scalar_part_is_gelu():
    alg = CliffordAlgebra((1, 1))
    x = torch.randn(5, 2, 4)
    torch.testing.assert_close(MVGELU(alg)(x)[..., 0], torch.nn.functional.gelu(x[..., 0]))
    torch.testing.assert_close(MVSiLU(alg)(x)[..., 0], torch.nn.functional.silu(x[..., 0]))
    with pytest.raises(ValueError, match="activation must be one of"):
        MVGate(alg, "relu")


def test_layernorm_normalises():
    alg = CliffordAlgebra((1, 1, 1))
    x = 100 * torch.randn(4, 6, 5, 8)
    y = MVLayerNorm(alg, 6)(x)
    torch.testing.assert_close(alg.norm(y).mean(1), torch.ones(4, 5), atol=1e-4, rtol=1e-4)


def test_gradients_reach_all_parameters():
    alg = CliffordAlgebra((-1, 1, 1))
    layer = SteerableGeometricProduct(alg, 3, 2)
    layer(torch.randn(2, 3, 8)).pow(2).sum().backward()
    for name, p in layer.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("name", ["linear", "gp", "gradenorm", "layernorm"])
def test_bad_inputs(name):
    alg = CliffordAlgebra((1, 1))
    layer = LAYERS[name](alg)
    with pytest.raises(ValueError, match=r"\(B, 3, \*spatial, 4\)"):
        layer(torch.randn(2, 4, 4))  # wrong channel count
    with pytest.raises(ValueError, match=r"\(B, 3, \*spatial, 4\)"):
        layer(torch.randn(2, 3, 8))  # wrong blade count
    with pytest.raises(ValueError, match="float64"):
        layer(torch.randn(2, 3, 4, dtype=torch.float64))  # dtype mismatch with parameters


def test_bad_channel_counts():
    with pytest.raises(ValueError, match="in_channels must be a positive int"):
        MVLinear((1, 1), 0, 3)


@pytest.mark.parametrize("shape", [(7, 3), (2, 3, 5), (2, 3, 4, 3)])  # (points | B, C[, spatial...])
@pytest.mark.parametrize("dense", [True, False])
def test_blade_linear_paths_match_the_definition(monkeypatch, shape, dense):
    import cscnn.nn.linear as linear

    monkeypatch.setattr(linear, "DENSE_BLADE_BLOCK", 2**40 if dense else 0)  # force one path
    alg = CliffordAlgebra((1, -1, 1))
    x = torch.randn(*shape, alg.n_blades, dtype=torch.float64)
    w = torch.randn(4, shape[1], alg.n_blades, dtype=torch.float64)
    want = torch.einsum("bi...j,oij->bo...j", x, w)
    got = linear.blade_linear(x, w)
    assert got.shape == want.shape and torch.allclose(got, want, atol=1e-12)


@pytest.mark.parametrize("include_linear", [True, False])
@pytest.mark.parametrize("spatial", [(), (3, 2)])
def test_geometric_product_layer_is_product_plus_linear_skip(alg, include_linear, spatial):
    """The layer's fused channel mixing equals the definition: (sum_paths w <x^(a) r^(b)>_c + MVLinear(x)) / sqrt 2,
    r = GradeNorm(MVLinear_right(x))."""
    layer = _randomise(SteerableGeometricProduct(alg, 3, 4, include_linear=include_linear).double())
    x = torch.randn(2, 3, *spatial, alg.n_blades, dtype=torch.float64)
    right = layer.norm(layer.right(x))
    want = weighted_geometric_product(alg, x, right, layer.weight)
    if include_linear:
        want = (want + layer.linear(x)) / 2**0.5
    got = layer(x)
    assert got.shape == want.shape and torch.allclose(got, want, atol=1e-12)


@pytest.mark.parametrize("affine", [True, False])
def test_layernorm_fast_path_matches_the_composite_and_its_gradients(monkeypatch, affine):
    """Metrics of one sign take a hand-written backward (norms._EuclideanLayerNorm): same values and
    first and second derivatives as the composite of the algebra's norm, zero multivectors included."""
    from cscnn.nn.norms import _EuclideanLayerNorm

    alg = CliffordAlgebra((1, 1, 1))
    ln = _randomise(MVLayerNorm(alg, 3, affine=affine).double())
    x = torch.randn(2, 3, 4, 5, alg.n_blades, dtype=torch.float64)
    x[0, 1, 2] = 0  # the norm's floor is active here
    x.requires_grad_(True)
    params = [x, *ln.parameters()]
    fast = ln(x)
    grads_fast = torch.autograd.grad(fast, params, torch.ones_like(fast) + x.detach())
    monkeypatch.setattr(alg, "_grade_signs_uniform", False)  # the general (composite) path
    slow = ln(x)
    grads_slow = torch.autograd.grad(slow, params, torch.ones_like(slow) + x.detach())
    torch.testing.assert_close(fast, slow, atol=1e-12, rtol=1e-12)
    for a, b in zip(grads_fast, grads_slow):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-10)
    weight = ln.weight if affine else None
    fn = lambda a, *w: _EuclideanLayerNorm.apply(a, w[0] if w else None, 1e-6, 1e-6)  # noqa: E731
    inputs = (x[:1, :, :2, :2].detach().clone().requires_grad_(True), *([weight] if affine else []))
    assert torch.autograd.gradcheck(fn, inputs) and torch.autograd.gradgradcheck(fn, inputs)


@pytest.mark.parametrize("activation", ["gelu", "silu", "sigmoid"])
@pytest.mark.parametrize("blades_innermost", [True, False])
def test_gate_backward_equals_the_composite_and_is_twice_differentiable(activation, blades_innermost):
    """MVGate's hand-written backward (issue 20) against autograd of x * gate(x^(0)), in both memory
    orders of the conv outputs (blades innermost, or strided as in a contiguous NCHW conv output)."""
    from cscnn.nn.activations import _GATES

    alg = CliffordAlgebra((1, 1, 1))
    gate = MVGate(alg, activation)
    if blades_innermost:
        x = torch.randn(2, 3, 4, 5, alg.n_blades, dtype=torch.float64)
    else:
        x = torch.randn(2, 3, alg.n_blades, 4, 5, dtype=torch.float64).movedim(2, -1)
    x.requires_grad_(True)
    g = torch.randn(x.shape, dtype=torch.float64)
    fast = gate(x)
    slow = x * _GATES[activation](x[..., :1])
    torch.testing.assert_close(fast, slow, atol=0, rtol=0)
    (gf,) = torch.autograd.grad(fast, x, g)
    (gs,) = torch.autograd.grad(slow, x, g)
    torch.testing.assert_close(gf, gs, atol=1e-14, rtol=1e-12)
    small = x[:1, :2, :2, :2].detach().clone().requires_grad_(True)
    assert torch.autograd.gradcheck(gate, (small,)) and torch.autograd.gradgradcheck(gate, (small,))
