"""Reproduce the paper's Navier-Stokes result (64 training trajectories) at its own scale.

One command generates the data, trains each model with the paper's protocol through
``cscnn.training.train``, evaluates it in the paper's units and writes a report::

    python benchmarks/reproduce_ns.py --out outputs/bench/paper_ns --models cs_resnet resnet \\
        --results docs/results/paper_ns

Protocol (Zhdanov et al., ICML 2024, arXiv:2402.14730, and the authors' code) and how it is followed here:

* data: PhiFlow smoke with buoyancy, ``pdearena`` preset (128x128, 56 stored steps),
  64 train / 16 valid / 32 test trajectories generated deterministically (``--seed``) on
  all cores, read at 64x64 (``data.resolution``: anti-aliased resize on load), no
  normalisation (raw fields), 4 input steps -> 1 output step;
* models: the paper-size packaged configs ``paper/ns_<model>`` (CS-ResNet hidden 48,
  ResNet hidden 96, blocks (2, 2, 2, 2), kernel 7);
* training: Adam lr 1e-3 with weight decay 0 (identical to AdamW at weight decay 0),
  batch 8, gradient-norm clip 1.0, constant learning rate, 8000 steps (``--steps``) or
  until ``--minutes`` run out, validation every ``--val-every`` steps, best-validation
  checkpoint. Deviation: an epoch here is every window of every training trajectory
  (shuffled), not one random window per trajectory; 8000 steps of batch 8 draw the same
  number of windows, uniformly over the same set;
* metric: one-step test MSE over the three physical components (u, vx, vy) of the raw
  fields at 64x64 (:func:`cscnn.training.metrics.one_step_metrics`, the mean of its
  per-component errors), over every test window (``--test-stride`` apart). The loss is
  over all four blades (the pseudoscalar target is 0).

Outputs: ``--out/data`` (generated data), ``--out/runs/<model>`` (training runs: resumable,
re-running continues or reuses them), and the report ``PREFIX.md``, ``PREFIX.png``
(validation curves) and ``PREFIX.json`` (``--results PREFIX``; default ``--out/paper_ns``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    command_line,
    fmt,
    machine_info,
    markdown_table,
    save_log_plot,
    validation_curve,
    write_json,
)

TASK = "navier-stokes"
#: one-step test MSE at 64 training trajectories and parameter counts, read from the paper's figure
PAPER_MSE = {"cs_resnet": 2.616e-3, "resnet": 4.574e-3, "clifford_resnet": 4.205e-3, "steerable_resnet": 8.408e-3,
             "fno": 3.17e-2}
PAPER_PARAMS = {"cs_resnet": 7.20e6, "resnet": 7.25e6}
LABELS = {"cs_resnet": "CS-ResNet", "resnet": "ResNet", "clifford_resnet": "Clifford ResNet",
          "steerable_resnet": "Steerable ResNet", "fno": "FNO"}
PHYSICAL = ("u", "vx", "vy")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="outputs/bench/paper_ns", help="data, runs and (default) the report")
    p.add_argument("--results", default=None, help="write the report as PREFIX.md/.png/.json")
    p.add_argument("--models", nargs="+", default=["cs_resnet", "resnet"], choices=sorted(PAPER_MSE))
    p.add_argument("--data", default=None, help="use this data folder instead of generating one in --out/data")
    p.add_argument("--train", type=int, default=64, help="training trajectories (generated and used)")
    p.add_argument("--valid", type=int, default=16)
    p.add_argument("--test", type=int, default=32)
    p.add_argument("--preset", default="pdearena", help="simulation preset of the generated data")
    p.add_argument("--gen-param", action="append", default=[], metavar="KEY=VALUE",
                   help="override one simulation parameter (e.g. nx=16 for a tiny test run)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="simulation processes")
    p.add_argument("--seed", type=int, default=0, help="data and training seed")
    p.add_argument("--resolution", type=int, default=64, help="grid the data are resized to on load")
    p.add_argument("--steps", type=int, default=8000, help="optimizer steps per model")
    p.add_argument("--minutes", type=float, default=None, help="wall-clock cap on each model's training")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--val-every", type=int, default=200, help="steps between validations")
    p.add_argument("--precision", default="32-true", help="trainer.precision, e.g. bf16-mixed on a GPU")
    p.add_argument("--cpu", action="store_true", help="train on the CPU even when a GPU is present")
    p.add_argument("--test-stride", type=int, default=1, help="distance between test window starts")
    p.add_argument("--eval-batch-size", type=int, default=32)
    p.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="config overrides for every model (e.g. model.hidden_channels=4 for a tiny run)")
    args = p.parse_args(argv)
    for name in ("train", "valid", "test", "workers", "resolution", "steps", "batch_size", "val_every",
                 "test_stride", "eval_batch_size"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    return args


def _parse_value(text: str):
    import yaml

    return yaml.safe_load(text)


# ----------------------------------------------------------------------- data
def make_data(args) -> tuple[Path, float]:
    """The data folder (generated unless ``--data``) and the seconds spent generating."""
    from cscnn.data import check_data_dir, generate_dataset

    if args.data:
        check_data_dir(args.data, TASK, splits=("train", "valid", "test"))
        return Path(args.data), 0.0
    params = {}
    for item in args.gen_param:
        key, _, value = item.partition("=")
        params[key.strip()] = _parse_value(value)
    out = Path(args.out) / "data"
    t0 = time.time()
    for split in ("train", "valid", "test"):
        generate_dataset(TASK, split, getattr(args, split), out, preset=args.preset, workers=args.workers,
                         seed=args.seed, progress=False, params=params or None)
    return out, time.time() - t0


# --------------------------------------------------------------------- models
def model_config(args, model: str, data_dir: Path):
    """The packaged config ``paper/ns_<model>`` with the paper's training protocol (see the module docstring)."""
    from cscnn.training import load_config

    trainer = {
        "max_steps": args.steps, "max_epochs": None, "val_check_interval": args.val_every,
        "check_val_every_n_epoch": None, "limit_val_batches": None, "log_every_n_steps": min(50, args.val_every),
        "gradient_clip_val": 1.0, "precision": args.precision, "accelerator": "cpu" if args.cpu else "auto",
        "devices": 1, "strategy": "auto", "enable_progress_bar": False,
    }
    if args.minutes:
        secs = max(1, int(args.minutes * 60))
        trainer["max_time"] = f"00:{secs // 3600:02d}:{secs % 3600 // 60:02d}:{secs % 60:02d}"
    sets = [f"out={Path(args.out) / 'runs' / model}", f"seed={args.seed}", f"data.dir={data_dir}",
            f"data.num_train={args.train}", "data.normalize=false", f"data.resolution={args.resolution}",
            f"data.batch_size={args.batch_size}", "data.time_history=4", "data.time_future=1", "data.shuffle=true",
            "optim.lr=0.001", "optim.weight_decay=0.0", "optim.scheduler=constant", "optim.warmup_steps=0",
            *(f"trainer.{k}={'null' if v is None else v}" for k, v in trainer.items()), *args.set]
    return load_config(f"paper/ns_{model}", sets)  # the packaged config


