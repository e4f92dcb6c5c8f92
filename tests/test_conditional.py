"""Conditional Clifford-steerable convolutions (SPEC 3b): summary, steerability, equivariance, batching."""

import pytest
import torch

from cscnn import CliffordAlgebra
from cscnn.algebra import grid_symmetries, sample_group_elements
from cscnn.models import CSResNet, build_model
from cscnn.nn import (
    CliffordSteerableConv,
    CliffordSteerableKernel,
    ConditionalCliffordSteerableConv,
    ConditioningSummary,
    freeze,
    inscribed_mask,
)
from cscnn.nn.conv import channels_to_fields, fields_to_channels
from cscnn.nn.functional import conv4d, conv_nd
from cscnn.testing import assert_equivariant, equivariance_error, perturb_parameters, transform_field

D = torch.float64
GRIDS = [((1, 1), (7, 7)), ((1, 1, 1), (5, 5, 5)), ((-1, 1, 1), (4, 5, 5)), ((-1, 1, 1, 1), (3, 4, 4, 4))]


def _perturb(module, scale=0.3, seed=0):
    return perturb_parameters(module, scale, seed)


def _conv(alg, c_in=2, c_out=2, k=3, **kw):
    return _perturb(ConditionalCliffordSteerableConv(alg, c_in, c_out, k, num_layers=2, hidden_channels=4,
                                                     dtype=D, **kw))


def test_inscribed_mask_is_normalised_and_symmetric():
    w = inscribed_mask((6, 6))
    assert torch.isclose(w.sum(), torch.tensor(1.0, dtype=D))
    assert w[0, 0] == 0 and w[3, 3] > 0  # corners outside, centre inside
    assert torch.equal(w, w.flip(0)) and torch.equal(w, w.flip(1)) and torch.equal(w, w.T)
    e = inscribed_mask((3, 5, 5))  # ellipsoid for unequal sides: still reflection symmetric
    assert all(torch.equal(e, e.flip(a)) for a in range(3)) and torch.equal(e, e.transpose(1, 2))
    assert inscribed_mask((1, 1)).item() == 1.0


@pytest.mark.parametrize("mode", ["channels", "normalized", "averaged"])
@pytest.mark.parametrize("metric,size", GRIDS, ids=str)
def test_summary_transforms_like_a_multivector(metric, size, mode):
    alg = CliffordAlgebra(metric)
    summary = ConditioningSummary(alg, 3, mode, dtype=D)
    x = torch.randn(2, 3, *size, alg.n_blades, dtype=D)
    c = summary(x)
    assert c.shape == (2, 1 if mode == "averaged" else 3, alg.n_blades)
    for g in grid_symmetries(alg)[1:4]:
        assert torch.allclose(summary(transform_field(alg, g, x)), alg.act(g, c), atol=1e-12)
    if mode == "channels":  # the plain masked mean
        w = inscribed_mask(size)
        assert torch.allclose(c[1, 2], (x[1, 2] * w[..., None]).sum(tuple(range(alg.dim))))
    else:  # MVLayerNorm: unit mean invariant norm over the condition channels
        assert torch.allclose(alg.norm(c).mean(1), torch.ones(2, dtype=D), atol=1e-5)


@pytest.mark.parametrize("head", ["left", "two_sided"])
@pytest.mark.parametrize("metric", [g[0] for g in GRIDS], ids=str)
def test_conditional_kernel_steerability(metric, head):
    """K(g v; rho(g) c) = rho(g) K(v; c) rho(g)^-1 for sampled O(p,q) elements incl. boosts and reflections."""
    torch.manual_seed(0)
    alg = CliffordAlgebra(metric)
    kernel = _perturb(CliffordSteerableKernel(alg, 2, 3, 3, head=head, condition_channels=2, hidden_channels=6,
                                              dtype=D))
    pts = torch.randn(5, alg.dim, dtype=D) * 0.6
    cond = torch.randn(2, 2, alg.n_blades, dtype=D)
    gs = sample_group_elements(alg, 4, max_rapidity=1.2, generator=torch.Generator().manual_seed(1))
    assert (torch.linalg.det(gs) < 0).any()
    for g in gs:
        m = alg.outermorphism(g)
        lhs = kernel.evaluate(pts @ g.T, cond @ m.T)
        rhs = torch.einsum("ja,bpoaic,cm->bpojim", m, kernel.evaluate(pts, cond), torch.linalg.inv(m))
        assert ((lhs - rhs).abs().max() / rhs.abs().max()) < 1e-9


def test_conditional_kernel_reaches_higher_grades():
    """With a condition the kernel multivectors leave span{1, v} (the plain kernel's limitation)."""
    alg = CliffordAlgebra((1, 1, 1))
    kernel = _perturb(CliffordSteerableKernel(alg, 1, 1, 3, condition_channels=1, dtype=D))
    cond = torch.randn(1, 1, alg.n_blades, dtype=D)
    with torch.no_grad():
        k = kernel._kernel_multivectors(kernel.grid, cond)
    assert k[..., alg.blade_slice(2)].abs().max() > 1e-3 * k.abs().max()


