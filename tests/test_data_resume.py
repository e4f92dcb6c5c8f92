"""A run killed mid-epoch and resumed from its last checkpoint ends exactly where the uninterrupted run
ends (float64, CPU): the data module's loaders save and restore their position in the epoch."""

from pathlib import Path

import pytest

pytest.importorskip("lightning")

import lightning as L  # noqa: E402
import torch  # noqa: E402

from cscnn.training import config as C  # noqa: E402
from cscnn.training.checks import resolve_task  # noqa: E402
from cscnn.training.fit import build_module, make_datamodule, make_trainer  # noqa: E402
from cscnn.training.synthetic import write_synthetic_splits  # noqa: E402

MODEL = {"name": "cs_resnet", "hidden_channels": 2,
         "kwargs": {"blocks": [1], "kernel_size": 3, "kernel_num_layers": 2, "kernel_hidden_channels": 4}}


class Killed(RuntimeError):
    pass


class KillAt(L.Callback):
    """Raise (like a SIGKILL, nothing saved) before the batch of global step ``step + 1``."""

    def __init__(self, step):
        self.step = step

    def on_train_batch_start(self, trainer, *args):
        if trainer.global_step == self.step:
            raise Killed(f"killed at step {self.step}")


def _config(out: Path, data: Path) -> C.ExperimentConfig:
    # 4 trajectories x 2 windows, batch 2: 4 batches per epoch; validation and last.ckpt every 3 steps
    return C.config_from_dict({
        "name": "resume", "task": "navier-stokes", "out": str(out), "seed": 0,
        "data": {"dir": str(data), "batch_size": 2, "time_history": 4, "time_future": 1, "shuffle": True},
        "model": MODEL, "optim": {"scheduler": "cosine", "lr": 0.01},
        "trainer": {"max_steps": 10, "accelerator": "cpu", "devices": 1, "precision": "64-true",
                    "enable_progress_bar": False, "log_every_n_steps": 1, "val_check_interval": 3,
                    "check_val_every_n_epoch": None},
    })


def _fit(cfg, ckpt_path=None, callbacks=()):
    task = resolve_task(cfg.task)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    dm = make_datamodule(cfg, task)
    dm.setup("fit")
    # float64 from the start: Lightning restores checkpoint weights before its precision plugin converts the
    # module, so a float32 module would round the restored float64 weights (~1e-8)
    module = build_module(cfg, task, dm.normalization.to_dict()).double()
    trainer = make_trainer(cfg, cfg.out_dir(), callbacks=list(callbacks), loggers=False)
    trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path, weights_only=False)
    return trainer, module


def test_resumed_run_equals_uninterrupted_run(tmp_path):
    data = write_synthetic_splits("navier-stokes", tmp_path / "data", 4, 1, 1, steps=6, size=8)
    ref_trainer, ref = _fit(_config(tmp_path / "ref", data))
    assert ref_trainer.global_step == 10

    cfg = _config(tmp_path / "killed", data)
    with pytest.raises(Killed):
        _fit(cfg, callbacks=[KillAt(8)])
    last = cfg.out_dir() / "checkpoints" / "last.ckpt"
    saved = torch.load(last, weights_only=False)
    assert saved["global_step"] == 6  # mid-epoch: 2 of 4 batches of epoch 1
    loader_state = saved["loops"]["fit_loop"]["state_dict"]["combined_loader"]
    assert loader_state == [{"epoch": 1, "batches": 2, "seed": 0, "num_replicas": 1, "batch_size": 2}]

    trainer, resumed = _fit(cfg, ckpt_path=str(last))
    assert trainer.global_step == 10
    for (name, p), q in zip(ref.named_parameters(), resumed.parameters()):
        torch.testing.assert_close(q, p, rtol=1e-12, atol=1e-12, msg=name)
    assert float(trainer.callback_metrics["val/loss"]) == pytest.approx(
        float(ref_trainer.callback_metrics["val/loss"]), rel=1e-12)
