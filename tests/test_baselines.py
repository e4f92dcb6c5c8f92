"""Baselines behind the multivector-field interface: adapters, cliffordlayers, escnn, neuraloperator."""

import subprocess
import sys

import pytest
import torch

from cscnn import CliffordAlgebra
from cscnn.models import MODELS, build_model, count_parameters
from cscnn.models.baselines import channels_to_mv, mv_to_channels
from cscnn.testing import assert_equivariant, equivariance_error


def _x(alg, channels, grid, batch=2, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, channels, *grid, alg.n_blades, generator=g, dtype=dtype)


def _forward_backward(net, alg, c_in, c_out, grid, dtype=torch.float32):
    x = _x(alg, c_in, grid, dtype=dtype).requires_grad_()
    y = net(x)
    assert y.shape == (2, c_out, *grid, alg.n_blades) and y.dtype == dtype
    y.square().mean().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert net.alg == alg


# ------------------------------------------------------------------- adapters
@pytest.mark.parametrize("grid", [(5,), (3, 4), (2, 3, 4), (2, 2, 3, 2)])
def test_flat_adapter_round_trip(grid):
    n = 2 ** len(grid)
    x = torch.randn(2, 3, *grid, n)
    flat = mv_to_channels(x)
    assert flat.shape == (2, 3 * n, *grid)
    assert torch.equal(flat[:, 1 * n + (n - 1)], x[:, 1, ..., n - 1])  # channel c * n_blades + blade
    assert torch.equal(channels_to_mv(flat, n), x)
    with pytest.raises(ValueError, match="multiple"):
        channels_to_mv(torch.randn(1, 5, 3, 3), 4)


def test_resnet_and_registry_models_round_trip_layout():
    alg = CliffordAlgebra((1, 1, 1))
    net = build_model("resnet", alg, 2, 2, 4, blocks=(1,), kernel_size=3)
    x = _x(alg, 2, (2, 3, 2))
    assert torch.equal(net.from_native(net.to_native(x)), x)


# ------------------------------------------------------------- Clifford ResNet
@pytest.mark.parametrize("metric,grid", [((1, 1), (6, 5)), ((1, 1, 1), (3, 4, 3)), ((-1, 1, 1), (3, 3, 3)),
                                         ((1,), (7,))])
def test_clifford_resnet_forward_backward(metric, grid):
    pytest.importorskip("cliffordlayers", reason="cliffordlayers missing: pip install cscnn[baselines]")
    alg = CliffordAlgebra(metric)
    net = build_model("clifford_resnet", alg, 3, 2, 2, blocks=(1,), kernel_size=3, padding_mode="circular")
    _forward_backward(net, alg, 3, 2, grid)
    assert torch.equal(net.from_native(net.to_native(_x(alg, 3, grid))), _x(alg, 3, grid))


@pytest.mark.parametrize("metric", [(1, -1), (1, 1, 1), (-1, 1, 1)])
def test_cliffordlayers_blade_order_matches_ours(metric):
    """A 1x1 cliffordlayers convolution is x * w (geometric product) in our blade order: the
    identity adapter is right."""
    cc = pytest.importorskip("cliffordlayers.nn.modules.cliffordconv",
                             reason="cliffordlayers missing: pip install cscnn[baselines]")
    alg = CliffordAlgebra(metric)
    cls = cc.CliffordConv2d if alg.dim == 2 else cc.CliffordConv3d
    conv = cls(list(metric), 1, 1, kernel_size=1, bias=False).double()
    w = torch.stack([p.reshape(()) for p in conv.weight])
    x = _x(alg, 1, (3,) * alg.dim)
    assert torch.allclose(conv(x), alg.geometric_product(x, w), atol=1e-12)


def test_clifford_resnet_options():
    pytest.importorskip("cliffordlayers", reason="cliffordlayers missing: pip install cscnn[baselines]")
    alg = CliffordAlgebra((1, 1))
    plain = build_model("clifford_resnet", alg, 1, 1, 2, blocks=(1,), kernel_size=3, norm=False)
    normed = build_model("clifford_resnet", alg, 1, 1, 2, blocks=(1,), kernel_size=3, norm=True)
    assert count_parameters(normed) > count_parameters(plain)
    with pytest.raises(ValueError, match="dims 1 to 3"):
        build_model("clifford_resnet", (-1, 1, 1, 1), 1, 1, 2)


