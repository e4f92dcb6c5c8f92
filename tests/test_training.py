"""Training pipeline: configs, rollout, metrics, checkpoints, end-to-end train/evaluate/plot, resume."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch

pytest.importorskip("lightning")
pytest.importorskip("h5py")

from cscnn.training import config as C  # noqa: E402
from cscnn.training.checkpoint import CheckpointError, load_module, read_checkpoint  # noqa: E402
from cscnn.training.metrics import per_blade_mse, per_field_mse, rollout_metrics  # noqa: E402
from cscnn.training.rollout import rollout  # noqa: E402
from cscnn.training.synthetic import write_synthetic_splits  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

TINY_MODEL = {"name": "cs_resnet", "hidden_channels": 2,
              "kwargs": {"blocks": [1], "kernel_size": 3, "kernel_num_layers": 2, "kernel_hidden_channels": 4}}


def tiny_config(tmp_path: Path, data_dir: Path, **trainer) -> C.ExperimentConfig:
    t = {"max_steps": 4, "accelerator": "cpu", "devices": 1, "enable_progress_bar": False, "log_every_n_steps": 1,
         "val_check_interval": 2, "check_val_every_n_epoch": None, "limit_val_batches": 2}
    t.update(trainer)
    return C.config_from_dict({
        "name": "tiny", "task": "navier-stokes", "out": str(tmp_path / "run"), "seed": 0,
        "data": {"dir": str(data_dir), "batch_size": 4, "time_history": 2, "time_future": 1},
        "model": TINY_MODEL, "optim": {"scheduler": "cosine"}, "trainer": t,
        "eval": {"num_rollout_trajectories": 2, "batch_size": 8},
    })


@pytest.fixture(scope="module")
def ns_data(tmp_path_factory):
    return write_synthetic_splits("navier-stokes", tmp_path_factory.mktemp("ns"), 4, 2, 2, steps=6, size=8)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, ns_data):
    """One tiny training run (4 steps) shared by the tests that need a checkpoint."""
    from cscnn.training.runner import train

    cfg = tiny_config(tmp_path_factory.mktemp("trained"), ns_data)
    res = train(cfg, progress=False)
    return cfg, res


# ---------------------------------------------------------------------- config
def test_unknown_top_level_key_names_valid_keys():
    with pytest.raises(C.ConfigError) as e:
        C.config_from_dict({"task": "navier-stokes", "traner": {}, "model": {"name": "cs_resnet"}})
    msg = str(e.value)
    assert "'traner'" in msg and "trainer" in msg and "did you mean 'trainer'" in msg
    assert "valid keys in the top level" in msg


def test_unknown_nested_key_and_override():
    with pytest.raises(C.ConfigError, match=r"'trainer\.max_step'.*valid keys in section 'trainer'.*max_steps"):
        C.config_from_dict({"task": "navier-stokes", "trainer": {"max_step": 3}})
    with pytest.raises(C.ConfigError, match=r"unknown config key 'optim\.learning_rate'.*lr"):
        C.apply_overrides({}, ["optim.learning_rate=0.1"])
    with pytest.raises(C.ConfigError, match="key.sub=value"):
        C.apply_overrides({}, ["trainer.max_steps"])
    d = C.apply_overrides({"trainer": {"max_steps": 5}}, ["trainer.max_steps=7", "model.kwargs.blocks=[1, 2]"])
    assert d["trainer"]["max_steps"] == 7 and d["model"]["kwargs"]["blocks"] == [1, 2]


def test_type_and_name_errors():
    base = {"task": "navier-stokes", "trainer": {"max_steps": 3}}
    with pytest.raises(C.ConfigError, match=r"'data\.batch_size' must be int"):
        C.config_from_dict({**base, "data": {"batch_size": "eight"}})
    with pytest.raises(C.ConfigError, match="unknown task 'navier'.*navier-stokes"):
        C.config_from_dict({**base, "task": "navier"})
    with pytest.raises(C.ConfigError, match="unknown model 'cs_resnett'.*cs_resnet"):
        C.config_from_dict({**base, "model": {"name": "cs_resnett"}})
    with pytest.raises(C.ConfigError, match="optim.scheduler"):
        C.config_from_dict({**base, "optim": {"scheduler": "linear"}})
    cfg = C.config_from_dict({**base, "optim": {"lr": "1e-3"}})  # YAML 1.1 string float
    assert cfg.optim.lr == 1e-3


def test_all_shipped_configs_are_valid():
    files = sorted((ROOT / "configs").rglob("*.yaml"))
    assert len(files) >= 2 * 14
    names = {f.relative_to(ROOT / "configs").as_posix() for f in files}
    for size in ("paper", "cpu"):
        for task in ("ns", "maxwell3d", "maxwell2d"):
            for model in ("cs_resnet", "cond_cs_resnet", "cs_resnet_two_sided", "resnet", "clifford_resnet", "fno"):
                assert f"{size}/{task}_{model}.yaml" in names
    for f in files:
        cfg = C.load_config(f)
        assert cfg.name == f.stem


# ------------------------------------------------------------- rollout/metrics
class _AddOne(torch.nn.Module):
    """Predicts last frame + 1 (channel layout) or the block + 1 (time-axis layout)."""

    def __init__(self, metric, time_as_axis=False):
        super().__init__()
        from cscnn import CliffordAlgebra

        self.alg = CliffordAlgebra(metric)
        self.w = torch.nn.Parameter(torch.zeros(()))
        self.time_as_axis = time_as_axis

    def forward(self, x):
        return x + 1 if self.time_as_axis else x[:, -1:] + 1 + self.w


def test_rollout_feeds_predictions_back():
    traj = torch.zeros(10, 4, 4, 4)
    res = rollout(_AddOne((1, 1)), traj, time_history=3, time_future=1)
    assert res.prediction.shape == (7, 4, 4, 4)
    for s in range(7):
        assert torch.allclose(res.prediction[s], torch.full((4, 4, 4), float(s + 1)))
    assert torch.allclose(res.mse_per_step, torch.tensor([(s + 1.0) ** 2 for s in range(7)], dtype=torch.float64))
    res = rollout(_AddOne((1, 1)), traj.unsqueeze(0).repeat(2, 1, 1, 1, 1), 3, 1, steps=4)
    assert res.prediction.shape == (2, 4, 4, 4, 4)


def test_rollout_time_as_axis_blocks():
    traj = torch.zeros(9, 4, 4, 8)  # maxwell2d-like: (T, X, Y, 8), blocks of 2 frames
    res = rollout(_AddOne((-1, 1, 1), time_as_axis=True), traj, time_history=2, time_future=2, time_as_axis=True)
    assert res.prediction.shape == (7, 4, 4, 8)  # 4 blocks of 2, last one cut at T
    assert [float(res.prediction[s].mean()) for s in range(7)] == [1, 1, 2, 2, 3, 3, 4]
    m = rollout_metrics(_AddOne((-1, 1, 1), True), [traj, traj], 2, 2, True, task="maxwell2d")
    assert m["num_trajectories"] == 2 and len(m["mse_per_step"]) == 7
    # the task uses 3 of 8 blades, each error 1..4 -> per-field MSE equals the blade error squared
    assert m["per_field_per_step"]["Ex"][0] == pytest.approx(1.0)


def test_per_field_mse_uses_physical_components():
    pred, target = torch.zeros(2, 5, 5, 4), torch.zeros(2, 5, 5, 4)
    pred[..., 1] = 2.0  # vx wrong by 2
    pred[..., 3] = 7.0  # unused e01 blade: not a physical field
    f = per_field_mse("navier-stokes", pred, target)
    assert f == {"u": 0.0, "vx": 4.0, "vy": 0.0}
    g = per_field_mse("navier-stokes", pred, target, groups=True)
    assert g == {"smoke": 0.0, "velocity": 2.0}
    assert per_blade_mse(pred, target).tolist() == [0.0, 4.0, 0.0, 49.0]


# ------------------------------------------------------------------ end to end
def test_train_evaluate_plot_end_to_end(trained):
    from cscnn.training.runner import equivariance, evaluate, info, plot

    cfg, res = trained
    run = Path(res["out"])
    assert res["global_step"] == 4
    assert (run / "checkpoints" / "best.ckpt").is_file() and (run / "checkpoints" / "last.ckpt").is_file()
    assert (run / "config.yaml").is_file()
    metrics_csv = list((run / "logs" / "csv").rglob("metrics.csv"))
    assert metrics_csv and "val/loss" in metrics_csv[0].read_text()
    assert list((run / "logs" / "tensorboard").rglob("events.*"))

    ckpt = read_checkpoint(run / "checkpoints" / "last.ckpt")  # weights_only=True
    hp = ckpt["hyper_parameters"]
    assert hp["model_name"] == "cs_resnet" and hp["metric"] == [1, 1] and hp["task"] == "navier-stokes"
    assert ckpt["global_step"] == 4

    m = evaluate(run, progress=False)
    assert Path(m["path"]).is_file()
    saved = json.loads(Path(m["path"]).read_text())
    assert saved["one_step"]["mse"] == pytest.approx(m["one_step"]["mse"])
    assert m["one_step"]["num_samples"] == 2 * (6 - 2)
    assert set(m["one_step"]["per_field"]) == {"u", "vx", "vy"}
    assert len(m["rollout"]["mse_per_step"]) == 6 - 2
    assert all(v >= 0 and v == v for v in m["rollout"]["mse_per_step"])

    paths = plot(run, fps=2)
    names = {p.name for p in paths}
    assert {"one_step.png", "rollout_last.png", "rollout_mse.png", "rollout.gif"} <= names
    assert all(p.stat().st_size > 1000 for p in paths)
    with open(run / "plots" / "rollout.gif", "rb") as f:
        assert f.read(6) in (b"GIF89a", b"GIF87a")

    eq = equivariance(run, num_elements=4)
    assert eq["worst"] < 1e-8  # CS-ResNet with zero padding: exact for grid symmetries (float64)
    assert info(run)["num_parameters"] > 0


def test_resume_after_interruption_matches_uninterrupted_run(tmp_path, ns_data):
    import lightning as L

    from cscnn.training.runner import train

    class Crash(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if trainer.global_step == 5:
                raise RuntimeError("simulated interruption")

    class Capture(L.Callback):
        def on_train_start(self, trainer, pl_module):
            self.step = trainer.global_step
            self.opt = {k: v.clone() for k, v in trainer.optimizers[0].state_dict()["state"][0].items()}
            self.lr = trainer.optimizers[0].param_groups[0]["lr"]

    # one epoch = 16 windows / batch 4 = 4 steps, validation + checkpoint at each epoch end
    kw = {"max_steps": 8, "val_check_interval": None, "check_val_every_n_epoch": 1}
    ref = tiny_config(tmp_path / "ref", ns_data, **kw)
    ref.data.shuffle = False
    train(ref, progress=False)
    w_ref = read_checkpoint(Path(ref.out) / "checkpoints" / "last.ckpt")["state_dict"]

    cfg = tiny_config(tmp_path / "int", ns_data, **kw)
    cfg.data.shuffle = False
    with pytest.raises(RuntimeError, match="simulated interruption"):
        train(cfg, callbacks=[Crash()], progress=False)
    saved = read_checkpoint(Path(cfg.out) / "checkpoints" / "last.ckpt")
    assert saved["global_step"] == 4
    with pytest.raises(CheckpointError, match="--resume"):
        train(cfg, progress=False)  # refuses to overwrite a run silently
    cap = Capture()
    res = train(cfg, resume=True, callbacks=[cap], progress=False)
    assert cap.step == 4 and res["global_step"] == 8
    for k, v in saved["optimizer_states"][0]["state"][0].items():  # Adam moments and step restored exactly
        assert torch.equal(cap.opt[k], v), k
    assert cap.lr == pytest.approx(saved["lr_schedulers"][0]["_last_lr"][0])
    w = read_checkpoint(Path(cfg.out) / "checkpoints" / "last.ckpt")["state_dict"]
    for k in w_ref:
        assert torch.allclose(w[k], w_ref[k], rtol=1e-5, atol=1e-7), k


# ------------------------------------------------------------------- bad input
def test_missing_data_dir_fails_before_training(tmp_path):
    from cscnn.training.runner import DataDirError, train

    cfg = tiny_config(tmp_path, tmp_path / "nope")
    with pytest.raises(DataDirError, match="(?s)does not exist.*generate navier-stokes --split train.*--split valid"):
        train(cfg, progress=False)
    assert not (tmp_path / "run").exists()


def test_task_and_metric_mismatch(tmp_path, ns_data, trained):
    from cscnn.training.runner import DataDirError, evaluate, train

    cfg = tiny_config(tmp_path, ns_data)
    cfg.task = "maxwell3d"  # NS data (Cl(2,0)) for a Maxwell 3D run
    with pytest.raises(DataDirError, match="holds 'navier-stokes' data.*'maxwell3d'.*metric \\(1, 1, 1\\)"):
        train(cfg, progress=False)
    cfg = tiny_config(tmp_path, ns_data)
    cfg.model.metric = [1, 1, 1]
    with pytest.raises(C.ConfigError, match=r"metric mismatch.*Cl\(3,0\).*'navier-stokes'.*Cl\(2,0\)"):
        train(cfg, progress=False)
    assert not (tmp_path / "run").exists()

    # a trained Cl(2,0) checkpoint evaluated on Maxwell 3D data
    mx = write_synthetic_splits("maxwell3d", tmp_path / "mx3", 1, 1, 1, steps=6, size=4)
    with pytest.raises(DataDirError, match="holds 'maxwell3d' data"):
        evaluate(trained[1]["out"], data_dir=mx, progress=False)


def test_bad_model_kwargs_fail_early(tmp_path, ns_data):
    from cscnn.training.runner import train

    cfg = tiny_config(tmp_path, ns_data)
    cfg.model.kwargs["kernel_sise"] = 3
    with pytest.raises(C.ConfigError, match="kernel_sise"):
        train(cfg, progress=False)
    assert not (tmp_path / "run").exists()


def test_checkpoint_loading_is_safe_and_checked(tmp_path, trained):
    import copy

    from cscnn.training.runner import train

    cfg = copy.deepcopy(trained[0])
    path = Path(cfg.out) / "checkpoints" / "last.ckpt"

    # a checkpoint with a pickled object: refused, nothing executed
    ckpt = torch.load(path, weights_only=True)
    ckpt["evil"] = _Evil()
    bad = tmp_path / "evil.ckpt"
    torch.save(ckpt, bad)
    _Evil.ran = False
    with pytest.raises(CheckpointError, match="weights_only"):
        read_checkpoint(bad)
    assert not _Evil.ran

    # another model / algebra than requested
    with pytest.raises(CheckpointError, match=r"metric: checkpoint has \(1, 1\), expected \(1, 1, 1\)"):
        load_module(path, expected={"metric": (1, 1, 1), "model_name": "cs_resnet"})
    with pytest.raises(CheckpointError, match="model_name: checkpoint has 'cs_resnet', expected 'resnet'"):
        load_module(path, expected={"model_name": "resnet"})
    # resuming a run whose config now names another model
    cfg.model = C.ModelConfig(name="resnet", hidden_channels=4, kwargs={"blocks": [1], "kernel_size": 3})
    with pytest.raises(CheckpointError, match="different model"):
        train(cfg, resume=True, progress=False)
    # weights of another architecture under the same name
    ckpt = torch.load(path, weights_only=True)
    ckpt["hyper_parameters"]["hidden_channels"] = 3
    other = tmp_path / "other.ckpt"
    torch.save(ckpt, other)
    with pytest.raises(CheckpointError, match="do not fit"):
        load_module(other)


class _Evil:
    ran = False

    def __reduce__(self):
        return (_mark_ran, ())


def _mark_ran():
    _Evil.ran = True
    return None


def test_pickle_marker_sanity():
    pickle.loads(pickle.dumps(_Evil()))
    assert _Evil.ran
    _Evil.ran = False


def test_baseline_checkpoints_load_weights_only(tmp_path, ns_data):
    """Library baselines (neuraloperator's FNO stores Python functions in its state dict) still give
    checkpoints that load with weights_only=True and resume."""
    pytest.importorskip("neuralop")
    from cscnn.training.runner import evaluate, train

    cfg = tiny_config(tmp_path, ns_data, max_steps=2, val_check_interval=2)
    cfg.model = C.ModelConfig(name="fno", hidden_channels=4, kwargs={"modes": 2, "n_layers": 1})
    train(cfg, progress=False)
    module = load_module(Path(cfg.out) / "checkpoints" / "last.ckpt")
    assert module.hparams.model_name == "fno"
    cfg.trainer.max_steps = 3
    assert train(cfg, resume=True, progress=False)["global_step"] == 3
    assert evaluate(cfg.out, rollout_steps=1, progress=False)["one_step"]["mse"] > 0
