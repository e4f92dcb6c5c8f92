"""The state a training run leaves: ``last.ckpt`` always the latest state (validation that never
improves, every way training ends, SIGTERM, SIGKILL), atomic checkpoint writes (a full disk), and one
run per folder (an OS lock that a killed process cannot leave behind). Through the ``cscnn`` command."""

from __future__ import annotations

import csv
import errno
import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

L = pytest.importorskip("lightning")
pytest.importorskip("h5py")

from cscnn.cli import main  # noqa: E402
from cscnn.training import config as C  # noqa: E402
from cscnn.training.checkpoint import read_checkpoint  # noqa: E402
from cscnn.training.synthetic import write_synthetic_splits  # noqa: E402

SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture(scope="module")
def ns_data(tmp_path_factory):
    return write_synthetic_splits("navier-stokes", tmp_path_factory.mktemp("ns"), 4, 2, 2, steps=6, size=8)


def _config(path: Path, data_dir: Path, optim=None, **trainer) -> str:
    """A tiny CS-ResNet config file (one epoch = 4 steps)."""
    t = {"max_steps": 4, "accelerator": "cpu", "devices": 1, "enable_progress_bar": False, "log_every_n_steps": 1,
         "val_check_interval": 2, "check_val_every_n_epoch": None, "limit_val_batches": 1, **trainer}
    cfg = C.config_from_dict({
        "name": "tiny", "task": "navier-stokes", "out": str(path.parent / "run"), "seed": 0,
        "data": {"dir": str(data_dir), "batch_size": 4, "time_history": 2, "time_future": 1, "num_workers": 0},
        "model": {"name": "cs_resnet", "hidden_channels": 2,
                  "kwargs": {"blocks": [1], "kernel_size": 3, "kernel_num_layers": 2, "kernel_hidden_channels": 4}},
        "optim": {"scheduler": "constant", **(optim or {})}, "trainer": t,
    })
    C.save_config(cfg, path)
    return str(path)


def _step(path) -> int:
    return read_checkpoint(path)["global_step"]


def _steps_trained(run: Path, version: int) -> int:
    """The training steps a run (its CSV log version) took: rows with a training loss."""
    with open(run / "logs" / "csv" / f"version_{version}" / "metrics.csv") as f:
        return sum(1 for r in csv.DictReader(f) if r.get("train/loss"))


def test_last_checkpoint_advances_when_validation_never_improves(tmp_path, ns_data, capsys):
    """lr=1e-300 leaves float32 weights unchanged, so the validation loss never improves after the first
    check: best.ckpt stays at step 2 while last.ckpt, `cscnn info` and --resume follow the final step."""
    run = tmp_path / "run"
    cfg = _config(tmp_path / "c.yaml", ns_data, optim={"lr": 1e-300}, max_steps=7)
    assert main(["train", "--config", cfg, "--no-progress"]) == 0
    assert "training done: step 7" in capsys.readouterr().out
    assert _step(run / "checkpoints" / "best.ckpt") == 2
    assert _step(run / "checkpoints" / "last.ckpt") == 7
    assert main(["info", str(run)]) == 0
    assert "step 7" in capsys.readouterr().out

    # a longer budget continues from step 7, not from the best checkpoint's step 2
    assert main(["train", "--config", cfg, "--resume", "--no-progress", "--set", "trainer.max_steps=9"]) == 0
    assert "training done: step 9" in capsys.readouterr().out
    assert _steps_trained(run, 0) == 7 and _steps_trained(run, 1) == 2
    assert _step(run / "checkpoints" / "last.ckpt") == 9 and _step(run / "checkpoints" / "best.ckpt") == 2


EPOCHS = {"max_steps": -1, "val_check_interval": 1.0, "check_val_every_n_epoch": 2, "precision": "64-true"}


