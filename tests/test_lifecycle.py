"""Module life cycle: meta-device builds, reset_parameters, extra_repr, freeze() to plain convs, export."""

import importlib.util

import pytest
import torch

from cscnn import CliffordAlgebra
from cscnn.models import CSResNet, CSUNet, ResNet
from cscnn.nn import (
    MVGELU,
    CliffordSteerableConv,
    CliffordSteerableKernel,
    Conv4d,
    FrozenConv,
    GradeNorm,
    KernelNetwork,
    MVGate,
    MVLayerNorm,
    MVLinear,
    MVSiLU,
    SteerableGeometricProduct,
    freeze,
)

D = torch.float64
ALG = CliffordAlgebra((-1, 1))

BUILDERS = {
    "linear": lambda: MVLinear(ALG, 2, 3),
    "gp": lambda: SteerableGeometricProduct(ALG, 2, 3),
    "gradenorm": lambda: GradeNorm(ALG, 2),
    "layernorm": lambda: MVLayerNorm(ALG, 2),
    "gate": lambda: MVGate(ALG, "silu"),
    "gelu": lambda: MVGELU(ALG),
    "silu": lambda: MVSiLU(ALG),
    "kernel_network": lambda: KernelNetwork(ALG, 3, num_layers=3, hidden_channels=4),
    "kernel": lambda: CliffordSteerableKernel(ALG, 2, 3, 3, num_layers=2, hidden_channels=4),
    "conv": lambda: CliffordSteerableConv(ALG, 2, 3, 3, num_layers=2, hidden_channels=4),
    "conv4d": lambda: CliffordSteerableConv((-1, 1, 1, 1), 1, 1, 3, num_layers=2, hidden_channels=4),
    "cs_resnet": lambda: CSResNet(ALG, 2, 1, 3, blocks=(1,), kernel_size=3, kernel_hidden_channels=4),
    "cs_resnet_linear": lambda: CSResNet(ALG, 2, 1, 3, blocks=(1,), kernel_size=3, pointwise="linear"),
    "cs_unet": lambda: CSUNet(ALG, 2, 1, 3, channel_mults=(1, 2), kernel_size=3, kernel_hidden_channels=4),
    "resnet": lambda: ResNet(ALG, 2, 1, 6, blocks=(1,), kernel_size=3),
}


@pytest.mark.parametrize("name", list(BUILDERS))
def test_meta_build_materialises_to_a_normal_build(name):
    torch.manual_seed(0)
    normal = BUILDERS[name]()
    with torch.device("meta"):
        meta = BUILDERS[name]()
    assert all(t.device.type == "meta" for t in [*meta.parameters(), *meta.buffers()])
    meta.to_empty(device="cpu")
    torch.manual_seed(0)
    meta.reset_parameters()
    ref = normal.state_dict(keep_vars=True)
    for key, t in meta.state_dict(keep_vars=True).items():
        assert torch.equal(t, ref[key]), key  # same seed, same values
    for (key, a), b in zip(normal.named_buffers(), meta.buffers()):  # non-persistent constant tables too
        assert torch.equal(a, b), key


def test_meta_build_does_not_poison_the_algebra():
    alg = CliffordAlgebra((1, 1, 1))  # fresh: no cached tables yet
    with torch.device("meta"):
        CliffordSteerableConv(alg, 1, 1, 3)
    conv = CliffordSteerableConv(alg, 1, 1, 3)  # the same algebra, on the CPU
    assert conv(torch.randn(1, 1, 4, 4, 4, 8)).isfinite().all()
    assert alg.cayley.device.type == "cpu" and alg.gather_matrix().device.type == "cpu"


def test_failed_build_leaves_algebra_usable():
    alg = CliffordAlgebra((1, 1))
    with pytest.raises(TypeError), torch.device("meta"):
        CliffordSteerableConv(alg, 1, 1, 3, bad_option=1)
    CliffordSteerableConv(alg, 1, 1, 3)(torch.randn(1, 1, 3, 3, 4))


@pytest.mark.parametrize("name", list(BUILDERS))
def test_every_layer_has_extra_repr_and_reset_parameters(name):
    module = BUILDERS[name]()
    assert module.extra_repr() and callable(module.reset_parameters)
    for m in module.modules():
        if type(m).__module__.startswith(("cscnn.nn", "cscnn.models.cs_")):
            assert m.extra_repr(), type(m).__name__
            assert callable(getattr(m, "reset_parameters", None)), type(m).__name__


def test_reset_parameters_restores_the_initial_distribution():
    torch.manual_seed(1)
    model = BUILDERS["cs_resnet"]()
    fresh = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    torch.manual_seed(1)
    model.reset_parameters()
    assert all(torch.equal(fresh[k], v) for k, v in model.state_dict().items())


