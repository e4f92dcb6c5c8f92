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
    from cscnn.training import train

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
        if cfg.model.name == "clifford_resnet":  # without CliffordGroupNorm (docs/models.md, baselines)
            assert cfg.model.kwargs["norm"] is False


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


def _windows(task, th, tf, trajectory, norm=None):
    """Every (x, y) window of one trajectory ``(T, *grid, n)`` in the task's sample layout, as one batch."""
    xs, ys = [], []
    for s in range(trajectory.shape[0] - th - tf + 1):
        mv = trajectory if norm is None else norm.normalize(trajectory)
        x, y = task.fold(mv[s:s + th]), task.fold(mv[s + th:s + th + tf])
        if task.time_as_axis:
            x, y = x[None], y[None]
        xs.append(x)
        ys.append(y)
    return torch.stack(xs), torch.stack(ys)


@pytest.mark.parametrize("task_name, th, tf", [("navier-stokes", 3, 2), ("maxwell2d", 4, 3), ("maxwell3d", 2, 1)])
def test_reference_predictors_zero_and_persistence(task_name, th, tf):
    """Persistence repeats the last input frame (time as channels or as the first grid axis); the zero
    predictor scores the mean square of the physical targets, also under a shifting normalisation."""
    from cscnn.data import Normalization, get_task
    from cscnn.training import ReferencePredictor, reference_metrics

    task = get_task(task_name)
    g = torch.Generator().manual_seed(0)
    traj = torch.randn(th + tf + 2, *([4] * task.grid_dims), task.n_blades, generator=g, dtype=torch.float64)
    x, y = _windows(task, th, tf, traj)
    pers = ReferencePredictor(task, th, tf, "persistence")(x)
    assert pers.shape == y.shape
    last = x[:, :, th - 1:th] if task.time_as_axis else x[:, th - 1:th]
    assert torch.equal(pers, last.expand_as(pers))
    # a field frozen in time: persistence is exact, the zero predictor scores the field's mean square
    frozen = traj[:1].expand(th + tf, *traj.shape[1:])
    shift = torch.zeros(task.n_blades, dtype=torch.float64)
    shift[0] = 0.3  # a scalar shift, as the normalisation of a scalar field
    norm = Normalization(task.name, shift, torch.full((task.n_blades,), 2.0, dtype=torch.float64))
    xf, yf = _windows(task, th, tf, frozen, norm)
    ref = reference_metrics([(xf, yf)], task, th, tf, norm)
    assert ref["persistence"]["mse"] == pytest.approx(0.0, abs=1e-12)
    phys = per_field_mse(task, torch.zeros_like(frozen), frozen)
    assert ref["zero"]["mse"] == pytest.approx(sum(phys.values()) / len(phys))
    model_units = reference_metrics([(xf, yf)], task, th, tf, norm, physical_units=False)
    assert model_units["zero"]["mse"] == pytest.approx(ref["zero"]["mse"] / 4)  # scale 2: errors / 4
    with pytest.raises(ValueError, match="zero"):
        ReferencePredictor(task, th, tf, "mean")


def test_per_field_mse_uses_physical_components():
    pred, target = torch.zeros(2, 5, 5, 4), torch.zeros(2, 5, 5, 4)
    pred[..., 1] = 2.0  # vx wrong by 2
    pred[..., 3] = 7.0  # unused e01 blade: not a physical field
    f = per_field_mse("navier-stokes", pred, target)
    assert f == {"u": 0.0, "vx": 4.0, "vy": 0.0}
    g = per_field_mse("navier-stokes", pred, target, groups=True)
    assert g == {"smoke": 0.0, "velocity": 2.0}
    assert per_blade_mse(pred, target).tolist() == [0.0, 4.0, 0.0, 49.0]


