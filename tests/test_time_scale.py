"""The kernel grid's ``time_scale``: taps at (time_scale * t, x, y), the same kernel function, exact
steerability at the scaled taps under boosts and reflections, exact grid symmetries (time reversal
included) of the conv and the CS-ResNet, and the errors for bad values."""

from __future__ import annotations

import math

import pytest
import torch

from cscnn import CliffordAlgebra
from cscnn.algebra import sample_group_elements
from cscnn.models import CSResNet, CSUNet, build_model
from cscnn.nn import CliffordSteerableConv, CliffordSteerableKernel
from cscnn.nn.kernel import kernel_grid
from cscnn.nn.kernel_bank import kernel_group_key
from cscnn.testing import assert_equivariant, perturb_parameters

D = torch.float64
SPACETIME = (-1, 1, 1)


def _kernel(time_scale, seed=0):
    torch.manual_seed(seed)
    return perturb_parameters(CliffordSteerableKernel(SPACETIME, 2, 3, 3, hidden_channels=6, time_scale=time_scale,
                                                      dtype=D), 0.3, seed)


def test_dense_kernel_samples_the_same_function_at_scaled_taps():
    """K_s() holds K at (s t, x, y) / (k // 2): equal to the unscaled kernel's function evaluated there."""
    scaled, plain = _kernel(0.25), _kernel(1.0)
    plain.load_state_dict(scaled.state_dict())  # same parameters and init scale
    grid = kernel_grid(3, 3, D)
    assert torch.equal(scaled.grid[:, 1:], grid[:, 1:]) and torch.equal(scaled.grid[:, 0], 0.25 * grid[:, 0])
    pts = grid * torch.tensor([0.25, 1.0, 1.0], dtype=D)
    want = plain.evaluate(pts)  # (P, o, j, i, m)
    assert torch.equal(scaled.evaluate(pts), want)
    dense = scaled()  # (o*n, i*n, k, k, k)
    n = 8
    ref = want.movedim(0, -1).reshape(3 * n, 2 * n, 3, 3, 3)
    torch.testing.assert_close(dense, ref, rtol=1e-12, atol=1e-12)
    assert not torch.allclose(dense, plain())  # the taps moved: another dense kernel


@torch.no_grad()
def test_scaled_taps_are_steerable_under_boosts_and_reflections():
    """K(g v) = rho(g) K(v) rho(g)^-1 at the scaled taps v, for sampled O(1,2) elements."""
    alg = CliffordAlgebra(SPACETIME)
    kernel = _kernel(0.125, seed=1)
    pts = kernel.grid
    gs = sample_group_elements(alg, 6, max_rapidity=1.2, generator=torch.Generator().manual_seed(2))
    assert (torch.linalg.det(gs) < 0).any() and (gs[:, 0, 0].abs() > 1.05).any()  # reflections and boosts
    for g in gs:
        m = alg.outermorphism(g)
        lhs = kernel.evaluate(pts @ g.T)
        rhs = torch.einsum("ja,poaib,bm->pojim", m, kernel.evaluate(pts), torch.linalg.inv(m))
        assert float((lhs - rhs).abs().max() / rhs.abs().max()) < 1e-10


@pytest.mark.parametrize("time_scale", [0.25, 2.0])
def test_conv_and_cs_resnet_keep_every_grid_symmetry(time_scale):
    """All 16 grid symmetries of a (T, X, Y) grid, time reversal included, stay exact."""
    alg = CliffordAlgebra(SPACETIME)
    torch.manual_seed(0)
    conv = perturb_parameters(CliffordSteerableConv(alg, 2, 2, 3, time_scale=time_scale, hidden_channels=6).double())
    x = torch.randn(2, 2, 5, 6, 6, 8, dtype=D)
    assert assert_equivariant(conv, alg, x, n_samples=16) < 1e-10
    net = perturb_parameters(CSResNet(alg, 2, 1, 3, blocks=(1,), kernel_size=3, norm=False, time_scale=time_scale,
                                      kernel_num_layers=2, kernel_hidden_channels=4).double())
    assert net.time_scale == time_scale and f"time_scale={time_scale}" in repr(net)
    assert all(m.time_scale == time_scale for m in net.modules() if isinstance(m, CliffordSteerableKernel))
    assert assert_equivariant(net, alg, x, n_samples=16) < 1e-10
    plain = CSResNet(alg, 2, 1, 3, blocks=(1,), kernel_size=3, norm=False, kernel_num_layers=2,
                     kernel_hidden_channels=4).double()
    plain.load_state_dict(net.state_dict())
    assert not torch.allclose(plain(x), net(x))


def test_cs_unet_takes_time_scale_at_every_level():
    """CSUNet passes time_scale to every CS-conv (pooling halves every axis, so one scale serves all levels) and
    keeps every grid symmetry of (T, X, Y), time reversal included."""
    alg = CliffordAlgebra(SPACETIME)
    torch.manual_seed(0)
    net = perturb_parameters(CSUNet(alg, 1, 1, 2, channel_mults=(1, 2), kernel_size=3, norm=False, time_scale=0.25,
                                    kernel_num_layers=2, kernel_hidden_channels=4).double())
    kernels = [m for m in net.modules() if isinstance(m, CliffordSteerableKernel)]
    assert kernels and all(k.time_scale == 0.25 for k in kernels) and "time_scale=0.25" in repr(net)
    x = torch.randn(1, 1, 4, 4, 4, 8, dtype=D)
    assert assert_equivariant(net, alg, x, n_samples=16) < 1e-10
    with pytest.raises(ValueError, match="time_scale must be a finite number > 0"):
        CSUNet(alg, 1, 1, 2, kernel_size=3, time_scale=0.0)


def test_registry_passes_time_scale_and_the_bank_keeps_scales_apart():
    model = build_model("cs_resnet", SPACETIME, 1, 1, 2, blocks=(1,), kernel_size=3, time_scale=0.5)
    assert model.time_scale == 0.5
    a, b = _kernel(0.25), _kernel(1.0)
    assert kernel_group_key(a) != kernel_group_key(b)


@pytest.mark.parametrize("bad", [0, -0.5, math.inf, math.nan, True, "0.25", None])
def test_bad_time_scale_is_one_line_error(bad):
    with pytest.raises(ValueError, match=r"^time_scale must be a finite number > 0 \(c dt / dx of the data\), got"):
        CliffordSteerableKernel(SPACETIME, 1, 1, 3, time_scale=bad)
    with pytest.raises(ValueError, match="time_scale must be a finite number > 0"):
        CSResNet(SPACETIME, 1, 1, 2, blocks=(1,), kernel_size=3, time_scale=bad)
