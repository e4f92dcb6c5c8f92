"""Padding modes per spatial axis (``padding_mode=("circular", "zeros")``): the one validator
``cscnn.nn.functional.check_padding_mode``, ``pad_nd`` / ``conv_nd`` per axis, every conv layer and
model that pads, and what a mixed mode does to equivariance."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cscnn import CliffordAlgebra
from cscnn.nn import CliffordSteerableConv, ConditionalCliffordSteerableConv, Conv4d, freeze
from cscnn.nn.functional import PADDING_MODES, check_padding_mode, conv_nd, describe_padding, pad_nd
from cscnn.testing import equivariance_error, perturb_parameters

D = torch.float64
NUMPY_MODE = {"zeros": "constant", "circular": "wrap", "replicate": "edge", "reflect": "reflect"}
TINY = {"num_layers": 2, "hidden_channels": 4}


def _manual_pad(x: torch.Tensor, pads, modes) -> torch.Tensor:
    """Reference: numpy's np.pad, one trailing axis at a time, each with its own mode."""
    a = x.numpy()
    nd = len(pads)
    for d, (p, m) in enumerate(zip(pads, modes)):
        width = [(0, 0)] * a.ndim
        width[a.ndim - nd + d] = (p, p)
        a = np.pad(a, width, mode=NUMPY_MODE[m])
    return torch.from_numpy(a)


def _one_line_error(exc, *parts):
    msg = str(exc.value)
    assert "\n" not in msg, msg
    for p in parts:
        assert p in msg, msg


# ------------------------------------------------------------------ validator
def test_check_padding_mode_normalises():
    assert check_padding_mode("circular") == "circular"
    assert check_padding_mode(["circular", "zeros"]) == ("circular", "zeros")  # a YAML list -> tuple
    assert check_padding_mode(["circular", "zeros"], 2) == ("circular", "zeros")
    assert check_padding_mode(("reflect", "reflect"), 2) == "reflect"  # one mode repeated: the plain string
    assert check_padding_mode(("reflect", "reflect")) == ("reflect", "reflect")  # length unknown: kept
    assert describe_padding(("circular", "zeros")) == "circular/zeros (per axis)"
    assert describe_padding(["zeros", "zeros"]) == "zeros" and describe_padding("circular") == "circular"


@pytest.mark.parametrize("mode, dims, parts", [
    ("wrap", None, ["padding_mode must be one of", "'wrap'"]),
    (("circular", "wrap"), 2, ["'wrap'", "per spatial axis"]),
    ((), None, ["non-empty sequence"]),
    (("circular", "zeros", "zeros"), 2, ["3 modes for 2 spatial axes"]),
    (["zeros"], 3, ["1 modes for 3 spatial axes"]),
    (3, None, ["padding_mode must be one of"]),
])
def test_check_padding_mode_one_line_errors(mode, dims, parts):
    with pytest.raises(ValueError) as e:
        check_padding_mode(mode, dims)
    _one_line_error(e, *parts)


