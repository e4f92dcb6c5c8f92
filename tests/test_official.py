"""``compat="official"``: the authors' forward, and their flax parameters loaded into cscnn.

The fixtures ``tests/fixtures/official_*.npz`` were made with the authors' own code
(github.com/maxxxzdn/clifford-group-equivariant-cnns at d87f739: algebra/, modules/, models/resnets/,
unmodified) run in a scratch environment (Python 3, jax 0.6.2, jaxlib 0.6.2, flax 0.11.2, numpy 2.4;
``jax_enable_x64`` on, so everything is float64). For each fixture the script built their model with
``bias_dims=(0,)``, ``product_paths_sum=algebra.geometric_product_paths_sum`` and padding "SAME", drew
the input ``x = jax.random.normal(k1, shape)`` and the parameters ``model.init(k0, x)`` with
``k0, k1 = jax.random.split(jax.random.PRNGKey(seed))``, and stored
``flax.traverse_util.flatten_dict(variables["params"], sep="/")`` under ``params/<name>``, ``input``,
``output = model.apply(variables, x)`` and a JSON ``config`` (sizes, seed, versions):

* ``official_cs_resnet_r2``: CSResNet on R^2, metric (1, 1), time_history 2, time_future 1, hidden 3,
  kernel 5, kernel network 3 layers of 4, blocks (1, 1), norm on; x (2, 2, 10, 10, 4); seed 0.
* ``official_cs_resnet_r3``: R^3, metric (1, 1, 1), 1 -> 1, hidden 2, kernel 3, kernel network 3 x 4,
  blocks (1,), norm on; x (2, 1, 6, 6, 6, 8); seed 1.
* ``official_cs_resnet_r12``: spacetime R^{1,2}, metric (-1, 1, 1), ``make_channels=True`` (1 -> 1,
  time a grid axis, their Maxwell 2D+1 setting), hidden 3, kernel 5, kernel network 3 x 4, blocks
  (1,), norm off; x (2, 1, 4, 6, 6, 8); seed 2.
* ``official_conv_r12``: one CliffordSteerableConv on R^{1,2}, 2 -> 3 channels, kernel 3, kernel
  network 4 x 4, x (2, 2, 5, 5, 5, 8); seed 3, its (zero-initialised) bias replaced by
  ``jax.random.normal`` values so that the bias's place is checked too.

* ``official_cs_resnet_r12_grads``: for the model and input of ``official_cs_resnet_r12`` (the same
  seed), ``jax.grad`` of ``mean(model.apply(variables, x) ** 2)`` with respect to the parameters, under
  ``grads/<name>``, and that ``loss``.

Their models have no dropout or batch statistics, so train and eval mode compute the same function;
both are checked here.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cscnn import CliffordAlgebra
from cscnn.algebra import clipped_form_sqrt, sample_group_elements
from cscnn.models import CSResNet, CSUNet, build_model, load_official_params, official_parameter_shapes
from cscnn.models.official import _entries
from cscnn.nn import (
    CliffordSteerableConv,
    CliffordSteerableKernel,
    GradeNorm,
    MVGate,
    MVLayerNorm,
    SteerableGeometricProduct,
)
from cscnn.testing import assert_equivariant, perturb_parameters

FIXTURES = Path(__file__).parent / "fixtures"
NAMES = ["official_cs_resnet_r2", "official_cs_resnet_r3", "official_cs_resnet_r12", "official_conv_r12"]


def _fixture(name):
    data = np.load(FIXTURES / f"{name}.npz")
    cfg = json.loads(str(data["config"]))
    params = {k.removeprefix("params/"): data[k] for k in data.files if k.startswith("params/")}
    return cfg, params, torch.as_tensor(data["input"]), torch.as_tensor(data["output"])


def _build(cfg, compat="official"):
    alg = CliffordAlgebra(tuple(cfg["metric"]))
    if cfg["model"] == "CSResNet":
        net = CSResNet(alg, cfg["in_channels"], cfg["out_channels"], cfg["hidden_channels"], tuple(cfg["blocks"]),
                       cfg["kernel_size"], norm=cfg["norm"], kernel_num_layers=cfg["kernel_num_layers"],
                       kernel_hidden_channels=cfg["kernel_hidden_channels"], compat=compat)
    else:
        net = CliffordSteerableConv(alg, cfg["in_channels"], cfg["out_channels"], cfg["kernel_size"],
                                    num_layers=cfg["kernel_num_layers"],
                                    hidden_channels=cfg["kernel_hidden_channels"], compat=compat)
    return net.double()


def _rel(a, b):
    return float((a - b).norm() / b.norm())


# ------------------------------------------------------------------ the authors' outputs, to rounding
@pytest.mark.parametrize("name", NAMES)
def test_official_weights_give_the_official_output(name):
    cfg, params, x, y = _fixture(name)
    net = _build(cfg)
    load_official_params(net, params)
    for mode in ("train", "eval"):
        net.train(mode == "train")
        with torch.no_grad():
            assert _rel(net(x), y) <= 1e-10, mode
    # the loaded model trains: gradients through the authors' layers are finite and reach every parameter
    net.train()
    net(x).square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())


def test_official_gradients_equal_the_authors():
    """A training step's gradients: d mean(f(x)^2) / d theta of the spacetime model, against
    ``jax.grad`` of the same loss in their code (``official_cs_resnet_r12_grads``: same model, seed and
    input as ``official_cs_resnet_r12``; one array per parameter under ``grads/<name>``)."""
    cfg, params, x, _ = _fixture("official_cs_resnet_r12")
    grads = np.load(FIXTURES / "official_cs_resnet_r12_grads.npz")
    net = _build(cfg)
    load_official_params(net, params)
    net.train()
    loss = net(x).square().mean()
    loss.backward()
    assert loss.item() == pytest.approx(float(grads["loss"]), rel=1e-12)
    entries = _entries(net)
    assert {f"grads/{k}" for k in entries} == set(grads.files) - {"loss"}
    for name, (_, param, convert) in entries.items():
        theirs = torch.as_tensor(grads[f"grads/{name}"])
        ref = convert(theirs) - convert(torch.zeros_like(theirs))  # the linear part of the name -> parameter map
        assert (param.grad - ref).abs().max() <= 1e-10 * ref.abs().max(), name


def test_official_forward_differs_from_the_default():
    """The two forwards are different functions (why compat exists): the default layers with the same
    kernels, shells and weights give another output on the spacetime fixture."""
    cfg, params, x, y = _fixture("official_cs_resnet_r12")
    official = _build(cfg)
    load_official_params(official, params)
    default = _build(cfg, compat="cscnn")
    mine = dict(default.named_parameters())
    with torch.no_grad():
        for name, p in official.named_parameters():
            mine[name].copy_(p)  # every official parameter has a default twin (the default has more)
        for m_off, m_def in zip(official.modules(), default.modules()):
            if isinstance(m_off, CliffordSteerableKernel):
                m_def.init_scale.copy_(m_off.init_scale)
        assert _rel(default(x), y) > 1e-3


def test_float32_model_loads_and_agrees_to_float32_rounding():
    cfg, params, x, y = _fixture("official_cs_resnet_r3")
    net = _build(cfg).float()
    load_official_params(net, params)
    with torch.no_grad():
        assert _rel(net(x.float()).double(), y) < 1e-5


# ------------------------------------------------------------------ load_official_params errors
def test_load_errors_list_unknown_missing_and_misshaped_names_at_once():
    cfg, params, x, _ = _fixture("official_conv_r12")
    net = _build(cfg)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    bad = dict(params)
    missing = "CliffordSteerableKernel_0/rel_pos_sigma"
    misshaped = "CliffordSteerableKernel_0/ScalarShell_0/kernel_width"
    del bad[missing]
    bad[misshaped] = np.zeros((1, 2, 3))
    bad["CliffordSteerableKernel_0/typo"] = np.zeros(1)
    with pytest.raises(ValueError) as err:
        load_official_params(net, bad)
    msg = str(err.value)
    assert "\n" not in msg
    assert "unknown (1): CliffordSteerableKernel_0/typo" in msg
    assert f"missing (1): {missing}" in msg
    assert f"mis-shaped (1): {misshaped} (1, 2, 3) (expected (3, 2, 4))" in msg
    # nothing was copied
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_load_refuses_models_that_cannot_hold_the_authors():
    cfg, params, _, _ = _fixture("official_conv_r12")
    with pytest.raises(ValueError, match="compat='official'"):
        load_official_params(_build(cfg, compat="cscnn"), params)
    with pytest.raises(TypeError, match="CSResNet, CliffordSteerableConv or CliffordSteerableKernel, got CSUNet"):
        load_official_params(CSUNet((1, 1), 1, 1, 2, channel_mults=(1,), compat="official"), params)
    net = CSResNet((1, 1), 1, 1, 2, blocks=(1,), kernel_size=3, pointwise="linear", compat="official")
    with pytest.raises(ValueError, match="pointwise='kernel'"):
        load_official_params(net, params)
    with pytest.raises(TypeError, match="params must map"):
        load_official_params(_build(cfg), list(params.items()))
    # a name of another model: the conv's names under a CS-ResNet are all unknown, its own all missing
    res = CSResNet((-1, 1, 1), 1, 1, 3, blocks=(1,), kernel_size=3, kernel_num_layers=4, kernel_hidden_channels=4,
                   compat="official")
    with pytest.raises(ValueError, match=r"unknown \(27\).*missing \(\d+\)"):
        load_official_params(res, params)


def test_official_parameter_shapes_name_every_parameter_once():
    cfg, params, _, _ = _fixture("official_cs_resnet_r2")
    shapes = official_parameter_shapes(_build(cfg))
    assert shapes == {k: v.shape for k, v in params.items()}
    assert sum(math.prod(s) for s in shapes.values()) == sum(p.numel() for p in _build(cfg).parameters())


def test_a_lone_kernel_loads_its_names():
    cfg, params, _, _ = _fixture("official_conv_r12")
    prefix = "CliffordSteerableKernel_0/"
    kernel_params = {k.removeprefix(prefix): v for k, v in params.items() if k.startswith(prefix)}
    conv = _build(cfg)
    load_official_params(conv, params)
    kernel = CliffordSteerableKernel((-1, 1, 1), 2, 3, 3, num_layers=4, hidden_channels=4, compat="official").double()
    load_official_params(kernel, kernel_params)
    assert torch.allclose(kernel(), conv.kernel(), rtol=0, atol=0)


# ------------------------------------------------------------------ the official layers themselves
def test_official_grade_norm_clips_the_signed_form():
    """A timelike vector in Cl(1,2) has qbar < 0: the authors' norm is the constant 0.1, ours |x|."""
    alg = CliffordAlgebra((-1, 1, 1))
    x = torch.zeros(1, 1, alg.n_blades, dtype=torch.float64)
    x[..., alg.blade_index((0,))] = 3.0  # qbar = -9
    official = GradeNorm(alg, 1, compat="official").double()
    ours = GradeNorm(alg, 1).double()
    norm = (0.01**2 + 1e-16) ** 0.25
    assert torch.allclose(official(x)[..., 1], torch.tensor(3.0 / (0.5 * (norm - 1) + 1 + 1e-6), dtype=x.dtype))
    assert torch.allclose(ours(x)[..., 1], torch.tensor(3.0 / (0.5 * (3 - 1) + 1), dtype=x.dtype))
    q = torch.tensor([-4.0, 0.0, 1e-3, 4.0], dtype=torch.float64)
    assert torch.allclose(clipped_form_sqrt(q), torch.tensor([0.1, 0.1, 0.1, 2.0], dtype=torch.float64), atol=1e-9)