# ------------------------------------------------------------- escnn steerable
@pytest.mark.parametrize("metric,grid", [((1, 1), (6, 6)), ((1, 1, 1), (4, 4, 4))])
def test_steerable_resnet_forward_backward_and_equivariance(metric, grid):
    pytest.importorskip("escnn", reason="escnn missing: pip install cscnn[baselines]")
    torch.manual_seed(0)
    alg = CliffordAlgebra(metric)
    net = build_model("steerable_resnet", alg, 2, 1, 1, blocks=(1,), kernel_size=3)
    _forward_backward(net, alg, 2, 1, grid)
    # escnn samples its kernel bases in single precision, hence ~1e-8 rather than 1e-15
    net = net.double().eval()
    x = _x(alg, 2, grid, batch=1)
    assert_equivariant(net, alg, x, n_samples=8, rtol=1e-5, generator=torch.Generator().manual_seed(0))
    # the mapping is not vacuous: the same network with a wrong vector mapping is not equivariant
    net.blade_map = net.blade_map.clone()
    net.blade_map[1:3] = -net.blade_map[1:3].flip(0)  # escnn's x and y from our (-e1, -e0): a reflected frame
    rot = torch.zeros(alg.dim, alg.dim, dtype=torch.float64)
    rot[0, 1], rot[1, 0] = -1.0, 1.0
    if alg.dim == 3:
        rot[2, 2] = 1.0
    assert equivariance_error(net, alg, x, rot) > 1e-3


def test_steerable_resnet_adapter_round_trip_and_metric_error():
    pytest.importorskip("escnn", reason="escnn missing: pip install cscnn[baselines]")
    from cscnn.models.baselines.steerable_resnet import blade_map

    for dim in (2, 3):
        m = blade_map(dim)
        assert torch.equal(m @ m.T, torch.eye(2**dim, dtype=torch.float64))
    alg = CliffordAlgebra((1, 1))
    net = build_model("steerable_resnet", alg, 2, 2, 1, blocks=(0,), kernel_size=3)
    x = _x(alg, 2, (3, 4), dtype=torch.float32)
    assert torch.allclose(net.from_native(net.to_native(x)), x)
    with pytest.raises(ValueError, match="Euclidean"):
        build_model("steerable_resnet", (-1, 1, 1), 1, 1, 1)
    # escnn shares cached basis modules between models: converting one must not convert another
    other = build_model("steerable_resnet", alg, 2, 2, 1, blocks=(0,), kernel_size=3).double()
    assert net(x).dtype == torch.float32 and other(x.double()).dtype == torch.float64
    fast = build_model("steerable_resnet", alg, 2, 2, 1, blocks=(0,), kernel_size=3, initialize=False)
    assert count_parameters(fast) == count_parameters(net)


# ------------------------------------------------------------------------- FNO
@pytest.mark.parametrize("metric,grid", [((1, 1), (8, 6)), ((1, 1, 1), (4, 4, 4)), ((-1, 1, 1), (4, 6, 4))])
def test_fno_forward_backward(metric, grid):
    pytest.importorskip("neuralop", reason="neuraloperator missing: pip install cscnn[baselines]")
    alg = CliffordAlgebra(metric)
    net = build_model("fno", alg, 2, 1, 4, modes=2, n_layers=2)
    _forward_backward(net, alg, 2, 1, grid)
    x = _x(alg, 2, grid)
    assert torch.equal(net.from_native(net.to_native(x)), x)


def test_fno_double_precision_and_complex_count():
    pytest.importorskip("neuralop", reason="neuraloperator missing: pip install cscnn[baselines]")
    alg = CliffordAlgebra((1, 1))
    net = build_model("fno", alg, 1, 1, 4, modes=2, n_layers=1)
    complex_params = [p for p in net.parameters() if p.is_complex()]
    assert complex_params
    n_real = sum(p.numel() for p in net.parameters())
    assert count_parameters(net) == n_real + sum(p.numel() for p in complex_params)
    for convert in (lambda m: m.double(), lambda m: m.to(torch.float64)):
        m = convert(build_model("fno", alg, 1, 1, 4, modes=2, n_layers=1))
        assert all(p.dtype == torch.complex128 for p in m.parameters() if p.is_complex())
        assert m(_x(alg, 1, (6, 6))).dtype == torch.float64


# ------------------------------------------------------- optional dependencies
@pytest.mark.parametrize("name,blocked", [("clifford_resnet", "cliffordlayers.nn.modules.cliffordconv"),
                                          ("steerable_resnet", "escnn.nn"), ("fno", "neuralop.models")])
def test_missing_library_raises_install_hint(monkeypatch, name, blocked):
    monkeypatch.setitem(sys.modules, blocked, None)  # makes `import blocked` raise ImportError
    with pytest.raises(ImportError, match=r"pip install cscnn\[baselines\]"):
        build_model(name, (1, 1), 1, 1, 2, blocks=(1,)) if name != "fno" else build_model(name, (1, 1), 1, 1, 2)