def evaluate_paper_units(ckpt, data_dir: Path, args) -> dict:
    """One-step test MSE over (u, vx, vy) of the raw fields at ``--resolution``, every test window."""
    from torch.utils.data import DataLoader

    from cscnn.data import PDEDataset
    from cscnn.training import load_module
    from cscnn.training.metrics import one_step_metrics

    module = load_module(ckpt)
    hp = dict(module.hparams)
    if hp.get("normalization") is not None:
        raise ValueError(f"{ckpt} was trained on normalised data; the paper's protocol uses raw fields")
    ds = PDEDataset(data_dir, TASK, split="test", time_history=hp["time_history"], time_future=hp["time_future"],
                    windows="all", stride=args.test_stride, resolution=hp.get("resolution"))
    one = one_step_metrics(module.model, DataLoader(ds, batch_size=args.eval_batch_size), TASK)
    return {"mse": sum(one["per_field"][c] for c in PHYSICAL) / len(PHYSICAL), "per_field": one["per_field"],
            "mse_all_blades": one["mse"], "num_test_windows": one["num_samples"],
            "test_trajectories": ds.num_trajectories, "grid": list(ds.spatial_shape)}


def run_model(args, model: str, data_dir: Path) -> dict:
    from cscnn.models import count_parameters
    from cscnn.training import load_module, train

    cfg = model_config(args, model, data_dir)
    run = cfg.out_dir()
    last = run / "checkpoints" / "last.ckpt"
    t0 = time.time()
    res = train(cfg, resume=last.is_file(), progress=False)
    seconds = time.time() - t0
    ckpt = res["best"] or res["last"]
    ev = evaluate_paper_units(ckpt, data_dir, args)
    params = count_parameters(load_module(ckpt).model)
    return {"model": model, "label": LABELS[model], "paper_mse": PAPER_MSE[model],
            "paper_params": PAPER_PARAMS.get(model), "params": params, "hidden": cfg.model.hidden_channels,
            "steps": res["global_step"], "planned_steps": args.steps, "train_seconds": seconds,
            "best_val_loss": min((v for _, v in validation_curve(run)), default=None), "checkpoint": str(ckpt),
            "curve": validation_curve(run), **ev}


# --------------------------------------------------------------------- report
def plot_curves(results: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.2))
    for i, r in enumerate(results):
        color = f"C{i}"
        if r["curve"]:
            ax.plot([s for s, _ in r["curve"]], [v for _, v in r["curve"]], marker=".", color=color, label=r["label"])
        ax.axhline(r["paper_mse"], ls=":", lw=1, color=color)
    ax.set_title(title, fontsize=9)
    save_log_plot(fig, ax, path, "optimizer step", "validation MSE (raw fields, all blades)")