def test_mse_is_over_the_physical_components_only():
    """one_step_metrics / rollout_metrics: "mse" averages the task's physical components (maxwell3d: E and H,
    6 of 8 blades); a model exact on E and H but not on the unused scalar and pseudoscalar scores 0 there,
    and "mse_all_blades" keeps the every-blade number. In physical units the unused blades (scale 1) would
    otherwise dominate E and H (scales 0.02-0.07)."""
    from cscnn import CliffordAlgebra
    from cscnn.data import Normalization
    from cscnn.training.metrics import one_step_metrics, rollout_metrics

    class Leaky(torch.nn.Module):  # the exact next frame, plus garbage on the unused blades
        def __init__(self, target):
            super().__init__()
            self.target = target

        def forward(self, x):
            y = self.target.clone()
            y[..., 0], y[..., 7] = 0.5, -0.5
            return y

    torch.manual_seed(0)
    traj = torch.zeros(6, 3, 3, 3, 8)
    traj[..., 1:7] = torch.randn(6, 3, 3, 3, 6)
    x, y = traj[None, :4], traj[None, 4:5]
    norm = Normalization("maxwell3d", [0.0] * 8, [1.0] + [0.02] * 3 + [0.07] * 3 + [1.0])
    one = one_step_metrics(Leaky(y), [(x, y)], "maxwell3d", normalization=norm)
    assert one["mse"] == 0.0 and one["mse_normalized"] == 0.0
    assert one["mse_all_blades"] == pytest.approx(2 * 0.25 / 8) and one["mse_normalized_all_blades"] > 0

    class Step(torch.nn.Module):  # a rollout model: exact on E and H for any history
        alg = CliffordAlgebra((1, 1, 1))

        def forward(self, x):
            y = torch.zeros_like(x[:, -1:])
            y[..., 0] = 1.0
            return y

    roll = rollout_metrics(Step(), [torch.zeros(7, 3, 3, 3, 8)], 4, 1, task="maxwell3d")
    assert roll["mse_per_step"] == [0.0] * 3 and roll["mse_per_step_all_blades"] == [pytest.approx(1 / 8)] * 3