# ------------------------------------------------------------------ functional
@pytest.mark.parametrize("nd", [1, 2, 3, 4])
def test_pad_nd_per_axis_equals_manual_padding_per_axis(nd):
    gen = torch.Generator().manual_seed(nd)
    shape = (2, 3, 5, 6, 4, 5)[: 2 + nd]
    x = torch.randn(*shape, dtype=D, generator=gen)
    pads = (2, 1, 3, 1)[:nd]
    combos = list(itertools.product(PADDING_MODES, repeat=nd))
    for modes in combos[:: max(1, len(combos) // 24)]:  # every mode on every axis, mixed
        torch.testing.assert_close(pad_nd(x, pads, modes), _manual_pad(x, pads, modes), rtol=0, atol=0)
    # a leading batch of several axes (as the Clifford ResNet pads (B, C, n, *X)) works too
    torch.testing.assert_close(pad_nd(x[None], pads, combos[1]), _manual_pad(x[None], pads, combos[1]))


def test_pad_nd_and_conv_nd_bad_length_fail_at_call_time():
    x = torch.randn(1, 2, 6, 6)
    with pytest.raises(ValueError) as e:
        pad_nd(x, (1, 1), ("circular", "zeros", "zeros"))
    _one_line_error(e, "3 modes for 2 spatial axes")
    with pytest.raises(ValueError) as e:
        conv_nd(x, torch.randn(3, 2, 3, 3), padding=1, padding_mode=["circular"])
    _one_line_error(e, "1 modes for 2 spatial axes")


def test_conv_nd_circular_check_only_on_circular_axes():
    w = torch.randn(1, 1, 7, 7)
    # padding 3 > 2 points: only an error where that axis is circular
    assert conv_nd(torch.randn(1, 1, 8, 2), w, padding=3, padding_mode=("circular", "zeros")).shape == (1, 1, 8, 2)
    with pytest.raises(ValueError, match=r"larger than the circular grid \(2 points on spatial axis 2"):
        conv_nd(torch.randn(1, 1, 8, 2), w, padding=3, padding_mode=("zeros", "circular"))


def test_conv_nd_keeps_the_backend_padding_for_zeros(monkeypatch):
    import cscnn.nn.functional as fn

    calls = []
    monkeypatch.setattr(fn, "pad_nd", lambda *a, **k: calls.append(a) or pad_nd(*a, **k))
    x, w = torch.randn(1, 2, 6, 6), torch.randn(3, 2, 3, 3)
    ref = F.conv2d(x, w, padding=1)
    for mode in ("zeros", ("zeros", "zeros"), ["zeros", "zeros"]):
        torch.testing.assert_close(conv_nd(x, w, padding=1, padding_mode=mode), ref)
    assert not calls  # uniformly zeros: torch pads, no copy
    conv_nd(x, w, padding=1, padding_mode=("circular", "zeros"))
    assert len(calls) == 1


# ------------------------------------------------------------------ conv layers
def _dense_reference(conv, x, modes):
    """Pad the flattened fields by hand (per axis), then a plain conv with padding 0."""
    n = conv.alg.n_blades
    flat = x.movedim(-1, 2).flatten(1, 2)  # (B, C * n, *X)
    padded = _manual_pad(flat, (conv._pad,) * conv.alg.dim, modes)
    y = F.conv2d(padded, conv.weight, conv.dense_bias()) if conv.alg.dim == 2 else \
        F.conv3d(padded, conv.weight, conv.dense_bias())
    return y.unflatten(1, (y.shape[1] // n, n)).movedim(2, -1)


@pytest.mark.parametrize("metric, modes", [((1, 1), ("circular", "zeros")), ((1, 1), ["replicate", "reflect"]),
                                           ((1, 1, 1), ("zeros", "circular", "replicate"))], ids=str)
def test_conv_per_axis_equals_manual_padding_then_unpadded_conv(metric, modes):
    torch.manual_seed(0)
    alg = CliffordAlgebra(metric)
    conv = perturb_parameters(CliffordSteerableConv(alg, 2, 3, 3, padding_mode=modes, **TINY).double())
    assert conv.padding_mode == tuple(modes)
    x = torch.randn(2, 2, *([5, 6, 4][: alg.dim]), alg.n_blades, dtype=D)
    ref = _dense_reference(conv, x, modes)
    torch.testing.assert_close(conv(x), ref)
    torch.testing.assert_close(freeze(conv)(x), ref)  # frozen: a torch conv of padding 0 after pad_nd
    assert "padding_mode=" in repr(freeze(conv))


def test_conditional_conv_per_axis():
    torch.manual_seed(0)
    alg = CliffordAlgebra((1, 1))
    conv = perturb_parameters(ConditionalCliffordSteerableConv(alg, 2, 2, 3, padding_mode=("circular", "zeros"),
                                                               **TINY).double())
    x = torch.randn(2, 2, 6, 5, 4, dtype=D)
    w = conv.sample_weights(x)
    flat = _manual_pad(x.movedim(-1, 2).flatten(1, 2), (1, 1), ("circular", "zeros"))
    ref = torch.stack([F.conv2d(flat[b:b + 1], w[b], conv.dense_bias())[0] for b in range(2)])
    torch.testing.assert_close(conv(x), ref.unflatten(1, (2, 4)).movedim(2, -1))


def test_conv4d_per_axis():
    x = torch.randn(1, 2, 4, 5, 4, 5, dtype=D)
    modes = ("replicate", "circular", "zeros", "reflect")
    conv = Conv4d(2, 3, 3, padding=1, padding_mode=list(modes), dtype=D)
    assert conv.padding_mode == modes
    ref = conv_nd(_manual_pad(x, (1,) * 4, modes), conv.weight, bias=conv.bias)
    torch.testing.assert_close(conv(x), ref)


def test_conv_bad_length_names_both_numbers():
    alg = CliffordAlgebra((1, 1))
    with pytest.raises(ValueError) as e:
        CliffordSteerableConv(alg, 1, 1, 3, padding_mode=("circular", "zeros", "zeros"))
    _one_line_error(e, "3 modes for 2 spatial axes")
    with pytest.raises(ValueError) as e:
        ConditionalCliffordSteerableConv(alg, 1, 1, 3, padding_mode=["circular"])
    _one_line_error(e, "1 modes for 2 spatial axes")


def test_mixed_mode_keeps_reflections_not_rotations():
    """Periodic in x, zeros in y: flipping an axis maps the domain onto itself, swapping x and y does not."""
    torch.manual_seed(1)
    alg = CliffordAlgebra((1, 1))
    conv = perturb_parameters(CliffordSteerableConv(alg, 1, 1, 3, padding_mode=("circular", "zeros"), **TINY).double())
    x = torch.randn(1, 1, 6, 6, 4, dtype=D)
    flip_x, flip_y = torch.diag(torch.tensor([-1.0, 1.0], dtype=D)), torch.diag(torch.tensor([1.0, -1.0], dtype=D))
    swap = torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=D)
    assert equivariance_error(conv, alg, x, flip_x) < 1e-12
    assert equivariance_error(conv, alg, x, flip_y) < 1e-12
    assert equivariance_error(conv, alg, x, swap) > 1e-3


# ------------------------------------------------------------------ models
def _grid(alg):
    return torch.randn(2, 2, *([6, 8, 4][: alg.dim]), alg.n_blades)


def test_cs_models_forward_per_axis():
    from cscnn.models import CSResNet, CSUNet

    alg = CliffordAlgebra((1, 1))
    net = CSResNet(alg, 2, 1, 2, blocks=(1,), kernel_size=3, padding_mode=["circular", "zeros"],
                   kernel_num_layers=2, kernel_hidden_channels=4)
    assert net.padding_mode == ("circular", "zeros")
    assert {m.padding_mode for m in net.modules() if isinstance(m, CliffordSteerableConv)} == {("circular", "zeros")}
    assert net(_grid(alg)).shape == (2, 1, 6, 8, 4)
    unet = CSUNet(alg, 2, 1, 2, channel_mults=(1, 2), kernel_size=3, padding_mode=("circular", "zeros"),
                  kernel_num_layers=2, kernel_hidden_channels=4)
    assert unet(_grid(alg)).shape == (2, 1, 6, 8, 4)
    with pytest.raises(ValueError) as e:
        CSResNet(alg, 2, 1, 2, blocks=(1,), kernel_size=3, padding_mode=("circular", "zeros", "zeros"))
    _one_line_error(e, "3 modes for 2 spatial axes")


def test_resnet_per_axis_pads_as_torch_and_keeps_its_state_dict():
    from cscnn.models.baselines import ResNet

    alg = CliffordAlgebra((1, 1))
    x = _grid(alg)
    torch.manual_seed(0)
    plain = ResNet(alg, 2, 1, 4, blocks=(1,), kernel_size=3, padding_mode="circular")
    assert plain.layers[0].conv1.padding_mode == "circular" and plain.layers[0].conv1.padding == (1, 1)
    torch.manual_seed(0)
    mixed = ResNet(alg, 2, 1, 4, blocks=(1,), kernel_size=3, padding_mode=["circular", "zeros"])
    assert mixed.padding_mode == ("circular", "zeros") and mixed.layers[0].conv1.padding == (0, 0)
    assert {k: v.shape for k, v in mixed.state_dict().items()} == {k: v.shape for k, v in plain.state_dict().items()}
    assert mixed(x).shape == (2, 1, 6, 8, 4)
    # the per-axis path with circular on both axes computes what torch's circular convs compute
    mixed.load_state_dict(plain.state_dict())
    for block in mixed.layers:
        block.padding_mode = ("circular", "circular")
    torch.testing.assert_close(mixed(x), plain(x))
    # a repeated mode is the plain string: the very same model
    torch.manual_seed(0)
    same = ResNet(alg, 2, 1, 4, blocks=(1,), kernel_size=3, padding_mode=("circular", "circular"))
    assert same.layers[0].conv1.padding_mode == "circular"
    torch.testing.assert_close(same(x), plain(x))


def test_clifford_resnet_per_axis():
    pytest.importorskip("cliffordlayers")
    from cscnn.models.baselines import CliffordResNet

    alg = CliffordAlgebra((1, 1, 1))
    net = CliffordResNet(alg, 2, 1, 2, blocks=(1,), kernel_size=3, padding_mode=("circular", "zeros", "replicate"))
    assert net(_grid(alg)).shape == (2, 1, 6, 8, 4, 8)
    with pytest.raises(ValueError) as e:
        CliffordResNet(alg, 2, 1, 2, blocks=(1,), kernel_size=3, padding_mode=("circular", "zeros"))
    _one_line_error(e, "2 modes for 3 spatial axes")


def test_steerable_resnet_refuses_a_mixed_mode():
    pytest.importorskip("escnn")
    from cscnn.models.baselines import SteerableResNet

    alg = CliffordAlgebra((1, 1))
    with pytest.raises(ValueError) as e:
        SteerableResNet(alg, 1, 1, 1, blocks=(1,), kernel_size=3, padding_mode=["circular", "zeros"], initialize=False)
    _one_line_error(e, "SteerableResNet (escnn)", "['circular', 'zeros'] is not supported")


def test_sample_efficiency_reports_and_configs_a_per_axis_padding():
    """benchmarks/sample_efficiency.py: a task padded per axis gives its models a plain list (YAML-safe
    configs), the report says "circular/zeros (per axis)", and the escnn baseline is skipped with the reason."""
    import dataclasses
    import importlib
    import sys
    from pathlib import Path

    from cscnn.data import get_task

    bench = str(Path(__file__).resolve().parents[1] / "benchmarks")
    if bench not in sys.path:
        sys.path.insert(0, bench)
    se = importlib.import_module("sample_efficiency")
    task = dataclasses.replace(get_task("navier-stokes"), padding=("circular", "zeros"))
    args = se.parse_args(["--data", "x"])
    kw = se.model_kwargs("resnet", args, task)
    assert kw["padding_mode"] == ["circular", "zeros"]
    assert se.padding_of("resnet", kw) == "circular/zeros (per axis)"
    if importlib.util.find_spec("escnn") is not None:
        assert "is not supported" in se.available("steerable_resnet", (1, 1), kw["padding_mode"])
