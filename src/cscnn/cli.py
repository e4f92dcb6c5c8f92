"""The ``cscnn`` command: generate data, train, evaluate, plot, check equivariance, inspect models.

Examples::

    cscnn generate navier-stokes --split train --num 64 --out data/navier-stokes
    cscnn generate navier-stokes --split train --num 5200 --out data/ns --preset pdearena --shard 3/16
    cscnn merge data/ns --split train
    cscnn configs
    cscnn configs show cpu/ns_cs_resnet > my_config.yaml
    cscnn train --config cpu/ns_cs_resnet --set trainer.max_steps=100
    cscnn evaluate outputs/cpu/ns_cs_resnet
    cscnn plot outputs/cpu/ns_cs_resnet
    cscnn equivariance outputs/cpu/ns_cs_resnet
    cscnn info paper/ns_cs_resnet

Every subcommand has ``--help``. Bad input (unknown task, model or config key,
missing data, a checkpoint of another model or algebra) fails with a one-line
``error:`` message and exit status 2 before any work starts.

The parsers, ``--version``, ``--help``, argument errors and config validation import
neither torch nor Lightning (names come from :mod:`cscnn._catalog`); each command
imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import json
import sys

from ._catalog import MODEL_NAMES, TASK_DESCRIPTIONS, TASK_PRESETS, task_names

__all__ = ["main", "build_parser"]


def _print_json(obj) -> None:
    print(json.dumps(obj, indent=2, default=str))


# ----------------------------------------------------------------- commands
def cmd_generate(a) -> int:
    presets = TASK_PRESETS.get(a.task)
    if presets and a.preset not in presets:
        print(f"error: unknown preset {a.preset!r} for {a.task}; valid presets: {', '.join(presets)}",
              file=sys.stderr)
        return 2
    params = _simulator_params(a.set or ())
    from .data import generate_dataset

    path = generate_dataset(a.task, a.split, a.num, a.out, preset=a.preset, workers=a.workers, seed=a.seed,
                            progress=not a.no_progress, scheduler=a.scheduler, shard=a.shard, params=params)
    print(f"wrote {path}")
    return 0


def _simulator_params(items) -> dict:
    """``["nx=32", "dt=0.5", "solve=CG"]`` -> ``{"nx": 32, "dt": 0.5, "solve": "CG"}``: values read as JSON
    (numbers, true/false, [lists]), else as text. Keys and kinds are checked against the preset later."""
    params = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set {item!r} must look like KEY=VALUE, e.g. nx=32")
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        params[key.strip()] = value
    return params


def cmd_merge(a) -> int:
    from .data import merge_shards

    path = merge_shards(a.folder, a.split, a.out)
    print(f"wrote {path}")
    return 0


def cmd_train(a) -> int:
    from .training.config import load_config

    cfg = load_config(a.config, a.set or ())  # config errors before torch and Lightning are imported
    from .training import evaluate, train
    if a.out:
        cfg.out = a.out
    if a.data:
        cfg.data.dir = a.data
    from .training.callbacks import TrainingInterrupted

    try:
        res = train(cfg, resume=a.resume, generate=a.generate, progress=not a.no_progress, overwrite=a.overwrite)
    except TrainingInterrupted as e:  # SIGINT / SIGTERM: stopped after a step, its state saved
        print(f"training stopped by {e.signame} at step {e.step}; the latest state is in {e.path}: continue with "
              "the same command and --resume", file=sys.stderr)
        return 128 + e.signum
    print(f"training done: step {res['global_step']}, val/loss {res['val_loss']}, "
          f"{res['seconds']:.0f} s; checkpoints in {res['out']}/checkpoints")
    if a.evaluate:
        ckpt = res["best"] or res["last"]
        m = evaluate(ckpt, cfg.data.dir, rollout_steps=cfg.eval.rollout_steps,
                     num_rollout_trajectories=cfg.eval.num_rollout_trajectories, batch_size=cfg.eval.batch_size,
                     limit_batches=cfg.eval.limit_batches, progress=not a.no_progress)
        print(f"one-step test MSE {m['one_step']['mse']:.4e}; metrics in {m['path']}")
        _warn_non_finite(m)
    return 0


def _warn_non_finite(m: dict) -> None:
    bad = m.get("non_finite") or []
    if bad:
        print(f"warning: {len(bad)} metric value(s) are NaN or infinite (written as null in {m['path']}, listed "
              f"under 'non_finite'): {', '.join(bad[:5])}{' ...' if len(bad) > 5 else ''}", file=sys.stderr)


def cmd_evaluate(a) -> int:
    from .training import evaluate

    m = evaluate(a.checkpoint, a.data, a.out, a.split, a.rollout_steps, None if a.num_rollout < 0 else a.num_rollout,
                 a.batch_size, a.limit_batches, a.device, progress=not a.no_progress)
    one, roll = m["one_step"], m["rollout"]
    print(f"{m['model']} on {m['task']} ({m['split']}, {one['num_samples']} samples)")
    units = "physical units" if one.get("units") == "physical" else "normalised units"
    print(f"  one-step MSE ({units}, mean over the {len(one.get('per_field', {})) or 'all'} physical components): "
          f"{one['mse']:.4e}" + (f"  [over every blade: {one['mse_all_blades']:.4e}]" if "mse_all_blades" in one
                                 else ""))
    for k, v in one.get("per_field", {}).items():
        print(f"    {k:>8s}: {v:.4e}")
    ref = m["reference"]
    print(f"  for reference, same windows and units: zero predictor {ref['zero']['mse']:.4e}, last-frame persistence "
          f"{ref['persistence']['mse']:.4e}")
    if "vrmse" in one:  # The Well's variance-scaled RMSE, comparable with its tables
        print(f"  one-step VRMSE ({one['vrmse_units']} units): {one['vrmse']:.4f}")
        for k, v in one["vrmse_per_field"].items():
            print(f"    {k:>8s}: {v:.4f}")
    steps = roll["mse_per_step"]
    show = ", ".join(f"{x:.3e}" for x in steps[:8]) + (" ..." if len(steps) > 8 else "")
    print(f"  rollout MSE over {len(steps)} steps ({roll['num_trajectories']} trajectories): mean "
          f"{roll['mse_mean']:.4e}; per step: {show}")
    print(f"wrote {m['path']}")
    _warn_non_finite(m)
    return 0


def cmd_plot(a) -> int:
    from .training import plot

    paths = plot(a.checkpoint, a.data, a.out, a.split, a.index, a.rollout_steps, gif=not a.no_gif, fps=a.fps,
                 device=a.device, progress=not a.no_progress)
    for p in paths:
        print(f"wrote {p}")
    return 0


def cmd_equivariance(a) -> int:
    from .training import equivariance

    r = equivariance(a.checkpoint, a.data, a.num, a.split, a.grid, a.seed, progress=not a.no_progress)
    if a.json:
        from .training.json_safe import write_json

        write_json(r, a.json)
    print(f"{r['model']} on {r['task']} (metric {tuple(r['metric'])}), input {r['input']}, {r['dtype']}")
    with_fields = f", symmetry-breaking inputs {r['symmetry_breaking']} transformed with the data" \
        if r["symmetry_breaking"] else ""
    print(f"  worst relative equivariance error over {r['num_elements']} grid symmetries{with_fields}: "
          f"{r['worst']:.3e} (mean {r['mean']:.3e})")
    if "fixed_worst" in r:
        print(f"  with {r['symmetry_breaking']} held fixed (the model may use the direction): "
              f"{r['fixed_worst']:.3e} (mean {r['fixed_mean']:.3e})")
    if r.get("caveat"):
        print(f"  caveat: {r['caveat']}")
    return 0


def cmd_configs(a) -> int:
    from ._configs import config_names, config_summary, resolve_config

    if a.action == "show":
        if not a.name:
            print("error: `cscnn configs show` needs a config name, e.g. cpu/ns_cs_resnet", file=sys.stderr)
            return 2
        sys.stdout.write(resolve_config(a.name).read_text(encoding="utf-8"))
        return 0
    if a.action != "list" or a.name:
        word = a.name if a.action == "list" else a.action
        print(f"error: unexpected argument {word!r}; did you mean `cscnn configs show {word}`?", file=sys.stderr)
        return 2
    rows = [config_summary(n) for n in config_names()]
    width = max((len(r["name"]) for r in rows), default=4)
    tw = max((len(r["task"]) for r in rows), default=4)
    for r in rows:
        print(f"{r['name']:<{width}}  {r['task']:<{tw}}  {r['model']}")
    return 0


def cmd_info(a) -> int:
    from .training import info

    r = info(a.source, a.set or ())
    if a.json:
        _print_json(r)
        return 0
    print(r["description"])
    print(f"  parameters: {r['num_parameters']:,}  ({r['size_mb']:.2f} MiB incl. buffers)")
    if r.get("global_step") is not None:
        print(f"  trained: epoch {r['epoch']}, step {r['global_step']}")
    return 0


# ------------------------------------------------------------------- parser
def _presets_text() -> str:
    return "; ".join(f"{t}: {', '.join(p) or 'none (read from files)'}" for t, p in TASK_PRESETS.items())


def build_parser() -> argparse.ArgumentParser:
    """The ``cscnn`` parser with every subcommand; builds without importing torch or Lightning."""
    from . import __version__

    p = argparse.ArgumentParser(prog="cscnn", description="Clifford-Steerable CNNs: data, training, evaluation.",
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Run `cscnn <command> --help` for the options of a command.")
    p.add_argument("--version", action="version", version=f"cscnn {__version__}")
    sub = p.add_subparsers(dest="command", metavar="command")
    fmt = argparse.ArgumentDefaultsHelpFormatter

    tasks = task_names()
    g = sub.add_parser("generate", help="simulate a PDE data set into DIR/<split>.h5 (resumable)", formatter_class=fmt,
                       description="Simulate trajectories of a task (PhiFlow / fdtd / pycharge) into OUT/<split>.h5. "
                                   "An interrupted run resumes where it stopped; runs locally (--workers), on a "
                                   "Dask cluster (--scheduler) or as one shard of an array job (--shard I/N).",
                       epilog="tasks: " + "; ".join(f"{t}: {d}" for t, d in TASK_DESCRIPTIONS.items()))
    g.add_argument("task", choices=tasks, help="the PDE: " + ", ".join(tasks))
    g.add_argument("--split", default="train", help="split name: train, valid or test")
    g.add_argument("--num", type=int, required=True, help="number of trajectories")
    g.add_argument("--out", required=True, help="output folder")
    g.add_argument("--preset", default="small",
                   help="simulation size: 'small' for CPU, 'pdearena' for the paper's full size (every task); "
                        f"per task: {_presets_text()}")
    g.add_argument("--set", nargs="+", action="extend", metavar="KEY=VALUE",
                   help="override simulator parameters of the preset, e.g. --set nx=32 ny=32 nt=12 (the keys of "
                        "Python's generate_dataset(params=...); an unknown key lists the valid ones)")
    g.add_argument("--workers", type=int, default=1, help="parallel worker processes (>= 1)")
    g.add_argument("--seed", type=int, default=0,
                   help="base seed: trajectory i of a split uses a seed derived from (seed, split, i)")
    g.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                   help="run the trajectories on this Dask scheduler (pip install 'cscnn[dask]')")
    g.add_argument("--shard", default=None, metavar="I/N",
                   help="generate only block I of N of the trajectories into OUT/<split>_shard<I>-of-<N>.h5 "
                        "(e.g. I=$SLURM_ARRAY_TASK_ID); join them with `cscnn merge`")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    g.set_defaults(func=cmd_generate)

    m = sub.add_parser("merge", help="join the shard files of a split into one <split>.h5", formatter_class=fmt,
                       description="Join OUT/<split>_shard*-of-*.h5 written by `cscnn generate --shard` into "
                                   "<split>.h5, identical to an unsharded run with the same seed (the shard files "
                                   "are kept; the loader also reads them without merging).")
    m.add_argument("folder", help="folder holding the shard files")
    m.add_argument("--split", default="train", help="split whose shards to join: train, valid or test")
    m.add_argument("--out", default=None, help="output file (default: FOLDER/<split>.h5)")
    m.set_defaults(func=cmd_merge)

    t = sub.add_parser("train", help="train a model from a YAML config", formatter_class=fmt,
                       description="Train with PyTorch Lightning: checkpoints (best, last), CSV and TensorBoard logs "
                                   "in the run folder; any accelerator, mixed precision and DDP via trainer.* keys.",
                       epilog=f"models (model.name): {', '.join(MODEL_NAMES)}; tasks (task): {', '.join(tasks)}")
    t.add_argument("--config", required=True,
                   help="a packaged config name such as cpu/ns_cs_resnet (`cscnn configs` lists them) or a YAML "
                        "file; an existing file wins")
    t.add_argument("--set", nargs="+", action="extend", metavar="KEY=VALUE",
                   help="override config keys, e.g. --set trainer.max_steps=100 data.batch_size=4")
    t.add_argument("--out", help="run folder (default: the config's `out`, else outputs/<name>)")
    t.add_argument("--data", help="data folder (overrides data.dir)")
    t.add_argument("--resume", action="store_true", help="continue from <out>/checkpoints/last.ckpt")
    t.add_argument("--overwrite", action="store_true",
                   help="start a new run in a folder that holds checkpoints, deleting them (without it such a "
                        "folder is refused)")
    t.add_argument("--generate", action="store_true",
                   help="generate missing train/valid/test data first (sizes from data.generate)")
    t.add_argument("--evaluate", action="store_true", help="evaluate the best checkpoint on the test split afterwards")
    t.add_argument("--no-progress", action="store_true", help="no progress bars")
    t.set_defaults(func=cmd_train)

    def ckpt_args(q, data=True):
        q.add_argument("checkpoint", help="a .ckpt file or a run folder (uses checkpoints/best.ckpt)")
        if data:
            q.add_argument("--data", help="data folder (default: data.dir of the run's config.yaml)")
            q.add_argument("--split", default="test", help="split to use: train, valid or test")
            q.add_argument("--device", default="cpu", help="torch device, e.g. cuda")

    e = sub.add_parser("evaluate", help="one-step and rollout test errors of a checkpoint, as JSON",
                       formatter_class=fmt, description="One-step test MSE, per-field MSE and rollout MSE over time "
                                                        "(normalised units), written to OUT/metrics.json.")
    ckpt_args(e)
    e.add_argument("--out", help="output folder (default: <run>/eval)")
    e.add_argument("--rollout-steps", type=int, default=None, help="predicted steps (default: whole trajectory)")
    e.add_argument("--num-rollout", type=int, default=8, help="test trajectories to roll out (-1: all)")
    e.add_argument("--batch-size", type=int, default=16, help="samples per batch of the one-step test (>= 1)")
    e.add_argument("--limit-batches", type=int, default=None, help="cap on one-step test batches")
    e.add_argument("--no-progress", action="store_true", help="no progress bars")
    e.set_defaults(func=cmd_evaluate)

    pl = sub.add_parser("plot", help="target / prediction / error PNGs and a rollout GIF", formatter_class=fmt,
                        description="Per-field target, prediction and |error| panels (PNG), the rollout MSE curve "
                                    "and an animated rollout GIF of one test trajectory.")
    ckpt_args(pl)
    pl.add_argument("--out", help="output folder (default: <run>/plots)")
    pl.add_argument("--index", type=int, default=0, help="test trajectory")
    pl.add_argument("--rollout-steps", type=int, default=None, help="predicted steps (default: whole trajectory)")
    pl.add_argument("--fps", type=int, default=4, help="frames per second of the rollout GIF (>= 1)")
    pl.add_argument("--no-gif", action="store_true", help="skip the rollout GIF (the slowest part)")
    pl.add_argument("--no-progress", action="store_true", help="no progress bars")
    pl.set_defaults(func=cmd_plot)

    q = sub.add_parser("equivariance", help="equivariance error of a trained checkpoint", formatter_class=fmt,
                       description="Worst relative error |f(g.x) - g.f(x)| / |g.f(x)| in float64 over sampled "
                                   "grid-symmetry group elements g (rotations by 90 degrees, reflections, "
                                   "time reversal), on a test sample or a random field.")
    ckpt_args(q, data=False)
    q.add_argument("--num", type=int, default=8, help="group elements to sample")
    q.add_argument("--data", help="data folder for a test sample (default: the run's; random input without data)")
    q.add_argument("--split", default="test", help="split the test sample comes from")
    q.add_argument("--grid", type=int, default=None,
                   help="use a random input of this many points per axis instead of data (refused when the "
                        "estimated memory exceeds what the machine has)")
    q.add_argument("--seed", type=int, default=0, help="seed of the group elements and of a random input")
    q.add_argument("--json", help="also write the result to this JSON file")
    q.add_argument("--no-progress", action="store_true", help="no progress bar")
    q.set_defaults(func=cmd_equivariance)

    i = sub.add_parser("info", help="model size and parameter count of a config or checkpoint", formatter_class=fmt,
                       description="The model a config (with --set overrides), checkpoint or run folder describes: "
                                   "its description, parameter count and size in memory, and for a checkpoint the "
                                   "trained epoch and step (for a run folder those of its latest state, last.ckpt). "
                                   "The model is built on the meta device first; one that would not fit in memory is "
                                   "refused with its estimated size.")
    i.add_argument("source", help="packaged config name (e.g. paper/ns_cs_resnet), YAML file, .ckpt file or "
                                  "run folder")
    i.add_argument("--set", nargs="+", action="extend", metavar="KEY=VALUE", help="config overrides")
    i.add_argument("--json", action="store_true", help="print JSON")
    i.set_defaults(func=cmd_info)

    c = sub.add_parser("configs", help="list the configs that ship with cscnn, or print one",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="The experiment configs that ship with cscnn: paper size (paper/...) and CPU "
                                   "size (cpu/...). `--config NAME` takes any of them by name; relative paths in a "
                                   "config (data.dir, out) are read from the current folder.",
                       epilog="examples:\n  cscnn configs\n  cscnn configs show cpu/ns_cs_resnet > my.yaml\n"
                              "  cscnn train --config my.yaml")
    c.add_argument("action", nargs="?", default="list", metavar="{list,show}",
                   help="list: one line per config (name, task, model); show NAME: print the YAML")
    c.add_argument("name", nargs="?", help="config name for `show`, e.g. cpu/ns_cs_resnet")
    c.set_defaults(func=cmd_configs)
    return p


#: modules whose exception classes mean bad input (one-line error, exit status 2)
_USER_ERRORS = (("cscnn.training.config", "ConfigError"), ("cscnn.training.checks", "DataDirError"),
                ("cscnn.training.checkpoint", "CheckpointError"), ("cscnn.data.errors", "DataError"),
                ("cscnn.training.module", "TrainingDiverged"), ("cscnn._memory", "MemoryEstimateError"))


def _user_errors() -> tuple[type[BaseException], ...]:
    """The bad-input exception classes of the modules imported so far (one whose module was never
    imported cannot have been raised), so that catching them imports nothing."""
    found: list[type[BaseException]] = [FileNotFoundError]
    for mod, name in _USER_ERRORS:
        cls = getattr(sys.modules.get(mod), name, None)
        if isinstance(cls, type):
            found.append(cls)
    return tuple(found)


def main(argv=None) -> int:
    parser = build_parser()
    a = parser.parse_args(argv)
    if not getattr(a, "func", None):
        parser.print_help()
        return 2
    try:
        return a.func(a)
    except _user_errors() as e:  # evaluated when an exception arrives
        print(f"error: {e}", file=sys.stderr)
        return 2
    except ValueError as e:
        if a.command == "train" and _started(e):
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        import errno

        if e.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        where = f" while writing {e.filename}" if e.filename else ""
        print(f"error: disk full{where} ({e.strerror}); checkpoints are replaced atomically, so the last one saved "
              "is intact: free space and run the command again (train: with --resume)", file=sys.stderr)
        return 2


def _started(e: BaseException) -> bool:  # errors from inside a training step are bugs: keep the traceback
    tb = e.__traceback__
    while tb is not None:
        if "lightning" in tb.tb_frame.f_code.co_filename:
            return True
        tb = tb.tb_next
    return False


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