@pytest.mark.parametrize("trainer", [
    {"max_epochs": 3, **EPOCHS},                                                    # ends unvalidated
    {"max_steps": 100000, "max_time": "00:00:00:03", "val_check_interval": 1000},   # time limit
], ids=["max_epochs", "max_time"])
def test_last_checkpoint_is_the_final_state_however_training_ends(tmp_path, ns_data, capsys, trainer):
    run = tmp_path / "run"
    cfg = _config(tmp_path / "c.yaml", ns_data, **trainer)
    assert main(["train", "--config", cfg, "--no-progress"]) == 0
    final = int(capsys.readouterr().out.split("training done: step ")[1].split(",")[0])
    assert final > 0 and _step(run / "checkpoints" / "last.ckpt") == final
    assert main(["info", str(run)]) == 0
    assert f"step {final}" in capsys.readouterr().out
    if "max_epochs" in trainer:  # saved at the end of training, it resumes exactly: 3 + 2 epochs = 5 epochs
        assert main(["train", "--config", cfg, "--resume", "--no-progress", "--set", "trainer.max_epochs=5"]) == 0
        ref = _config(tmp_path / "ref" / "c.yaml", ns_data, max_epochs=5, **EPOCHS)
        assert main(["train", "--config", ref, "--no-progress"]) == 0
        w = read_checkpoint(run / "checkpoints" / "last.ckpt")
        w_ref = read_checkpoint(tmp_path / "ref" / "run" / "checkpoints" / "last.ckpt")
        assert w["global_step"] == w_ref["global_step"] == 20
        assert all(torch.equal(w["state_dict"][k], v) for k, v in w_ref["state_dict"].items())


