"""G-FNO (Helwig et al. 2023): exact equivariance under every grid symmetry, periodic and zero-padded
domains, how multivector blades enter, its spectral layer, registry, sizing and the CLI."""

import json

import pytest
import torch

from cscnn import CliffordAlgebra
from cscnn.algebra import count_grid_symmetries
from cscnn.models import DEFAULT_HIDDEN, GFNO, build_model, count_parameters, match_width
from cscnn.models.baselines.gfno import GroupPointwise, GroupSpectralConv, SymmetryGroup
from cscnn.testing import assert_equivariant, equivariance_error, perturb_parameters, sample_elements

D = torch.float64


def _x(alg, channels, grid, batch=2, dtype=D, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, channels, *grid, alg.n_blades, generator=g, dtype=dtype)


def _net(metric, padding_mode="circular", **kw):
    torch.manual_seed(0)
    kw = {"modes": 3, "n_layers": 2, **kw}
    net = GFNO(CliffordAlgebra(metric), 2, 3, 2, padding_mode=padding_mode, **kw).double().eval()
    return perturb_parameters(net, scale=0.1)  # no special values that could hide a broken weight sharing


# ------------------------------------------------------------------- equivariance
@pytest.mark.parametrize("padding_mode", ["circular", "zeros"])
@pytest.mark.parametrize("grid", [(8, 8), (9, 9)])
def test_exactly_p4m_equivariant_in_2d(padding_mode, grid):
    """All 8 symmetries of the square (n_samples=8 draws each once), scalar, vector and pseudoscalar blades
    transformed by their own law: periodic and zero-padded domains alike, even and odd grids."""
    alg = CliffordAlgebra((1, 1))
    assert count_grid_symmetries(alg.metric) == 8
    net = _net((1, 1), padding_mode)
    x = _x(alg, 2, grid)
    gs = sample_elements(alg, 8, generator=torch.Generator().manual_seed(0))
    assert len({tuple(g.flatten().tolist()) for g in gs}) == 8
    err = assert_equivariant(net, alg, x, n_samples=8, rtol=1e-12, generator=torch.Generator().manual_seed(0))
    assert err < 1e-12


@pytest.mark.parametrize("metric,grid", [((1, 1, 1), (5, 5, 5)), ((-1, 1, 1), (4, 6, 6)), ((1,), (7,))])
def test_equivariant_in_other_dimensions(metric, grid):
    """3D: the full octahedral group O_h (48 elements); spacetime: the 16 symmetries that keep time on its
    axis; 1D: the reflection."""
    alg = CliffordAlgebra(metric)
    n = count_grid_symmetries(metric)
    net = _net(metric, modes=2, n_layers=1)
    assert len(net.group) == n
    assert assert_equivariant(net, alg, _x(alg, 2, grid, batch=1), n_samples=n, rtol=1e-12) < 1e-12


def test_blades_fed_as_scalars_break_equivariance():
    """The check can fail: lifting every blade as if it were a scalar (the vector and pseudoscalar blades
    left untransformed, as when a multivector field is flattened into plain channels) is not equivariant."""
    alg = CliffordAlgebra((1, 1))
    net = _net((1, 1))
    net.group.rho_inv.copy_(torch.eye(4, dtype=D).expand(8, 4, 4))
    x = _x(alg, 2, (8, 8))
    rot90 = torch.tensor([[0.0, -1.0], [1.0, 0.0]], dtype=D)
    assert equivariance_error(net, alg, x, rot90) > 1e-2
    with pytest.raises(AssertionError, match="equivariance error"):
        assert_equivariant(net, alg, x, n_samples=8)


def test_periodic_model_commutes_with_circular_shifts_zero_padded_does_not():
    """padding_mode="circular": the whole model is a periodic convolution (every translation of the torus is
    a symmetry too); "zeros" pads the domain symmetrically, which keeps the grid symmetries about the centre
    (test above) but not the shifts."""
    x = _x(CliffordAlgebra((1, 1)), 2, (8, 8))
    for mode, exact in (("circular", True), ("zeros", False)):
        net = _net((1, 1), mode)
        with torch.no_grad():
            err = (net(torch.roll(x, (3, 5), (2, 3))) - torch.roll(net(x), (3, 5), (2, 3))).abs().max().item()
        assert (err < 1e-12) == exact, (mode, err)


# ------------------------------------------------------------------- layers
def test_group_tables():
    """inv_mul is h^-1 k and rho is a representation: rho(h^-1 k) = rho(h)^-1 rho(k)."""
    group = SymmetryGroup(CliffordAlgebra((1, 1))).double()
    el, rho = group.elements, group.rho
    for h in range(len(group)):
        for k in range(len(group)):
            hk = group.inv_mul[h, k]
            assert torch.equal(el[hk], el[h].T @ el[k])
            assert torch.allclose(rho[hk], group.rho_inv[h] @ rho[k])
    # the scalar blade is the only one every element fixes (the only place for an output bias)
    fixed = (rho.diagonal(dim1=-2, dim2=-1) == 1).all(0)
    assert fixed.tolist() == [True, False, False, False]


def _plane_wave(kx, ky, size=8):
    i = torch.arange(size, dtype=D)
    return torch.cos(2 * torch.pi * (kx * i[:, None] + ky * i[None, :]) / size)