@pytest.mark.parametrize("metric,size", GRIDS, ids=str)
@pytest.mark.parametrize("padding_mode", ["zeros", "circular", "reflect", "replicate"])
def test_conditional_conv_grid_equivariance(metric, size, padding_mode):
    torch.manual_seed(0)
    alg = CliffordAlgebra(metric)
    conv = _conv(alg, padding_mode=padding_mode)
    x = torch.randn(2, 2, *size, alg.n_blades, dtype=D)
    gs = grid_symmetries(alg)
    for g in gs[torch.randperm(len(gs), generator=torch.Generator().manual_seed(3))[:3]]:
        assert equivariance_error(conv, alg, x, g) < 1e-10


@pytest.mark.parametrize("metric,size", [GRIDS[0], GRIDS[3]], ids=str)
def test_per_sample_kernels_equal_single_sample_ones(metric, size, device):
    alg = CliffordAlgebra(metric)
    conv = _conv(alg, 2, 3, padding_mode="reflect", head="two_sided").to(device)
    x = torch.randn(3, 2, *size, alg.n_blades, dtype=D).to(device)
    with torch.no_grad():
        w, y = conv.sample_weights(x), conv(x)
        assert w.shape == (3, 3 * alg.n_blades, 2 * alg.n_blades, *([3] * alg.dim))
        for b in range(3):
            assert torch.allclose(w[b], conv.sample_weights(x[b:b + 1])[0], atol=1e-13)
            assert torch.allclose(y[b], conv(x[b:b + 1])[0], atol=1e-12)
            # and the grouped convolution equals an ordinary convolution with that sample's kernel
            ref = conv_nd(fields_to_channels(x[b:b + 1]), w[b], 1, 1, "reflect", conv.dense_bias())
            assert torch.allclose(y[b], channels_to_fields(ref, alg.n_blades)[0], atol=1e-12)


def test_one_kernel_network_call_per_forward():
    alg = CliffordAlgebra((1, 1))
    conv = _conv(alg)
    calls = []
    conv.kernel.net.register_forward_hook(lambda m, i, o: calls.append(i[0].shape))
    conv(torch.randn(4, 2, 6, 6, 4, dtype=D))
    assert len(calls) == 1 and calls[0] == (4 * 9, 1 + 2, 4)  # B * k^2 points, [s+v, c_1, c_2]


@pytest.mark.parametrize("summary,width", [("averaged", 1), ("normalized", 3)])
def test_summary_mode_sets_network_width(summary, width):
    conv = ConditionalCliffordSteerableConv((-1, 1, 1), 3, 2, 3, summary=summary, num_layers=2)
    assert conv.kernel.condition_channels == width and conv.summary.out_channels == width
    assert conv.kernel.net.layers[0].in_channels == 1 + width
    assert conv(torch.randn(2, 3, 4, 4, 4, 8)).shape == (2, 2, 4, 4, 4, 8)


def test_conditional_model_activations_stay_bounded_at_init():
    """The conditional kernel is calibrated at a unit-size condition, so a deep conditional model keeps
    its activations near the plain model's scale (calibrated at c = 0, outputs here were 40-100x larger)."""
    torch.manual_seed(0)
    low = torch.randn(2, 16, 4, 4)
    x = torch.nn.functional.interpolate(low, size=(16, 16), mode="bilinear").reshape(2, 4, 4, 16, 16)
    x = (x / x.std()).permute(0, 1, 3, 4, 2).contiguous()  # smooth fields: non-zero disk means
    stds = {}
    for summary in ("channels", "normalized"):
        torch.manual_seed(1)
        net = CSResNet((1, 1), 4, 1, 4, blocks=(1, 1), kernel_size=3, kernel_num_layers=2, conditional=True,
                       condition_summary=summary)
        with torch.no_grad():
            stds[summary] = float(net(x).std())
    assert all(0.01 < s < 5 for s in stds.values()), stds


@pytest.mark.parametrize("metric", [(1,), (-1,)], ids=str)
def test_conditional_conv_1d(metric):
    alg = CliffordAlgebra(metric)
    conv = _conv(alg, 2, 3, padding_mode="reflect")
    x = torch.randn(2, 2, 9, 2, dtype=D)
    assert conv(x).shape == (2, 3, 9, 2)
    assert_equivariant(conv, alg, x, n_samples=2)


