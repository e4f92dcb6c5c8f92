"""Symmetry-breaking inputs (gravity): f(g.x, g.e) = g.f(x, e) holds exactly when the field e is
transformed with the data, and fails when e is held fixed; the config key, the task declaration,
the training module and `cscnn equivariance` on a run that reads gravity."""

from __future__ import annotations

import json

import pytest
import torch

from cscnn import CliffordAlgebra
from cscnn.data import get_task
from cscnn.models import CSResNet, WithConstantFields
from cscnn.nn import CliffordSteerableConv
from cscnn.testing import perturb_parameters, sample_elements, transform_field, transform_multivectors

UP = [[0.0, 0.0, 1.0, 0.0]]  # e_1 in Cl(2,0)


def _net(alg, c_in, k, seed=0):
    torch.manual_seed(seed)
    inner = CSResNet(alg, c_in + k, 1, 3, blocks=(1,), kernel_size=3, kernel_num_layers=2,
                     kernel_hidden_channels=4).double()
    return perturb_parameters(inner, 0.3, seed)


@torch.no_grad()
def test_equivariant_when_the_field_moves_with_the_data():
    alg = CliffordAlgebra((1, 1))
    net = WithConstantFields(_net(alg, 2, 1), torch.tensor(UP)).double()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 2, 8, 8, 4, generator=gen, dtype=torch.float64)
    e = net.field_tensor(x)  # (2, 1, 8, 8, 4)
    assert e.shape == (2, 1, 8, 8, 4) and torch.equal(e[1, 0, 3, 5], torch.tensor(UP[0], dtype=torch.float64))
    y = net(x)
    worst_joint, worst_fixed = 0.0, 0.0
    for g in sample_elements(alg, 8, "grid", generator=gen):  # all 8 symmetries of the square
        gy = transform_field(alg, g, y)
        joint = net(transform_field(alg, g, x), fields=transform_field(alg, g, e))
        fixed = net(transform_field(alg, g, x))
        worst_joint = max(worst_joint, float((joint - gy).abs().max() / gy.abs().max()))
        moves_e = not torch.allclose(transform_field(alg, g, e), e)
        if moves_e:
            worst_fixed = max(worst_fixed, float((fixed - gy).abs().max() / gy.abs().max()))
    assert worst_joint < 1e-10
    assert worst_fixed > 1e-3  # with "up" fixed the model is not rotation-equivariant


@torch.no_grad()
def test_pointwise_joint_equivariance_under_boosts_and_reflections():
    """On spacetime R^{1,2}: a 1x1 CS-conv reading a constant field is jointly equivariant under sampled
    O(1,2) elements (boosts up to rapidity 1.5, reflections), not with the field held fixed."""
    alg = CliffordAlgebra((-1, 1, 1))
    torch.manual_seed(1)
    conv = perturb_parameters(CliffordSteerableConv(alg, 2 + 1, 2, 1).double(), 0.3, 1)
    field = torch.zeros(1, 8, dtype=torch.float64)
    field[0, 1] = 1.0  # the time direction e_0
    net = WithConstantFields(conv, field).double()
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(3, 2, 4, 4, 4, 8, generator=gen, dtype=torch.float64)
    e = net.field_tensor(x)
    y = net(x)
    gs = sample_elements(alg, 6, "continuous", max_rapidity=1.5, generator=gen)
    assert any(abs(float(g[0, 0])) > 1.2 for g in gs)  # a real boost among them
    for g in gs:
        gy = transform_multivectors(alg, g, y)
        joint = net(transform_multivectors(alg, g, x), fields=transform_multivectors(alg, g, e))
        assert float((joint - gy).abs().max() / gy.abs().max()) < 1e-9
    g = gs[0]
    fixed = net(transform_multivectors(alg, g, x))
    gy = transform_multivectors(alg, g, y)
    assert float((fixed - gy).abs().max() / gy.abs().max()) > 1e-3


def test_wrapper_checks_shapes():
    alg = CliffordAlgebra((1, 1))
    net = WithConstantFields(_net(alg, 2, 1), torch.tensor(UP))
    with pytest.raises(ValueError, match=r"fields have 3 blades, the model's algebra has 4"):
        WithConstantFields(_net(alg, 2, 1), torch.zeros(1, 3))
    with pytest.raises(ValueError, match=r"shape \(k >= 1, n_blades\)"):
        WithConstantFields(_net(alg, 2, 1), torch.zeros(4))
    with pytest.raises(ValueError, match="finite"):
        WithConstantFields(_net(alg, 2, 1), torch.tensor([[0.0, float("nan"), 0, 0]]))
    x = torch.randn(1, 2, 8, 8, 4, dtype=torch.float64)
    with pytest.raises(ValueError, match="fields must have shape"):
        net.double()(x, fields=torch.zeros(1, 2, 8, 8, 4, dtype=torch.float64))
    assert net.alg is net.model.alg and net.num_fields == 1