def test_official_layer_norm_uses_the_signed_form_of_the_whole_multivector():
    alg = CliffordAlgebra((-1, 1, 1))
    x = torch.randn(2, 3, 4, alg.n_blades, dtype=torch.float64)
    y = MVLayerNorm(alg, 3, affine=False, compat="official").double()(x)
    norms = clipped_form_sqrt(alg.quadratic_form(x)).mean(1, keepdim=True)
    assert torch.allclose(y, x / (norms + 1e-6).unsqueeze(-1))


def test_tanh_gelu_gate():
    alg = CliffordAlgebra((1, 1))
    x = torch.randn(5, 2, alg.n_blades, dtype=torch.float64, requires_grad=True)
    y = MVGate(alg, "gelu_tanh")(x)
    assert torch.allclose(y[..., 0], F.gelu(x[..., 0], approximate="tanh"), rtol=1e-12, atol=1e-14)
    assert not torch.allclose(y[..., 0], F.gelu(x[..., 0]), rtol=1e-6, atol=1e-8)
    assert torch.autograd.gradcheck(lambda t: MVGate(alg, "gelu_tanh")(t), (x,))


def test_official_init_and_structure():
    alg = CliffordAlgebra((1, 1, 1))
    k = CliffordSteerableKernel(alg, 2, 3, 5, compat="official")
    assert k.sigma.item() == 1.0
    assert float(k.init_scale) == pytest.approx(20 / 25)
    assert 0.4 <= k.shell_sigma.min().item() and k.shell_sigma.max().item() <= 0.6
    assert k.head_weight.std() > 0.1 and not torch.equal(k.head_weight, torch.ones_like(k.head_weight))
    gp = k.net.layers[0]
    assert gp.right.bias is None and gp.linear.bias.abs().sum() > 0
    assert k.net.activation == "gelu_tanh"
    # .double() keeps the constant exact (not float32's rounding of 20/9)
    assert float(CliffordSteerableKernel(alg, 1, 1, 3, compat="official").double().init_scale) == 20 / 9
    default = CliffordSteerableKernel(alg, 2, 3, 5)
    assert default.sigma.item() == 0.5 and default.net.layers[0].right.bias is not None
    assert default.net.activation == "gelu" and torch.equal(default.head_weight, torch.ones_like(default.head_weight))


