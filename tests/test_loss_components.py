"""The training loss over a task's physical components (default) or over every blade, and the
Maxwell 2D+1 configs of the authors' protocol."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cscnn.data import get_task
from cscnn.fields import FieldLayout
from cscnn.training import config as C
from cscnn.training.fit import build_module, module_hparams
from cscnn.training.module import ForecastModule, physical_blades

ROOT = Path(__file__).resolve().parents[1]


def test_physical_blades_of_the_paper_tasks():
    assert physical_blades(get_task("navier-stokes")) == [[0, 1, 2]]  # u, vx, vy
    assert physical_blades(get_task("maxwell3d")) == [[1, 2, 3, 4, 5, 6]]  # E (vector), H (bivector)
    assert physical_blades(get_task("maxwell2d")) == [[4, 5, 6]]  # the Faraday bivector Ex, Ey, cBz


class _Layout:
    """A task stand-in with two multivector channels per step (as The Well's tasks with several fields)."""

    layout = FieldLayout("two-channels", (1, 1), ("a", "b", "c"), (0, 5, 6), (1.0, 1.0, 1.0), (("a", (0,)),
                                                                                               ("bc", (1, 2))),
                         channels=2)


def test_physical_blades_per_channel_of_a_step():
    assert physical_blades(_Layout) == [[0], [1, 2]]


def _module(loss_blades, out_channels=1, in_channels=1):
    return ForecastModule("resnet", (1, 1), "navier-stokes", in_channels, out_channels, 4,
                          {"blocks": [1], "kernel_size": 3}, loss_blades=loss_blades)


def test_loss_covers_only_the_physical_blades():
    torch.manual_seed(0)
    m = _module([[0, 1, 2]])
    x = torch.randn(2, 1, 6, 6, 4)
    pred = m(x).detach()
    y = pred.clone()
    y[..., 3] += 100.0  # the pseudoscalar, which carries no field of navier-stokes: ignored
    assert m._loss((x, y)).item() == pytest.approx(0.0, abs=1e-10)
    y[..., 1] += 2.0  # vx off by 2 everywhere: mean over the 3 physical blades = 4 / 3
    assert m._loss((x, y)).item() == pytest.approx(4 / 3, rel=1e-5)
    every = _module(None)
    every.load_state_dict(m.state_dict())
    assert every._loss((x, y)).item() == pytest.approx((4 + 100**2) / 4, rel=1e-5)


def test_loss_with_several_multivector_channels_per_step():
    torch.manual_seed(0)
    m = _module([[0], [1, 2]], out_channels=4)  # 2 steps of 2 multivector channels
    x = torch.randn(2, 1, 5, 5, 4)
    pred = m(x).detach()
    y = pred.clone()
    y[:, 0, ..., 1] += 50.0  # step 0, channel 0, blade 1: not in [0]
    y[:, 3, ..., 0] += 50.0  # step 1, channel 1, blade 0: not in [1, 2]
    assert m._loss((x, y)).item() == pytest.approx(0.0, abs=1e-10)
    y[:, 2, ..., 0] += 3.0  # step 1, channel 0, blade 0: counted; 1 of the 2 * (1 + 2) coefficients per point
    assert m._loss((x, y)).item() == pytest.approx(9 / 6, rel=1e-5)


def test_bad_loss_blades_are_refused():
    for bad in ([[4]], [[]], [], "physical", [[0, 1]] * 3, [[True]]):
        with pytest.raises(ValueError, match="loss_blades must be"):
            _module(bad, out_channels=2 if bad == [[0, 1]] * 3 else 1)


def _cfg(path, **optim):
    cfg = C.load_config(ROOT / "configs" / path)
    for k, v in optim.items():
        setattr(cfg.optim, k, v)
    return cfg


def test_config_option_selects_physical_or_all_blades():
    task = get_task("maxwell2d")
    assert _cfg("cpu/maxwell2d_resnet.yaml").optim.loss == "physical"
    assert module_hparams(_cfg("cpu/maxwell2d_resnet.yaml"), task)["loss_blades"] == [[4, 5, 6]]
    assert module_hparams(_cfg("cpu/maxwell2d_resnet.yaml", loss="all_blades"), task)["loss_blades"] is None
    assert C.config_from_dict({"task": "maxwell2d", "model": {"name": "resnet"},
                               "trainer": {"max_steps": 1}}).optim.loss == "physical"
    with pytest.raises(C.ConfigError, match="optim.loss' must be one of"):
        C.config_from_dict({"task": "maxwell2d", "model": {"name": "resnet"}, "optim": {"loss": "bivector"},
                            "trainer": {"max_steps": 1}})


@pytest.mark.parametrize("size,frames,hidden_cs,hidden_resnet", [("paper", 32, 12, 13), ("cpu", 8, 4, 9)])
def test_maxwell2d_configs_follow_the_authors_protocol(size, frames, hidden_cs, hidden_resnet):
    files = sorted((ROOT / "configs" / size).glob("maxwell2d_*.yaml"))
    assert len(files) == 7
    for f in files:
        cfg = C.load_config(f)
        assert (cfg.data.time_history, cfg.data.time_future, cfg.data.batch_size) == (frames, frames, 16), f.name
        assert (cfg.optim.lr, cfg.optim.weight_decay, cfg.optim.scheduler, cfg.optim.warmup_steps,
                cfg.optim.loss) == (1e-3, 0.0, "constant", 0, "physical"), f.name
        assert cfg.trainer.gradient_clip_val == 1.0
        if "norm" in cfg.model.kwargs or cfg.model.name != "fno":
            assert cfg.model.kwargs["norm"] in (False, None), f.name
    cs = C.load_config(ROOT / "configs" / size / "maxwell2d_cs_resnet.yaml")
    resnet = C.load_config(ROOT / "configs" / size / "maxwell2d_resnet.yaml")
    assert (cs.model.hidden_channels, resnet.model.hidden_channels) == (hidden_cs, hidden_resnet)
    if size == "paper":
        assert cs.model.kwargs["kernel_size"] == resnet.model.kwargs["kernel_size"] == 7


def test_official_config_builds_the_authors_model():
    cfg = C.load_config(ROOT / "configs" / "cpu" / "maxwell2d_cs_resnet_official.yaml")
    module = build_module(cfg, get_task("maxwell2d"))
    assert module.model.compat == "official" and module.hparams.loss_blades == [[4, 5, 6]]
    plain = C.load_config(ROOT / "configs" / "cpu" / "maxwell2d_cs_resnet.yaml")
    assert {k: v for k, v in cfg.model.kwargs.items() if k != "compat"} == plain.model.kwargs
    x = torch.randn(1, 1, 8, 16, 16, 8)
    y = torch.randn(1, 1, 8, 16, 16, 8)
    loss = module._loss((x, y))
    loss.backward()
    assert torch.isfinite(loss) and all(p.grad is not None for p in module.parameters())
