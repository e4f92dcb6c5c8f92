import itertools

import pytest
import torch
import torch.nn.functional as F

from cscnn import CliffordAlgebra
from cscnn.algebra import grid_symmetries, sample_group_elements
from cscnn.nn import CliffordSteerableConv, CliffordSteerableKernel, kernel_grid
from cscnn.nn.functional import PADDING_MODES, conv4d, pad_nd
from cscnn.testing import equivariance_error, perturb_parameters, transform_field

D = torch.float64
STEER_METRICS = [(1, 1), (1, 1, 1), (-1, 1, 1), (-1, 1, 1, 1), (1, -1)]


def _perturb(module, scale=0.2, seed=0):
    return perturb_parameters(module, scale, seed)


@pytest.mark.parametrize("metric", STEER_METRICS, ids=str)
def test_kernel_steerability(metric):
    torch.manual_seed(0)
    alg = CliffordAlgebra(metric)
    kernel = _perturb(CliffordSteerableKernel(alg, 2, 3, 5).double())
    pts = torch.randn(10, alg.dim, dtype=D) * 0.6
    gs = sample_group_elements(alg, 6, max_rapidity=1.5, generator=torch.Generator().manual_seed(1))
    for g in gs:
        m = alg.outermorphism(g)
        lhs = kernel.evaluate(pts @ g.T)  # K(g v)
        rhs = torch.einsum("ja,poaib,bm->pojim", m, kernel.evaluate(pts), torch.linalg.inv(m))
        assert ((lhs - rhs).abs().max() / rhs.abs().max()) < 1e-10