def test_official_options_are_checked():
    with pytest.raises(ValueError, match="compat must be one of"):
        CliffordSteerableConv((1, 1), 1, 1, 3, compat="jax")
    with pytest.raises(ValueError, match="head='left'"):
        CliffordSteerableKernel((1, 1), 1, 1, 3, head="two_sided", compat="official")
    with pytest.raises(ValueError, match="tanh-GELU"):
        CSResNet((1, 1), 1, 1, 2, activation="silu", compat="official")
    with pytest.raises(ValueError, match="compat must be one of"):
        CSUNet((1, 1), 1, 1, 2, compat="Official")


def test_batched_official_network_equals_the_modules():
    """The kernel bank's functional network (one call for many kernels) computes the official layers
    exactly as the modules do, values and gradients."""
    torch.manual_seed(0)
    alg = CliffordAlgebra((-1, 1, 1))
    kernel = perturb_parameters(CliffordSteerableKernel(alg, 2, 2, 3, num_layers=3, hidden_channels=4,
                                                        compat="official").double(), 0.3, 0)
    x = torch.randn(7, 1, alg.n_blades, dtype=torch.float64)
    a = kernel.net(x)  # batched functional path
    b = kernel.net.layers(x)  # module by module
    assert torch.allclose(a, b, rtol=1e-12, atol=1e-14)
    ga = torch.autograd.grad(a.square().sum(), list(kernel.net.parameters()))
    gb = torch.autograd.grad(b.square().sum(), list(kernel.net.parameters()))
    assert all((u - v).abs().max() <= 1e-12 * v.abs().max() for u, v in zip(ga, gb))


