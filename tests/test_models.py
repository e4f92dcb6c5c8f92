"""CS-ResNet, CS-U-Net, the plain ResNet baseline, the registry and the sizing helpers."""

import pytest
import torch

from cscnn import CliffordAlgebra
from cscnn.models import (
    DEFAULT_HIDDEN,
    MODELS,
    CSResNet,
    CSUNet,
    ResNet,
    avg_pool_fields,
    build_model,
    count_parameters,
    match_width,
    upsample_fields,
)
from cscnn.testing import assert_equivariant, equivariance_error, transform_field

TINY_KERNEL = {"kernel_num_layers": 2, "kernel_hidden_channels": 4}
# metric, grid, number of grid symmetries to try (all of them in 2D; 48 in 3D is too slow here)
CASES = [((1, 1), (6, 6), 8), ((1, 1, 1), (4, 4, 4), 6), ((-1, 1, 1), (4, 4, 4), 6)]


def _double(net):
    return net.double().eval()


def _x(alg, channels, grid, batch=2, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, channels, *grid, alg.n_blades, generator=g, dtype=dtype)


# ------------------------------------------------------------------ CS-ResNet
@pytest.mark.parametrize("metric,grid,n", CASES)
def test_cs_resnet_equivariant(metric, grid, n):
    torch.manual_seed(0)
    alg = CliffordAlgebra(metric)
    net = _double(CSResNet(alg, 2, 1, 3, blocks=(1,), kernel_size=3, **TINY_KERNEL))
    err = assert_equivariant(net, alg, _x(alg, 2, grid), n_samples=n, generator=torch.Generator().manual_seed(1))
    assert err < 1e-9


def test_cs_resnet_time_reversal_spacetime():
    """Time reversal alone (flip of the first grid axis, e0 -> -e0) for R^{1,2}."""
    torch.manual_seed(0)
    alg = CliffordAlgebra((-1, 1, 1))
    net = _double(CSResNet(alg, 1, 1, 2, blocks=(1,), kernel_size=3, padding_mode="circular", **TINY_KERNEL))
    g = torch.diag(torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64))
    x = _x(alg, 1, (4, 4, 4))
    assert equivariance_error(net, alg, x, g) < 1e-9
    # and the output is not trivially symmetric: the field really changes under the transformation
    y = net(x)
    assert (transform_field(alg, g, y) - y).abs().max() > 1e-3


@pytest.mark.parametrize("metric,grid", [((1, 1), (5, 6)), ((1, 1, 1), (3, 4, 2))])
def test_cs_resnet_forward_backward(metric, grid):
    torch.manual_seed(0)
    alg = CliffordAlgebra(metric)
    net = CSResNet(alg, 4, 1, 3, blocks=(1, 1), kernel_size=3, padding_mode="reflect", **TINY_KERNEL)
    x = _x(alg, 4, grid, dtype=torch.float32).requires_grad_()
    y = net(x)
    assert y.shape == (2, 1, *grid, alg.n_blades) and y.dtype == torch.float32
    y.square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert all(p.grad is not None for p in net.parameters())
    assert net.alg == alg


def test_cs_resnet_structure_matches_paper():
    alg = CliffordAlgebra((1, 1))
    net = CSResNet(alg, 4, 1, 5, blocks=(2, 1), kernel_size=5, kernel_num_layers=3, kernel_hidden_channels=6)
    assert len(net.layers) == 3
    convs = [m for m in net.modules() if type(m).__name__ == "CliffordSteerableConv"]
    sizes = [c.kernel_size for c in convs]
    assert sizes == [1, 1] + [5] * 6 + [1, 1]
    assert (convs[0].in_channels, convs[0].out_channels) == (4, 5)
    assert (convs[-1].in_channels, convs[-1].out_channels) == (5, 1)
    kn = convs[2].kernel.net.layers
    assert sum(type(m).__name__ == "SteerableGeometricProduct" for m in kn) == 3
    assert kn[0].out_channels == 6
    no_norm = CSResNet(alg, 4, 1, 5, blocks=(1,), kernel_size=3, norm=False)
    assert not any(type(m).__name__ == "MVLayerNorm" for m in no_norm.modules())
    assert sum(type(m).__name__ == "MVLayerNorm" for m in net.modules()) == 6