def test_kernel_is_nontrivial():
    alg = CliffordAlgebra((-1, 1, 1))
    kernel = CliffordSteerableKernel(alg, 2, 2, 5).double()
    k = kernel.evaluate(kernel.grid)  # (P, o, j, i, m)
    assert k.std(0).mean() > 1e-3 * k.abs().mean()  # varies over space
    # maps a vector input blade to scalar, vector and bivector outputs (mixes grades)
    from_vector = k[:, :, :, :, alg.blade_index((1,))].abs().amax((0, 1, 3))
    for grade in (0, 1, 2):
        assert from_vector[alg.blade_slice(grade)].max() > 1e-3
    # known limitation (SPEC 3): from the input s(v) + v the kernel network only reaches span{1, v}
    kmv = kernel._kernel_multivectors(kernel.grid)
    assert kmv[..., alg.blade_slice(2)].abs().max() < 1e-10 * kmv.abs().max()
    assert torch.linalg.matrix_rank(kernel().reshape(16, 16, -1).permute(2, 0, 1)[len(kernel.grid) // 2]) > 4


def test_dense_weight_layout_matches_evaluate():
    alg = CliffordAlgebra((1, 1))
    kernel = CliffordSteerableKernel(alg, 2, 3, 3).double()
    w = kernel()
    assert w.shape == (3 * 4, 2 * 4, 3, 3)
    k = kernel.evaluate(kernel_grid(2, 3))
    # point (a, b) of the grid is w[..., a, b]; row o*4 + j, column i*4 + m
    assert torch.equal(w[1 * 4 + 2, 1 * 4 + 3, 0, 2], k[0 * 3 + 2, 1, 2, 1, 3])
    assert torch.allclose(kernel_grid(2, 5)[0], torch.tensor([-1.0, -1.0], dtype=D))


@pytest.mark.parametrize("metric", [(1,), (1, 1), (1, 1, 1), (-1, 1, 1), (1, -1), (-1, 1, 1, 1)], ids=str)
@pytest.mark.parametrize("padding_mode", PADDING_MODES)
def test_conv_equivariant_under_all_grid_symmetries(metric, padding_mode, device):
    torch.manual_seed(0)
    alg = CliffordAlgebra(metric)
    conv = _perturb(CliffordSteerableConv(alg, 2, 2, 3, padding_mode=padding_mode, num_layers=2,
                                          hidden_channels=4).double()).to(device)
    with torch.no_grad():
        conv.bias.fill_(0.3)
    size = 4 if alg.dim == 4 else 6
    x = torch.randn(1, 2, *([size] * alg.dim), alg.n_blades, dtype=D).to(device)
    syms = grid_symmetries(alg)
    limit = 8 if alg.dim == 4 else 24
    if len(syms) > limit:
        syms = syms[torch.randperm(len(syms), generator=torch.Generator().manual_seed(0))[:limit]]
    worst = max(equivariance_error(conv, alg, x, g) for g in syms)
    assert worst < 1e-10


def test_equivariance_detects_a_broken_conv():
    """A plain torch conv on the flattened channels is not equivariant: the test would catch it."""
    alg = CliffordAlgebra((1, 1))
    w = torch.randn(8, 8, 3, 3, dtype=D)

    def plain(x):
        h = x.permute(0, 1, 4, 2, 3).reshape(1, 8, 6, 6)
        return F.conv2d(h, w, padding=1).reshape(1, 2, 4, 6, 6).permute(0, 1, 3, 4, 2)

    x = torch.randn(1, 2, 6, 6, 4, dtype=D)
    g = grid_symmetries(alg)[3]
    assert equivariance_error(plain, alg, x, g) > 1e-2


def test_transform_field_matches_group_action_on_coordinates():
    alg = CliffordAlgebra((1, 1))
    x = torch.zeros(1, 1, 5, 5, 4, dtype=D)
    x[0, 0, 3, 2, 1] = 1.0  # a vector e0 at coordinates (+1, 0)
    rot = torch.tensor([[0.0, -1.0], [1.0, 0.0]], dtype=D)  # 90 degrees: e0 -> e1
    y = transform_field(alg, rot, x)
    assert y[0, 0, 2, 3, 2] == 1.0 and y.abs().sum() == 1.0  # now e1 at (0, +1)


def test_stride_and_shapes():
    alg = CliffordAlgebra((1, 1))
    conv = CliffordSteerableConv(alg, 3, 5, 3, stride=2)
    y = conv(torch.randn(2, 3, 9, 8, 4))
    assert y.shape == (2, 5, 5, 4, 4)
    one = CliffordSteerableConv(alg, 3, 5, 1)
    assert one(torch.randn(2, 3, 7, 7, 4)).shape == (2, 5, 7, 7, 4)


def test_one_by_one_conv_is_not_just_bias():
    alg = CliffordAlgebra((-1, 1, 1))
    conv = CliffordSteerableConv(alg, 2, 2, 1)
    x = torch.randn(1, 2, 3, 3, 3, 8)
    assert (conv(x) - conv(torch.zeros_like(x))).abs().max() > 1e-3


def test_bias_only_on_scalar():
    alg = CliffordAlgebra((1, 1))
    conv = CliffordSteerableConv(alg, 1, 2, 3)
    with torch.no_grad():
        conv.bias.fill_(2.0)
    y = conv(torch.zeros(1, 1, 4, 4, 4))
    assert torch.all(y[..., 0] == 2.0) and torch.all(y[..., 1:] == 0)


def _eval_conv(seed=0):
    torch.manual_seed(seed)
    return CliffordSteerableConv(CliffordAlgebra((1, 1)), 2, 2, 3).eval()


def _fresh(conv, x):
    """The output with the kernel recomputed from the current parameters (no cache)."""
    with torch.no_grad():
        return conv.train()(x).detach()


def test_eval_cache_is_reused():
    conv, x = _eval_conv(), torch.randn(1, 2, 6, 6, 4)
    calls = []
    conv.kernel.net.register_forward_hook(lambda *a: calls.append(1))
    with torch.no_grad():
        y1, y2, w = conv(x), conv(x), conv.weight
        assert len(calls) == 1 and w is conv.weight  # computed once, then reused
    torch.testing.assert_close(y1, y2)
    torch.testing.assert_close(y1, _fresh(conv, x))


def _ema_update(conv):  # the usual EMA idiom: in place through .data (no version bump)
    for p in conv.parameters():
        p.data.mul_(0.5).add_(torch.ones_like(p), alpha=0.5)


def _optimizer_step(conv):
    opt = torch.optim.SGD(conv.parameters(), lr=0.5)
    conv.train()
    conv(torch.randn(1, 2, 6, 6, 4)).square().sum().backward()
    opt.step()
    conv.eval()


def _load_other(conv):
    conv.load_state_dict(_eval_conv(seed=1).state_dict())


def _replace_parameter(conv):
    conv.kernel.sigma = torch.nn.Parameter(conv.kernel.sigma.detach() * 1.7)


def _replace_deep_parameter(conv):
    layer = conv.kernel.net.layers[0]
    layer.weight = torch.nn.Parameter(layer.weight.detach() + 0.3)


@pytest.mark.parametrize("update", [_ema_update, _optimizer_step, _load_other, _replace_parameter,
                                    _replace_deep_parameter], ids=lambda f: f.__name__.strip("_"))
def test_eval_cache_never_stale(update):
    conv, x = _eval_conv(), torch.randn(1, 2, 6, 6, 4)
    with torch.no_grad():
        before = conv(x)
    update(conv)
    with torch.no_grad():
        after = conv.eval()(x)
    assert not torch.allclose(after, before)
    torch.testing.assert_close(after, _fresh(conv, x), atol=0, rtol=0)


def test_eval_cache_follows_to():
    conv, x = _eval_conv(), torch.randn(1, 2, 6, 6, 4)
    with torch.no_grad():
        y = conv(x)
        conv.double()
        y64 = conv(x.double())
    assert y64.dtype == D
    torch.testing.assert_close(y64.float(), y, atol=1e-5, rtol=1e-5)


def test_kernel_cached_under_inference_mode_is_usable_with_autograd():
    conv, x = _eval_conv(), torch.randn(1, 2, 6, 6, 4)
    with torch.inference_mode():
        conv(x)
    assert not conv.weight.is_inference()
    xg = x.clone().requires_grad_()
    conv.requires_grad_(False)
    conv(xg).square().sum().backward()  # the cached kernel is saved for backward
    assert xg.grad is not None and torch.isfinite(xg.grad).all()


def test_eval_with_grad_enabled_keeps_autograd():
    alg = CliffordAlgebra((1, 1))
    conv = CliffordSteerableConv(alg, 1, 1, 3).eval()
    x = torch.randn(1, 1, 5, 5, 4)
    for _ in range(2):
        conv(x).sum().backward()
    assert conv.kernel.sigma.grad is not None


def test_gradients_reach_every_parameter():
    alg = CliffordAlgebra((-1, 1, 1))
    conv = CliffordSteerableConv(alg, 2, 2, 3)
    conv(torch.randn(1, 2, 5, 5, 5, 8)).square().sum().backward()
    for name, p in conv.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def _conv4d_reference(x, w, stride):
    b, c, *size = x.shape
    k = w.shape[2:]
    out_size = [(s - kk) // stride + 1 for s, kk in zip(size, k)]
    y = torch.zeros(b, w.shape[0], *out_size, dtype=x.dtype)
    for idx in itertools.product(*[range(o) for o in out_size]):
        sl = tuple(slice(i * stride, i * stride + kk) for i, kk in zip(idx, k))
        patch = x[(slice(None), slice(None)) + sl]
        y[(slice(None), slice(None)) + idx] = torch.einsum("bcpqrs,ocpqrs->bo", patch, w)
    return y


@pytest.mark.parametrize("stride", [1, 2])
def test_conv4d_matches_direct_reference(stride):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 6, 5, 6, 5, dtype=D)
    w = torch.randn(4, 3, 3, 3, 3, 3, dtype=D)
    torch.testing.assert_close(conv4d(x, w, stride), _conv4d_reference(x, w, stride))


@pytest.mark.parametrize("mode", ["circular", "reflect", "replicate"])
def test_pad_nd_4d_matches_torch_per_axis(mode):
    x = torch.randn(1, 2, 4, 5, 6, 7, dtype=D)
    y = pad_nd(x, (1, 2, 1, 2), mode)
    # compare the last three axes against torch's own 3-d padding, slice by slice along the first axis
    ref3 = F.pad(x.reshape(1, 8, 5, 6, 7), (2, 2, 1, 1, 2, 2), mode=mode).reshape(1, 2, 4, 9, 8, 11)
    torch.testing.assert_close(y[:, :, 1:-1], ref3)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(kernel_size=4), "must be odd"),
        (dict(kernel_size=0), "positive odd int"),
        (dict(padding_mode="wrap"), "padding_mode must be one of"),
        (dict(stride=0), "stride must be a positive int"),
        (dict(dilation=0), "dilation must be a positive int"),
    ],
)
def test_bad_construction(kwargs, match):
    args = dict(alg=CliffordAlgebra((1, 1)), in_channels=2, out_channels=2, kernel_size=3)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        CliffordSteerableConv(**args)