def verdicts(results: list[dict]) -> list[str]:
    """What the numbers show against the paper's (no claim beyond them)."""
    lines = []
    for r in results:
        ratio = r["mse"] / r["paper_mse"]
        where = "within 1.5x of" if 1 / 1.5 <= ratio <= 1.5 else "more than 1.5x away from"
        short = "" if r["steps"] >= r["planned_steps"] else f" after only {r['steps']} of {r['planned_steps']} steps"
        lines.append(f"- {r['label']}: {fmt(r['mse'])} against the paper's {fmt(r['paper_mse'])} "
                     f"(ours / paper = {ratio:.2f}: {where} the paper's value{short}).")
    by = {r["model"]: r for r in results}
    if "cs_resnet" in by and "resnet" in by:
        ours = by["resnet"]["mse"] / by["cs_resnet"]["mse"]
        paper = PAPER_MSE["resnet"] / PAPER_MSE["cs_resnet"]
        order = "lower than" if ours > 1 else "not lower than"
        lines.append(f"- ResNet / CS-ResNet MSE: {ours:.2f} here, {paper:.2f} in the paper; the CS-ResNet's error is "
                     f"{order} the ResNet's in this run.")
    return lines


def write_report(results: list[dict], meta: dict, prefix: Path) -> dict:
    paths = {"md": prefix.with_suffix(".md"), "png": prefix.with_suffix(".png"), "json": prefix.with_suffix(".json")}
    plot_curves(results, paths["png"], f"Navier-Stokes, {meta['train']} trajectories at {meta['resolution']}^2: "
                                       "validation MSE (dotted: paper's test MSE)")
    rows = [[r["label"], fmt(r["paper_mse"]), fmt(r["mse"]), f"{r['mse'] / r['paper_mse']:.2f}",
             f"{r['params']:,}", "-" if r["paper_params"] is None else f"{r['paper_params'] / 1e6:.2f}M",
             f"{r['steps']} / {r['planned_steps']}", f"{r['train_seconds'] / 60:.1f}"] for r in results]
    table = markdown_table(["model", "paper MSE", "our MSE", "ours / paper", "parameters", "paper parameters",
                            "steps reached / planned", "train min"], rows)
    mi = meta["machine"]
    r0 = results[0]
    lines = [
        "# Navier-Stokes at the paper's scale: CS-ResNet against ResNet", "",
        f"One-step test MSE over (u, vx, vy) of the raw fields at {meta['resolution']}x{meta['resolution']}, "
        f"{r0['num_test_windows']} test windows from {r0['test_trajectories']} held-out trajectories; models "
        f"trained on {meta['train']} trajectories (paper numbers read from the paper's figure of test MSE against "
        "training-set size).",
        "", table, "", *verdicts(results), "",
        f"![validation curves]({paths['png'].name})", "",
        "## How it was run", "", "```", meta["command"], "```", "",
        f"- device: {meta['device']}; CPU {mi['cpu_model']} ({mi['cpus']} cores), load average {mi['load']}; "
        f"torch {mi['torch']}",
        f"- data: {meta['data']} ({meta['data_seconds'] / 60:.1f} min to generate"
        + (f", preset {meta['preset']}" if meta["data_seconds"] else ", given with --data") + ")",
        f"- protocol: {meta['steps']} steps planned, batch {meta['batch_size']}, Adam lr 1e-3 (weight decay 0, so "
        "AdamW), constant learning rate, gradient clip 1.0, best-validation checkpoint, validation every "
        f"{meta['val_every']} steps, precision {meta['precision']}"
        + (f", at most {meta['minutes']} min of training per model" if meta["minutes"] else ""),
        "- deviations: every window of every training trajectory per epoch (shuffled) instead of one random window "
        "per trajectory; loss over all four blades (pseudoscalar target 0); see the script's docstring",
    ]
    paths["md"].parent.mkdir(parents=True, exist_ok=True)
    paths["md"].write_text("\n".join(lines) + "\n")
    write_json(paths["json"], {"results": results, "meta": meta})
    return {k: str(v) for k, v in paths.items()}


def main(argv=None) -> dict:
    import torch

    args = parse_args(argv)
    t0 = time.time()
    data_dir, data_seconds = make_data(args)
    results = []
    for model in args.models:
        r = run_model(args, model, data_dir)
        print(f"{model}: MSE {r['mse']:.4e} (paper {r['paper_mse']:.3e}), {r['steps']} steps in "
              f"{r['train_seconds']:.0f} s, {r['params']:,} parameters", flush=True)
        results.append(r)
    device = "cpu" if args.cpu or not torch.cuda.is_available() else torch.cuda.get_device_name(0)
    meta = {"command": command_line(argv, __file__), "machine": machine_info(), "device": device,
            "data": str(data_dir), "data_seconds": data_seconds, "preset": args.preset, "train": args.train,
            "resolution": args.resolution, "steps": args.steps, "batch_size": args.batch_size,
            "val_every": args.val_every, "precision": args.precision, "minutes": args.minutes,
            "seconds": time.time() - t0}
    prefix = Path(args.results) if args.results else Path(args.out) / "paper_ns"
    paths = write_report(results, meta, prefix)
    print("wrote " + ", ".join(paths.values()), flush=True)
    return {"results": results, "paths": paths}


if __name__ == "__main__":
    main()