def test_stride_dilation_and_shapes_like_the_plain_conv():
    alg = CliffordAlgebra((1, 1))
    x = torch.randn(2, 2, 9, 9, 4)
    for kw in ({"stride": 2}, {"dilation": 2}, {"padding": "valid"}, {"padding": 1, "padding_mode": "circular"}):
        plain = CliffordSteerableConv(alg, 2, 3, 3, num_layers=2, **kw)
        cond = ConditionalCliffordSteerableConv(alg, 2, 3, 3, num_layers=2, **kw)
        assert cond(x).shape == plain(x).shape


def test_conditional_conv_errors_and_freeze():
    conv = ConditionalCliffordSteerableConv((1, 1), 1, 1, 3, num_layers=2)
    with pytest.raises(TypeError, match="per-sample"):
        _ = conv.weight
    with pytest.raises(TypeError, match="condition_channels"):
        ConditionalCliffordSteerableConv((1, 1), 1, 1, 3, condition_channels=2)
    with pytest.raises(TypeError, match="use ConditionalCliffordSteerableConv"):
        CliffordSteerableConv((1, 1), 1, 1, 3, condition_channels=2)
    with pytest.raises(ValueError, match="summary"):
        ConditionalCliffordSteerableConv((1, 1), 1, 1, 3, summary="max")
    with pytest.raises(ValueError, match=r"condition of shape \(B, 1, 4\)"):
        conv.kernel()
    with pytest.raises(ValueError, match="no condition"):
        CliffordSteerableKernel((1, 1), 1, 1, 3).evaluate(torch.zeros(1, 2), torch.zeros(1, 1, 4))
    with pytest.raises(ValueError, match="expects input of shape"):
        conv(torch.randn(2, 2, 5, 5, 4))
    frozen = freeze(torch.nn.Sequential(conv, CliffordSteerableConv((1, 1), 1, 1, 3, num_layers=2)))
    assert isinstance(frozen[0], ConditionalCliffordSteerableConv)  # left as it is
    assert not isinstance(frozen[1], CliffordSteerableConv)


def test_gradients_reach_the_summary_path():
    alg = CliffordAlgebra((1, 1))
    conv = ConditionalCliffordSteerableConv(alg, 2, 2, 3, num_layers=2, summary="averaged")
    x = torch.randn(2, 2, 6, 6, 4, requires_grad=True)
    conv(x).pow(2).sum().backward()
    assert conv.summary.norm.weight.grad is not None and conv.summary.norm.weight.grad.abs() > 0
    assert all(p.grad is not None for p in conv.kernel.parameters())


def test_conv4d_groups_match_separate_convolutions():
    x = torch.randn(2, 6, 5, 4, 4, 4, dtype=D)
    w = torch.randn(4, 3, 3, 3, 3, 3, dtype=D)
    y = conv4d(x, w, groups=2)
    ref = torch.cat([conv4d(x[:, :3], w[:2]), conv4d(x[:, 3:], w[2:])], 1)
    assert torch.allclose(y, ref, atol=1e-12)
    with pytest.raises(ValueError, match="groups"):
        conv4d(x, w, groups=3)


@pytest.mark.parametrize("name", ["cond_cs_resnet", "cond_cs_unet"])
@pytest.mark.parametrize("metric", [(1, 1), (-1, 1, 1)], ids=str)
def test_conditional_models_equivariance(name, metric):
    torch.manual_seed(0)
    alg = CliffordAlgebra(metric)
    kw = {"blocks": [1], "kernel_size": 3} if name == "cond_cs_resnet" else {"channel_mults": [1, 2], "kernel_size": 3}
    net = build_model(name, alg, 2, 1, 3, kernel_num_layers=2, kernel_hidden_channels=4, **kw).double()
    convs = [m for m in net.modules() if isinstance(m, CliffordSteerableConv)]
    assert convs and all(isinstance(c, ConditionalCliffordSteerableConv) for c in convs)  # 1x1 ones too
    x = torch.randn(2, 2, *([4] * alg.dim), alg.n_blades, dtype=D)
    assert_equivariant(net, alg, x, n_samples=4, generator=torch.Generator().manual_seed(0))


def test_conditional_resnet_options():
    net = CSResNet((-1, 1, 1), 1, 1, 2, blocks=(1,), kernel_size=3, kernel_num_layers=2, conditional=True,
                   condition_summary="averaged", kernel_head="two_sided")
    convs = [m for m in net.modules() if isinstance(m, ConditionalCliffordSteerableConv)]
    assert all(c.summary.mode == "averaged" and c.kernel.head == "two_sided" for c in convs)
    lin = CSResNet((1, 1), 1, 1, 2, blocks=(1,), kernel_size=3, kernel_num_layers=2, conditional=True,
                   pointwise="linear")
    assert sum(isinstance(m, ConditionalCliffordSteerableConv) for m in lin.modules()) == 2  # the k x k convs
    with pytest.raises(ValueError, match="conditional"):
        CSResNet((1, 1), 1, 1, 2, conditional="yes")