def test_bad_algebra_dimension():
    with pytest.raises(ValueError, match="dims 1 to 4"):
        CliffordSteerableConv(CliffordAlgebra((1,) * 5), 1, 1, 3)


def test_bad_inputs():
    conv = CliffordSteerableConv(CliffordAlgebra((1, 1, 1)), 2, 2, 3)
    with pytest.raises(ValueError, match=r"\(B, 2, X1, X2, X3, 8\)"):
        conv(torch.randn(1, 2, 5, 5, 8))  # too few spatial axes
    with pytest.raises(ValueError, match=r"\(B, 2, X1, X2, X3, 8\)"):
        conv(torch.randn(1, 2, 5, 5, 5, 4))  # wrong blade axis
    with pytest.raises(ValueError, match=r"\(B, 2, X1, X2, X3, 8\)"):
        conv(torch.randn(1, 3, 5, 5, 5, 8))  # channel mismatch
    with pytest.raises(ValueError, match="points must have shape"):
        conv.kernel.evaluate(torch.randn(4, 2))


def test_float64_and_double_conversion():
    conv = CliffordSteerableConv(CliffordAlgebra((-1, 1)), 1, 1, 3).double()
    assert conv(torch.randn(1, 1, 4, 4, 4, dtype=D)).dtype == D