def test_spectral_conv_keeps_only_its_window_and_is_real():
    """Frequencies with |k| >= modes on an axis are cut; those inside pass, and a real input gives a real
    output (the coefficients are Hermitian by construction): parameters = one real per window frequency."""
    torch.manual_seed(0)
    group = SymmetryGroup(CliffordAlgebra((1, 1)))
    conv = GroupSpectralConv(group, 1, 1, modes=3).double()
    assert count_parameters(conv) == 1 * 1 * 8 * 5 * 5
    for (kx, ky), passes in (((2, 1), True), ((-2, 2), True), ((3, 0), False), ((1, 4), False)):
        x = _plane_wave(kx, ky).expand(1, 1, 8, 8, 8).contiguous()
        y = conv(x)
        assert y.dtype == D and y.shape == x.shape
        assert (y.abs().max() > 1e-3) == passes, (kx, ky)
    # the window is cut to what a small grid holds: modes=3 on a 4-cell axis keeps |k| <= 1
    assert conv(torch.randn(2, 1, 8, 4, 4, dtype=D)).shape == (2, 1, 8, 4, 4)


def test_group_pointwise_is_the_regular_representation_convolution():
    """f_out(h) = sum_k W(h^-1 k) f_in(k): a shift of the input over the group is the same shift of the output."""
    torch.manual_seed(0)
    group = SymmetryGroup(CliffordAlgebra((1, 1))).double()
    layer = GroupPointwise(group, 3, 2).double()
    f = torch.randn(2, 3, 8, 5, 5, dtype=D)
    for g in range(8):
        # (g . f)(h) = f(g^-1 h): index g^-1 h is inv_mul[g, h]
        gf = f[:, :, group.inv_mul[g]]
        torch.testing.assert_close(layer(gf), layer(f)[:, :, group.inv_mul[g]], rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------- shapes, registry, sizing
@pytest.mark.parametrize("metric,grid", [((1, 1), (6, 6)), ((1, 1), (5, 7)), ((1, 1, 1), (4, 4, 4))])
def test_forward_backward_shapes(metric, grid):
    alg = CliffordAlgebra(metric)
    net = build_model("gfno", alg, 3, 2, 2, modes=2, n_layers=1)
    x = _x(alg, 3, grid, dtype=torch.float32).requires_grad_()
    y = net(x)
    assert y.shape == (2, 2, *grid, alg.n_blades) and y.dtype == torch.float32
    y.square().mean().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(p.grad is not None for p in net.parameters())
    assert torch.equal(net.from_native(net.to_native(x)), x)


def test_registry_sizing_and_paper_width():
    alg = CliffordAlgebra((1, 1))
    assert DEFAULT_HIDDEN["gfno"] == 15
    with torch.device("meta"):
        paper = build_model("gfno", alg, 4, 1, modes=16)
        cs = build_model("cs_resnet", alg, 4, 1)
    assert count_parameters(paper) == 6_948_736  # docs/models.md
    assert match_width("gfno", alg, 4, 1, count_parameters(cs), modes=16) == 15
    # parameters: lifting, 4 x (spectral + 3 group 1x1), head, projection
    h, n, w = 15, 8, 31 * 31
    expected = (h * 4 * 4 + h) + 4 * (h * h * n * w + 3 * (h * h * n + h)) + (4 * h * h * n + 4 * h) + 4 * h * 4 + 1
    assert count_parameters(paper) == expected


@pytest.mark.parametrize("kwargs, message", [
    ({"padding_mode": "reflect"}, "padding_mode must be one of"),
    ({"padding_mode": ["circular", "zeros"]}, "padding_mode must be one of"),
    ({"modes": 0}, "modes"),
    ({"domain_padding": 2.0}, "domain_padding"),
    ({"activation": "tanh"}, "activation"),
])
def test_bad_options_raise_one_line_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_model("gfno", (1, 1), 1, 1, 2, **kwargs)


def test_meta_build_materialises_to_a_normal_build():
    torch.manual_seed(0)
    normal = GFNO((1, 1), 2, 1, 2, modes=2, n_layers=1)
    with torch.device("meta"):
        meta = GFNO((1, 1), 2, 1, 2, modes=2, n_layers=1)
    meta.to_empty(device="cpu")
    torch.manual_seed(0)
    meta.reset_parameters()
    ref = normal.state_dict()
    for key, t in meta.state_dict().items():
        assert torch.equal(t, ref[key]), key
    x = _x(CliffordAlgebra((1, 1)), 2, (6, 6), dtype=torch.float32)
    assert torch.equal(meta(x), normal(x))


# ------------------------------------------------------------------- CLI
def test_cli_train_evaluate_equivariance(tmp_path, capsys):
    pytest.importorskip("lightning")
    pytest.importorskip("h5py")
    import yaml

    from cscnn.cli import main
    from cscnn.training.synthetic import write_synthetic_splits

    data = write_synthetic_splits("navier-stokes-periodic", tmp_path / "data", 3, 1, 1, steps=6, size=8)
    cfg = yaml.safe_load(open("configs/cpu/nsp_gfno.yaml"))
    cfg.update(out=str(tmp_path / "run"))
    cfg["data"].update(dir=str(data), batch_size=4, time_history=2)
    cfg["data"].pop("generate")
    cfg["model"]["kwargs"].update(modes=3)
    cfg["trainer"].update(max_steps=2, val_check_interval=2, limit_val_batches=1, max_time=None)
    cfg["eval"].update(num_rollout_trajectories=1)
    (tmp_path / "g.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["train", "--config", str(tmp_path / "g.yaml"), "--evaluate", "--no-progress"]) == 0
    assert "training done: step 2" in capsys.readouterr().out
    assert main(["equivariance", str(tmp_path / "run"), "--num", "8", "--json", str(tmp_path / "eq.json")]) == 0
    eq = json.loads((tmp_path / "eq.json").read_text())
    assert eq["num_elements"] == 8 and eq["worst"] < 1e-5
