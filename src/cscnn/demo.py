"""``make demo`` / ``python -m cscnn.demo``: a small end-to-end run on CPU.

Generates a small Navier-Stokes data set (PhiFlow, ``small`` preset), trains a small
CS-ResNet for a few minutes, evaluates it (one-step test MSE, per-field errors,
rollout MSE over time, equivariance error) and writes ``report.md`` with the
metrics and figures to the output folder (default ``outputs/demo/``).

Re-running reuses the generated data (generation itself resumes after an
interruption), resumes an interrupted training run and skips a finished one
(``--retrain`` trains again from scratch).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

__all__ = ["main", "demo_config"]


def demo_config(out: Path, data: Path, num_train: int, steps: int, minutes: float, hidden: int,
                batch_size: int, workers: int, num_valid: int, num_test: int):
    """The embedded experiment config of the demo (an :class:`~cscnn.training.config.ExperimentConfig`)."""
    from .training.config import config_from_dict

    seconds = max(1, int(minutes * 60))
    return config_from_dict({
        "name": "demo_ns_cs_resnet",
        "task": "navier-stokes",
        "seed": 0,
        "out": str(out / "run"),
        "data": {"dir": str(data), "batch_size": batch_size, "num_train": num_train,
                 "generate": {"preset": "small", "train": num_train, "valid": num_valid, "test": num_test,
                              "workers": workers, "seed": 0}},
        "model": {"name": "cs_resnet", "hidden_channels": hidden,
                  "kwargs": {"blocks": [1, 1], "kernel_size": 5, "kernel_num_layers": 3,
                             "kernel_hidden_channels": 8, "padding_mode": "zeros"}},
        "optim": {"lr": 1e-3, "scheduler": "cosine", "warmup_steps": min(20, steps // 10)},
        "trainer": {"max_steps": steps, "max_time": f"00:00:{seconds // 60:02d}:{seconds % 60:02d}",
                    "accelerator": "cpu", "devices": 1, "val_check_interval": max(1, min(100, steps // 3)),
                    "check_val_every_n_epoch": None, "limit_val_batches": 8, "log_every_n_steps": 10},
        "eval": {"rollout_steps": None, "num_rollout_trajectories": num_test, "batch_size": 16},
    })


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m cscnn.demo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="outputs/demo", help="output folder (report, figures, run)")
    p.add_argument("--data", default="data/demo-navier-stokes", help="data folder (reused when present)")
    p.add_argument("--train", type=int, default=32, help="training trajectories")
    p.add_argument("--valid", type=int, default=4, help="validation trajectories")
    p.add_argument("--test", type=int, default=8, help="test trajectories")
    p.add_argument("--steps", type=int, default=600, help="training steps (optimizer updates)")
    p.add_argument("--minutes", type=float, default=6.0, help="training time limit in minutes")
    p.add_argument("--hidden", type=int, default=8, help="CS-ResNet hidden multivector channels")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--workers", type=int, default=2, help="processes for data generation")
    p.add_argument("--retrain", action="store_true", help="train again even if a finished run exists")
    p.add_argument("--no-gif", action="store_true", help="skip the rollout GIF")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def main(argv=None) -> int:
    a = _parser().parse_args(argv)
    t_start = time.time()
    out, data = Path(a.out), Path(a.data)
    cfg = demo_config(out, data, a.train, a.steps, a.minutes, a.hidden, a.batch_size, a.workers, a.valid, a.test)
    from .training import evaluate, plot, train
    from .training.callbacks import TrainingInterrupted
    from .training.checks import resolve_task
    from .training.fit import generate_missing

    task = resolve_task(cfg.task)
    progress = not a.quiet

    print(f"[1/4] data: {data} ({a.train} train / {a.valid} valid / {a.test} test trajectories, small preset)")
    t0 = time.time()
    generate_missing(cfg, task, ("train", "valid", "test"), progress=progress)
    t_data = time.time() - t0

    run = cfg.out_dir()
    last = run / "checkpoints" / "last.ckpt"
    t0 = time.time()
    if a.retrain and run.exists():
        shutil.rmtree(run)
    done = run / "demo_done.json"
    if done.is_file() and last.is_file():
        train_info = dict(json.loads(done.read_text()), reused=True)
        print(f"[2/4] training: reusing the finished run in {run} (step {train_info['global_step']}; "
              "--retrain to train again)")
    else:
        print(f"[2/4] training a CS-ResNet (hidden {a.hidden}) for up to {a.steps} steps / {a.minutes:g} min "
              f"-> {run}" + (" (resuming)" if last.is_file() else ""))
        try:
            res = train(cfg, resume=last.is_file(), progress=progress)
        except TrainingInterrupted as e:  # Ctrl+C: the state is saved; a re-run resumes
            print(f"{e}; run the demo again to resume", file=sys.stderr)
            return 128 + e.signum
        train_info = {"global_step": res["global_step"], "seconds": res["seconds"], "max_steps": a.steps}
        done.write_text(json.dumps(train_info))
    t_train = time.time() - t0
    ckpt = run / "checkpoints" / ("best.ckpt" if (run / "checkpoints" / "best.ckpt").is_file() else "last.ckpt")

    print("[3/4] evaluating on the test split")
    t0 = time.time()
    metrics = evaluate(ckpt, data, out / "eval", rollout_steps=cfg.eval.rollout_steps,
                       num_rollout_trajectories=cfg.eval.num_rollout_trajectories, batch_size=cfg.eval.batch_size,
                       progress=progress)
    eq = _equivariance(ckpt, data)
    t_eval = time.time() - t0

    print("[4/4] figures and report")
    figs = plot(ckpt, data, out / "figures", gif=not a.no_gif)
    total = time.time() - t_start
    timings = {"data_s": t_data, "train_s": t_train, "eval_s": t_eval, "total_s": total}
    report = write_report(out, cfg, metrics, eq, figs, train_info, timings)
    mse = metrics["one_step"]["mse"]
    print(f"\none-step test MSE: {mse:.4e}  (normalised units; rollout mean {metrics['rollout']['mse_mean']:.4e})")
    print(f"report: {report}   total time {total / 60:.1f} min")
    return 0


def _equivariance(ckpt, data) -> dict | None:
    from .training import equivariance

    try:
        return equivariance(ckpt, data, num_elements=8)
    except Exception as e:  # report, never fail the demo on the extra check
        print(f"note: equivariance check failed: {e}")
        return None


def write_report(out: Path, cfg, metrics: dict, eq: dict | None, figs, train_info: dict, timings: dict) -> Path:
    """Markdown report with the metrics and figures of the demo run."""
    one, roll = metrics["one_step"], metrics["rollout"]
    steps = roll["mse_per_step"]
    marks = sorted({0, min(4, len(steps) - 1), min(9, len(steps) - 1), len(steps) - 1})
    rel = {Path(f).name: Path(f).relative_to(out) if Path(f).is_relative_to(out) else Path(f) for f in figs}
    lines = [
        "# cscnn demo: CS-ResNet on Navier-Stokes 2D (small preset)",
        "",
        f"Model `{metrics['model']}` with {metrics['num_parameters']:,} parameters "
        f"(hidden {cfg.model.hidden_channels} multivector channels, kwargs `{cfg.model.kwargs}`), trained for "
        f"{train_info['global_step']} steps on {cfg.data.num_train} trajectories "
        f"({train_info.get('seconds', 0.0) / 60:.1f} min"
        + ("; stopped by the time limit" if train_info["global_step"] < train_info.get("max_steps", 0) else "")
        + ("; reused from an earlier run" if train_info.get("reused") else "") + ").",
        "Errors are mean squared errors in normalised units (the data module's per-field scaling).",
        "",
        "## Metrics",
        "",
        "| metric | value |",
        "|---|---|",
        f"| one-step test MSE ({one['num_samples']} samples) | {one['mse']:.4e} |",
    ]
    for k, v in one.get("per_field", {}).items():
        lines.append(f"| one-step MSE, {k} | {v:.4e} |")
    lines.append(f"| rollout MSE, mean over {len(steps)} steps ({roll['num_trajectories']} trajectories) "
                 f"| {roll['mse_mean']:.4e} |")
    for s in marks:
        lines.append(f"| rollout MSE, step {s + 1} | {steps[s]:.4e} |")
    if eq is not None:
        lines.append(f"| equivariance error (worst of {eq['num_elements']} grid symmetries, float64) "
                     f"| {eq['worst']:.2e} |")
    lines += [
        "",
        "## Figures",
        "",
    ]
    captions = {"one_step.png": "One-step prediction (target, prediction, |error|) per field, physical units",
                "rollout_last.png": "Last step of an autoregressive rollout",
                "rollout_mse.png": "Rollout MSE over time",
                "rollout.gif": "Animated rollout"}
    for name, cap in captions.items():
        if name in rel:
            lines += [f"**{cap}**", "", f"![{cap}]({rel[name].as_posix()})", ""]
    lines += [
        "## Timings",
        "",
        f"data {timings['data_s']:.0f} s, training {timings['train_s']:.0f} s, evaluation {timings['eval_s']:.0f} s, "
        f"total {timings['total_s'] / 60:.1f} min.",
        "",
        "## Reproduce / go further",
        "",
        "```",
        f"cscnn evaluate {cfg.out_dir()} --data {cfg.data.dir}",
        f"cscnn plot {cfg.out_dir()} --data {cfg.data.dir}",
        f"cscnn equivariance {cfg.out_dir()} --data {cfg.data.dir}",
        "cscnn train --config cpu/ns_cs_resnet --generate --evaluate   # `cscnn configs` lists the others",
        "```",
        "",
        "Raw metrics: `eval/metrics.json`; logs: `run/logs/` (CSV and TensorBoard).",
        "",
    ]
    out.mkdir(parents=True, exist_ok=True)
    path = out / "report.md"
    path.write_text("\n".join(lines))
    with open(out / "summary.json", "w") as f:
        json.dump({"one_step_mse": one["mse"], "per_field": one.get("per_field"), "rollout_mse": steps,
                   "equivariance_error": None if eq is None else eq["worst"], "timings": timings,
                   "global_step": train_info["global_step"], "num_parameters": metrics["num_parameters"]}, f,
                  indent=2)
    return path


if __name__ == "__main__":
    sys.exit(main())