# ------------------------------------------------------------------ end to end
def test_train_evaluate_plot_end_to_end(trained):
    from cscnn.training import equivariance, evaluate, info, plot

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
    ref = m["reference"]  # the zero predictor and persistence on the same windows, in the same units
    assert set(ref) == {"zero", "persistence"} and saved["reference"]["zero"]["mse"] == pytest.approx(
        ref["zero"]["mse"])
    assert ref["zero"]["mse"] > 0 and ref["persistence"]["mse"] > 0 and set(ref["zero"]["per_field"]) == {
        "u", "vx", "vy"}

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
    """`train(resume=True)` after a kill in the middle of an epoch (shuffled data, float64) ends with exactly
    the weights, optimizer state and step of the uninterrupted run."""
    import lightning as L

    from cscnn.training import train

    class Crash(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if trainer.global_step == 6:
                raise RuntimeError("simulated interruption")

    class Capture(L.Callback):
        def on_train_start(self, trainer, pl_module):
            self.step = trainer.global_step
            self.opt = {k: v.clone() for k, v in trainer.optimizers[0].state_dict()["state"][0].items()}
            self.lr = trainer.optimizers[0].param_groups[0]["lr"]

    # one epoch = 16 windows / batch 4 = 4 steps; validation and checkpoints every 3 steps (mid-epoch at 3 and 5)
    kw = {"max_steps": 8, "val_check_interval": 3, "precision": "64-true"}
    ref = tiny_config(tmp_path / "ref", ns_data, **kw)
    train(ref, progress=False)
    w_ref = read_checkpoint(Path(ref.out) / "checkpoints" / "last.ckpt")["state_dict"]

    cfg = tiny_config(tmp_path / "int", ns_data, **kw)
    with pytest.raises(RuntimeError, match="simulated interruption"):
        train(cfg, callbacks=[Crash()], progress=False)
    saved = read_checkpoint(Path(cfg.out) / "checkpoints" / "last.ckpt")
    assert saved["global_step"] == 6 and saved["epoch"] == 1  # in the middle of the second epoch
    with pytest.raises(CheckpointError, match="--resume"):
        train(cfg, progress=False)  # refuses to overwrite a run silently
    cap = Capture()
    res = train(cfg, resume=True, callbacks=[cap], progress=False)
    assert cap.step == 6 and res["global_step"] == 8
    for k, v in saved["optimizer_states"][0]["state"][0].items():  # Adam moments and step restored exactly
        assert torch.equal(cap.opt[k], v), k
    assert cap.lr == pytest.approx(saved["lr_schedulers"][0]["_last_lr"][0])
    w = read_checkpoint(Path(cfg.out) / "checkpoints" / "last.ckpt")["state_dict"]
    assert all(v.dtype == torch.float64 for v in w.values() if v.is_floating_point())
    for k in w_ref:
        assert torch.equal(w[k], w_ref[k]), k


# ------------------------------------------------------------------- bad input
def test_missing_data_dir_fails_before_training(tmp_path):
    from cscnn.training import DataDirError, train

    cfg = tiny_config(tmp_path, tmp_path / "nope")
    with pytest.raises(DataDirError, match="does not exist; generate it with `cscnn generate navier-stokes --split "
                                           "train --num 64 .*--split valid --num 8.*--generate"):
        train(cfg, progress=False)
    assert not (tmp_path / "run").exists()


def test_task_and_metric_mismatch(tmp_path, ns_data, trained):
    from cscnn.data import DataError
    from cscnn.training import evaluate, train

    cfg = tiny_config(tmp_path, ns_data)
    cfg.task = "maxwell3d"  # NS data (Cl(2,0)) for a Maxwell 3D run
    with pytest.raises(DataError, match=r"holds 'navier-stokes' data \(metric \(1, 1\)\), but 'maxwell3d'"):
        train(cfg, progress=False)
    cfg = tiny_config(tmp_path, ns_data)
    cfg.model.metric = [1, 1, 1]
    with pytest.raises(C.ConfigError, match=r"metric mismatch.*Cl\(3,0\).*'navier-stokes'.*Cl\(2,0\)"):
        train(cfg, progress=False)
    assert not (tmp_path / "run").exists()

    # a trained Cl(2,0) checkpoint evaluated on Maxwell 3D data
    mx = write_synthetic_splits("maxwell3d", tmp_path / "mx3", 1, 1, 1, steps=6, size=4)
    with pytest.raises(DataError, match="holds 'maxwell3d' data"):
        evaluate(trained[1]["out"], data_dir=mx, progress=False)


def test_bad_model_kwargs_fail_early(tmp_path, ns_data):
    from cscnn.training import train

    cfg = tiny_config(tmp_path, ns_data)
    cfg.model.kwargs["kernel_sise"] = 3
    with pytest.raises(C.ConfigError, match="kernel_sise"):
        train(cfg, progress=False)
    assert not (tmp_path / "run").exists()


def test_checkpoint_loading_is_safe_and_checked(tmp_path, trained):
    import copy

    from cscnn.training import train

    cfg = copy.deepcopy(trained[0])
    path = Path(cfg.out) / "checkpoints" / "last.ckpt"

    # a checkpoint with a pickled object: refused, nothing executed
    ckpt = torch.load(path, weights_only=True)
    ckpt["evil"] = _Evil()
    bad = tmp_path / "evil.ckpt"
    torch.save(ckpt, bad)
    _Evil.ran = False
    with pytest.raises(CheckpointError, match="pickled Python objects.*refused.*weights_only=True"):
        read_checkpoint(bad)
    assert not _Evil.ran

    # another model / algebra than requested
    with pytest.raises(CheckpointError, match=r"metric: checkpoint has \(1, 1\), expected \(1, 1, 1\)"):
        load_module(path, expected={"metric": (1, 1, 1), "model_name": "cs_resnet"})
    with pytest.raises(CheckpointError, match="model_name: checkpoint has 'cs_resnet', expected 'resnet'"):
        load_module(path, expected={"model_name": "resnet"})
    # resuming a run whose config now names another model
    cfg.model = C.ModelConfig(name="resnet", hidden_channels=4, kwargs={"blocks": [1], "kernel_size": 3})
    with pytest.raises(CheckpointError, match=r"changed settings \(model.hidden_channels: 2 -> 4; .*model.name: "
                                              r"'cs_resnet' -> 'resnet'\)"):
        train(cfg, resume=True, progress=False)
    # weights of another architecture under the same name
    ckpt = torch.load(path, weights_only=True)
    ckpt["hyper_parameters"]["hidden_channels"] = 3
    other = tmp_path / "other.ckpt"
    torch.save(ckpt, other)
    with pytest.raises(CheckpointError, match="do not fit.*wrong shape: model"):
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
    from cscnn.training import evaluate, train

    cfg = tiny_config(tmp_path, ns_data, max_steps=2, val_check_interval=2)
    cfg.model = C.ModelConfig(name="fno", hidden_channels=4, kwargs={"modes": 2, "n_layers": 1})
    train(cfg, progress=False)
    module = load_module(Path(cfg.out) / "checkpoints" / "last.ckpt")
    assert module.hparams.model_name == "fno"
    cfg.trainer.max_steps = 3
    assert train(cfg, resume=True, progress=False)["global_step"] == 3
    assert evaluate(cfg.out, rollout_steps=1, progress=False)["one_step"]["mse"] > 0


@pytest.mark.parametrize("name", ["clifford_resnet", "steerable_resnet", "fno", "resnet", "cs_resnet"])
def test_every_model_trains_through_the_pipeline(tmp_path, ns_data, name):
    """The meta-device size estimate must not stop a model whose constructor reads tensor values
    (cliffordlayers' signature check calls .item(); the Clifford ResNet failed to train before)."""
    pytest.importorskip({"clifford_resnet": "cliffordlayers", "steerable_resnet": "escnn",
                         "fno": "neuralop"}.get(name, "torch"))
    from cscnn.training import train

    cfg = tiny_config(tmp_path, ns_data, max_steps=2, val_check_interval=2)
    kwargs = {"modes": 2, "n_layers": 1} if name == "fno" else {"blocks": [1], "kernel_size": 3}
    cfg.model = C.ModelConfig(name=name, hidden_channels=2, kwargs=kwargs)
    assert train(cfg, progress=False)["global_step"] == 2


# ----------------------------------------------------------- wrong answers fixed
def test_diverging_run_stops_at_first_non_finite_loss_without_checkpoints(tmp_path, ns_data):
    from cscnn.training import TrainingDiverged, train

    cfg = tiny_config(tmp_path, ns_data, max_steps=6, val_check_interval=1)
    cfg.optim.lr = 1e30
    with pytest.raises(TrainingDiverged, match=r"loss is (nan|inf) at step [1-5] \(epoch 0, batch \d\).*optim\.lr"):
        train(cfg, progress=False)
    ckpts = Path(cfg.out) / "checkpoints"
    assert not (ckpts / "best.ckpt").exists() and not (ckpts / "last.ckpt").exists()


def test_non_finite_weights_are_never_saved(trained):
    from cscnn.training import TrainingDiverged

    module = load_module(Path(trained[1]["out"]) / "checkpoints" / "last.ckpt")
    sd = {k: v.clone() for k, v in module.state_dict().items()}
    name = next(k for k, v in sd.items() if v.is_floating_point())
    sd[name].view(-1)[0] = float("nan")
    with pytest.raises(TrainingDiverged, match=f"not saving a checkpoint at step 7: weights {name}"):
        module.on_save_checkpoint({"state_dict": sd, "global_step": 7})
    module.on_save_checkpoint({"state_dict": module.state_dict(), "global_step": 7})  # finite: accepted


@pytest.mark.parametrize("change, listed", [
    ({"optim.lr": 0.01}, "optim.lr: 0.001 -> 0.01"),
    ({"optim.scheduler": "constant", "optim.weight_decay": 0.1},
     "optim.scheduler: 'cosine' -> 'constant'; optim.weight_decay: 0.0 -> 0.1"),
    ({"data.num_train": 2}, "data.num_train: None -> 2"),
])
def test_resume_refuses_changed_settings_and_keeps_the_record(tmp_path, ns_data, change, listed):
    import copy

    from cscnn.training import train

    cfg = tiny_config(tmp_path, ns_data, max_steps=2, val_check_interval=2)
    train(cfg, progress=False)
    recorded = (Path(cfg.out) / "config.yaml").read_text()
    ckpt = read_checkpoint(Path(cfg.out) / "checkpoints" / "last.ckpt")
    new = copy.deepcopy(cfg)
    new.trainer.max_steps = 4  # a longer budget alone is fine, the other changes are not
    for key, value in change.items():
        section, name = key.split(".")
        setattr(getattr(new, section), name, value)
    with pytest.raises(CheckpointError, match="cannot resume the run in .*" + listed.replace(".", r"\.")
                       .replace("(", r"\(").replace(")", r"\)")):
        train(new, resume=True, progress=False)
    assert (Path(cfg.out) / "config.yaml").read_text() == recorded
    assert read_checkpoint(Path(cfg.out) / "checkpoints" / "last.ckpt")["global_step"] == ckpt["global_step"]
    cfg.trainer.max_steps = 4
    assert train(cfg, resume=True, progress=False)["global_step"] == 4
    assert "max_steps: 4" in (Path(cfg.out) / "config.yaml").read_text()


def test_resume_refuses_other_training_data(tmp_path, ns_data):
    from cscnn.training import train

    cfg = tiny_config(tmp_path, ns_data, max_steps=2, val_check_interval=2)
    train(cfg, progress=False)
    cfg.data.dir = str(write_synthetic_splits("navier-stokes", tmp_path / "other", 4, 2, 2, steps=6, size=8, seed=7))
    with pytest.raises(CheckpointError, match=r"its data changed since .*: .*other/train\.h5 has changed"):
        train(cfg, resume=True, progress=False)


@pytest.mark.parametrize("key, value, message", [
    ("optim.lr", float("nan"), "'optim.lr' must be a finite number > 0, got nan"),
    ("optim.lr", float("inf"), "'optim.lr' must be a finite number > 0, got inf"),
    ("optim.lr", 0.0, "'optim.lr' must be a finite number > 0"),
    ("optim.weight_decay", -1.0, "'optim.weight_decay' must be a finite number >= 0"),
    ("trainer.precision", "banana", "'trainer.precision' must be one of .*32-true.*got 'banana'"),
    ("trainer.devices", 0, "'trainer.devices' must be a count >= 1"),
    ("trainer.devices", "0", "'trainer.devices' must be a count >= 1"),
    ("trainer.devices", [], "'trainer.devices' must be a count >= 1"),
    ("trainer.max_steps", 0, "'trainer.max_steps' must be >= 1"),
    ("trainer.gradient_clip_val", float("nan"), "'trainer.gradient_clip_val' must be a finite number > 0"),
    ("data.num_workers", -1, "'data.num_workers' must be >= 0"),
    ("trainer.compile", "fast", "'trainer.compile' must be null .* one of default, lite, reduce-overhead.*got 'fast'"),
    ("trainer.compile_backend", "", "'trainer.compile_backend' must be a torch.compile backend name"),
])
def test_invalid_values_are_config_errors(key, value, message):
    section, name = key.split(".")
    d = {"task": "navier-stokes", "trainer": {"max_steps": 3}, section: {name: value}}
    if section == "trainer":
        d["trainer"]["max_steps"] = d["trainer"].get("max_steps", 3)
    with pytest.raises(C.ConfigError, match=message):
        C.config_from_dict(d)


@pytest.mark.parametrize("devices", [1, -1, "auto", "1", "0,", "0,1", [0]])
def test_valid_device_settings_pass(devices):
    C.config_from_dict({"task": "navier-stokes", "trainer": {"max_steps": 3, "devices": devices}})


def test_yaml_errors_name_the_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("task: navier-stokes\nmodel: {name: cs_resnet\n")
    with pytest.raises(C.ConfigError, match=r"bad\.yaml is not valid YAML at line \d+, column \d+"):
        C.load_config(bad)
    bad.write_text("task: !!python/object:os.system {}\n")
    with pytest.raises(C.ConfigError, match=r"bad\.yaml \(line 1\): could not determine a constructor.*plain YAML"):
        C.load_config(bad)
    bad.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe")
    with pytest.raises(C.ConfigError, match=r"bad\.yaml is not a text \(UTF-8\) YAML file: byte 0x89 at offset 0"):
        C.load_config(bad)
    with pytest.raises(C.ConfigError, match=r"override 'model\.kwargs\.blocks=\[1, 2' is not valid YAML"):
        C.apply_overrides({}, ["model.kwargs.blocks=[1, 2"])
    with pytest.raises(C.ConfigError, match=r"override 'seed=!!python/name:os\.system'.*plain YAML"):
        C.apply_overrides({}, ["seed=!!python/name:os.system"])
    with pytest.raises(C.ConfigError, match="is a folder; expected a YAML config file"):
        C.load_config(tmp_path)


def test_checkpoint_files_that_are_not_checkpoints(tmp_path, trained):
    empty = tmp_path / "empty.ckpt"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="is empty \\(0 bytes\\): it was cut off while being written"):
        load_module(empty)
    text = tmp_path / "notes.ckpt"
    text.write_text("not a checkpoint\n")
    with pytest.raises(CheckpointError, match="is not a PyTorch checkpoint") as e:
        read_checkpoint(text)
    assert "weights_only=False" not in str(e.value)
    good = Path(trained[1]["out"]) / "checkpoints" / "last.ckpt"
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        read_checkpoint(cut)
    ckpt = torch.load(good, weights_only=True)
    gone = sorted(ckpt["state_dict"])[-1]
    del ckpt["state_dict"][gone]
    torch.save(ckpt, tmp_path / "missing.ckpt")
    with pytest.raises(CheckpointError, match=f"do not fit .*missing: {gone.replace('.', '[.]')}$"):
        load_module(tmp_path / "missing.ckpt")


