"""Sample efficiency: one-step test MSE against the number of training trajectories.

For one task, every (model, training-set size, seed) cell trains a model with the
``cscnn.training`` pipeline (same config schema, LightningModule and checkpoints
as ``cscnn train``) under the same step budget, then measures the one-step MSE on
the same held-out test split. Models are compared at matched parameter counts:
the reference model (default CS-ResNet at ``--hidden``) fixes the budget and every
other model gets the width whose parameter count is closest
(:func:`cscnn.models.match_width`). The CS models use the paper's 1x1 CS-convs
(``pointwise="kernel"``, the default).

Outputs in ``--out`` (default ``outputs/bench/sample_efficiency_<task>``)::

    cells/<model>_n<size>_s<seed>.json   one finished cell (the resume unit: finished cells are skipped)
    runs/<model>_n<size>_s<seed>/        its training run (config.yaml, checkpoints/, logs/)
    sample_efficiency.{csv,md,png}       summary (``--results PREFIX`` writes PREFIX.{csv,md,png} instead)
    sample_efficiency_val.png            validation loss against step per cell, with ``--val-every N``

``--val-every N`` validates every N steps, so the report can say whether the budget was long
enough (how much each model's validation loss still fell over the second half of training);
``--resolution R`` reads the data resized to R x R on load (``data.resolution``).

Errors come from :func:`cscnn.training.metrics.one_step_metrics`: ``mse`` is in
physical units (predictions and targets de-normalised), so cells with different
training sets (hence different normalisation statistics) compare directly;
``mse_norm`` is in the cell's normalised training units, as ``cscnn evaluate``
reports it; ``vrmse`` / ``vrmse_per_field`` are The Well's variance-scaled RMSE
(physical units, mean over components), for comparison with its tables
(``--task the-well --data BASE/datasets/NAME``).

The report states what the curves show: each model's MSE ratio between the largest
and the smallest training set (a curve within ``--flat-tolerance`` of 1, or within
the seed spread, is called flat), the gap between models at equal size, and a
"k-fold fewer trajectories" reading only where the baseline's error falls with more
data and the reference's curve crosses it between two measured sizes.

Example (CPU size; the data from ``cscnn generate navier-stokes ... --preset small``)::

    .venv/bin/python benchmarks/sample_efficiency.py --task navier-stokes --data data/bench-ns \\
        --sizes 8 16 32 64 --models cs_resnet resnet --seeds 0 --steps 300 \\
        --results docs/results/sample_efficiency_ns
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    command_line,
    fmt,
    machine_info,
    markdown_table,
    read_json,
    save_log_plot,
    validation_curve,
    write_json,
)

#: model options per family; ``--blocks`` / ``--kernel-size`` fill the ResNet-like ones.
CS_RESNETS = ("cs_resnet", "cond_cs_resnet", "cs_resnet_two_sided")
RESNET_LIKE = (*CS_RESNETS, "resnet", "clifford_resnet", "steerable_resnet")
LABELS = {
    "cs_resnet": "CS-ResNet",
    "cond_cs_resnet": "conditional CS-ResNet",
    "cs_resnet_two_sided": "two-sided CS-ResNet",
    "resnet": "ResNet",
    "clifford_resnet": "Clifford ResNet",
    "steerable_resnet": "Steerable ResNet",
    "fno": "FNO",
    "gfno": "G-FNO",
    "cs_unet": "CS-U-Net",
}


# ------------------------------------------------------------------- models
def split_variant(name: str) -> tuple[str, list[str]]:
    """``"cs_resnet+gravity"`` -> ``("cs_resnet", ["gravity"])``: a registered model reading the task's
    symmetry-breaking fields named after ``+`` as extra input channels (``data.symmetry_breaking``);
    ``"cs_resnet:official"`` -> ``("cs_resnet", [])`` built with the options of its tag (:func:`tag_kwargs`)."""
    base, *fields = name.split("+")
    return base.partition(":")[0], fields


#: model options a tag after ``:`` selects (``"cs_resnet:official"``); ``--tag-kwargs`` adds more
TAGS = {"official": {"compat": "official"}}


def variant_tag(name: str) -> str | None:
    """The tag of a model name after ``:`` (``"cs_resnet:official+time"`` -> ``"official"``), or None."""
    return name.split("+")[0].partition(":")[2] or None


def tag_kwargs(name: str, args) -> dict:
    """Model options of the tag of ``name`` (:data:`TAGS`, then ``--tag-kwargs``); a one-line error for an
    unknown tag."""
    tag = variant_tag(name)
    if tag is None:
        return {}
    known = {**TAGS, **getattr(args, "tag_kwargs", {})}
    if tag not in known:
        raise SystemExit(f"model {name!r}: unknown tag {tag!r}; known: {', '.join(sorted(known))} (--tag-kwargs)")
    return dict(known[tag])


def model_kwargs(name: str, args, task=None) -> dict:
    """Keyword arguments of ``name`` for this study (same depth and kernel for every ResNet-like model;
    every model that has a ``padding_mode`` pads as the task's boundary conditions ask, e.g. circular on
    periodic domains)."""
    from cscnn.models.registry import model_kwargs as accepted

    tagged = tag_kwargs(name, args)
    name = split_variant(name)[0]
    kw = {}
    if name in RESNET_LIKE:
        kw = {"blocks": list(args.blocks), "kernel_size": args.kernel_size}
        if name in CS_RESNETS:
            kw.update(kernel_num_layers=args.kernel_layers, kernel_hidden_channels=args.kernel_hidden,
                      **getattr(args, "cs_kwargs", {}))
    elif name == "fno":
        kw = {"modes": args.fno_modes, "n_layers": args.fno_layers}
    elif name == "gfno":
        kw = {"modes": args.gfno_modes, "n_layers": args.fno_layers}
    kw.update(getattr(args, "model_kwargs", {}).get(name, {}))
    kw.update(tagged)
    if task is not None and "padding_mode" in accepted(name)[0]:
        # one mode, or one per axis (the-well, e.g. periodic x, walled y) as a list: plain YAML in the configs
        kw["padding_mode"] = task.padding if isinstance(task.padding, str) else list(task.padding)
    return kw


def padding_of(name: str, kwargs: dict) -> str:
    """How model ``name`` treats the domain boundary in this study (for the report), e.g. ``circular``
    or ``circular/zeros (per axis)``."""
    from cscnn.nn.functional import describe_padding

    if split_variant(name)[0] == "gfno":  # its padding_mode pads the domain around the spectral layers
        return ("periodic (spectral convolution)" if kwargs.get("padding_mode", "circular") == "circular" else
                f"zero domain padding ({kwargs.get('domain_padding', 0.125):g} of each side) + spectral convolution")
    if "padding_mode" in kwargs:
        return describe_padding(kwargs["padding_mode"])
    if split_variant(name)[0] == "fno":
        return ("periodic (spectral convolution)" if kwargs.get("positional_embedding", "grid") is None
                else "periodic (spectral convolution) + absolute grid coordinates")
    return "model default"


def available(name: str, alg, padding_mode=None) -> str | None:
    """None when model ``name`` can be built for ``alg`` (with ``padding_mode``, when given) here, else
    the reason it cannot (e.g. the escnn baseline and a per-axis padding mode)."""
    from cscnn.models import build_model

    name = split_variant(name)[0]
    kw = {"blocks": [1], "kernel_size": 3} if name in RESNET_LIKE else {}
    if padding_mode is not None:
        kw["padding_mode"] = padding_mode
    try:
        build_model(name, alg, 1, 1, 2, **kw)
    except (ImportError, ModuleNotFoundError) as e:
        return f"not installed ({e})"
    except (ValueError, TypeError) as e:
        return str(e)
    return None


def plan_models(args, task) -> tuple[dict, list[str]]:
    """``{name: {"hidden", "kwargs", "params"}}`` at matched parameter counts, and notes on skipped models."""
    from cscnn.models import build_model, count_parameters, match_width

    cin, cout = task.channels(getattr(args, "time_history", None), getattr(args, "time_future", None))
    alg = tuple(task.metric)
    ref = args.reference
    ref_base, ref_fields = split_variant(ref)
    ref_kw = model_kwargs(ref, args, task)
    target = count_parameters(build_model(ref_base, alg, cin + len(ref_fields), cout, args.hidden, **ref_kw))
    plan, notes = {}, []
    for name in args.models:
        why = available(name, alg, model_kwargs(name, args, task).get("padding_mode"))
        base, fields = split_variant(name)
        if why is None and fields:
            try:
                task.symmetry_breaking_fields(fields)
            except ValueError as e:
                why = str(e)
        if why is not None:
            notes.append(f"{name} skipped: {why}")
            continue
        kw = model_kwargs(name, args, task)
        if name == ref or name in args.same_width or (base == ref_base and (fields or variant_tag(name))):
            width = args.hidden  # a variant (symmetry-breaking inputs, the authors' forward) keeps its base's width
        else:
            width = match_width(base, alg, cin, cout, target, max_width=args.max_width, **kw)
        n = count_parameters(build_model(base, alg, cin + len(fields), cout, width, **kw))
        plan[name] = {"hidden": width, "kwargs": kw, "params": n, "symmetry_breaking": fields}
    return plan, notes


# -------------------------------------------------------------------- cells
def cell_name(model: str, size: int, seed: int) -> str:
    return f"{model}_n{size}_s{seed}"


def cell_protocol(args, spec: dict) -> dict:
    """What makes two cells of the same name the same experiment (stored in each cell as ``protocol``)."""
    return {"steps": args.steps, "batch_size": args.batch_size, "lr": args.lr, "warmup": args.warmup,
            "scheduler": args.scheduler,
            "minutes": args.minutes, "resolution": args.resolution, "hidden": spec["hidden"],
            "kwargs": spec["kwargs"], "time_history": getattr(args, "time_history", None),
            "time_future": getattr(args, "time_future", None)}


def protocol_mismatch(cell: dict, args, spec: dict) -> str | None:
    """None when a finished cell was made under this run's protocol, else what differs (``name: old -> new``).
    Cells written before the protocol was stored are compared on what they hold (batch, width, options,
    and the steps done unless a time cap may have cut them)."""
    want = cell_protocol(args, spec)
    have = cell.get("protocol")
    if have is None:
        have = {"batch_size": cell.get("batch_size"), "hidden": cell.get("hidden"), "kwargs": cell.get("kwargs")}
        if args.minutes is None:
            have["steps"] = cell.get("steps")
    diff = [f"{k}: {have[k]!r} -> {want[k]!r}" for k in have if k in want and have[k] != want[k]]
    return "; ".join(diff) or None


def cell_config(args, task, model: str, spec: dict, size: int, seed: int, run_dir: Path):
    """The ExperimentConfig of one cell (a normal ``cscnn train`` config)."""
    from cscnn.training.config import config_from_dict

    steps = args.steps
    val_every = min(args.val_every or steps, steps)
    trainer = {
        "max_steps": steps, "accelerator": "cpu" if args.cpu else "auto", "devices": 1,
        "val_check_interval": val_every, "check_val_every_n_epoch": None, "limit_val_batches": args.val_batches,
        "log_every_n_steps": max(1, min(50, steps // 4)), "enable_progress_bar": False,
        "gradient_clip_val": 1.0,
    }
    if args.minutes:
        secs = max(1, int(args.minutes * 60))
        trainer["max_time"] = f"00:{secs // 3600:02d}:{secs % 3600 // 60:02d}:{secs % 60:02d}"
    return config_from_dict({
        "name": cell_name(model, size, seed), "task": task.name, "seed": seed, "out": str(run_dir),
        "data": {"dir": str(args.data), "batch_size": args.batch_size, "num_train": size, "num_workers": 0,
                 "resolution": args.resolution, "symmetry_breaking": split_variant(model)[1],
                 "time_history": getattr(args, "time_history", None),
                 "time_future": getattr(args, "time_future", None)},
        "model": {"name": split_variant(model)[0], "hidden_channels": spec["hidden"], "kwargs": spec["kwargs"]},
        "optim": {"lr": args.lr, "scheduler": args.scheduler, "warmup_steps": min(args.warmup, steps // 10)},
        "trainer": trainer,
    })


def evaluate_cell(module, data_dir: Path, task, stride: int, batch_size: int) -> dict:
    """One-step test MSE of a trained ForecastModule on the ``test`` split of ``data_dir`` (window starts
    ``stride`` frames apart), in physical units and in the module's normalised units."""
    from torch.utils.data import DataLoader

    from cscnn.data import Normalization, PDEDataset
    from cscnn.training.metrics import one_step_metrics, reference_metrics

    module = module.cpu()
    hp = dict(module.hparams)
    norm = Normalization.from_dict(hp["normalization"]) if hp.get("normalization") else None
    ds = PDEDataset(data_dir, task, split="test", time_history=hp["time_history"], time_future=hp["time_future"],
                    windows="all", stride=stride, normalization=norm, resolution=hp.get("resolution"))
    # ds.task: the task resolved from the files (the-well's layout comes from them)
    loader = DataLoader(ds, batch_size=batch_size, shuffle=False)
    one = one_step_metrics(module.model, loader, ds.task, normalization=norm)
    ref = reference_metrics(loader, ds.task, hp["time_history"], hp["time_future"], norm)
    return {"mse": one["mse"], "zero_mse": ref["zero"]["mse"], "persistence_mse": ref["persistence"]["mse"],
            "mse_norm": one.get("mse_normalized", one["mse"]), "per_field": one["per_group"],
            "mse_all_blades": one["mse_all_blades"], "metric": "physical components",
            "vrmse": one["vrmse"], "vrmse_per_field": one["vrmse_per_field"],
            "num_test_samples": one["num_samples"], "test_trajectories": ds.num_trajectories, "test_stride": stride}


