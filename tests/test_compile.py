"""torch.compile: the conv hot path and whole CS models trace without graph breaks (fullgraph=True),
in training and in eval mode; inductor runs in the slow suite."""

import pytest
import torch

from cscnn import CliffordAlgebra
from cscnn.models import CSResNet, CSUNet
from cscnn.nn import CliffordSteerableConv, ConditionalCliffordSteerableConv

ALG = CliffordAlgebra((-1, 1))


def _check(model, x, backend, tol):
    """Compiled training step (forward + backward) and compiled eval forward match eager.

    The dynamo-only ("eager" backend) checks run in float64: the compiled graph differentiates the kernel
    network's composite, eager mode runs its hand-written backward (cscnn.nn.kernel_bank), and in float32
    the two differ by rounding alone up to ~6e-4 relative on ill-conditioned gradients (GradeNorm scales;
    both equally far from the float64 values)."""
    if backend == "eager":
        model, x = model.double(), x.double()
    torch._dynamo.reset()
    params = [p for p in model.parameters()]
    compiled = torch.compile(model, fullgraph=True, backend=backend)
    model.train()
    y = compiled(x)
    torch.testing.assert_close(y, model(x), atol=tol, rtol=tol)
    y.square().mean().backward()
    compiled_grads = [p.grad.clone() for p in params]
    model.zero_grad()
    model(x).square().mean().backward()
    for a, b in zip(compiled_grads, params):
        torch.testing.assert_close(a, b.grad, atol=tol, rtol=tol)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), atol=tol, rtol=tol)


def _conv():
    torch.manual_seed(0)
    return CliffordSteerableConv(ALG, 2, 2, 3), torch.randn(1, 2, 6, 6, 4)


# 2-layer kernel networks (the same layer types as 4) keep tracing time down; the fast tests use
# MVLinear 1x1 layers, the slow inductor tests the paper's 1x1 CS-convs (whole suite: ~40 min on 2
# loaded cores, most of it inductor's C++ compilation)
def _resnet(pointwise="linear", kernel_num_layers=2, **kw):
    torch.manual_seed(0)
    return CSResNet(ALG, 2, 1, 3, blocks=(1,), kernel_size=3, kernel_hidden_channels=4, pointwise=pointwise,
                    kernel_num_layers=kernel_num_layers, **kw), torch.randn(2, 2, 8, 8, 4)


def _unet(pointwise="linear", kernel_num_layers=2):
    torch.manual_seed(0)
    return CSUNet(ALG, 2, 1, 2, channel_mults=(1, 2), blocks=(0, 1), kernel_size=3, kernel_hidden_channels=4,
                  pointwise=pointwise, kernel_num_layers=kernel_num_layers), torch.randn(2, 2, 8, 8, 4)


def test_conv_compiles_without_graph_breaks():
    _check(*_conv(), "eager", 1e-10)  # dynamo tracing only: fails on any graph break


def test_conditional_two_sided_conv_compiles_without_graph_breaks():
    torch.manual_seed(0)
    conv = ConditionalCliffordSteerableConv(ALG, 2, 2, 3, head="two_sided", num_layers=2, hidden_channels=4)
    _check(conv, torch.randn(2, 2, 6, 6, 4), "eager", 1e-10)


def test_cs_resnet_compiles_without_graph_breaks():
    _check(*_resnet(padding_mode="circular"), "eager", 1e-10)


def test_cs_unet_compiles_without_graph_breaks():
    _check(*_unet(), "eager", 1e-10)


# inductor fuses and reorders float32 reductions and uses vectorised exp/erf: ~5e-4 relative seen
@pytest.mark.slow
def test_conv_compiles_with_inductor():
    _check(*_conv(), "inductor", 2e-3)


@pytest.mark.slow
@pytest.mark.parametrize("build", [_resnet, _unet], ids=["cs_resnet", "cs_unet"])
def test_whole_models_compile_with_inductor(build):
    _check(*build(pointwise="kernel"), "inductor", 2e-3)


@pytest.mark.parametrize("train", [True, False])
def test_compiled_models_evaluate_all_kernel_networks_in_one_call(train):
    """The kernel bank is traced into the compiled graph: one batched kernel network for all convs
    (2 layers -> 2 x 2 baddbmm: the right-hand MVLinear and the product of each layer), in training and
    in eval mode, where per-conv evaluation would put 4 baddbmm per conv into the graph."""
    model, x = _resnet()
    model.train(train)
    n_convs = sum(isinstance(m, CliffordSteerableConv) for m in model.modules())
    graphs = []

    def backend(gm, inputs):
        graphs.append(gm)
        return gm.forward

    torch._dynamo.reset()
    with torch.set_grad_enabled(train):
        torch.compile(model, fullgraph=True, backend=backend)(x)
    nodes = [n for gm in graphs for n in gm.graph.nodes if n.target in (torch.baddbmm, "baddbmm")]
    assert n_convs >= 2 and len(graphs) == 1 and len(nodes) == 4


def _copied_by_accumulation(g: torch.Tensor, p: torch.Tensor) -> bool:
    """Whether autograd's accumulation copies ``g`` instead of taking it over (its layout contract: the
    strides of the dimensions of size > 1 equal the parameter's, and none is 0)."""
    return any(n != 1 and a != b or n == 1 and a == 0 for n, a, b in zip(g.shape, g.stride(), p.stride()))


@pytest.mark.parametrize("backend", [None, "aot_eager"])
def test_parameter_gradients_arrive_in_the_parameters_layout(backend):
    """Parameter gradients reach autograd's accumulation in the parameter's own layout, so they are taken
    over, not copied (one copy per parameter tensor: hundreds of operators in a CS-ResNet step). Compiled
    (aot_eager: the traced composite's own layouts) the kernel bank's stacked gradients are made
    contiguous and the conv bias is a product. Eager, the hand-written backward gives them so, except
    the shell widths of a kernel evaluated alone (its head permutes them): one copy per lone conv."""
    model, x = _resnet(pointwise="kernel")
    copied = []
    for name, p in model.named_parameters():
        p.register_hook(lambda g, p=p, name=name: copied.append(name) if _copied_by_accumulation(g, p) else None)
    torch._dynamo.reset()
    run = model if backend is None else torch.compile(model, backend=backend, fullgraph=True)
    run(x).square().mean().backward()
    assert len(list(model.parameters())) > 50
    lone = {"output.2.kernel.shell_sigma", "embedding.0.kernel.shell_sigma"}  # 4 -> 3 and 3 -> 1 channels
    assert copied == [] if backend else set(copied) <= lone


def test_accumulation_layout_rule():
    p = torch.zeros(1, 3)
    assert not _copied_by_accumulation(torch.zeros(3, 1).t(), p)  # size-1 dimension: any stride
    assert _copied_by_accumulation(torch.zeros(3, 2).t()[:1], torch.zeros(1, 3))  # stride 2 on a size-3 dim
    assert _copied_by_accumulation(torch.zeros(1).expand(1, 3), p)