# ----------------------------------------------------------- torch.nn-style API
@pytest.mark.parametrize("padding, dilation, stride", [("same", 1, 1), ("same", 2, 1), ("valid", 1, 1), (0, 1, 1),
                                                       (2, 2, 2), ("same", 1, 2)])
def test_padding_dilation_stride_match_torch_conv(padding, dilation, stride):
    alg = CliffordAlgebra((1, 1))
    conv = CliffordSteerableConv(alg, 2, 3, 3, stride=stride, padding=padding, dilation=dilation).double()
    x = torch.randn(2, 2, 9, 8, 4, dtype=D)
    pad = {"same": dilation, "valid": 0}.get(padding, padding)
    flat = x.permute(0, 1, 4, 2, 3).reshape(2, 8, 9, 8)
    ref = F.conv2d(flat, conv.weight, conv.dense_bias(), stride=stride, padding=pad, dilation=dilation)
    ref = ref.reshape(2, 3, 4, *ref.shape[2:]).permute(0, 1, 3, 4, 2)
    torch.testing.assert_close(conv(x), ref)
    if padding == "same" and stride == 1:
        assert conv(x).shape == (2, 3, 9, 8, 4)


@pytest.mark.parametrize("metric", [(1, 1), (-1, 1, 1, 1)], ids=str)
def test_dilated_conv_equivariant(metric):
    torch.manual_seed(0)
    alg = CliffordAlgebra(metric)
    conv = _perturb(CliffordSteerableConv(alg, 1, 2, 3, dilation=2, padding_mode="circular", num_layers=2,
                                          hidden_channels=4).double())
    x = torch.randn(1, 1, *([5] * alg.dim), alg.n_blades, dtype=D)
    syms = grid_symmetries(alg)[:8]
    assert max(equivariance_error(conv, alg, x, g) for g in syms) < 1e-10


