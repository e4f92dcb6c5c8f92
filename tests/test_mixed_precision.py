"""Mixed precision: every module and model trains under torch.autocast (CPU bf16 and fp16) with finite
gradients; kernels and norm statistics are computed in float32; equivariance holds to bf16 accuracy."""

import importlib.util

import pytest
import torch

from cscnn import CliffordAlgebra
from cscnn.algebra import grid_symmetries
from cscnn.models import build_model
from cscnn.nn import (
    CliffordSteerableConv,
    CliffordSteerableKernel,
    GradeNorm,
    MVGate,
    MVLayerNorm,
    MVLinear,
    SteerableGeometricProduct,
)
from cscnn.testing import equivariance_error

LOW = [torch.bfloat16, torch.float16]
ALG = CliffordAlgebra((1, 1))


def _has(module):
    return importlib.util.find_spec(module) is not None


MODELS = {
    "cs_resnet": dict(blocks=(1,), kernel_size=3, kernel_hidden_channels=6),
    "cs_resnet_linear": dict(blocks=(1,), kernel_size=3, pointwise="linear"),
    "cs_unet": dict(channel_mults=(1, 2), kernel_size=3, kernel_hidden_channels=6),
    "cond_cs_resnet": dict(blocks=(1,), kernel_size=3, kernel_hidden_channels=6),
    "cs_resnet_two_sided": dict(blocks=(1,), kernel_size=3, kernel_hidden_channels=6),
    "resnet": dict(blocks=(1,), kernel_size=3),
    "clifford_resnet": dict(blocks=(1,), kernel_size=3),
    "fno": dict(modes=3),
    "steerable_resnet": dict(blocks=(1,), kernel_size=3),
}
NEEDS = {"clifford_resnet": "cliffordlayers", "fno": "neuralop", "steerable_resnet": "escnn"}


def _build(name):
    if name in NEEDS and not _has(NEEDS[name]):
        pytest.skip(f"{NEEDS[name]} not installed")
    torch.manual_seed(0)
    return build_model(name.removesuffix("_linear"), ALG, 2, 1, 4, **MODELS[name])


@pytest.mark.parametrize("name", list(MODELS))
def test_bf16_autocast_training_loss_decreases(name, device):
    model = _build(name).to(device)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 2, 8, 8, 4, generator=g).to(device)
    target = torch.randn(2, 1, 8, 8, 4, generator=g).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(6):
        opt.zero_grad()
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = torch.nn.functional.mse_loss(model(x).float(), target)
        loss.backward()
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(gr).all() for gr in grads)
        opt.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0], losses


@pytest.mark.parametrize("name", list(MODELS))
def test_fp16_autocast_gradients_finite(name, device):
    model = _build(name).to(device)
    x = torch.randn(2, 2, 8, 8, 4, generator=torch.Generator().manual_seed(2)).to(device)
    with torch.autocast(device.type, dtype=torch.float16):
        loss = model(x).float().square().mean()
    loss.backward()
    assert torch.isfinite(loss)
    for n, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), n


LAYERS = {
    "linear": (lambda a: MVLinear(a, 3, 2), (2, 3, 5)),
    "gp": (lambda a: SteerableGeometricProduct(a, 3, 2), (2, 3, 5)),
    "gradenorm": (lambda a: GradeNorm(a, 3), (2, 3, 5)),
    "layernorm": (lambda a: MVLayerNorm(a, 3), (2, 3, 5)),
    "gate": (lambda a: MVGate(a), (2, 3, 5)),
    "conv2d": (lambda a: CliffordSteerableConv(a, 3, 2, 3, hidden_channels=4), (2, 3, 5, 5)),
    "conv4d": (lambda a: CliffordSteerableConv((-1, 1, 1, 1), 3, 2, 3, num_layers=2, hidden_channels=4),
               (1, 3, 3, 3, 3, 3)),
}


@pytest.mark.parametrize("dtype", LOW, ids=str)
@pytest.mark.parametrize("name", list(LAYERS))
def test_layers_under_autocast_take_low_precision_input(name, dtype, device):
    build, shape = LAYERS[name]
    layer = build(ALG).to(device)
    alg = layer.alg
    x = torch.randn(*shape, alg.n_blades).to(device, dtype).requires_grad_()  # e.g. the output of a previous conv
    with torch.autocast(device.type, dtype=dtype):
        y = layer(x)
    y.float().square().sum().backward()
    assert torch.isfinite(x.grad).all()
    for n, p in layer.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), n
    ref = layer(x.detach().float())
    err = (y.float() - ref).abs().max() / ref.abs().max()
    assert err < (0.05 if dtype == torch.bfloat16 else 0.01), float(err)


