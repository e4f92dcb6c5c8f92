"""The `cscnn` command: --help everywhere, a tiny generate/train/evaluate/plot/equivariance/info run,
clear errors for bad input; slow: `make demo`-style run and DDP with two CPU processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytest.importorskip("lightning")
pytest.importorskip("h5py")

from cscnn.cli import main  # noqa: E402
from cscnn.training.synthetic import write_synthetic_splits  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SUBCOMMANDS = ("generate", "train", "evaluate", "plot", "equivariance", "info")


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    return env


def tiny_yaml(path: Path, data_dir: Path, out: Path, **trainer) -> Path:
    t = {"max_steps": 3, "accelerator": "cpu", "devices": 1, "enable_progress_bar": False, "log_every_n_steps": 1,
         "val_check_interval": 3, "check_val_every_n_epoch": None, "limit_val_batches": 1}
    t.update(trainer)
    cfg = {"name": "cli_tiny", "task": "navier-stokes", "out": str(out), "seed": 0,
           "data": {"dir": str(data_dir), "batch_size": 4, "time_history": 2},
           "model": {"name": "cs_resnet", "hidden_channels": 2,
                     "kwargs": {"blocks": [1], "kernel_size": 3, "kernel_num_layers": 2, "kernel_hidden_channels": 4}},
           "trainer": t, "eval": {"num_rollout_trajectories": 1}}
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_synthetic_splits("navier-stokes", tmp_path_factory.mktemp("cli_ns"), 3, 1, 1, steps=6, size=8)


def test_help_everywhere(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for cmd in SUBCOMMANDS:
        assert cmd in out
    for cmd in SUBCOMMANDS:
        with pytest.raises(SystemExit) as e:
            main([cmd, "--help"])
        assert e.value.code == 0
        assert "usage: cscnn " + cmd in capsys.readouterr().out
    assert main([]) == 2  # no command: help, exit 2


def test_python_dash_m_entry_point():
    r = subprocess.run([sys.executable, "-m", "cscnn", "train", "--help"], capture_output=True, text=True,
                       env=_env(), timeout=120)
    assert r.returncode == 0 and "--config" in r.stdout and "--resume" in r.stdout


def test_cli_train_evaluate_plot_equivariance_info(tmp_path, data, capsys):
    out = tmp_path / "run"
    cfg = tiny_yaml(tmp_path / "tiny.yaml", data, out)
    assert main(["info", str(cfg)]) == 0
    assert "parameters:" in capsys.readouterr().out

    assert main(["train", "--config", str(cfg), "--set", "trainer.max_steps=2", "trainer.val_check_interval=2",
                 "--evaluate", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "training done: step 2" in text and "one-step test MSE" in text
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["trainer"]["max_steps"] == 2  # the override is what ran

    assert main(["evaluate", str(out), "--out", str(tmp_path / "ev"), "--rollout-steps", "2", "--no-progress"]) == 0
    m = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert len(m["rollout"]["mse_per_step"]) == 2 and m["one_step"]["mse"] > 0
    assert set(m["one_step"]["per_field"]) == {"u", "vx", "vy"}

    assert main(["plot", str(out / "checkpoints" / "last.ckpt"), "--data", str(data), "--out", str(tmp_path / "pl"),
                 "--no-gif"]) == 0
    assert (tmp_path / "pl" / "one_step.png").is_file() and not (tmp_path / "pl" / "rollout.gif").exists()

    assert main(["equivariance", str(out), "--num", "3", "--json", str(tmp_path / "eq.json")]) == 0
    eq = json.loads((tmp_path / "eq.json").read_text())
    assert eq["num_elements"] == 3 and eq["worst"] < 1e-8
    assert main(["equivariance", str(out), "--grid", "6", "--num", "2"]) == 0

    capsys.readouterr()
    assert main(["info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["global_step"] == 2 and info["model_name"] == "cs_resnet" and info["num_parameters"] > 0

    # resume: continues the same run to a larger budget
    assert main(["train", "--config", str(cfg), "--set", "trainer.max_steps=3", "--resume", "--no-progress"]) == 0
    assert "training done: step 3" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["generate", "navier", "--num", "1", "--out", "x"], "invalid choice: 'navier'"),
])
def test_argparse_errors(args, message, capsys):
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 2 and message in capsys.readouterr().err


def test_bad_input_gives_clear_errors(tmp_path, data, capsys):
    cfg = tiny_yaml(tmp_path / "tiny.yaml", data, tmp_path / "run")

    def err(args):
        code = main(args)
        e = capsys.readouterr().err
        assert code == 2, e
        assert e.startswith("error: ")
        return e

    assert "unknown config key 'trainer.max_step' (did you mean 'max_steps'?)" in err(
        ["train", "--config", str(cfg), "--set", "trainer.max_step=5"])
    bad = yaml.safe_load(cfg.read_text())
    bad["model"]["name"] = "transformer"
    (tmp_path / "bad_model.yaml").write_text(yaml.safe_dump(bad))
    assert "unknown model 'transformer'" in err(["train", "--config", str(tmp_path / "bad_model.yaml")])
    bad["model"]["name"], bad["task"] = "cs_resnet", "maxwell4d"
    (tmp_path / "bad_task.yaml").write_text(yaml.safe_dump(bad))
    assert "unknown task 'maxwell4d'" in err(["train", "--config", str(tmp_path / "bad_task.yaml")])
    bad["task"], bad["extra"] = "navier-stokes", 1
    (tmp_path / "bad_key.yaml").write_text(yaml.safe_dump(bad))
    assert "unknown config key 'extra'" in err(["info", str(tmp_path / "bad_key.yaml")])
    assert "does not exist; generate it with" in err(["train", "--config", str(cfg), "--data",
                                                    str(tmp_path / "missing")])
    # a Cl(2,0) model on Maxwell 3D data
    mx = write_synthetic_splits("maxwell3d", tmp_path / "mx3", 1, 1, 1, steps=6, size=4)
    e = err(["train", "--config", str(cfg), "--set", "task=maxwell3d", "model.metric=[1, 1]", "--data", str(mx)])
    assert "metric mismatch" in e and "Cl(2,0)" in e and "Cl(3,0)" in e
    assert "holds 'maxwell3d' data (metric (1, 1, 1)), but 'navier-stokes'" in err(
        ["train", "--config", str(cfg), "--data", str(mx)])
    assert "not found" in err(["train", "--config", str(tmp_path / "nope.yaml")])
    assert "does not exist" in err(["evaluate", str(tmp_path / "no_run")])
    assert not (tmp_path / "run").exists()  # nothing started


def train_tiny_run(tmp: Path, data: Path) -> Path:
    """Train the tiny config for 2 steps into ``tmp/run``; returns that run folder."""
    cfg = tiny_yaml(tmp / "tiny.yaml", data, tmp / "run", max_steps=2, val_check_interval=2)
    assert main(["train", "--config", str(cfg), "--no-progress"]) == 0
    return tmp / "run"


@pytest.fixture(scope="module")
def run(tmp_path_factory, data):
    """A tiny trained run folder (2 steps)."""
    return train_tiny_run(tmp_path_factory.mktemp("cli_run"), data)


def _one_line_error(args, capsys) -> str:
    code = main(args)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("args, message", [
    (["plot", "{run}", "--fps", "0"], "fps (frames per second) must be an integer >= 1, got 0"),
    (["plot", "{run}", "--index", "5"], "trajectory index 5 out of range: test has 1 (0..0)"),
    (["equivariance", "{run}", "--num", "0"], "the number of group elements must be an integer >= 1, got 0"),
    (["equivariance", "{run}", "--grid", "0"], "grid (points per axis) must be an integer >= 1, got 0"),
    (["equivariance", "{run}", "--grid", "-4"], "grid (points per axis) must be an integer >= 1, got -4"),
    (["evaluate", "{run}", "--batch-size", "0"], "batch_size must be an integer >= 1, got 0"),
    (["evaluate", "{run}", "--num-rollout", "0"], "num_rollout_trajectories must be an integer >= 1, got 0"),
    (["evaluate", "{run}", "--device", "cuda:99"], "device 'cuda:99' requested but"),
    (["evaluate", "{run}", "--device", "banana"], "unknown device 'banana'; expected e.g. 'cpu', 'cuda'"),
])
def test_bad_arguments_of_checkpoint_commands(run, args, message, capsys):
    assert message in _one_line_error([a.format(run=run) for a in args], capsys)


def test_device_cuda_without_cuda(run, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    for cmd in ("evaluate", "plot"):
        err = _one_line_error([cmd, str(run), "--device", "cuda"], capsys)
        assert "device 'cuda' requested but CUDA is not available on this machine; use --device cpu" in err


def test_files_that_are_no_checkpoint_or_config(tmp_path, run, data, capsys):
    (tmp_path / "empty.ckpt").write_bytes(b"")
    assert "is empty (0 bytes)" in _one_line_error(["evaluate", str(tmp_path / "empty.ckpt"), "--data", str(data)],
                                                   capsys)
    (tmp_path / "notes.txt").write_text("hello\n")
    err = _one_line_error(["info", str(tmp_path / "notes.txt")], capsys)
    assert "is not a PyTorch checkpoint" in err and "weights_only=False" not in err
    (tmp_path / "pic.yaml").write_bytes(bytes(range(128, 256)))
    assert "pic.yaml is not a text (UTF-8) YAML file" in _one_line_error(["info", str(tmp_path / "pic.yaml")], capsys)
    (tmp_path / "evil.yaml").write_text("task: !!python/object/apply:os.system [echo hi]\n")
    assert "evil.yaml (line 1)" in _one_line_error(["train", "--config", str(tmp_path / "evil.yaml")], capsys)
    (tmp_path / "broken.yaml").write_text("task: [navier-stokes\n")
    assert "broken.yaml is not valid YAML at line" in _one_line_error(["info", str(tmp_path / "broken.yaml")], capsys)
    cfg = tiny_yaml(tmp_path / "tiny.yaml", data, tmp_path / "new_run")
    for setting, message in (("model.kwargs.blocks=[1", "override 'model.kwargs.blocks=[1' is not valid YAML"),
                             ("trainer.precision=banana", "'trainer.precision' must be one of"),
                             ("trainer.devices=0", "'trainer.devices' must be a count >= 1"),
                             ("optim.lr=.nan", "'optim.lr' must be a finite number > 0, got nan")):
        assert message in _one_line_error(["train", "--config", str(cfg), "--set", setting], capsys)
    assert not (tmp_path / "new_run").exists()


def test_diverged_training_is_an_error_naming_the_step(tmp_path, data, capsys):
    cfg = tiny_yaml(tmp_path / "tiny.yaml", data, tmp_path / "run", max_steps=4, val_check_interval=1)
    err = _one_line_error(["train", "--config", str(cfg), "--set", "optim.lr=1e30", "--no-progress"], capsys)
    assert "loss is nan at step 1" in err or "loss is inf at step 1" in err
    assert not list((tmp_path / "run").rglob("*.ckpt"))


def test_nan_metrics_are_strict_json_and_reported(tmp_path, run, data, capsys):
    import torch

    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    for v in ckpt["state_dict"].values():
        if v.is_floating_point():
            v.fill_(float("nan"))
    torch.save(ckpt, tmp_path / "nan.ckpt")
    assert main(["evaluate", str(tmp_path / "nan.ckpt"), "--data", str(data), "--out", str(tmp_path / "ev"),
                 "--rollout-steps", "1", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "warning:" in err and "written as null" in err and "one_step.mse" in err
    saved = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert saved["one_step"]["mse"] is None


@pytest.mark.slow
def test_cli_generate_small(tmp_path):
    r = subprocess.run([sys.executable, "-m", "cscnn", "generate", "navier-stokes", "--split", "test", "--num", "1",
                        "--out", str(tmp_path), "--no-progress"], capture_output=True, text=True, env=_env(),
                       timeout=600)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "test.h5").is_file()


@pytest.mark.slow
def test_ddp_two_cpu_processes_match_single_process(tmp_path):
    """DDP (gloo, 2 processes, batch 2 each, no shuffle) takes the same steps as one process with batch 4."""
    import torch

    from cscnn.training.checkpoint import read_checkpoint

    data = write_synthetic_splits("navier-stokes", tmp_path / "data", 4, 1, 1, steps=6, size=8)
    cfg = tiny_yaml(tmp_path / "tiny.yaml", data, tmp_path / "unused", max_steps=4, val_check_interval=2)
    common = ["-m", "cscnn", "train", "--config", str(cfg), "--no-progress", "--set", "data.shuffle=false",
              "trainer.deterministic=true"]
    single = subprocess.run([sys.executable, *common, "data.batch_size=4", "--out", str(tmp_path / "single")],
                            capture_output=True, text=True, env=_env(), timeout=600)
    assert single.returncode == 0, single.stderr[-3000:]
    ddp = subprocess.run([sys.executable, *common, "data.batch_size=2", "trainer.strategy=ddp", "trainer.devices=2",
                          "--out", str(tmp_path / "ddp")], capture_output=True, text=True, env=_env(), timeout=600)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    assert "distributed_backend=gloo" in ddp.stderr + ddp.stdout
    a = read_checkpoint(tmp_path / "single" / "checkpoints" / "last.ckpt")
    b = read_checkpoint(tmp_path / "ddp" / "checkpoints" / "last.ckpt")
    assert a["global_step"] == b["global_step"] == 4
    for k, v in a["state_dict"].items():
        assert torch.allclose(v, b["state_dict"][k], rtol=1e-4, atol=1e-6), k


@pytest.mark.slow
def test_demo_end_to_end(tmp_path):
    """`make demo` runs `python -m cscnn.demo`; here with a smaller data set and step budget."""
    args = [sys.executable, "-m", "cscnn.demo", "--out", str(tmp_path / "demo"), "--data", str(tmp_path / "data"),
            "--train", "3", "--valid", "1", "--test", "1", "--steps", "20", "--minutes", "3", "--quiet"]
    r = subprocess.run(args, capture_output=True, text=True, env=_env(), timeout=1500, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "one-step test MSE:" in r.stdout
    report = (tmp_path / "demo" / "report.md").read_text()
    assert "one-step test MSE" in report and "figures/one_step.png" in report
    for f in ("one_step.png", "rollout_mse.png", "rollout.gif"):
        assert (tmp_path / "demo" / "figures" / f).is_file()
    summary = json.loads((tmp_path / "demo" / "summary.json").read_text())
    assert summary["one_step_mse"] > 0 and summary["global_step"] == 20
    # a re-run reuses the data and the finished run
    r2 = subprocess.run(args, capture_output=True, text=True, env=_env(), timeout=900, cwd=tmp_path)
    assert r2.returncode == 0, r2.stderr[-3000:]
    assert "reusing the finished run" in r2.stdout and "generating" not in r2.stdout