def floor_errors(data_dir: Path, task, time_history, time_future, stride: int, resolution=None,
                 batch_size: int = 16) -> dict:
    """The zero predictor's and last-frame persistence's one-step MSE (physical units, the task's physical
    components) on the ``test`` split of ``data_dir``, windows as :func:`evaluate_cell` takes them: the floors
    of every cell of a task, computed without a trained model."""
    from torch.utils.data import DataLoader

    from cscnn.data import PDEDataset
    from cscnn.training.metrics import reference_metrics

    ds = PDEDataset(data_dir, task, split="test", time_history=time_history, time_future=time_future,
                    windows="all", stride=stride, resolution=resolution)
    ref = reference_metrics(DataLoader(ds, batch_size=batch_size, shuffle=False), ds.task, ds.time_history,
                            ds.time_future)
    return {"zero_mse": ref["zero"]["mse"], "persistence_mse": ref["persistence"]["mse"],
            "num_test_samples": ref["zero"]["num_samples"], "test_stride": stride}


def reevaluate(args) -> int:
    """Evaluate the finished cells again from their ``last.ckpt`` (after changing evaluation options);
    cells whose checkpoint cannot be loaded safely are left as they are."""
    from cscnn.data import get_task
    from cscnn.training import load_module

    task = get_task(args.task).resolve(args.data)  # the-well: its layout from the files
    count = 0
    for path in sorted((Path(args.out) / "cells").glob("*.json")):
        cell = read_json(path)
        if not cell or cell["model"] not in args.models or cell["size"] not in args.sizes:
            continue
        try:
            module = load_module(cell["checkpoint"], map_location="cpu")
        except Exception as e:  # noqa: BLE001 - report and keep the old numbers
            print(f"{path.name}: cannot re-evaluate ({str(e).splitlines()[0]})", flush=True)
            continue
        t = time.time()
        cell.update(evaluate_cell(module, Path(args.data), task, args.test_stride, args.eval_batch_size))
        cell["eval_seconds"] = time.time() - t
        write_json(path, cell)
        count += 1
        print(f"re-evaluated {path.name}: mse {cell['mse']:.4e}", flush=True)
    return count