# ----------------------------------------------------------------------- freeze
def _trained(module, steps=2):
    """Move parameters away from their init, as training would."""
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return module


FREEZE_CASES = {
    "conv2d_circular": (lambda: CliffordSteerableConv(ALG, 2, 3, 3, padding_mode="circular", stride=2), (5, 6)),
    "conv1d_reflect": (lambda: CliffordSteerableConv((1,), 2, 2, 3, padding_mode="reflect", dilation=2), (7,)),
    "conv3d_valid": (lambda: CliffordSteerableConv((1, 1, 1), 1, 2, 3, padding="valid"), (4, 4, 5)),
    "conv4d_replicate": (lambda: CliffordSteerableConv((-1, 1, 1, 1), 1, 1, 3, padding_mode="replicate",
                                                       num_layers=2, hidden_channels=4), (3, 4, 3, 4)),
    "cs_resnet": (lambda: CSResNet(ALG, 2, 1, 3, blocks=(1,), kernel_size=3, padding_mode="circular"), (6, 6)),
    "cs_unet": (lambda: CSUNet(ALG, 2, 1, 3, channel_mults=(1, 2), kernel_size=3), (4, 8)),
}


@pytest.mark.parametrize("name", list(FREEZE_CASES))
def test_freeze_gives_plain_convs_with_identical_outputs(name, device):
    build, size = FREEZE_CASES[name]
    torch.manual_seed(0)
    model = _trained(build().double()).to(device)
    x = torch.randn(2, model.in_channels, *size, 2 ** len(size), dtype=D).to(device)
    frozen = freeze(model)
    assert not any(isinstance(m, (CliffordSteerableKernel, CliffordSteerableConv)) for m in frozen.modules())
    convs = [m.conv for m in frozen.modules() if isinstance(m, FrozenConv)]
    assert convs and all(isinstance(c, (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d, Conv4d)) for c in convs)
    assert not any(p.requires_grad for p in frozen.parameters()) and not frozen.training
    with torch.no_grad():
        torch.testing.assert_close(frozen(x), model(x), atol=1e-12, rtol=1e-12)
    assert model.training and any(isinstance(m, CliffordSteerableConv) for m in model.modules())  # a copy


def test_freeze_inplace_and_weight_shape():
    model = BUILDERS["cs_resnet"]()
    shapes = [m.weight.shape for m in model.modules() if isinstance(m, CliffordSteerableConv)]
    same = freeze(model, inplace=True)
    assert same is model
    assert [m.conv.weight.shape for m in model.modules() if isinstance(m, FrozenConv)] == shapes


def test_compiled_inference_of_frozen_model_computes_no_kernels():
    torch.manual_seed(0)
    model = BUILDERS["cs_resnet"]().eval()
    calls = []
    for m in model.modules():
        if isinstance(m, KernelNetwork):
            m.register_forward_hook(lambda *a: calls.append(1))
    x = torch.randn(1, 2, 6, 6, 4)
    with torch.no_grad():
        ref = model(x)
        n_kernels = len(calls)
        assert n_kernels > 0
        model(x)
        assert len(calls) == n_kernels  # eager eval: kernels cached after the first call
        torch._dynamo.reset()
        frozen = torch.compile(freeze(model), fullgraph=True, backend="aot_eager")
        calls.clear()  # freezing evaluates every kernel once
        for _ in range(3):
            torch.testing.assert_close(frozen(x), ref, atol=1e-5, rtol=1e-5)
    assert not calls  # the frozen model has no kernel networks to call


def test_frozen_model_exports():
    torch.manual_seed(0)
    model = _trained(BUILDERS["cs_resnet"]())
    x = torch.randn(1, 2, 6, 6, 4)
    frozen = freeze(model)
    program = torch.export.export(frozen, (x,))
    with torch.no_grad():
        torch.testing.assert_close(program.module()(x), model.eval()(x), atol=1e-5, rtol=1e-5)


@pytest.mark.skipif(importlib.util.find_spec("onnxscript") is None or importlib.util.find_spec("onnx") is None,
                    reason="ONNX exporter (onnx, onnxscript) not installed")
def test_frozen_model_exports_to_onnx(tmp_path):
    frozen = freeze(BUILDERS["cs_resnet"]())
    torch.onnx.export(frozen, (torch.randn(1, 2, 6, 6, 4),), str(tmp_path / "model.onnx"), dynamo=True)
    import onnx

    graph = onnx.load(str(tmp_path / "model.onnx"))
    onnx.checker.check_model(graph)
    assert sum(node.op_type == "Conv" for node in graph.graph.node) == 6  # 4 pointwise + 2 in the block
