"""Where equivariance pays: sample-efficiency curves on every task at CPU scale.

Runs :mod:`sample_efficiency` once per task with one fixed protocol per task (below), all
(model, training-set size, seed) cells resumable, seeds in the outer loop so that a short
run finishes seed 0 on every task before it starts seed 1. Then writes one combined
report: ``--results PREFIX`` -> ``PREFIX.md``, ``PREFIX.csv`` (every cell of every task) and
``PREFIX.png`` (one panel per task), plus each task's own report in ``--out/<task>/``.

Data (generated locally, seed 0, ``--preset small``), in ``--data-root/<task>``::

    cscnn generate <task> --split test  --num 16  --out data/study/<task> --preset small --workers 2
    cscnn generate <task> --split valid --num 8   --out data/study/<task> --preset small --workers 2
    cscnn generate <task> --split train --num 128 --out data/study/<task> --preset small --workers 2
    (maxwell2d: --num 64 for train)

Finished cells are also copied to ``--archive`` (default ``<--results>_cells/<task>/``, i.e.
``docs/results/tasks_cpu_scale_cells/<task>/``,
one small JSON per cell, committed): a later run on a fresh machine regenerates the data (same
seeds, same files) and runs only the cells the archive lacks.

Example::

    python benchmarks/tasks_study.py --seeds 0 1 2 --jobs 2 --threads 1 --results docs/results/tasks_cpu_scale
    python benchmarks/tasks_study.py --summarize --results docs/results/tasks_cpu_scale   # report only
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ns_ablation  # noqa: E402
import sample_efficiency as se  # noqa: E402
from _common import command_line, machine_info  # noqa: E402

#: the protocol per task: same steps, batch, sizes and seeds for every model of a task; widths matched to
#: the CS-ResNet's parameter count; every model pads as the task's boundary conditions ask.
PROTOCOL: dict[str, dict] = {
    "navier-stokes": {
        "sizes": [8, 32, 128], "models": ["cs_resnet", "cs_resnet+gravity", "resnet", "clifford_resnet", "gfno"],
        "hidden": 8, "kernel_size": 5, "resolution": 16, "steps": 1000, "batch_size": 8,
        "why": "64x64 smoke in a closed box with buoyancy along +y (gravity breaks rotation symmetry), read at 16x16",
    },
    "navier-stokes-periodic": {
        "sizes": [8, 32, 128], "models": ["cs_resnet", "resnet", "clifford_resnet", "gfno"],
        "hidden": 8, "kernel_size": 5, "resolution": 16, "steps": 1000, "batch_size": 8,
        "why": "64x64 periodic flow without gravity (every grid symmetry is exact), read at 16x16",
    },
    "maxwell3d": {
        "sizes": [8, 32, 128], "models": ["cs_resnet", "resnet", "clifford_resnet"],
        "hidden": 4, "kernel_size": 3, "resolution": None, "steps": 500, "batch_size": 8,
        "why": "16^3 periodic FDTD, 8 stored frames per trajectory (4 windows of 4 -> 1)",
    },
    "maxwell2d": {
        "sizes": [8, 32, 128],
        "models": ["cs_resnet", "cs_resnet:official", "cs_resnet+time", "cs_resnet:lightcone+time", "resnet",
                   "clifford_resnet"],
        "hidden": 4, "kernel_size": 3, "resolution": 16, "steps": 300, "batch_size": 8,
        "time_history": 8, "time_future": 8, "scheduler": "constant",
        "cs_kwargs": {"norm": False}, "model_kwargs": {"resnet": {"norm": None}},
        # the kernel grid's time step in pixels: light's c dt / dx on the 16 x 16 grid (100 nm box, dt 2.618e-18 s)
        "tag_kwargs": {"lightcone": {"time_scale": 0.1256}},
        "why": "spacetime R^{1,2} as the paper's generator makes it (64 frames, 64x64 fine grid resized to 32x32, "
               "read at 16x16): blocks of 8 frames -> the next 8, no norm layers, constant learning rate (the "
               "paper's protocol at CPU size; 8 frames keep the task well above the persistence floor and leave 7 "
               "test blocks per trajectory, where the paper's 32 -> 32 leaves 1)",
    },
}

#: models not run on a task, and why (measured on the 2-core machine: seconds per training step at batch 8)
SKIP = {
    "maxwell3d": {"clifford_resnet": "one training step took 10.8 s (CS-ResNet 0.79 s, ResNet 0.50 s; 2-core Xeon "
                                     "under load): 500 steps x 9 cells do not fit on this machine"},
    "maxwell2d": {"clifford_resnet": "one training step on 4x32x32 spacetime blocks took 7.0 s (CS-ResNet 1.4 s, "
                                     "ResNet 0.9 s; 2-core machine under load): not run at CPU scale"},
}


#: robustness checks of the order of the models on the two Navier-Stokes tasks, CS-ResNet and ResNet at one
#: size: each changes one thing of the protocol (``steps_factor``: steps x that, the cosine schedule stretched;
#: ``lr``: the learning rate) and trains the listed seeds
CHECKS = {
    "budget": {"what": "3x the steps", "steps_factor": 3, "seeds": [0]},
    "lr": {"what": "learning rate 3e-3 (protocol: 1e-3)", "lr": 3e-3, "seeds": [0, 1]},
}
CHECK_TASKS = ["navier-stokes", "navier-stokes-periodic"]
CHECK_MODELS = ["cs_resnet", "resnet"]
CHECK_SIZE = 32
#: a check of a baseline on the two Navier-Stokes tasks at every size and seed of the protocol: the Clifford
#: ResNet as cliffordlayers' own models build it, without CliffordGroupNorm (its training loss stayed ~10x the
#: ResNet's with the norms)
BASELINE_CHECK = {"key": "clifford-no-norm", "model": "clifford_resnet", "model_kwargs": {"norm": False},
                  "what": "Clifford ResNet without its CliffordGroupNorm layers (as cliffordlayers' own models "
                          "default)"}


def narrowed_args(task: str, args, seeds, key: str, size: int | None, models: list[str]) -> list[str]:
    """The protocol's sample_efficiency arguments of ``task`` for one size (None: the protocol's sizes) and
    the given models, with the cells in ``--out/key`` (a check or an ablation variant)."""
    argv = task_args(task, args, seeds)
    argv[argv.index("--out") + 1] = str(Path(args.out) / key)
    if size is not None:
        argv[argv.index("--sizes") + 1: argv.index("--models")] = [str(size)]
    i = argv.index("--models") + 1
    j = next(k for k in range(i, len(argv)) if argv[k].startswith("--"))
    argv[i:j] = models
    return argv


def check_key(task: str, check: str) -> str:
    return f"{task}-{check}"


def check_args(task: str, check: str, args) -> list[str]:
    """sample_efficiency arguments of one robustness check of ``task``: the protocol's, at CHECK_SIZE and the
    check's seeds, with its one change."""
    c = CHECKS[check]
    argv = narrowed_args(task, args, c["seeds"], check_key(task, check), CHECK_SIZE, CHECK_MODELS)
    if "steps_factor" in c:
        steps = PROTOCOL[task]["steps"] * c["steps_factor"]
        argv[argv.index("--steps") + 1] = str(steps)
        argv[argv.index("--val-every") + 1] = str(max(1, steps // 10))
    if "lr" in c:
        argv += ["--lr", str(c["lr"])]
    return argv


def checks_section(args, per_task: dict) -> list[str]:
    """Markdown lines: per check, each model's MSE under the protocol and under the change (same size and
    seeds), and the ResNet / CS-ResNet ratio under both."""
    lines = []
    for check, c in CHECKS.items():
        rows = []
        for task in CHECK_TASKS:
            changed = [x for x in se.load_cells(Path(args.out) / check_key(task, check))
                       if x["size"] == CHECK_SIZE and x["seed"] in c["seeds"]]
            base = [x for x in per_task.get(task, []) if x["size"] == CHECK_SIZE and x["seed"] in c["seeds"]]

            def mean(cs, m):
                v = [x["mse"] for x in cs if x["model"] == m]
                return (sum(v) / len(v), len(v)) if v else (None, 0)

            got = {m: (mean(base, m), mean(changed, m)) for m in CHECK_MODELS}
            if all(a[0] is not None and b[0] is not None and a[1] == b[1] for a, b in got.values()):
                rows.append((task, got, changed))
        if not rows:
            continue
        ref, other = CHECK_MODELS
        lines += [f"## Robustness check: {c['what']}", "",
                  f"{se._label(ref)} and {se._label(other)} at {CHECK_SIZE} trajectories, seed(s) "
                  f"{', '.join(map(str, c['seeds']))}, with one change to the protocol; MSE mean over those seeds, "
                  "beside the protocol's cells of the same size and seeds.", "",
                  f"| task | {se._label(ref)}, protocol | {se._label(ref)}, changed | {se._label(other)}, protocol | "
                  f"{se._label(other)}, changed | {se._label(other)} / {se._label(ref)}, protocol | same, changed |",
                  "|---|---|---|---|---|---|---|"]
        for task, got, _ in rows:
            (r0, _), (r1, _) = got[ref]
            (o0, _), (o1, _) = got[other]
            lines.append(f"| {task} | {r0:.3e} | {r1:.3e} | {o0:.3e} | {o1:.3e} | {o0 / r0:.2f} | {o1 / r1:.2f} |")
        if "steps_factor" in c:
            lines += ["", "Validation curves of the longer runs:", "",
                      *(f"- {task}, {note[2:]}" for task, _, ch in rows for note in se.curve_notes(ch))]
        lines.append("")
    return lines


def baseline_check_args(task: str, args) -> list[str]:
    """sample_efficiency arguments of :data:`BASELINE_CHECK` on ``task`` (protocol sizes, ``--seeds``)."""
    c = BASELINE_CHECK
    argv = narrowed_args(task, args, args.seeds, check_key(task, c["key"]), None, [c["model"]])
    return argv + ["--model-kwargs", json.dumps({c["model"]: c["model_kwargs"]})]


def baseline_check_section(args, per_task: dict) -> list[str]:
    """Markdown lines: the baseline check's model beside the protocol's cells of the same sizes and seeds."""
    c = BASELINE_CHECK
    lines = []
    for task in CHECK_TASKS:
        changed = [x for x in se.load_cells(Path(args.out) / check_key(task, c["key"])) if x["seed"] in args.seeds]
        if not changed:
            continue
        if not lines:
            lines += [f"## Baseline check: {c['what']}", "",
                      "Every size and seed of the protocol that finished, beside the protocol's cells of the same "
                      "size and seeds (MSE means over those seeds; ratios to the CS-ResNet).", ""]
        lines += [f"**{task}**", "",
                  "| train trajectories | seeds | CS-ResNet | ResNet | Clifford ResNet (protocol: with norms) | "
                  "Clifford ResNet, no norms | ResNet / CS | Clifford with norms / CS | Clifford no norms / CS |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for size in sorted({x["size"] for x in changed}):
            seeds = sorted({x["seed"] for x in changed if x["size"] == size})

            def mean(cells, model, size=size, seeds=seeds):
                v = [x["mse"] for x in cells if x["model"] == model and x["size"] == size and x["seed"] in seeds]
                return sum(v) / len(v) if len(v) == len(seeds) else None

            base = per_task.get(task, [])
            cs, rn, cl, new = (mean(base, "cs_resnet"), mean(base, "resnet"), mean(base, c["model"]),
                               mean(changed, c["model"]))
            cells = [f"{v:.3e}" if v is not None else "-" for v in (cs, rn, cl, new)]
            ratios = [f"{v / cs:.2f}" if v is not None and cs else "-" for v in (rn, cl, new)]
            lines.append(f"| {size} | {', '.join(map(str, seeds))} | " + " | ".join(cells + ratios) + " |")
        width = changed[0]
        lines += ["", f"Width {width['hidden']} ({width['params']:,} parameters) without the norms, matched to the "
                  "CS-ResNet like every model.", "", *se.curve_notes(changed), ""]
    return lines


def task_args(task: str, args, seeds) -> list[str]:
    p = PROTOCOL[task]
    steps = p["steps"] * getattr(args, "steps_factor", 1)
    models = [m for m in p["models"] if m not in SKIP.get(task, {}) and (not args.models or m in args.models)]
    argv = ["--task", task, "--data", str(Path(args.data_root) / task), "--out", str(Path(args.out) / task),
            "--sizes", *map(str, p["sizes"]), "--models", *models, "--seeds", *map(str, seeds),
            "--hidden", str(p["hidden"]), "--blocks", "1", "1", "--kernel-size", str(p["kernel_size"]),
            "--kernel-layers", "3", "--kernel-hidden", "8", "--steps", str(steps),
            "--batch-size", str(p["batch_size"]), "--val-every", str(max(1, steps // 10)),
            "--jobs", str(args.jobs), "--cpu"]
    if args.threads:
        argv += ["--threads", str(args.threads)]
    if p.get("resolution"):
        argv += ["--resolution", str(p["resolution"])]
    if p.get("scheduler"):
        argv += ["--scheduler", p["scheduler"]]
    for key in ("cs_kwargs", "model_kwargs", "tag_kwargs"):
        if p.get(key):
            argv += ["--" + key.replace("_", "-"), json.dumps(p[key])]
    for key in ("time_history", "time_future"):
        if p.get(key):
            argv += ["--" + key.replace("_", "-"), str(p[key])]
    if args.summarize:
        argv.append("--summarize")
    return argv


# ------------------------------------------------------------------ resume across machines
def _cell_dirs(args, key: str) -> tuple[Path, Path]:
    """Live and archived cell folders of ``key``: a task, or ``<task>-ablation/<variant>``."""
    return Path(args.out) / key / "cells", Path(args.archive) / key


def _keys() -> list[str]:
    return [*PROTOCOL, *(ns_ablation.key(v) for v in ns_ablation.VARIANTS),
            *(check_key(t, c) for t in CHECK_TASKS for c in CHECKS),
            *(check_key(t, BASELINE_CHECK["key"]) for t in CHECK_TASKS)]


def restore_cells(args) -> int:
    """Copy archived cells that ``--out`` lacks into it (sample_efficiency then skips them); returns how many."""
    if not args.archive:
        return 0
    count = 0
    for key in _keys():
        live, kept = _cell_dirs(args, key)
        for path in sorted(kept.glob("*.json")) if kept.is_dir() else []:
            if not (live / path.name).is_file():
                live.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, live / path.name)
                count += 1
    if count:
        print(f"restored {count} finished cell(s) from {args.archive}", flush=True)
    return count


def archive_cells(args, key: str) -> None:
    """Copy every finished cell of ``key`` (a task or an ablation variant) to the archive (small JSON files,
    meant to be committed)."""
    if not args.archive:
        return
    live, kept = _cell_dirs(args, key)
    for path in sorted(live.glob("*.json")) if live.is_dir() else []:
        kept.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, kept / path.name)


def reevaluate_all(args) -> None:
    """Re-run the evaluation of every finished cell whose checkpoint is on this machine (after a change of
    the metric), then archive the new numbers; cells without a checkpoint keep theirs."""
    jobs = [(t, task_args(t, args, [0, 1, 2])) for t in args.tasks]
    jobs += [(check_key(t, c), check_args(t, c, args)) for t in CHECK_TASKS for c in CHECKS if t in args.tasks]
    jobs += [(check_key(t, BASELINE_CHECK["key"]), baseline_check_args(t, args)) for t in CHECK_TASKS
             if t in args.tasks]
    if "navier-stokes" in args.tasks:
        jobs += [(ns_ablation.key(v), ns_ablation.variant_args(sys.modules[__name__], v, args, list(ns_ablation.SEEDS)))
                 for v in ns_ablation.VARIANTS]
    for key, argv in jobs:
        if not (Path(args.out) / key / "cells").is_dir():
            continue
        print(f"=== re-evaluating {key}", flush=True)
        se.main(argv + ["--reevaluate"])
        archive_cells(args, key)


# ------------------------------------------------------------------ report
def task_floors(args, task: str, cells: list[dict]) -> list[dict]:
    """What :func:`sample_efficiency.floor_line` reads for ``task``: its cells when one recorded the floors,
    else ``<--archive>/<task>.floors.json``, else the floors computed from the test split in ``--data-root``
    (then kept in that file); ``cells`` when none of these exists."""
    if any(c.get("persistence_mse") is not None for c in cells) or not args.archive:
        return cells
    path = Path(args.archive) / f"{task}.floors.json"
    if path.is_file():
        return [se.read_json(path)]
    data = Path(args.data_root) / task
    if not (data / "test.h5").is_file():
        return cells
    from cscnn.data import get_task

    p = PROTOCOL[task]
    floors = se.floor_errors(data, get_task(task).resolve(data), p.get("time_history"), p.get("time_future"),
                             se.parse_args(["--data", str(data)]).test_stride, p.get("resolution"))
    se.write_json(path, floors)
    return [floors]


def task_cells(args, task: str) -> list[dict]:
    p = PROTOCOL[task]
    return [c for c in se.load_cells(Path(args.out) / task)
            if c["size"] in p["sizes"] and c["seed"] in args.seeds and c["model"] in p["models"]]


def plot_all(per_task: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = [t for t in PROTOCOL if per_task.get(t)]
    fig, axes = plt.subplots(1, max(1, len(tasks)), figsize=(4.2 * max(1, len(tasks)), 3.8), squeeze=False)
    for ax, t in zip(axes[0], tasks):
        se.draw_curves(ax, se.aggregate(per_task[t]))
        ax.set_yscale("log")
        ax.set_title(t, fontsize=10)
        ax.set_xlabel("training trajectories")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("one-step test MSE (physical units)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(args, prefix: Path, command: str) -> dict:
    per_task = {t: task_cells(args, t) for t in PROTOCOL}
    cells = [c for t in PROTOCOL for c in per_task[t]]
    if not cells:
        return {}
    paths = {"md": prefix.with_suffix(".md"), "csv": prefix.with_suffix(".csv"), "png": prefix.with_suffix(".png")}
    keys = ["task", "model", "size", "seed", "params", "hidden", "steps", "batch_size", "mse", "mse_norm",
            "val_loss", "train_seconds", "eval_seconds", "num_test_samples"]
    paths["csv"].parent.mkdir(parents=True, exist_ok=True)
    with open(paths["csv"], "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(keys + ["padding"])
        for c in sorted(cells, key=lambda c: (c["task"], c["model"], c["size"], c["seed"])):
            w.writerow([c.get(k) for k in keys] + [se.padding_of(c["model"], c.get("kwargs", {}))])
    plot_all(per_task, paths["png"])
    mi = machine_info()
    lines = ["# Where equivariance pays: all four tasks at CPU scale", "",
             "Written by `benchmarks/tasks_study.py`; the reading below is by hand (from "
             f"`{prefix.name}_reading.md`), the rest generated from the cells. One-step test "
             "MSE in physical units (de-normalised) over the task's physical components (blades that carry no "
             "field left out), mean ± std over the seeds run; ratios above 1 mean the "
             "model's error is that many times the CS-ResNet's. Every model of a task: same data, steps, batch, "
             "learning-rate schedule and seeds, width matched to the CS-ResNet's parameter count, padding as the "
             "task's boundary conditions ask (column *padding*).", "",
             f"![MSE against training-set size, one panel per task]({paths['png'].name})", ""]
    stale = [c for c in cells if c.get("metric") != "physical components"]
    if stale:
        lines += [f"**{len(stale)} of {len(cells)} cells still carry the earlier every-blade MSE** (evaluated "
                  "before the metric was fixed; `--reevaluate` on a machine with their checkpoints updates them).", ""]
    reading = Path(str(prefix) + "_reading.md")  # written by hand, kept across regenerations of the report
    if reading.is_file():
        lines += [reading.read_text().strip(), ""]
    for t in PROTOCOL:
        cs = per_task[t]
        p = PROTOCOL[t]
        steps = p["steps"] * args.steps_factor
        lines += [f"## {t}", "", f"Data: {p['why']}. Budget: {steps} steps of batch {p['batch_size']}, Adam lr "
                  f"1e-3 {'constant' if p.get('scheduler') == 'constant' else 'with cosine decay'}, gradient clip 1.0; "
                  f"evaluation on {cs[0]['test_trajectories'] if cs else 'the'} held-out trajectories.", ""]
        for m, why in SKIP.get(t, {}).items():
            lines.append(f"- {se._label(m)} not run: {why}.")
        if not cs:
            lines += ["", "No cell finished yet.", ""]
            continue
        agg = se.aggregate(cs)
        seeds = sorted({c["seed"] for c in cs})
        lines += ["", f"Seeds finished: {', '.join(map(str, seeds))} ({len(cs)} cells).", "",
                  se._mse_table(agg, "cs_resnet"), "",
                  se.floor_line(task_floors(args, t, cs)), "", *se.readings(agg, "cs_resnet", 0.1), ""]
        lines += ["| model | hidden | parameters | padding | steps | s per step (mean) |", "|---|---|---|---|---|---|"]
        for m in se._models(agg):
            mc = [c for c in cs if c["model"] == m]
            a = next(a for (mm, _), a in agg.items() if mm == m)
            sps = sum(c["train_seconds"] / max(1, c["steps"]) for c in mc) / len(mc)
            lines.append(f"| {se._label(m)} | {a['hidden']} | {a['params']:,} | {se.padding_of(m, a['kwargs'])} | "
                         f"{a['steps']} | {sps:.3f} |")
        lines += ["", "Validation curves (how much the validation loss still fell over the second half of the "
                  "budget):", "", *se.curve_notes(cs), ""]
    lines += checks_section(args, per_task)
    lines += baseline_check_section(args, per_task)
    lines += ns_ablation.section(args, per_task.get("navier-stokes", []))
    lines += ["## How it was run", "", "```", command, "```", "",
              f"- machine: {mi['cpu_model']}, {mi['cpus']} CPU cores, torch {mi['torch']}, {args.threads or 'default'} "
              f"torch thread(s) per cell, {args.jobs} cell(s) in parallel; load average {mi['load']} at the end "
              "(other work shared the machine while the cells ran, so the seconds per step are indicative only)",
              f"- per-task reports with validation-curve plots: `{args.out}/<task>/sample_efficiency.md`", ""]
    paths["md"].write_text("\n".join(lines) + "\n")
    return {k: str(v) for k, v in paths.items()}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default="data/study", help="one data folder per task below it")
    p.add_argument("--out", default="outputs/study", help="cells and runs, one folder per task")
    p.add_argument("--results", default="docs/results/tasks_cpu_scale", help="combined report PREFIX.{md,csv,png}")
    p.add_argument("--tasks", nargs="+", default=list(PROTOCOL), choices=list(PROTOCOL))
    p.add_argument("--models", nargs="+", default=None, help="restrict to these models (default: the protocol's)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--summarize", action="store_true", help="only write the reports of the finished cells")
    p.add_argument("--budget-check", action="store_true",
                   help=f"run only the robustness check 'budget' ({CHECKS['budget']['what']}; {CHECK_MODELS} at "
                        f"{CHECK_SIZE} trajectories on {CHECK_TASKS})")
    p.add_argument("--lr-check", action="store_true",
                   help=f"run only the robustness check 'lr' ({CHECKS['lr']['what']}; same models, size and tasks)")
    p.add_argument("--clifford-check", action="store_true",
                   help=f"run only the baseline check ({BASELINE_CHECK['what']}) on {CHECK_TASKS} (those of "
                        "--tasks), every size of the protocol and the seeds of --seeds, then report")
    p.add_argument("--ablation", action="store_true",
                   help="run only the navier-stokes ablation of the CS-ResNet with the gravity input ("
                        "benchmarks/ns_ablation.py) for the seeds of --seeds it uses, then report")
    p.add_argument("--steps-factor", type=int, default=1,
                   help="train every cell this many times the protocol's steps (a longer-budget study: give it its "
                        "own --out and --results)")
    p.add_argument("--reevaluate", action="store_true",
                   help="evaluate every finished cell (study, checks, ablation) again from its last checkpoint with "
                        "today's metric, archive and report; no training")
    p.add_argument("--archive", default=None,
                   help="committed copy of every finished cell (one JSON per cell, per task; default "
                        "RESULTS_cells beside the report): cells found there are not run again, so the study "
                        "resumes across machines whose outputs/ were lost ('' = none)")
    args = p.parse_args(argv)
    if args.archive is None:
        args.archive = args.results + "_cells"
    t0 = time.time()
    restore_cells(args)
    if args.reevaluate:
        reevaluate_all(args)
    checks = [c for c, on in (("budget", args.budget_check), ("lr", args.lr_check)) if on]
    for check in [] if args.summarize else checks:
        for task in CHECK_TASKS:
            print(f"=== {check} check {task} [{time.time() - t0:.0f}s]", flush=True)
            se.main(check_args(task, check, args))
            archive_cells(args, check_key(task, check))
    if args.clifford_check and not args.summarize:
        for task in [t for t in CHECK_TASKS if t in args.tasks]:
            print(f"=== baseline check {BASELINE_CHECK['key']} {task} [{time.time() - t0:.0f}s]", flush=True)
            # sample_efficiency always runs its reference model: the protocol's finished CS-ResNet cells
            # (same protocol) are copied in, so that only the checked model trains
            live = Path(args.out) / check_key(task, BASELINE_CHECK["key"]) / "cells"
            for path in sorted((Path(args.out) / task / "cells").glob("cs_resnet_n*_s*.json")):
                if not (live / path.name).is_file():
                    live.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(path, live / path.name)
            se.main(baseline_check_args(task, args))
            archive_cells(args, check_key(task, BASELINE_CHECK["key"]))
    if args.ablation and not args.summarize:
        seeds = [s for s in ns_ablation.SEEDS if s in args.seeds]
        for variant in ns_ablation.VARIANTS:
            print(f"=== ablation {variant}, seeds {seeds} [{time.time() - t0:.0f}s]", flush=True)
            se.main(ns_ablation.variant_args(sys.modules[__name__], variant, args, seeds))
            archive_cells(args, ns_ablation.key(variant))
    only_extra = args.ablation or checks or args.reevaluate or args.clifford_check
    for seed in ([None] if args.summarize else [] if only_extra else args.seeds):
        for task in args.tasks:
            data = Path(args.data_root) / task
            if not (data / "train.h5").is_file() or not (data / "test.h5").is_file():
                print(f"{task}: no data in {data} yet, skipped", flush=True)
                continue
            print(f"=== {task}, seed {seed if seed is not None else 'all'} [{time.time() - t0:.0f}s]", flush=True)
            se.main(task_args(task, args, args.seeds if seed is None else [seed]))
            archive_cells(args, task)
    paths = write_report(args, Path(args.results), command_line(argv, __file__))
    if paths:
        print("wrote " + ", ".join(paths.values()), flush=True)
    return paths


if __name__ == "__main__":
    main()
