"""Memory layout of the dense conv inside CliffordSteerableConv (cscnn.nn.layout)."""

import time

import pytest
import torch

from cscnn import CliffordAlgebra
from cscnn.algebra import grid_symmetries
from cscnn.nn import CliffordSteerableConv, MVGate, MVLayerNorm, layout
from cscnn.testing import equivariance_error

D = torch.float64


@pytest.fixture(autouse=True)
def _fresh_layout_state():
    mode = layout.get_conv_layout()
    layout.clear_layout_choices()
    yield
    layout.set_conv_layout(mode)
    layout.clear_layout_choices()


@pytest.mark.parametrize("lay", ["contiguous", "channels_last"])
@pytest.mark.parametrize("spatial", [(5,), (6, 5), (4, 3, 5)])
def test_fields_channels_roundtrip_and_views(lay, spatial):
    x = torch.randn(2, 3, *spatial, 2 ** len(spatial))
    n = x.shape[-1]
    c = layout.fields_to_channels(x, lay)
    assert c.shape == (2, 3 * n, *spatial)
    for ch in range(3):  # channel index c * n_blades + blade
        for blade in range(n):
            assert torch.equal(c[:, ch * n + blade], x[:, ch, ..., blade])
    back = layout.channels_to_fields(c, n)
    assert torch.equal(back, x)
    # a field in the layout's memory order (a conv output) converts without a copy
    assert layout.fields_to_channels(back, lay).data_ptr() == c.data_ptr()
    if lay == "contiguous":
        assert c.is_contiguous()
    else:
        assert c.movedim(1, -1).is_contiguous()


def test_modes_and_bad_mode():
    with pytest.raises(ValueError, match="conv layout must be one of"):
        layout.set_conv_layout("nhwc")
    x, w = torch.randn(1, 2, 8, 8, 4), torch.randn(8, 8, 3, 3)
    for mode in ("contiguous", "channels_last"):
        layout.set_conv_layout(mode)
        assert layout.choose_layout(x, w, 1, 1, "zeros") == mode
    assert layout.layout_choices() == {}


def _conv_pair(metric, lay, **kw):
    torch.manual_seed(0)
    conv = CliffordSteerableConv(CliffordAlgebra(metric), 2, 3, 3, **kw).double()
    layout.set_conv_layout(lay)
    return conv