def test_task_declares_gravity_and_config_checks_names():
    from cscnn.training.config import ConfigError, config_from_dict

    ns = get_task("navier-stokes")
    assert ns.symmetry_breaking_fields(["gravity"]).tolist() == UP
    with pytest.raises(ValueError, match="declares: gravity"):
        ns.symmetry_breaking_fields(["magnetic"])
    base = {"task": "navier-stokes", "model": {"name": "cs_resnet"}, "trainer": {"max_steps": 1}}
    cfg = config_from_dict({**base, "data": {"symmetry_breaking": ["gravity"]}})
    assert cfg.data.symmetry_breaking == ["gravity"]
    with pytest.raises(ConfigError, match="data.symmetry_breaking.*declares no symmetry-breaking field 'up'"):
        config_from_dict({**base, "data": {"symmetry_breaking": ["up"]}})
    with pytest.raises(ConfigError, match="maxwell3d declares no .*declares: none"):
        config_from_dict({**base, "task": "maxwell3d", "data": {"symmetry_breaking": ["gravity"]}})
    with pytest.raises(ConfigError, match="listed twice"):
        config_from_dict({**base, "data": {"symmetry_breaking": ["gravity", "gravity"]}})


@pytest.mark.parametrize("model", ["cs_resnet", "resnet"])
def test_forecast_module_reads_gravity(model):
    pytest.importorskip("lightning")
    from cscnn.training.module import ForecastModule

    kw = {"blocks": [1], "kernel_size": 3}
    m = ForecastModule(model, (1, 1), "navier-stokes", 4, 1, 4, kw, symmetry_breaking=["gravity"])
    plain = ForecastModule(model, (1, 1), "navier-stokes", 4, 1, 4, kw)
    assert isinstance(m.model, WithConstantFields) and m.hparams.symmetry_breaking == ["gravity"]
    assert m(torch.randn(2, 4, 8, 8, 4)).shape == (2, 1, 8, 8, 4)
    assert sum(p.numel() for p in m.parameters()) > sum(p.numel() for p in plain.parameters())
    assert "model.fields" in m.state_dict()


def test_cli_run_with_gravity(tmp_path, capsys):
    pytest.importorskip("lightning")
    import yaml

    from cscnn.cli import main
    from cscnn.training.synthetic import write_synthetic_splits

    data = write_synthetic_splits("navier-stokes", tmp_path / "d", 3, 1, 1, steps=6, size=8)
    out = tmp_path / "run"
    cfg = {"name": "g", "task": "navier-stokes", "out": str(out), "seed": 0,
           "data": {"dir": str(data), "batch_size": 4, "time_history": 2, "symmetry_breaking": ["gravity"]},
           "model": {"name": "cs_resnet", "hidden_channels": 2,
                     "kwargs": {"blocks": [1], "kernel_size": 3, "kernel_num_layers": 2, "kernel_hidden_channels": 4}},
           "trainer": {"max_steps": 2, "accelerator": "cpu", "devices": 1, "enable_progress_bar": False,
                       "val_check_interval": 2, "check_val_every_n_epoch": None, "limit_val_batches": 1},
           "eval": {"num_rollout_trajectories": 1}}
    (tmp_path / "g.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["train", "--config", str(tmp_path / "g.yaml"), "--evaluate", "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["equivariance", str(out), "--num", "8", "--json", str(tmp_path / "eq.json")]) == 0
    text = capsys.readouterr().out
    assert "['gravity'] transformed with the data" in text and "held fixed" in text
    eq = json.loads((tmp_path / "eq.json").read_text())
    assert eq["symmetry_breaking"] == ["gravity"]
    assert eq["worst"] < 1e-8 and eq["fixed_worst"] > 1e-4


@torch.no_grad()
def test_maxwell2d_time_direction_breaks_only_time_reversal():
    """maxwell2d declares the time direction e_0. A CS-ResNet reading it on a (T, X, Y) grid is jointly
    equivariant under all 16 grid symmetries (time reversal moves e_0 to -e_0); with e_0 held fixed it
    keeps the 8 spatial ones exactly and tells future from past (time reversal fails)."""
    from cscnn.algebra import grid_symmetries

    task = get_task("maxwell2d")
    e0 = task.symmetry_breaking_fields(["time"])
    assert e0.tolist() == [[0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]]
    alg = CliffordAlgebra(task.metric)
    torch.manual_seed(2)
    inner = perturb_parameters(CSResNet(alg, 1 + 1, 1, 3, blocks=(1,), kernel_size=3, norm=False, time_scale=0.25,
                                        kernel_num_layers=2, kernel_hidden_channels=4).double(), 0.3, 2)
    net = WithConstantFields(inner, torch.as_tensor(e0)).double()
    x = torch.randn(2, 1, 6, 6, 6, 8, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    e, y = net.field_tensor(x), net(x)
    gs = grid_symmetries(alg)
    assert len(gs) == 16
    for g in gs:
        gy = transform_field(alg, g, y)
        joint = net(transform_field(alg, g, x), fields=transform_field(alg, g, e))
        assert float((joint - gy).abs().max() / gy.abs().max()) < 1e-10
        fixed = float((net(transform_field(alg, g, x)) - gy).abs().max() / gy.abs().max())
        if g[0, 0] > 0:  # spatial rotations and reflections leave e_0 alone
            assert fixed < 1e-10
        else:  # time reversal: the model answers differently than the reversed answer
            assert fixed > 1e-3
