"""Size guards and progress output (issue 21, item 4): a model, resized data or an equivariance grid
estimated above the memory the machine has is refused with a one-line error giving the estimate, before
anything is allocated; `cscnn plot`, evaluate's rollouts and `cscnn equivariance` report progress."""

from __future__ import annotations

import time

import pytest
import torch

pytest.importorskip("lightning")
pytest.importorskip("h5py")

from test_cli import _one_line_error as one_line_error  # noqa: E402
from test_cli import tiny_yaml, train_tiny_run  # noqa: E402

from cscnn._memory import MemoryEstimateError, available_memory, check_memory, format_bytes  # noqa: E402
from cscnn.cli import main  # noqa: E402
from cscnn.training.synthetic import write_synthetic_splits  # noqa: E402


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_synthetic_splits("navier-stokes", tmp_path_factory.mktemp("guard_ns"), 3, 1, 2, steps=6, size=8)


@pytest.fixture(scope="module")
def run(tmp_path_factory, data):
    return train_tiny_run(tmp_path_factory.mktemp("guard_run"), data)


def _one_line_error(args, capsys) -> str:
    """:func:`test_cli._one_line_error`, answered within 60 s (refused from the estimate, not after trying)."""
    t0 = time.time()
    err = one_line_error(args, capsys)
    assert time.time() - t0 < 60, "refused only after a long attempt"
    return err


# ------------------------------------------------------------------ the estimates and the limit
def test_memory_limit_from_the_environment(monkeypatch):
    monkeypatch.setenv("CSCNN_MEMORY_LIMIT", "2G")
    assert available_memory() == 2 * 2**30
    check_memory(2**30, "one GiB")
    with pytest.raises(MemoryEstimateError, match=r"^three GiB needs an estimated 3.0 GiB, more than the 2.0 GiB "
                                                  r"of memory available; lower it$"):
        check_memory(3 * 2**30, "three GiB", "lower it")
    monkeypatch.setenv("CSCNN_MEMORY_LIMIT", "lots")
    with pytest.raises(MemoryEstimateError, match="CSCNN_MEMORY_LIMIT must be a number of bytes"):
        available_memory()
    monkeypatch.delenv("CSCNN_MEMORY_LIMIT")
    avail = available_memory()
    assert avail is None or avail > 0
    assert format_bytes(1536) == "1.5 KiB" and format_bytes(3 * 2**40) == "3.0 TiB"


def test_info_refuses_a_model_too_large_from_its_estimate(capsys):
    err = _one_line_error(["info", "configs/cpu/ns_cs_resnet.yaml", "--set", "model.hidden_channels=100000"], capsys)
    assert "model 'cs_resnet' (hidden_channels=100000) needs an estimated" in err and "TiB" in err, err
    assert "lower model.hidden_channels" in err


def test_info_reports_a_model_that_fits(capsys, monkeypatch):
    assert main(["info", "configs/cpu/ns_cs_resnet.yaml"]) == 0
    assert "parameters:" in capsys.readouterr().out
    monkeypatch.setenv("CSCNN_MEMORY_LIMIT", "1K")  # the same model, on a machine with 1 KiB
    err = _one_line_error(["info", "configs/cpu/ns_cs_resnet.yaml"], capsys)
    assert "more than the 1.0 KiB of memory available" in err


def test_training_refuses_a_resolution_too_large(tmp_path, data, capsys):
    cfg = tiny_yaml(tmp_path / "tiny.yaml", data, tmp_path / "run")
    err = _one_line_error(["train", "--config", str(cfg), "--no-progress", "--set", "data.resolution=1000000"],
                          capsys)
    assert "data.resolution=[1000000, 1000000]" in err and "needs an estimated" in err, err
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_dataset_resolution_guard_and_a_resolution_that_fits(data):
    from cscnn.data import PDEDataset

    with pytest.raises(MemoryEstimateError, match=r"data.resolution=\[100000, 100000\] .* needs an estimated"):
        PDEDataset(data / "train.h5", "navier-stokes", resolution=100000)
    assert PDEDataset(data / "train.h5", "navier-stokes", resolution=16)[0][0].shape[-3:-1] == (16, 16)


def test_equivariance_refuses_a_grid_too_large(run, capsys, monkeypatch):
    # the tiny model needs ~18 GiB at 4000^2 by the estimate: refused on a machine with 8 GiB (the cpu
    # configs' width 8 needs ~55 GiB)
    monkeypatch.setenv("CSCNN_MEMORY_LIMIT", "8G")
    err = _one_line_error(["equivariance", str(run), "--grid", "4000", "--no-progress"], capsys)
    assert "random 4000x4000 grid" in err and "needs an estimated" in err and "choose a smaller --grid" in err