def run_cell(job: dict) -> dict:
    """Train and evaluate one cell; writes ``cells/<name>.json`` and returns it. Runs in a worker process."""
    import torch

    from cscnn.data import get_task
    from cscnn.training import load_module, train

    if job.get("threads"):
        torch.set_num_threads(job["threads"])
    args = argparse.Namespace(**job["args"])
    task = get_task(args.task).resolve(args.data)  # the-well: its layout from the files
    out = Path(args.out)
    name = cell_name(job["model"], job["size"], job["seed"])
    run_dir = out / "runs" / name
    cfg = cell_config(args, task, job["model"], job["spec"], job["size"], job["seed"], run_dir)
    t0 = time.time()
    resume = (run_dir / "checkpoints" / "last.ckpt").is_file()
    res = train(cfg, resume=resume, progress=False)
    train_s = time.time() - t0
    # the final weights: every model is compared after the same number of steps
    ckpt = res["last"] or res["best"]
    t1 = time.time()
    ev = evaluate_cell(load_module(ckpt), Path(args.data), task, args.test_stride, args.eval_batch_size)
    curve = [[s + 1, v] for s, v in validation_curve(run_dir)]  # x: optimizer steps done (Lightning logs s)
    result = {
        "model": job["model"], "label": _label(job["model"]), "task": task.name,
        "size": job["size"], "seed": job["seed"], "hidden": job["spec"]["hidden"], "kwargs": job["spec"]["kwargs"],
        "params": job["spec"]["params"], "steps": res["global_step"], "batch_size": args.batch_size,
        "val_loss": res["val_loss"], "train_seconds": train_s, "eval_seconds": time.time() - t1,
        "resumed": resume, "checkpoint": str(ckpt), "val_curve": curve, **ev,
        "protocol": cell_protocol(args, job["spec"]),
        "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    write_json(out / "cells" / f"{name}.json", result)
    return result


# ------------------------------------------------------------------ summary
def load_cells(out: Path) -> list[dict]:
    cells = [read_json(p) for p in sorted((Path(out) / "cells").glob("*.json"))]
    return [c for c in cells if c]


def aggregate(cells: list[dict], key: str = "mse") -> dict:
    """``{(model, size): {"mean", "std", "min", "max", "n", "params", ...}}`` of metric ``key`` over seeds."""
    groups: dict = {}
    for c in cells:
        groups.setdefault((c["model"], c["size"]), []).append(c)
    agg = {}
    for k, cs in groups.items():
        v = [float("nan") if c.get(key) is None else c[key] for c in cs]  # null: a non-finite result
        agg[k] = {"mean": statistics.fmean(v), "std": statistics.stdev(v) if len(v) > 1 else 0.0,
                  "min": min(v), "max": max(v), "n": len(v), "params": cs[0]["params"],
                  "hidden": cs[0]["hidden"], "kwargs": cs[0].get("kwargs", {}),
                  "train_seconds": statistics.fmean(c["train_seconds"] for c in cs),
                  "steps": cs[0]["steps"]}
    return agg


def matching_size(agg: dict, model: str, target_mse: float) -> float | None:
    """Training-set size at which ``model`` reaches ``target_mse``, by log-log interpolation
    between measured sizes; the smallest size when it is already there (an upper bound only);
    None when it never does at the sizes tried."""
    pts = sorted((s, a["mean"]) for (m, s), a in agg.items() if m == model)
    if pts and pts[0][1] <= target_mse:
        return float(pts[0][0])  # already there at the smallest size: an upper bound
    for (s0, e0), (s1, e1) in zip(pts, pts[1:]):
        if e0 > target_mse >= e1:
            t = (math.log(e0) - math.log(target_mse)) / (math.log(e0) - math.log(e1))
            return math.exp(math.log(s0) + t * (math.log(s1) - math.log(s0)))
    return None


def write_csv(cells: list[dict], path: Path) -> None:
    keys = ["task", "model", "size", "seed", "params", "hidden", "steps", "batch_size", "mse", "mse_norm",
            "vrmse", "val_loss", "train_seconds", "eval_seconds", "num_test_samples"]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(keys + ["per_field"])
        for c in sorted(cells, key=lambda c: (c["model"], c["size"], c["seed"])):
            w.writerow([c.get(k) for k in keys] + [";".join(f"{k}={v:.6g}" for k, v in c["per_field"].items())])


def _ordered(models) -> list[str]:
    """The distinct model names in ``models``, in the order of :data:`LABELS` (unknown ones last), each
    variant with symmetry-breaking inputs right after its base model."""
    def key(m):
        base = split_variant(m)[0]
        return (list(LABELS).index(base) if base in LABELS else 99, m)

    return sorted(set(models), key=key)


def _models(agg: dict) -> list[str]:
    return _ordered(m for m, _ in agg)


def _label(m: str) -> str:
    base, fields = split_variant(m)
    label = LABELS.get(base, base) + (f" ({tag})" if (tag := variant_tag(m)) else "")
    return f"{label} + {' + '.join(fields)} input" if fields else label


#: one colour per model family in every plot (matplotlib's default cycle), so panels read alike
_COLOURS = {"cs_resnet": "C0", "resnet": "C1", "clifford_resnet": "C2", "cs_resnet+gravity": "C3",
            "cs_resnet+time": "C3", "cs_resnet:official": "C9", "cs_resnet:lightcone+time": "C6",
            "fno": "C4", "steerable_resnet": "C5", "cond_cs_resnet": "C6", "cs_resnet_two_sided": "C7",
            "cs_unet": "C8", "gfno": "C9"}


def draw_curves(ax, agg: dict) -> None:
    """One line per model on ``ax``: mean MSE against training-set size (log2 x axis); bars span
    min..max over seeds. A model has the same colour in every panel."""
    for m in _models(agg):
        pts = sorted((s, a) for (mm, s), a in agg.items() if mm == m and math.isfinite(a["mean"]))
        if not pts:
            continue
        xs, ys = [s for s, _ in pts], [a["mean"] for _, a in pts]
        label = f"{_label(m)} ({pts[0][1]['params'] / 1e3:.0f}k params)"
        if any(a["n"] > 1 for _, a in pts):
            lo = [a["mean"] - a["min"] for _, a in pts]
            hi = [a["max"] - a["mean"] for _, a in pts]
            ax.errorbar(xs, ys, yerr=[lo, hi], marker="o", capsize=3, label=label, color=_COLOURS.get(m))
        else:
            ax.plot(xs, ys, marker="o", label=label, color=_COLOURS.get(m))
    ax.set_xscale("log", base=2)


def plot(agg: dict, path: Path, title: str) -> None:
    """Log-log MSE against training-set size; bars span min..max over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.6, 4.4))
    draw_curves(ax, agg)
    fig.suptitle(title, fontsize=9)
    save_log_plot(fig, ax, path, "training trajectories", "one-step test MSE (physical units)")


def plot_curves(cells: list[dict], path: Path, title: str) -> bool:
    """Validation loss against step for every cell with more than one validation (one colour per model,
    one line per seed and size); False (nothing written) when no cell has a curve."""
    curves = [c for c in cells if len(c.get("val_curve") or []) > 1]
    if not curves:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.6, 4.4))
    models = _ordered(c["model"] for c in curves)
    labelled = set()
    for c in sorted(curves, key=lambda c: (models.index(c["model"]), c["size"], c["seed"])):
        steps, vals = zip(*c["val_curve"])
        m = c["model"]
        ax.plot(steps, vals, color=f"C{models.index(m)}", alpha=0.8, lw=1.2,
                label=None if m in labelled else _label(m))
        labelled.add(m)
    fig.suptitle(title, fontsize=9)
    save_log_plot(fig, ax, path, "optimizer step", "validation loss (normalised units)")
    return True


def curve_notes(cells: list[dict], tail: float = 0.5) -> list[str]:
    """Per model, how much the validation loss still fell over the last ``tail`` of the budget
    (mean over the cells with a curve): the reading of whether the budget was long enough."""
    by_model: dict = {}
    for c in cells:
        curve = c.get("val_curve") or []
        if len(curve) < 3:
            continue
        last_step = curve[-1][0]
        mid = min(curve, key=lambda p: abs(p[0] - (1 - tail) * last_step))
        by_model.setdefault(c["model"], []).append((mid[0], mid[1], curve[-1][1]))
    notes = []
    for m in _ordered(by_model):
        pts = by_model[m]
        drop = statistics.fmean(1 - end / mid for _, mid, end in pts)
        notes.append(f"- {_label(m)}: validation loss fell by {drop:.0%} from step {pts[0][0]} to the end "
                     f"(mean over {len(pts)} cell(s)).")
    return notes


def trend(agg: dict, model: str, tol: float) -> tuple[float, str]:
    """``(MSE at the largest size / MSE at the smallest, "falls" | "rises" | "flat")``: a change counts
    only when it exceeds ``tol`` (relative) and the min..max ranges over seeds at the two sizes do not
    overlap."""
    sizes = sorted(s for m, s in agg if m == model)
    lo, hi = agg[(model, sizes[0])], agg[(model, sizes[-1])]
    ratio = hi["mean"] / lo["mean"]
    if ratio < 1 - tol and hi["max"] < lo["min"]:
        return ratio, "falls"
    if ratio > 1 + tol and hi["min"] > lo["max"]:
        return ratio, "rises"
    return ratio, "flat"


def readings(agg: dict, ref: str | None, tol: float) -> list[str]:
    """Report lines that state only what the measured curves show (see the module docstring)."""
    sizes = sorted({s for _, s in agg})
    lo, hi = sizes[0], sizes[-1]
    notes, trends = [], {}
    for m in _models(agg):
        if (m, lo) in agg and (m, hi) in agg and lo != hi:
            ratio, word = trend(agg, m, tol)
            trends[m] = word
            notes.append(f"- {_label(m)}: MSE at {hi} trajectories / MSE at {lo} = {ratio:.2f} "
                         + (f"(flat at this budget: the change is within {tol:.0%} or within the seed spread)"
                            if word == "flat" else f"({word} with more training data at this budget)"))
    if ref not in trends:
        return notes
    for m in [m for m in trends if m != ref]:
        common = [s for s in sizes if (m, s) in agg and (ref, s) in agg]
        ratios = [agg[(m, s)]["mean"] / agg[(ref, s)]["mean"] for s in common]
        if all(r > 1 for r in ratios) or all(r < 1 for r in ratios):
            better = _label(ref) if ratios[0] > 1 else _label(m)
            notes.append(f"- {better} has the lower MSE at every size tried ({_label(m)} / {_label(ref)} = "
                         f"{min(ratios):.2f}-{max(ratios):.2f}).")
        else:
            notes.append(f"- Neither model is lower at every size ({_label(m)} / {_label(ref)} = "
                         f"{min(ratios):.2f}-{max(ratios):.2f}).")
        if trends[m] != "falls":
            notes.append(f"- No data-efficiency reading for {_label(ref)} against {_label(m)}: {_label(m)}'s error "
                         "does not fall with more training data here, so how many fewer trajectories "
                         f"{_label(ref)} needs for the same error cannot be read from these curves.")
            continue
        target = agg[(m, hi)]["mean"]
        s_ref = matching_size(agg, ref, target)
        if trends[ref] == "flat" and not (s_ref is not None and s_ref <= lo):
            # an interpolated size on a curve that is flat within its noise means nothing (a bound read
            # from two measured points, below, still does)
            notes.append(f"- No data-efficiency reading for {_label(ref)} against {_label(m)}: {_label(ref)}'s own "
                         "error is flat in the training-set size here, so the size at which it reaches "
                         f"{_label(m)}'s error is not resolved by these curves.")
            continue
        if s_ref is None:
            notes.append(f"- {_label(ref)} does not reach {_label(m)}'s MSE at {hi} trajectories ({fmt(target)}) "
                         "at any size tried.")
        elif s_ref <= lo:
            notes.append(f"- {_label(ref)} with {lo} trajectories already reaches {_label(m)}'s MSE at {hi} "
                         f"({fmt(agg[(ref, lo)]['mean'])} vs {fmt(target)}); smaller training sets were not tried, "
                         f"so the saving is not measured beyond {hi / lo:.0f}x.")
        else:
            notes.append(f"- {_label(ref)} reaches {_label(m)}'s MSE at {hi} trajectories ({fmt(target)}) with "
                         f"about {s_ref:.0f} trajectories ({hi / s_ref:.1f}x fewer; log-log interpolation between "
                         "measured sizes).")
    return notes


def _mse_table(agg: dict, ref: str | None) -> str:
    sizes = sorted({s for _, s in agg})
    models = _models(agg)
    header = ["train trajectories"] + [_label(m) for m in models]
    others = [m for m in models if m != ref]
    if ref in models:
        header += [f"{_label(m)} / {_label(ref)}" for m in others]
    rows = []
    for s in sizes:
        row = [str(s)]
        for m in models:
            a = agg.get((m, s))
            row.append("-" if a is None else (f"{fmt(a['mean'])} ± {fmt(a['std'])}" if a["n"] > 1
                                              else fmt(a["mean"])))
        if ref in models:
            for m in others:
                a, r = agg.get((m, s)), agg.get((ref, s))
                row.append("-" if a is None or r is None else f"{a['mean'] / r['mean']:.2f}")
        rows.append(row)
    return markdown_table(header, rows)


def floor_line(cells: list[dict]) -> str:
    """One sentence with the zero predictor's and last-frame persistence's MSE on the cells' test windows
    (the same for every cell of a task: physical units, the same windows), or a note that none was recorded."""
    c = next((c for c in cells if c.get("persistence_mse") is not None), None)
    if c is None:
        return "Floors (zero predictor, last-frame persistence): not recorded for these cells."
    return (f"Floors on the same test windows and units: predicting zero {fmt(c['zero_mse'])}, repeating the last "
            f"input frame (persistence) {fmt(c['persistence_mse'])}; a model above both has not learnt the dynamics.")


def markdown(cells: list[dict], agg: dict, meta: dict) -> str:
    seeds = sorted({c["seed"] for c in cells})
    ref = meta.get("reference")
    lines = [f"# Sample efficiency: {meta['task']}", ""]
    lines.append(f"One-step test MSE in physical units (predictions and targets de-normalised), all "
                 f"{cells[0]['num_test_samples']} test windows; mean{' ± std' if len(seeds) > 1 else ''} over "
                 f"seed(s) {', '.join(map(str, seeds))}; test set: {cells[0]['test_trajectories']} held-out "
                 f"trajectories, window starts every {cells[0]['test_stride']} frames. A ratio above 1 means the "
                 "baseline's error is that many times the reference's.")
    lines += ["", _mse_table(agg, ref), "", floor_line(cells), "", *readings(agg, ref, meta["flat_tolerance"])]
    lines += ["", "| model | hidden width | parameters | padding | steps | mean train s/cell |",
              "|---|---|---|---|---|---|"]
    for m in _models(agg):
        a = next(a for (mm, _), a in agg.items() if mm == m)
        lines.append(f"| {_label(m)} | {a['hidden']} | {a['params']:,} | {padding_of(m, a['kwargs'])} | {a['steps']} | "
                     f"{statistics.fmean(b['train_seconds'] for (mm, _), b in agg.items() if mm == m):.0f} |")
    lines += ["", "## How it was run", "", "```", meta["command"], "```", ""]
    mi = meta["machine"]
    lines.append(f"- machine: {mi['cpu_model']}, {mi['cpus']} CPU cores ({mi['platform']}), torch {mi['torch']}, "
                 f"{meta['threads']} torch thread(s) per cell, {meta['jobs']} cell(s) in parallel"
                 + (f", GPU {mi['cuda']}" if mi.get("cuda") else "")
                 + f"; load average {mi['load']} at the end (other processes share the machine when above 0)")
    lines.append(f"- budget per cell: {meta['steps']} optimizer steps, batch {meta['batch_size']}, Adam lr {meta['lr']}"
                 f", {meta.get('scheduler', 'cosine')} schedule, gradient clip 1.0"
                 + (f", at most {meta['minutes']} min" if meta["minutes"]
                                                              else "")
                 + (f"; data read at {meta['resolution']}x{meta['resolution']}" if meta.get("resolution") else "")
                 + ("; time steps in -> out: {} -> {}".format(*[w or "task default" for w in meta["windows"]])
                    if any(meta.get("windows") or []) else ""))
    lines.append(f"- wall time: {meta['cells_seconds'] / 60:.1f} min summed over the {len(cells)} cells "
                 f"(training + evaluation); this invocation ran {meta['ran']} cell(s) in "
                 f"{meta['elapsed'] / 60:.1f} min, skipped {meta['skipped']} finished one(s)")
    for note in [*meta.get("notes", []), *meta.get("user_notes", [])]:
        lines.append(f"- {note}")
    return "\n".join(lines) + "\n"


def summarize(args, meta: dict) -> dict:
    cells = [c for c in load_cells(args.out) if c["model"] in args.models and c["size"] in args.sizes
             and c["seed"] in args.seeds]
    if not cells:
        return {}
    agg = aggregate(cells, "mse")
    meta = {**meta, "cells_seconds": sum(c["train_seconds"] + c["eval_seconds"] for c in cells)}
    prefix = Path(args.results) if args.results else Path(args.out) / "sample_efficiency"
    paths = {"csv": prefix.with_suffix(".csv"), "md": prefix.with_suffix(".md"), "png": prefix.with_suffix(".png")}
    write_csv(cells, paths["csv"])
    plot(agg, paths["png"], f"{args.task}: one-step test MSE vs training-set size\n"
                            f"({args.steps} steps, batch {args.batch_size}, seeds {args.seeds})")
    text = markdown(cells, agg, meta)
    text += f"\n![MSE against training-set size]({paths['png'].name})\n"
    curves = prefix.with_name(prefix.name + "_val.png")
    if plot_curves(cells, curves, f"{args.task}: validation loss during training (batch {args.batch_size})"):
        paths["val_png"] = curves
        text += "\n## Validation curves\n\n" + "\n".join(curve_notes(cells)) + \
            f"\n\n![validation loss against step]({curves.name})\n"
    paths["md"].parent.mkdir(parents=True, exist_ok=True)
    paths["md"].write_text(text)
    return {k: str(v) for k, v in paths.items()}


# --------------------------------------------------------------------- main
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", default="navier-stokes", help="navier-stokes | maxwell3d | maxwell2d")
    p.add_argument("--data", required=True, help="data folder with train.h5, test.h5 (valid.h5 optional)")
    p.add_argument("--out", default=None, help="cells, runs and summary (default outputs/bench/sample_efficiency_"
                                               "<task>)")
    p.add_argument("--results", default=None, help="write the summary as PREFIX.csv/.md/.png instead of in --out")
    p.add_argument("--sizes", type=int, nargs="+", default=[8, 16, 32, 64], help="training trajectories")
    p.add_argument("--models", nargs="+", default=["cs_resnet", "resnet", "clifford_resnet", "fno",
                                                   "steerable_resnet"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--reference", default="cs_resnet", help="model whose parameter count the others match")
    p.add_argument("--same-width", nargs="+", default=[], metavar="MODEL",
                   help="models built at --hidden like the reference instead of at a matched parameter count "
                        "(e.g. variants of the reference)")
    p.add_argument("--hidden", type=int, default=8, help="hidden width of the reference model")
    p.add_argument("--blocks", type=int, nargs="+", default=[1, 1], help="residual blocks (ResNet-like models)")
    p.add_argument("--kernel-size", type=int, default=5)
    p.add_argument("--kernel-layers", type=int, default=3, help="CS-ResNet kernel network depth")
    p.add_argument("--kernel-hidden", type=int, default=8, help="CS-ResNet kernel network width")
    p.add_argument("--cs-kwargs", type=json.loads, default={}, metavar="JSON",
                   help='extra options of the CS models, e.g. \'{"norm": false, "activation": "silu"}\' (ablations)')
    p.add_argument("--model-kwargs", type=json.loads, default={}, metavar="JSON",
                   help='extra options per model, e.g. \'{"clifford_resnet": {"norm": false}}\' (checks of a baseline)')
    p.add_argument("--tag-kwargs", type=json.loads, default={}, metavar="JSON",
                   help='model options of tags used after ":" in --models, e.g. \'{"lightcone": {"time_scale": '
                        '0.126}}\' for cs_resnet:lightcone ("official" is built in: compat="official")')
    p.add_argument("--fno-modes", type=int, default=12)
    p.add_argument("--fno-layers", type=int, default=4, help="Fourier layers of the FNO and the G-FNO")
    p.add_argument("--gfno-modes", type=int, default=4,
                   help="G-FNO Fourier modes per axis (|k| <= modes - 1; 4 on a 16-cell axis keeps half of its "
                        "frequencies, as the paper's 16 modes on 64 cells)")
    p.add_argument("--max-width", type=int, default=512)
    p.add_argument("--steps", type=int, default=300, help="optimizer steps per cell (same for every model)")
    p.add_argument("--minutes", type=float, default=None, help="optional wall-clock cap per cell")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--scheduler", default="cosine", choices=["cosine", "constant"], help="learning-rate schedule")
    p.add_argument("--val-batches", type=int, default=4, help="validation batches per validation")
    p.add_argument("--val-every", type=int, default=None,
                   help="validate every N steps (default: once, at the end); the report then plots the "
                        "validation curves, so one can see whether the models still improve")
    p.add_argument("--resolution", type=int, default=None,
                   help="read the data resized to this grid size (data.resolution; default: as stored)")
    p.add_argument("--time-history", type=int, default=None, help="input time steps (default: the task's)")
    p.add_argument("--time-future", type=int, default=None, help="target time steps (default: the task's)")
    p.add_argument("--test-stride", type=int, default=4, help="distance between test window starts")
    p.add_argument("--eval-batch-size", type=int, default=16)
    p.add_argument("--flat-tolerance", type=float, default=0.1,
                   help="relative MSE change between the smallest and largest training set below which a curve "
                        "is reported as flat")
    p.add_argument("--summarize", action="store_true", help="only write the summary of the finished cells (no "
                                                            "training; e.g. while another invocation still runs)")
    p.add_argument("--reevaluate", action="store_true", help="re-run the evaluation of finished cells, then "
                                                             "summarise (no training)")
    p.add_argument("--threads", type=int, default=None, help="torch threads per cell (default: torch's)")
    p.add_argument("--jobs", type=int, default=1, help="cells trained in parallel (processes)")
    p.add_argument("--cpu", action="store_true", help="train on CPU even when a GPU is present")
    p.add_argument("--note", action="append", default=[], help="a line for the report (e.g. how the data were made)")
    args = p.parse_args(argv)
    if not isinstance(args.model_kwargs, dict) or not all(isinstance(v, dict) for v in args.model_kwargs.values()):
        p.error(f"--model-kwargs must be a JSON object {{model: {{option: value}}}}, got {args.model_kwargs!r}")
    if args.out is None:
        args.out = f"outputs/bench/sample_efficiency_{args.task.replace('-', '')}"
    args.models = list(dict.fromkeys(args.models))
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    from cscnn.data import DataError, check_data_dir, get_task

    task = get_task(args.task)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        task = task.resolve(args.data)  # the-well: its layout from the files
        check_data_dir(args.data, task, require_test=True)
    except DataError as e:
        sys.exit(f"error: {e}")
    if args.reference not in args.models:
        args.models.insert(0, args.reference)
    plan, notes = plan_models(args, task)
    for n in notes:
        print(n, flush=True)
    print("models at matched parameter counts:", flush=True)
    for m, s in plan.items():
        print(f"  {m:<18} hidden {s['hidden']:>4}  {s['params']:>9,} params  {s['kwargs']}", flush=True)
    args.models = [m for m in args.models if m in plan]
    jobs, skipped = [], 0
    for seed in args.seeds:
        for size in args.sizes:
            for m in args.models:
                done_path = out / "cells" / f"{cell_name(m, size, seed)}.json"
                if done_path.is_file():
                    why = protocol_mismatch(read_json(done_path) or {}, args, plan[m])
                    if why:
                        sys.exit(f"error: {done_path} was made under another protocol ({why}); give this run "
                                 "another --out (and, in tasks_study, another --results/--archive)")
                    skipped += 1
                    continue
                jobs.append({"model": m, "size": size, "seed": seed, "spec": plan[m], "threads": args.threads,
                             "args": vars(args)})
    if args.summarize:
        jobs = []
    if args.reevaluate:
        reevaluate(args)
        jobs = []
    print(f"{len(jobs)} cell(s) to run, {skipped} finished cell(s) skipped", flush=True)
    t0 = time.time()
    done = []

    def report(r):
        done.append(r)
        print(f"[{time.time() - t0:7.0f}s] {cell_name(r['model'], r['size'], r['seed'])}: mse {r['mse']:.4e} "
              f"(norm {r['mse_norm']:.4e}), {r['steps']} steps in {r['train_seconds']:.0f}s", flush=True)

    if args.jobs > 1 and len(jobs) > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(args.jobs, mp_context=mp.get_context("spawn")) as ex:
            futs = [ex.submit(run_cell, j) for j in jobs]
            for f in as_completed(futs):
                report(f.result())
    else:
        for j in jobs:
            report(run_cell(j))
    import torch

    meta = {"task": task.name, "reference": args.reference, "command": command_line(argv, __file__),
            "machine": machine_info(), "threads": args.threads or torch.get_num_threads(), "jobs": args.jobs,
            "steps": args.steps, "batch_size": args.batch_size, "lr": args.lr, "minutes": args.minutes,
            "scheduler": args.scheduler, "resolution": args.resolution,
            "windows": [args.time_history, args.time_future],
            "ran": len(done), "skipped": skipped, "elapsed": time.time() - t0, "notes": notes,
            "user_notes": args.note, "flat_tolerance": args.flat_tolerance}
    paths = summarize(args, meta)
    if paths:
        print("wrote " + ", ".join(paths.values()), flush=True)
    return {"ran": len(done), "skipped": skipped, "paths": paths, "plan": plan}


if __name__ == "__main__":
    main()