def test_cs_resnet_bad_input():
    alg = CliffordAlgebra((1, 1))
    net = CSResNet(alg, 2, 1, 2, blocks=(1,), kernel_size=3, **TINY_KERNEL)
    with pytest.raises(ValueError, match=r"\(B, 2, X1, X2, 4\)"):
        net(torch.randn(1, 3, 4, 4, 4))
    with pytest.raises(ValueError, match="blocks"):
        CSResNet(alg, 2, 1, 2, blocks=())
    with pytest.raises(ValueError, match="odd"):
        CSResNet(alg, 2, 1, 2, blocks=(1,), kernel_size=4)


# --------------------------------------------------------------------- CS-U-Net
def test_pooling_helpers():
    x = torch.arange(16.0).reshape(1, 1, 4, 4, 1)
    p = avg_pool_fields(x, 2)
    assert torch.equal(p[0, 0, :, :, 0], torch.tensor([[2.5, 4.5], [10.5, 12.5]]))
    u = upsample_fields(p, 2)
    assert u.shape == x.shape and torch.equal(u[0, 0, :2, :2, 0], torch.full((2, 2), 2.5))
    # any number of grid axes (4D via reshape), and commuting with flips and axis swaps on even grids
    y = torch.randn(2, 3, 4, 2, 6, 4, 16, dtype=torch.float64)  # float64: flips reorder the sums
    assert avg_pool_fields(y, 4).shape == (2, 3, 2, 1, 3, 2, 16)
    assert torch.allclose(avg_pool_fields(y.flip(2, 4), 4), avg_pool_fields(y, 4).flip(2, 4))
    assert torch.equal(upsample_fields(y.flip(3), 4), upsample_fields(y, 4).flip(3))
    z = torch.randn(1, 2, 4, 4, 8, dtype=torch.float64)
    assert torch.allclose(avg_pool_fields(z.transpose(2, 3), 2), avg_pool_fields(z, 2).transpose(2, 3))
    with pytest.raises(ValueError, match="divisible"):
        avg_pool_fields(torch.randn(1, 1, 5, 4, 4), 2)


@pytest.mark.parametrize("metric,grid,n", [((1, 1), (8, 8), 8), ((1, 1, 1), (4, 4, 4), 6),
                                           ((-1, 1, 1), (4, 4, 4), 6)])
def test_cs_unet_equivariant(metric, grid, n):
    torch.manual_seed(0)
    alg = CliffordAlgebra(metric)
    net = _double(CSUNet(alg, 2, 1, 2, channel_mults=(1, 2), blocks=1, kernel_size=3, **TINY_KERNEL))
    err = assert_equivariant(net, alg, _x(alg, 2, grid, batch=1), n_samples=n,
                             generator=torch.Generator().manual_seed(2))
    assert err < 1e-9


def test_cs_unet_equivariant_4d_spacetime():
    torch.manual_seed(0)
    alg = CliffordAlgebra((-1, 1, 1, 1))
    net = _double(CSUNet(alg, 1, 1, 1, channel_mults=(1, 1), blocks=(0, 1), kernel_size=3, **TINY_KERNEL))
    assert_equivariant(net, alg, _x(alg, 1, (2, 2, 2, 2), batch=1), n_samples=3,
                       generator=torch.Generator().manual_seed(3))


@pytest.mark.parametrize("metric,grid", [((1, 1), (8, 4)), ((1, 1, 1), (4, 4, 8))])
def test_cs_unet_forward_backward(metric, grid):
    torch.manual_seed(0)
    alg = CliffordAlgebra(metric)
    net = CSUNet(alg, 3, 2, 2, channel_mults=(1, 2, 2), blocks=(1, 0, 1), kernel_size=3, **TINY_KERNEL)
    x = _x(alg, 3, grid, dtype=torch.float32).requires_grad_()
    y = net(x)
    assert y.shape == (2, 2, *grid, alg.n_blades)
    y.square().mean().backward()
    assert torch.isfinite(x.grad).all()
    assert all(p.grad is not None for p in net.parameters())
    with pytest.raises(ValueError, match="divisible by 4"):
        net(_x(alg, 3, (6,) * alg.dim, dtype=torch.float32))