def test_non_finite_metrics_are_written_as_null(tmp_path, trained):
    from cscnn.training import evaluate
    from cscnn.training.json_safe import finite_json

    assert finite_json({"a": [1.0, float("nan")], "b": {"c": float("inf")}, "d": "x"}) == (
        {"a": [1.0, None], "b": {"c": None}, "d": "x"}, ["a[1]", "b.c"])
    good = Path(trained[1]["out"]) / "checkpoints" / "last.ckpt"
    ckpt = torch.load(good, weights_only=True)
    for v in ckpt["state_dict"].values():
        if v.is_floating_point():
            v.fill_(float("nan"))
    torch.save(ckpt, tmp_path / "nan.ckpt")
    m = evaluate(tmp_path / "nan.ckpt", data_dir=trained[0].data.dir, out=tmp_path / "ev", rollout_steps=1,
                 num_rollout_trajectories=1, progress=False)
    text = Path(m["path"]).read_text()
    assert "NaN" not in text
    saved = json.loads(text)  # strict JSON
    assert saved["one_step"]["mse"] is None and "one_step.mse" in saved["non_finite"]
    assert m["non_finite"] == saved["non_finite"]


# ------------------------------------------------------------------ the optimizer
def test_adam_is_one_fused_operator_and_steps_like_torch_default():
    from cscnn.training.module import adam

    def make():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2)).double()

    models = [make(), make(), make()]
    opts = [torch.optim.Adam(models[0].parameters(), lr=1e-2, weight_decay=1e-3),
            adam(models[1].parameters(), lr=1e-2, weight_decay=1e-3),
            adam(models[2].parameters(), fused=False, lr=1e-2, weight_decay=1e-3)]
    if tuple(int(v) for v in torch.__version__.split(".")[:2]) >= (2, 4):  # fused Adam on CPU since torch 2.4
        assert opts[1].defaults["fused"] is True
    assert opts[2].defaults["foreach"] is True and not opts[2].defaults.get("fused")
    complex_param = torch.nn.Parameter(torch.zeros(2, dtype=torch.complex64))  # e.g. an FNO's spectral weights
    assert not adam([complex_param, torch.nn.Parameter(torch.zeros(2))]).defaults.get("fused")
    x = torch.randn(5, 3, dtype=torch.float64)
    for _ in range(5):
        for m, o in zip(models, opts):
            o.zero_grad()
            m(x).square().sum().backward()
            o.step()
    for m in models[1:]:
        for p, q in zip(m.parameters(), models[0].parameters()):
            torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-12)