@pytest.mark.parametrize("metric, padding_mode", [((1, 1), "zeros"), ((-1, 1, 1), "circular"), ((1, 1), "reflect")])
def test_both_layouts_give_the_same_outputs_and_gradients(metric, padding_mode):
    alg = CliffordAlgebra(metric)
    x = torch.randn(2, 2, *([6] * alg.dim), alg.n_blades, dtype=D)
    results = []
    for lay in ("contiguous", "channels_last"):
        conv = _conv_pair(metric, lay, padding_mode=padding_mode, stride=2 if alg.dim == 2 else 1)
        xi = x.clone().requires_grad_()
        y = conv(xi)
        y.backward(torch.ones_like(y))
        results.append((y.detach(), xi.grad, [p.grad for p in conv.parameters()]))
    (y0, gx0, gp0), (y1, gx1, gp1) = results
    torch.testing.assert_close(y0, y1, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(gx0, gx1, atol=1e-12, rtol=1e-12)
    for a, b in zip(gp0, gp1):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("lay", ["contiguous", "channels_last"])
def test_equivariant_in_either_layout(lay):
    alg = CliffordAlgebra((-1, 1, 1))
    conv = _conv_pair(alg.metric, lay, num_layers=2, hidden_channels=4)
    with torch.no_grad():
        conv.bias.fill_(0.3)
    x = torch.randn(1, 2, 5, 5, 5, alg.n_blades, dtype=D)
    assert max(equivariance_error(conv, alg, x, g) for g in grid_symmetries(alg)) < 1e-10


def test_auto_measures_once_per_key_and_caches(monkeypatch):
    monkeypatch.setattr(layout, "MIN_MEASURED_MACS", 0)
    calls = []
    real = layout._measure

    def counting(*args):
        calls.append(args[-1])  # train flag
        return real(*args)

    monkeypatch.setattr(layout, "_measure", counting)
    layout.set_conv_layout("auto")
    conv = CliffordSteerableConv(CliffordAlgebra((1, 1)), 2, 2, 3)
    x = torch.randn(1, 2, 8, 8, 4)
    conv(x).sum().backward()
    conv(x).sum().backward()
    conv.eval()
    with torch.no_grad():
        conv(x)
        conv(x)
    assert calls == [True, False]  # one training and one inference measurement, then cached
    choices = layout.layout_choices()
    assert sorted(k.train for k in choices) == [False, True]
    assert set(choices.values()) <= {"contiguous", "channels_last"}
    key = next(iter(choices))
    assert key.input_shape == (1, 2, 8, 8, 4) and key.weight_shape == (8, 8, 3, 3) and key.dilation == 1


@pytest.mark.parametrize("slow", ["contiguous", "channels_last"])
def test_measurement_picks_the_faster_layout(monkeypatch, slow):
    real_conv = layout.conv_nd

    def conv_nd(x, *args, **kwargs):
        is_cl = x.movedim(1, -1).is_contiguous() and not x.is_contiguous()
        if is_cl == (slow == "channels_last"):
            time.sleep(0.01)
        return real_conv(x, *args, **kwargs)

    monkeypatch.setattr(layout, "conv_nd", conv_nd)
    x, w = torch.randn(1, 2, 8, 8, 4), torch.randn(8, 8, 3, 3, requires_grad=True)
    for train in (False, True):
        with torch.set_grad_enabled(train):
            assert layout._measure(x, w, 1, 1, "zeros", 1, train) != slow


def test_no_measuring_when_deterministic_on_meta_or_small(monkeypatch):
    monkeypatch.setattr(layout, "_measure", lambda *a: pytest.fail("measured"))
    layout.set_conv_layout("auto")
    x, w = torch.randn(1, 2, 8, 8, 4), torch.randn(8, 8, 3, 3)
    assert layout.choose_layout(x, w, 1, 1, "zeros") == "contiguous"  # small: the preference
    monkeypatch.setattr(layout, "MIN_MEASURED_MACS", 0)
    torch.use_deterministic_algorithms(True)
    try:
        assert layout.choose_layout(x, w, 1, 1, "zeros") == "contiguous"
    finally:
        torch.use_deterministic_algorithms(False)
    assert layout.choose_layout(x.to("meta"), w.to("meta"), 1, 1, "zeros") == "contiguous"
    assert layout.preferred_layout(torch.device("cuda"), torch.bfloat16) == "channels_last"
    assert layout.preferred_layout(torch.device("cuda"), torch.float32) == "contiguous"
    assert layout.layout_choices() == {}


@pytest.mark.parametrize("lay", ["contiguous", "channels_last"])
def test_norm_and_gate_keep_the_conv_memory_order(lay):
    # the layers after a conv keep its memory order, so the next conv reads its input without a copy
    layout.set_conv_layout(lay)
    alg = CliffordAlgebra((1, 1))
    conv1, conv2 = CliffordSteerableConv(alg, 2, 3, 3), CliffordSteerableConv(alg, 3, 3, 3)
    h = MVGate(alg)(MVLayerNorm(alg, 3)(conv1(torch.randn(2, 2, 8, 8, 4))))
    y = conv1(torch.randn(2, 2, 8, 8, 4))
    assert layout.fields_to_channels(h, lay).data_ptr() == h.data_ptr()
    s = h + y  # the residual add
    assert layout.fields_to_channels(s, lay).data_ptr() == s.data_ptr()
    assert conv2(s).shape == (2, 3, 8, 8, 4)


def test_no_measuring_while_tracing(monkeypatch):
    monkeypatch.setattr(layout, "MIN_MEASURED_MACS", 0)
    monkeypatch.setattr(layout, "_measure", lambda *a: pytest.fail("measured while tracing"))
    conv = CliffordSteerableConv(CliffordAlgebra((1, 1)), 2, 2, 3).eval()
    x = torch.randn(1, 2, 8, 8, 4)
    layout.set_conv_layout("contiguous")
    with torch.no_grad():
        ref = conv(x)
    layout.set_conv_layout("auto")
    with torch.no_grad():
        traced = torch.jit.trace(conv, (x,), check_trace=False)  # the check re-runs eagerly
        torch.testing.assert_close(traced(x), ref)
    exported = torch.export.export(conv, (x,))
    with torch.no_grad():
        torch.testing.assert_close(exported.module()(x), ref)


def test_a_failed_measurement_warns_and_uses_the_preference(monkeypatch):
    monkeypatch.setattr(layout, "MIN_MEASURED_MACS", 0)

    def broken(*args):
        raise RuntimeError("no timer")

    monkeypatch.setattr(layout, "_measure", broken)
    layout.set_conv_layout("auto")
    x, w = torch.randn(1, 2, 8, 8, 4), torch.randn(8, 8, 3, 3)
    with pytest.warns(RuntimeWarning, match="could not time the conv layouts.*no timer"):
        assert layout.choose_layout(x, w, 1, 1, "zeros") == "contiguous"
    assert list(layout.layout_choices().values()) == ["contiguous"]  # not retried on every call


def test_environment_variable_sets_the_mode(monkeypatch):
    import importlib

    try:
        monkeypatch.setenv("CSCNN_CONV_LAYOUT", "channels_last")
        importlib.reload(layout)  # the variable is read when the module is first imported
        assert layout.get_conv_layout() == "channels_last"
        monkeypatch.setenv("CSCNN_CONV_LAYOUT", "nhwc")
        with pytest.raises(ValueError, match="environment variable CSCNN_CONV_LAYOUT must be one of"):
            importlib.reload(layout)
    finally:
        monkeypatch.delenv("CSCNN_CONV_LAYOUT", raising=False)
        importlib.reload(layout)
    assert layout.get_conv_layout() == "auto"


@pytest.mark.parametrize("lay", ["contiguous", "channels_last"])
def test_frozen_conv_follows_the_layout(lay, monkeypatch):
    from cscnn.nn import freeze

    conv = _conv_pair((1, 1), lay, padding_mode="circular").eval()
    frozen = freeze(conv)
    x = torch.randn(2, 2, 6, 6, 4, dtype=D)
    seen = []
    real = layout.fields_to_channels
    monkeypatch.setattr(layout, "fields_to_channels", lambda x, lay=None: seen.append(lay) or real(x, lay))
    import cscnn.nn.dense as dense

    monkeypatch.setattr(dense, "fields_to_channels", layout.fields_to_channels)
    with torch.no_grad():
        torch.testing.assert_close(frozen(x), conv(x), atol=1e-12, rtol=1e-12)
    assert seen == [lay]


@pytest.mark.parametrize("shape, dtype", [((2, 3, 8, 8, 4), torch.float32), ((2, 2, 4, 4, 4, 8), torch.float32),
                                          ((1, 2, 5, 8), torch.bfloat16), ((2, 3, 6, 2), torch.float32)])
def test_channels_last_copy_of_a_field_is_bitwise_and_keeps_gradients(shape, dtype):
    """The copy into channels-last moves whole multivectors as 16-byte elements where it may (no
    gradient needed, blades 16-byte aligned): bitwise the same result, NaN payloads included."""
    if dtype == torch.bfloat16:
        bits = torch.randint(-2**15, 2**15 - 1, shape, dtype=torch.int16)
    else:
        bits = torch.randint(-2**31, 2**31 - 1, shape, dtype=torch.int32)
    x = bits.view(dtype)
    want = x.movedim(1, -2).contiguous()
    want = want.reshape(*want.shape[:-2], -1).movedim(-1, 1)
    got = layout.fields_to_channels(x, "channels_last")
    assert got.stride() == want.stride() and torch.equal(got.view(bits.dtype), want.view(bits.dtype))
    assert layout._groups_copyable(x) == (shape[-1] * x.element_size() % 16 == 0)
    xg = torch.randn(shape, dtype=torch.float64, requires_grad=True)  # a gradient is needed: plain copy
    assert not layout._groups_copyable(xg)
    layout.fields_to_channels(xg, "channels_last").sum().backward()
    assert torch.equal(xg.grad, torch.ones_like(xg))