def test_cs_unet_uses_multiple_scales():
    """The coarse level must influence the output: perturbing the bottom stage changes it."""
    torch.manual_seed(0)
    alg = CliffordAlgebra((1, 1))
    net = CSUNet(alg, 1, 1, 2, channel_mults=(1, 2), blocks=1, kernel_size=3, **TINY_KERNEL).double().eval()
    x = _x(alg, 1, (8, 8), batch=1)
    y0 = net(x)
    with torch.no_grad():
        for p in net.down[1].parameters():
            p.add_(0.1)
    assert (net(x) - y0).abs().max() > 1e-6


# -------------------------------------------------------- plain ResNet (negative control)
def test_resnet_is_not_equivariant():
    torch.manual_seed(0)
    alg = CliffordAlgebra((1, 1))
    net = _double(ResNet(alg, 2, 1, 8, blocks=(1,), kernel_size=3))
    x = _x(alg, 2, (6, 6))
    with pytest.raises(AssertionError, match="equivariance error"):
        assert_equivariant(net, alg, x, n_samples=8)
    rot90 = torch.tensor([[0.0, -1.0], [1.0, 0.0]], dtype=torch.float64)
    assert equivariance_error(net, alg, x, rot90) > 1e-2


@pytest.mark.parametrize("metric,grid", [((1, 1), (6, 5)), ((1, 1, 1), (3, 4, 3)), ((1,), (7,))])
@pytest.mark.parametrize("norm", ["group", "layer", None])
def test_resnet_forward_backward(metric, grid, norm):
    alg = CliffordAlgebra(metric)
    net = ResNet(alg, 4, 1, 6, blocks=(1,), kernel_size=3, norm=norm, padding_mode="circular")
    x = _x(alg, 4, grid, dtype=torch.float32).requires_grad_()
    y = net(x)
    assert y.shape == (2, 1, *grid, alg.n_blades)
    y.sum().backward()
    assert torch.isfinite(x.grad).all()


def test_resnet_channel_layout():
    """Blade b of channel c is torch channel c * n_blades + b, in and out."""
    alg = CliffordAlgebra((1, 1))
    net = ResNet(alg, 3, 3, 4, blocks=(1,), kernel_size=3)
    x = _x(alg, 3, (2, 5))
    flat = net.to_native(x)
    assert flat.shape == (2, 12, 2, 5)
    assert torch.equal(flat[:, 2 * 4 + 1], x[:, 2, ..., 1])
    assert torch.equal(net.from_native(flat), x)


# --------------------------------------------------------------- registry, sizing
def test_registry_names_and_errors():
    assert set(MODELS) == {"cs_resnet", "cs_unet", "cond_cs_resnet", "cond_cs_unet", "cs_resnet_two_sided", "resnet",
                           "clifford_resnet", "steerable_resnet", "fno", "gfno"}
    assert set(DEFAULT_HIDDEN) == set(MODELS)
    with pytest.raises(KeyError, match="valid names: clifford_resnet, cond_cs_resnet, cond_cs_unet, cs_resnet, "
                                       "cs_resnet_two_sided, cs_unet, fno, gfno, resnet"):
        build_model("transformer", (1, 1), 1, 1)
    with pytest.raises(TypeError, match=r"unknown option\(s\) \['kernal_size'\].*kernel_size"):
        build_model("cs_resnet", (1, 1), 1, 1, 2, kernal_size=3)
    net = build_model("cs_resnet", (1, 1), 4, 1, 2, blocks=(1,), kernel_size=3, **TINY_KERNEL)
    assert isinstance(net, CSResNet) and net.alg == CliffordAlgebra((1, 1)) and net.hidden_channels == 2
    net = build_model("resnet", CliffordAlgebra((1, 1)), 4, 1, blocks=(1,), kernel_size=3)
    assert net.hidden_channels == DEFAULT_HIDDEN["resnet"] and net.alg.metric == (1, 1)