def test_models_import_without_optional_libraries():
    code = (
        "import sys\n"
        "for m in ('cliffordlayers', 'escnn', 'neuralop'):\n"
        "    sys.modules[m] = None\n"
        "import torch, cscnn.models as M\n"
        "net = M.build_model('resnet', (1, 1), 1, 1, 4, blocks=(1,), kernel_size=3)\n"
        "print(net(torch.randn(1, 1, 4, 4, 4)).shape)\n"
        "try:\n"
        "    M.build_model('fno', (1, 1), 1, 1, 4)\n"
        "except ImportError as e:\n"
        "    print('hint:', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "torch.Size([1, 1, 4, 4, 4])" in out.stdout
    assert "pip install cscnn[baselines]" in out.stdout


def test_every_registered_model_builds_and_runs_2d():
    """One tiny forward pass per registry entry, printed as a parameter table (pytest -s)."""
    alg = CliffordAlgebra((1, 1))
    options = {
        "cs_resnet": {"blocks": (1,), "kernel_size": 3, "kernel_num_layers": 2, "kernel_hidden_channels": 4},
        "cs_unet": {"channel_mults": (1, 2), "blocks": 1, "kernel_size": 3, "kernel_num_layers": 2,
                    "kernel_hidden_channels": 4},
        "cond_cs_resnet": {"blocks": (1,), "kernel_size": 3, "kernel_num_layers": 2, "kernel_hidden_channels": 4},
        "cond_cs_unet": {"channel_mults": (1, 2), "blocks": 1, "kernel_size": 3, "kernel_num_layers": 2,
                         "kernel_hidden_channels": 4},
        "cs_resnet_two_sided": {"blocks": (1,), "kernel_size": 3, "kernel_num_layers": 2, "kernel_hidden_channels": 4},
        "resnet": {"blocks": (1,), "kernel_size": 3},
        "clifford_resnet": {"blocks": (1,), "kernel_size": 3},
        "steerable_resnet": {"blocks": (1,), "kernel_size": 3},
        "fno": {"modes": 2, "n_layers": 1},
        "gfno": {"modes": 2, "n_layers": 1},
    }
    assert set(options) == set(MODELS)
    rows = []
    for name, kw in options.items():
        try:
            net = build_model(name, alg, 2, 1, 2, **kw)
        except ImportError as err:
            rows.append(f"{name:18s} skipped ({err})")
            continue
        assert net(_x(alg, 2, (4, 4), dtype=torch.float32)).shape == (2, 1, 4, 4, 4)
        rows.append(f"{name:18s} {count_parameters(net):8d}")
    print("\n".join(["model              params (tiny, width 2)"] + rows))


@pytest.mark.parametrize("name", ["cs_resnet", "resnet", "clifford_resnet", "steerable_resnet", "fno"])
def test_periodic_padding_is_honoured(name):
    """What the multi-task study states in its padding column: with the task's circular padding every
    model commutes with circular shifts of the grid (exactly; zero padding would not). The FNO is periodic
    by construction (spectral convolution, no padding_mode) once neuralop's default grid embedding, which
    shows it absolute positions, is off."""
    pytest.importorskip({"clifford_resnet": "cliffordlayers", "steerable_resnet": "escnn",
                         "fno": "neuralop"}.get(name, "torch"))
    torch.manual_seed(0)
    kw = {"modes": 4, "n_layers": 1, "positional_embedding": None} if name == "fno" else {"blocks": [1],
                                                                                          "kernel_size": 3,
                                                            "padding_mode": "circular"}
    net = build_model(name, (1, 1), 2, 1, 4, **kw).double().eval()
    x = torch.randn(1, 2, 8, 8, 4, dtype=torch.float64)
    with torch.no_grad():
        y, ys = net(x), net(torch.roll(x, (3, 5), (2, 3)))
    tol = 1e-6 if name == "fno" else 1e-10  # neuralop's spectral path rounds at ~1e-9 even in float64
    torch.testing.assert_close(ys, torch.roll(y, (3, 5), (2, 3)), atol=tol, rtol=tol)
    if name != "fno":  # and the check can fail: zero padding breaks it
        zeros = build_model(name, (1, 1), 2, 1, 4, **{**kw, "padding_mode": "zeros"}).double().eval()
        with torch.no_grad():
            err = (zeros(torch.roll(x, (3, 5), (2, 3))) - torch.roll(zeros(x), (3, 5), (2, 3))).abs().max()
        assert err > 1e-6