def test_training_optimizer_is_fused_in_full_precision():
    from cscnn.training.module import ForecastModule

    module = ForecastModule("resnet", (1, 1), "navier-stokes", 1, 1, 4)
    opt = module.configure_optimizers()["optimizer"]
    if tuple(int(v) for v in torch.__version__.split(".")[:2]) >= (2, 4):
        assert opt.defaults["fused"] is True


# ------------------------------------------------------------------ torch.compile
def test_compiled_training_matches_eager_and_keeps_checkpoint_keys(tmp_path, ns_data):
    """``trainer.compile``: the model trains under torch.compile (dynamo traces it: graphs are counted),
    to the eager run's losses, and its checkpoint has the eager state_dict keys. The aot_eager backend
    runs the traced forward and backward graphs without inductor's minutes of code generation."""
    from torch._dynamo.utils import counters

    from cscnn.training import train

    eager = train(tiny_config(tmp_path / "eager", ns_data, max_steps=2, val_check_interval=2), progress=False)
    torch._dynamo.reset()
    counters.clear()
    cfg = tiny_config(tmp_path / "compiled", ns_data, max_steps=2, val_check_interval=2,
                      compile="default", compile_backend="aot_eager")
    res = train(cfg, progress=False)
    assert counters["stats"]["unique_graphs"] >= 1  # the model ran through dynamo
    assert res["global_step"] == 2
    assert res["val_loss"] == pytest.approx(eager["val_loss"], rel=1e-4)
    keys = lambda path: set(torch.load(path, map_location="cpu", weights_only=True)["state_dict"])  # noqa: E731
    assert keys(res["last"]) == keys(eager["last"])
    assert C.load_config(Path(res["out"]) / "config.yaml").trainer.compile == "default"


def test_unknown_compile_backend_fails_before_training(tmp_path, ns_data):
    from cscnn.training import train

    cfg = tiny_config(tmp_path, ns_data, compile="default", compile_backend="no-such-backend")
    message = "'trainer.compile_backend' must be a torch.compile backend such as .*inductor.*no-such-backend"
    with pytest.raises(C.ConfigError, match=message):
        train(cfg, progress=False)
    assert not (tmp_path / "run" / "checkpoints").exists()