def test_product_layer_without_right_bias():
    alg = CliffordAlgebra((1, 1))
    layer = SteerableGeometricProduct(alg, 3, 2, compat="official")
    assert layer.right.bias is None and "compat='official'" in repr(layer)
    assert layer(torch.randn(4, 3, alg.n_blades)).shape == (4, 2, alg.n_blades)


# ------------------------------------------------------------------ equivariance of the official forward
@pytest.mark.parametrize("metric", [(1, 1, 1), (-1, 1, 1)], ids=str)
def test_official_kernel_is_steerable_under_boosts_and_reflections(metric):
    alg = CliffordAlgebra(metric)
    kernel = perturb_parameters(CliffordSteerableKernel(alg, 2, 2, 5, num_layers=3, hidden_channels=4,
                                                        compat="official").double(), 0.2, 0)
    pts = torch.randn(10, alg.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 0.6
    for g in sample_group_elements(alg, 6, max_rapidity=1.5, generator=torch.Generator().manual_seed(1)):
        m = alg.outermorphism(g)
        lhs = kernel.evaluate(pts @ g.T)
        rhs = torch.einsum("ja,poaib,bm->pojim", m, kernel.evaluate(pts), torch.linalg.inv(m))
        assert ((lhs - rhs).abs().max() / rhs.abs().max()) < 1e-10


def test_official_models_are_grid_equivariant():
    gen = torch.Generator().manual_seed(0)
    alg = CliffordAlgebra((-1, 1, 1))
    net = CSResNet(alg, 1, 1, 2, blocks=(1,), kernel_size=3, kernel_num_layers=2, kernel_hidden_channels=4,
                   compat="official").double().eval()
    x = torch.randn(1, 1, 4, 4, 4, alg.n_blades, dtype=torch.float64, generator=gen)
    assert_equivariant(net, alg, x, n_samples=4, generator=torch.Generator().manual_seed(1))
    unet = CSUNet((1, 1), 1, 1, 2, channel_mults=(1, 2), kernel_size=3, kernel_num_layers=2,
                  kernel_hidden_channels=4, compat="official").double().eval()
    x2 = torch.randn(1, 1, 4, 4, 4, dtype=torch.float64, generator=gen)
    assert_equivariant(unet, CliffordAlgebra((1, 1)), x2, n_samples=8, generator=torch.Generator().manual_seed(2))
    assert "compat='official'" in repr(unet) and "compat='official'" in repr(net)


def test_registry_builds_official_models():
    net = build_model("cs_resnet", (-1, 1, 1), 1, 1, 2, blocks=(1,), kernel_size=3, norm=False, compat="official")
    assert net.compat == "official"
    assert all(k.compat == "official" for k in net.modules() if isinstance(k, CliffordSteerableKernel))