def test_count_parameters_and_match_width():
    alg = CliffordAlgebra((1, 1))
    net = ResNet(alg, 1, 1, 4, blocks=(1,), kernel_size=3)
    h, n = 4, 4
    expected = (n * h + h) + (h * h + h) + 2 * (h * h * 9 + h + 2 * h) + (h * h + h) + (h * n + n)
    assert count_parameters(net) == expected
    for p in net.parameters():
        p.requires_grad_(False)
    assert count_parameters(net) == 0 and count_parameters(net, trainable_only=False) == expected
    kw = {"blocks": (1,), "kernel_size": 3}
    target = count_parameters(build_model("resnet", alg, 1, 1, 13, **kw))
    assert match_width("resnet", alg, 1, 1, target, **kw) == 13
    w = match_width("resnet", alg, 1, 1, target + 40, **kw)
    counts = {v: count_parameters(build_model("resnet", alg, 1, 1, v, **kw)) for v in (w - 1, w, w + 1)}
    assert abs(counts[w] - target - 40) <= min(abs(counts[w - 1] - target - 40), abs(counts[w + 1] - target - 40))
    assert match_width("resnet", alg, 1, 1, 1, **kw) == 1
    assert match_width("resnet", alg, 1, 1, 10**9, max_width=20, **kw) == 20
    with pytest.raises(ValueError):
        match_width("resnet", alg, 1, 1, 0)
    # counts are exact quadratics of the width: the fast path agrees with the search
    for t in (target, target + 40, 5000):
        fast = match_width("resnet", alg, 1, 1, t, exact_quadratic=True, **kw)
        assert fast == match_width("resnet", alg, 1, 1, t, **kw)
    cs_kw = {"blocks": 1, "channel_mults": (1, 2), "kernel_size": 3, **TINY_KERNEL}
    t = count_parameters(build_model("cs_unet", alg, 1, 1, 7, **cs_kw))
    assert match_width("cs_unet", alg, 1, 1, t, exact_quadratic=True, **cs_kw) == 7


def test_cs_models_float64_and_exposed_alg():
    alg = CliffordAlgebra((1, 1))
    for name in ("cs_resnet", "cs_unet"):
        net = build_model(name, alg, 1, 1, 2, blocks=1, kernel_size=3, **TINY_KERNEL).double()
        y = net(_x(alg, 1, (4, 4)))
        assert y.dtype == torch.float64 and net.alg is alg


# ------------------------------------------------------------------ pointwise layers
def test_one_by_one_cs_conv_is_a_per_grade_linear_map():
    """Why pointwise="linear" is the same function class: a 1x1 CS-conv's kernel is MVLinear's weight."""
    from cscnn.nn import CliffordSteerableConv, MVLinear

    alg = CliffordAlgebra((-1, 1, 1))
    torch.manual_seed(0)
    conv = CliffordSteerableConv(alg, 3, 2, 1).double()
    w = conv.weight.detach()[..., 0, 0, 0].reshape(2, alg.n_blades, 3, alg.n_blades)  # (o, j, i, m)
    diag = torch.diagonal(w, dim1=1, dim2=3)  # (o, i, blade)
    assert torch.allclose(w, torch.diag_embed(diag).transpose(1, 2), atol=1e-12)  # no blade mixing
    linear = MVLinear(alg, 3, 2).double()
    with torch.no_grad():
        for g in range(alg.n_grades):  # one weight per grade, shared by its blades
            blades = diag[..., alg.blade_slice(g)]
            assert torch.allclose(blades, blades[..., :1].expand_as(blades), atol=1e-12)
            linear.weight[..., g] = blades[..., 0]
        linear.bias.copy_(conv.bias)
    x = torch.randn(2, 3, 4, 4, 4, 8, dtype=torch.float64)
    torch.testing.assert_close(linear(x), conv(x), atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("cls", [CSResNet, CSUNet])
def test_pointwise_linear_models_are_equivariant_and_smaller(cls):
    alg = CliffordAlgebra((1, 1))
    kw = dict(blocks=(1,)) if cls is CSResNet else dict(channel_mults=(1, 2))
    torch.manual_seed(0)
    linear = _double(cls(alg, 2, 1, 4, kernel_size=3, pointwise="linear", **kw, **TINY_KERNEL))
    kernel = cls(alg, 2, 1, 4, kernel_size=3, **kw, **TINY_KERNEL)
    assert count_parameters(linear) < count_parameters(kernel)
    assert "pointwise='linear'" in repr(linear)
    from cscnn.nn import CliffordSteerableConv

    assert all(m.kernel_size > 1 for m in linear.modules() if isinstance(m, CliffordSteerableConv))
    assert_equivariant(linear, alg, _x(alg, 2, (8, 8)), n_samples=8)
    with pytest.raises(ValueError, match="pointwise must be one of"):
        cls(alg, 2, 1, 4, kernel_size=3, pointwise="dense", **kw)