def test_grid_estimate_grows_with_the_grid():
    from cscnn.training.inspection import grid_memory

    hp = {"model_name": "cs_resnet", "hidden_channels": 8, "in_channels": 4, "out_channels": 1}
    small, big = grid_memory(hp, 4, [16, 16]), grid_memory(hp, 4, [4000, 4000])
    assert big == small * (4000 / 16) ** 2
    assert small == 16 * 16 * 4 * (4 * 4 + 4 * 1 + 12 * 8) * 8  # points x blades x channels x float64
    assert big > 50 * 2**30  # the cpu configs' CS-ResNet on --grid 4000


# ------------------------------------------------------------------ progress
def test_equivariance_shows_progress(run, capsys):
    assert main(["equivariance", str(run), "--grid", "6", "--num", "2"]) == 0
    err = capsys.readouterr().err
    assert "equivariance" in err and "/2 [" in err, err  # a bar with its total (cleared when done)
    assert main(["equivariance", str(run), "--grid", "6", "--num", "2", "--no-progress"]) == 0
    assert "/2 [" not in capsys.readouterr().err


def test_evaluate_rollout_progress_has_a_total(run, capsys):
    assert main(["evaluate", str(run), "--num-rollout", "2", "--limit-batches", "1"]) == 0
    err = capsys.readouterr().err
    assert "rollout" in err and "/2 [" in err, err


def test_rollout_metrics_total_for_a_generator(capsys):
    from cscnn import CliffordAlgebra
    from cscnn.training.metrics import rollout_metrics

    class Shift(torch.nn.Module):
        alg = CliffordAlgebra((1, 1))

        def forward(self, x):
            return x[:, -1:]

    trajs = (torch.randn(5, 4, 4, 4) for _ in range(3))
    rollout_metrics(Shift(), trajs, 2, 1, progress=True, total=3)
    assert "/3 [" in capsys.readouterr().err


def test_plot_reports_each_file(run, capsys):
    assert main(["plot", str(run), "--fps", "2"]) == 0
    captured = capsys.readouterr()
    assert "[1/4] wrote" in captured.err and "[4/4] wrote" in captured.err and "rollout.gif" in captured.err
    assert main(["plot", str(run), "--no-gif", "--no-progress"]) == 0
    assert "[1/3]" not in capsys.readouterr().err


# ----------------------------------------------------------- kernels and activations
def test_info_refuses_an_absurd_kernel_before_allocating_it(capsys):
    err = _one_line_error(["info", "configs/cpu/ns_cs_resnet.yaml", "--set", "model.kwargs.kernel_size=100001"],
                          capsys)
    assert "the kernel grid of kernel_size=100001 in 2D (100001^2 points) needs an estimated" in err, err
    assert "choose a smaller kernel_size" in err


def test_training_refuses_a_kernel_larger_than_the_grid(tmp_path, data, capsys):
    cfg = str(tiny_yaml(tmp_path / "c.yaml", data, tmp_path / "run"))
    for k in (17, 1001):
        err = _one_line_error(["train", "--config", cfg, "--out", str(tmp_path / "run"), "--no-progress", "--set",
                               f"model.kwargs.kernel_size={k}"], capsys)
        assert err == (f"error: model.kwargs.kernel_size={k} is larger than the data's grid (8x8) allows: its taps "
                       f"reach {k // 2} points either way, but no two grid points are more than 7 apart, so its "
                       "outer taps only ever meet padding; choose a kernel_size of at most 15"), err
    assert not (tmp_path / "run").exists()


def test_training_step_estimate_counts_activations_and_kernels(tmp_path, data, capsys, monkeypatch):
    """Weights that fit but a step whose activations do not: refused with both parts of the estimate."""
    from cscnn.training.fit import saved_activation_bytes

    cfg = str(tiny_yaml(tmp_path / "c.yaml", data, tmp_path / "run"))
    monkeypatch.setenv("CSCNN_MEMORY_LIMIT", "400K")
    err = _one_line_error(["train", "--config", cfg, "--out", str(tmp_path / "run"), "--no-progress", "--set",
                           "data.batch_size=64"], capsys)
    assert "a training step of model 'cs_resnet' (hidden_channels=" in err and "on a batch of 64 x 8x8 grids" in err
    assert "activations and kernels kept for the backward pass" in err and "more than the 400.0 KiB" in err, err
    # the saved bytes grow with the batch (activations) on top of a constant part (dense kernels)
    from cscnn.algebra import CliffordAlgebra
    from cscnn.models import build_model

    with torch.device("meta"):
        m = build_model("cs_resnet", CliffordAlgebra((1, 1)), 2, 1, 4, blocks=[1], kernel_size=3)
    b1, b2, b4 = (saved_activation_bytes(m, (b, 2, 16, 16, 4)) for b in (1, 2, 4))
    assert b4 - b2 == 2 * (b2 - b1) > 0 and b1 > b2 - b1  # linear in the batch, plus the kernels