def test_kernel_and_statistics_stay_float32_under_autocast():
    conv = CliffordSteerableConv(ALG, 2, 2, 3)
    kernel = CliffordSteerableKernel(ALG, 2, 2, 3)
    with torch.autocast("cpu", dtype=torch.float16):
        assert conv.weight.dtype == torch.float32 and kernel().dtype == torch.float32
    # squares of 1e-4 underflow in fp16 (min subnormal 6e-8 is too coarse): statistics must upcast
    x = (1e-4 * torch.randn(2, 3, 5, 4)).half()
    for layer in (GradeNorm(ALG, 3), MVLayerNorm(ALG, 3)):
        with torch.no_grad():
            ref = layer(x.float())
            with torch.autocast("cpu", dtype=torch.float16):
                y = layer(x)
        assert y.dtype == torch.float16
        torch.testing.assert_close(y.float(), ref, atol=2e-3 * float(ref.abs().max()), rtol=1e-2)


def test_wrong_dtype_without_autocast_still_fails_clearly():
    conv = CliffordSteerableConv(ALG, 1, 1, 3)
    with pytest.raises(ValueError, match="parameters are torch.float32 .* input is torch.bfloat16"):
        conv(torch.randn(1, 1, 4, 4, 4, dtype=torch.bfloat16))


@pytest.mark.parametrize("name, metric", [("cs_resnet", (1, 1)), ("cs_resnet", (-1, 1, 1)), ("cs_unet", (1, 1))],
                         ids=str)
def test_bf16_autocast_forward_equivariant_under_grid_symmetries(name, metric, device):
    alg = CliffordAlgebra(metric)
    torch.manual_seed(0)
    kw = dict(blocks=(1,)) if name == "cs_resnet" else dict(channel_mults=(1, 2))
    model = build_model(name, alg, 2, 1, 4, kernel_size=3, padding_mode="circular", **kw).eval().to(device)
    x = torch.randn(1, 2, *([6 if name == "cs_resnet" else 8] * alg.dim), alg.n_blades).to(device)

    def f(t):
        with torch.autocast(device.type, dtype=torch.bfloat16):
            return model(t).float()

    errs = [equivariance_error(f, alg, x, g) for g in grid_symmetries(alg)]
    assert max(errs) < 0.03, max(errs)  # bf16 has 8 bits of mantissa: ~0.4% per rounding
    # the same check catches a model that is not equivariant
    plain = build_model("resnet", (1, 1), 2, 1, 4, blocks=(1,), kernel_size=3).to(device) if alg.dim == 2 else None
    if plain is not None:
        def h(t):
            with torch.autocast(device.type, dtype=torch.bfloat16):
                return plain(t).float()
        assert max(equivariance_error(h, alg, x, g) for g in grid_symmetries(alg)) > 0.1


# ------------------------------------------------------------- cscnn train --set trainer.precision
@pytest.mark.parametrize("precision", ["bf16-mixed", "16-mixed"])
def test_cli_train_with_mixed_precision(tmp_path, monkeypatch, capsys, precision):
    pytest.importorskip("lightning")
    pytest.importorskip("h5py")
    import yaml

    from cscnn.cli import main
    from cscnn.models import CSResNet
    from cscnn.training.synthetic import write_synthetic_splits

    data = write_synthetic_splits("navier-stokes", tmp_path / "data", 3, 1, 1, steps=6, size=8)
    cfg = {"name": "amp", "task": "navier-stokes", "out": str(tmp_path / "run"), "seed": 0,
           "data": {"dir": str(data), "batch_size": 4, "time_history": 2},
           "model": {"name": "cs_resnet", "hidden_channels": 2,
                     "kwargs": {"blocks": [1], "kernel_size": 3, "kernel_num_layers": 2, "kernel_hidden_channels": 4}},
           "trainer": {"max_steps": 3, "accelerator": "cpu", "devices": 1, "enable_progress_bar": False,
                       "val_check_interval": 3, "check_val_every_n_epoch": None, "limit_val_batches": 1,
                       "gradient_clip_val": 1.0}}  # clipping under AMP: the optimizer must not be a fused one
    (tmp_path / "amp.yaml").write_text(yaml.safe_dump(cfg))
    seen = []
    forward = CSResNet.forward

    def spy(self, x):
        if x.device.type != "meta":  # (not the training-step size estimate, which runs on the meta device)
            seen.append(torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None)
        return forward(self, x)

    monkeypatch.setattr(CSResNet, "forward", spy)
    assert main(["train", "--config", str(tmp_path / "amp.yaml"), "--set", f"trainer.precision={precision}",
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "training done: step 3" in out
    val = float(out.split("val/loss ")[1].split(",")[0])
    assert torch.isfinite(torch.tensor(val))
    # Lightning runs CPU "16-mixed" as bfloat16 autocast (it warns that fp16 AMP needs a GPU)
    assert seen and all(dt == torch.bfloat16 for dt in seen)


def test_grade_norm_eps_survives_float16():
    """eps = 1e-12 rounds to 0 in float16; the floor must not, or sqrt'(0) makes gradients infinite."""
    alg = CliffordAlgebra((-1, 1, 1))
    x = torch.zeros(3, 8, dtype=torch.float16, requires_grad=True)
    alg.grade_norms(x).sum().backward()
    alg.norm(x).sum().backward()
    assert torch.isfinite(x.grad).all()