def test_dilated_4d_matches_reference():
    x = torch.randn(1, 2, 7, 5, 5, 5, dtype=D)
    w = torch.randn(3, 2, 3, 3, 3, 3, dtype=D)
    dilated = torch.zeros(3, 2, 5, 5, 5, 5, dtype=D)
    dilated[:, :, ::2, ::2, ::2, ::2] = w
    torch.testing.assert_close(conv4d(x, w, 1, dilation=2), _conv4d_reference(x, dilated, 1))


def test_factory_kwargs_and_weight_property():
    alg = CliffordAlgebra((-1, 1))
    conv = CliffordSteerableConv(alg, 2, 3, 5, dtype=torch.float64, device="cpu")
    assert {p.dtype for p in conv.parameters()} | {b.dtype for b in conv.buffers()} == {D}
    assert conv.weight.shape == (12, 8, 5, 5) and conv.weight.dtype == D
    with pytest.raises((AttributeError, KeyError)):
        conv.weight = torch.nn.Parameter(torch.zeros(12, 8, 5, 5))
    with pytest.raises(ValueError, match="floating-point"):
        CliffordSteerableConv(alg, 2, 3, 5, dtype=torch.int64)


def test_unknown_keyword_names_conv_and_valid_keywords():
    with pytest.raises(TypeError, match=r"CliffordSteerableConv got unexpected keyword argument\(s\) 'paddding'; "
                                        r"valid keywords: stride, padding, dilation, .*num_layers, hidden_channels"):
        CliffordSteerableConv(CliffordAlgebra((1, 1)), 1, 1, 3, paddding=0)


def test_reset_parameters_reproduces_a_fresh_build():
    alg = CliffordAlgebra((1, 1))
    torch.manual_seed(3)
    fresh = CliffordSteerableConv(alg, 2, 2, 3)
    torch.manual_seed(4)
    other = CliffordSteerableConv(alg, 2, 2, 3)
    with torch.no_grad():
        other.bias.fill_(1.0)
    torch.manual_seed(3)
    other.reset_parameters()
    for (name, a), b in zip(fresh.state_dict().items(), other.state_dict().values()):
        assert torch.equal(a, b), name
    torch.manual_seed(3)
    other.kernel.reset_parameters()  # the kernel alone resets the same way (the conv's bias draws nothing)
    assert torch.equal(other.kernel.init_scale, fresh.kernel.init_scale)


def test_circular_kernel_larger_than_grid_fails_clearly():
    conv = CliffordSteerableConv(CliffordAlgebra((1, 1)), 1, 1, 7, padding_mode="circular")
    with pytest.raises(ValueError, match=r"kernel_size 7 .* larger than the circular grid \(2 points"):
        conv(torch.randn(1, 1, 2, 8, 4))
    assert conv(torch.randn(1, 1, 3, 3, 4)).shape == (1, 1, 3, 3, 4)  # padding 3 = grid: wraps once, fine


@pytest.mark.parametrize("padding", ["full", -1, 1.5, True])
def test_bad_padding(padding):
    with pytest.raises(ValueError, match="padding must be 'same', 'valid' or an int >= 0"):
        CliffordSteerableConv(CliffordAlgebra((1, 1)), 1, 1, 3, padding=padding)