def test_full_disk_keeps_the_previous_checkpoint_and_says_so(tmp_path, ns_data, capsys, monkeypatch):
    """A write that fails part-way (disk full) leaves the previous last.ckpt whole: one-line error, exit 2."""
    run = tmp_path / "run"
    real_save, calls = torch.save, []

    def save(obj, f, *a, **k):
        calls.append(getattr(f, "name", f))
        if len(calls) == 3:  # best+last at step 2 went through; the next write fills the disk part-way
            f.write(b"PK\x03\x04 partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *a, **k)

    monkeypatch.setattr(torch, "save", save)
    cfg = _config(tmp_path / "c.yaml", ns_data, optim={"lr": 1e-300})
    assert main(["train", "--config", cfg, "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: cannot write checkpoint ") and "\n" not in err, err
    assert "No space left on device (disk full); the previous last.ckpt is intact" in err
    assert _step(run / "checkpoints" / "last.ckpt") == 2  # whole and loadable
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]  # no temp file


def test_full_disk_outside_a_checkpoint_is_one_line_too(tmp_path, ns_data, capsys, monkeypatch):
    """A full disk while writing the logs: one line, and the checkpoints written before are whole."""
    from lightning.pytorch.loggers import CSVLogger

    run = tmp_path / "run"
    real = CSVLogger.save

    def save(self):
        if (run / "checkpoints" / "last.ckpt").is_file():  # after the first checkpoint
            raise OSError(errno.ENOSPC, "No space left on device", str(run / "logs" / "csv"))
        return real(self)

    monkeypatch.setattr(CSVLogger, "save", save)
    assert main(["train", "--config", _config(tmp_path / "c.yaml", ns_data, max_steps=8), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: disk full while writing {run / 'logs' / 'csv'} (No space left on device); "
                          "checkpoints are replaced atomically") and "\n" not in err, err
    assert _step(run / "checkpoints" / "last.ckpt") == 2  # loads


def test_a_held_run_folder_refuses_a_second_writer_and_lets_readers_read(tmp_path, ns_data, capsys):
    run = tmp_path / "run"
    cfg = _config(tmp_path / "c.yaml", ns_data)
    assert main(["train", "--config", cfg, "--no-progress"]) == 0
    capsys.readouterr()
    lock = run / "train.lock"
    assert "process " in lock.read_text()
    with open(lock, "r+") as f:  # another training run holding the folder
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        f.seek(0), f.truncate(), f.write("process 4242 on somehost, started 2026-01-01 00:00:00 UTC\n"), f.flush()
        for extra in (["--resume"], ["--overwrite"], []):
            t0 = time.time()
            assert main(["train", "--config", cfg, "--no-progress", "--set", "trainer.max_steps=6", *extra]) == 2
            err = capsys.readouterr().err.strip()
            assert err == (f"error: run folder {run} is in use by another training run (process 4242 on somehost, "
                           "started 2026-01-01 00:00:00 UTC); wait for it to finish or choose another --out"), err
            assert time.time() - t0 < 5  # at once: it does not wait for the lock
        assert main(["info", str(run)]) == 0  # a reader reads, and says the folder is still training
        err = capsys.readouterr().err
        assert f"note: {run} is still being trained (process 4242 on somehost" in err
    assert _step(run / "checkpoints" / "last.ckpt") == 4  # untouched by the refused runs
    assert main(["info", str(run)]) == 0 and "still being trained" not in capsys.readouterr().err


def test_a_refused_new_folder_is_not_left_behind(tmp_path, ns_data, capsys):
    out = tmp_path / "new" / "run"
    cfg = _config(tmp_path / "c.yaml", ns_data)
    assert main(["train", "--config", cfg, "--out", str(out), "--no-progress", "--data", str(tmp_path / "none")]) == 2
    assert "error: " in capsys.readouterr().err
    assert not out.exists()


def test_sigint_stops_after_the_current_step_with_its_state_saved(tmp_path, ns_data):
    """Ctrl+C at step 3 (between validations at 2 and 4): the step finishes, last.ckpt holds step 3,
    and the signal handlers are as before once training returns."""
    import lightning as L

    from cscnn.training import train
    from cscnn.training.callbacks import TrainingInterrupted

    class CtrlC(L.Callback):
        sent = False

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if trainer.global_step == 2 and not self.sent:
                self.sent = True
                os.kill(os.getpid(), signal.SIGINT)

    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    for accumulate in (1, 2):  # with 2 batches per step, the stop waits for the step's second batch
        run = tmp_path / f"run{accumulate}"
        cfg = C.load_config(_config(tmp_path / "c.yaml", ns_data, max_steps=8, accumulate_grad_batches=accumulate))
        cfg.out = str(run)
        with pytest.raises(TrainingInterrupted, match=r"training stopped by SIGINT at step 3; the latest state is in "
                                                      + str(run / "checkpoints" / "last.ckpt")) as e:
            train(cfg, callbacks=[CtrlC()], progress=False)  # raised: no caller takes the run for a finished one
        assert e.value.signum == signal.SIGINT and e.value.step == 3
        assert _step(run / "checkpoints" / "last.ckpt") == 3
        assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def _same_weights(run: Path, ref: Path) -> None:
    """The last.ckpt of ``run`` and ``ref``: same step, same float64 weights to the last bit."""
    w, w_ref = read_checkpoint(run / "checkpoints" / "last.ckpt"), read_checkpoint(ref / "checkpoints" / "last.ckpt")
    assert w["global_step"] == w_ref["global_step"]
    assert w["state_dict"].keys() == w_ref["state_dict"].keys()
    assert all(v.dtype == torch.float64 for v in w_ref["state_dict"].values() if v.is_floating_point())
    for k, v in w_ref["state_dict"].items():
        assert torch.equal(w["state_dict"][k], v), k


class _CtrlCAt(L.Callback):
    """Sends SIGINT to this process during global step ``step``."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step - 1:
            os.kill(os.getpid(), signal.SIGINT)


class Crash(RuntimeError):
    pass


class _CrashAfter(L.Callback):
    """A crash after global step ``step`` (before the next one's batch): like SIGKILL, nothing is saved."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            raise Crash(f"crash after step {self.step}")


def test_a_stop_at_an_epochs_last_step_resumes_exactly(tmp_path, ns_data):
    """One epoch = 4 steps. Ctrl+C during step 4 stops right after it, at the epoch's last step; the resumed
    run starts epoch 1 from its beginning. Stopped again mid-epoch (step 7) and resumed again (Lightning's
    epoch counters differ after the first resume), the run ends bit-identical to an uninterrupted one."""
    from cscnn.training import train
    from cscnn.training.callbacks import TrainingInterrupted

    kw = {"precision": "64-true", "val_check_interval": 3, "max_steps": 10}
    run, cfg = tmp_path / "run", _config(tmp_path / "c.yaml", ns_data, **kw)
    for stop, resume in ((4, False), (7, True)):
        with pytest.raises(TrainingInterrupted) as e:
            train(C.load_config(cfg), resume=resume, callbacks=[_CtrlCAt(stop)], progress=False)
        assert e.value.step == stop and _step(run / "checkpoints" / "last.ckpt") == stop
    train(C.load_config(cfg), resume=True, progress=False)
    assert _steps_trained(run, 2) == 3  # steps 8 to 10
    train(C.load_config(_config(tmp_path / "ref" / "c.yaml", ns_data, **kw)), progress=False)
    _same_weights(run, tmp_path / "ref" / "run")


@pytest.mark.parametrize("trainer, saved", [
    ({"val_check_interval": 4, "max_steps": 9}, 4),      # validation at epoch 0's last step
    ({"val_check_interval": 2, "max_steps": 9}, 6),      # validation in the middle of epoch 1
    ({"val_check_interval": 4, "max_steps": 14}, 8),     # epoch 1's last step, then two more epochs
    ({"max_steps": -1, "max_epochs": 3, "val_check_interval": 1.0, "check_val_every_n_epoch": 1}, 4),  # default
    ({"max_steps": -1, "max_epochs": 3, "val_check_interval": 2, "check_val_every_n_epoch": 1}, 6),
], ids=["epoch_end", "mid_epoch", "several_epochs", "once_per_epoch", "mid_epoch_max_epochs"])
def test_a_crash_right_after_a_validation_checkpoint_resumes_bit_identically(tmp_path, ns_data, trainer, saved):
    """One epoch = 4 steps, shuffled. A crash right after the validation that wrote last.ckpt (nothing saved
    since): the same command with --resume ends with the weights of an uninterrupted run, to the last bit."""
    from cscnn.training import train

    run, cfg = tmp_path / "run", _config(tmp_path / "c.yaml", ns_data, precision="64-true", **trainer)
    with pytest.raises(Crash):
        train(C.load_config(cfg), callbacks=[_CrashAfter(saved)], progress=False)
    assert _step(run / "checkpoints" / "last.ckpt") == saved
    train(C.load_config(cfg), resume=True, progress=False)
    final = trainer["max_steps"] if trainer["max_steps"] > 0 else 4 * trainer["max_epochs"]
    assert _steps_trained(run, 1) == final - saved  # continued from the validation's step
    train(C.load_config(_config(tmp_path / "ref" / "c.yaml", ns_data, precision="64-true", **trainer)),
          progress=False)
    _same_weights(run, tmp_path / "ref" / "run")


# ----------------------------------------------------------------- real signals
def _start(cfg: str, *args) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "cscnn", "train", "--config", cfg, "--no-progress", *args],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    t0 = time.time()
    while not path.is_file():
        if proc.poll() is not None:
            raise AssertionError(f"training ended early: {proc.communicate()}")
        assert time.time() - t0 < timeout, f"{path} not written within {timeout} s"
        time.sleep(0.1)


@pytest.mark.slow  # ~25 s: a training process of its own, a resumed run and a reference run
def test_sigterm_stops_after_the_step_and_resume_is_bit_identical(tmp_path, ns_data, capsys):
    """SIGTERM mid-training: the run stops after its current step with that step saved in last.ckpt
    (between validations), exits 143, and --resume ends with exactly the weights of an uninterrupted
    run (float64, shuffled data). While it runs, a second writer is refused naming its process."""
    kw = {"precision": "64-true", "val_check_interval": 3}
    cfg = _config(tmp_path / "c.yaml", ns_data, max_steps=100000, **kw)
    run = tmp_path / "run"
    proc = _start(cfg)
    try:
        _wait_for(run / "checkpoints" / "last.ckpt", proc)  # the first validation (step 3) is done
        assert main(["train", "--config", cfg, "--resume", "--no-progress"]) == 2
        assert f"in use by another training run (process {proc.pid} on " in capsys.readouterr().err
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err
    stopped = int(err.split("training stopped by SIGTERM at step ")[1].split(";")[0])
    last = run / "checkpoints" / "last.ckpt"
    assert f"the latest state is in {last}: continue with the same command and --resume" in err
    assert _step(run / "checkpoints" / "last.ckpt") == stopped >= 3

    end = stopped + 2
    assert main(["train", "--config", cfg, "--resume", "--no-progress", "--set", f"trainer.max_steps={end}"]) == 0
    assert _steps_trained(run, 1) == 2  # continued from the stop, not from the last validation
    ref = _config(tmp_path / "ref" / "c.yaml", ns_data, max_steps=end, **kw)
    assert main(["train", "--config", ref, "--no-progress"]) == 0
    w = read_checkpoint(run / "checkpoints" / "last.ckpt")["state_dict"]
    w_ref = read_checkpoint(tmp_path / "ref" / "run" / "checkpoints" / "last.ckpt")["state_dict"]
    assert w.keys() == w_ref.keys()
    for k in w_ref:
        assert torch.equal(w[k], w_ref[k]), k


def test_sigkill_leaves_the_last_checkpoint_whole_and_no_stale_lock(tmp_path, ns_data, capsys):
    cfg = _config(tmp_path / "c.yaml", ns_data, max_steps=100000)
    run = tmp_path / "run"
    proc = _start(cfg)
    try:
        _wait_for(run / "checkpoints" / "last.ckpt", proc)
        time.sleep(1.0)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
    finally:
        proc.kill()
    step = _step(run / "checkpoints" / "last.ckpt")  # a whole checkpoint (never a half-written one)
    assert step >= 2
    assert main(["train", "--config", cfg, "--resume", "--no-progress", "--set", f"trainer.max_steps={step + 1}"]) == 0
    assert f"training done: step {step + 1}" in capsys.readouterr().out
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]  # no temp file


@pytest.mark.parametrize("before, after", [([], ["gravity"]), (["gravity"], [])])
def test_resume_with_changed_symmetry_breaking_names_the_key(tmp_path, ns_data, capsys, before, after):
    run = tmp_path / "run"
    cfg = _config(tmp_path / "c.yaml", ns_data)
    flag = ["--set", f"data.symmetry_breaking={before}"]
    assert main(["train", "--config", cfg, "--no-progress", *flag]) == 0
    capsys.readouterr()
    assert main(["train", "--config", cfg, "--resume", "--no-progress", "--set", f"data.symmetry_breaking={after}",
                 "trainer.max_steps=6"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: cannot resume the run in {run} with changed settings (data.symmetry_breaking: "
                          f"{before!r} -> {after!r})") and "\n" not in err, err
    (run / "config.yaml").unlink()  # without the recorded config, the checkpoint's hyper-parameters tell
    assert main(["train", "--config", cfg, "--resume", "--no-progress", "--set", f"data.symmetry_breaking={after}",
                 "trainer.max_steps=6"]) == 2
    assert f"symmetry_breaking: checkpoint has {before!r}, expected {after!r}" in capsys.readouterr().err
    assert _step(run / "checkpoints" / "last.ckpt") == 4


@pytest.mark.parametrize("var", ["RANK", "LOCAL_RANK", "SLURM_PROCID"])
def test_later_ranks_of_a_distributed_run_take_no_lock(tmp_path, monkeypatch, var):
    """Under DDP (torchrun, Lightning's launcher, srun) every process runs `cscnn train`: the first holds
    the folder's lock for all, the others neither take it nor are refused by it."""
    from cscnn.training.run_lock import LOCK_NAME, lock_run_folder

    out = tmp_path / "run"
    with lock_run_folder(out) as held:
        assert held == out / LOCK_NAME
        monkeypatch.setenv(var, "1")
        with lock_run_folder(out) as other:  # a later rank: not refused
            assert other is None
        monkeypatch.setenv(var, "0")
        with pytest.raises(C.ConfigError, match="in use by another training run"):  # a second first process
            with lock_run_folder(out):
                pass
