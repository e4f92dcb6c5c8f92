"""Test error against training budget: the same cells of benchmarks/tasks_study.py run at several step
budgets (``--steps-factor``), read from their combined CSVs, one line per (model, training-set size).

Answers "has this budget flattened?": for each (task, model, size) the change of the mean test MSE from
the second-largest to the largest budget, called flat when it is within ``--flat`` (default 10 %), and
the error ratio of the other models to the first model at every budget.

    .venv/bin/python benchmarks/budget_curves.py --studies docs/results/tasks_cpu_scale \\
        docs/results/tasks_cpu_scale_3000steps docs/results/tasks_cpu_scale_6000steps \\
        --tasks navier-stokes-periodic navier-stokes --models cs_resnet resnet \\
        --out docs/results/tasks_cpu_scale_budgets
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit_markdown, fmt, how_it_was_run, markdown_table  # noqa: E402
from sample_efficiency import _COLOURS, LABELS  # noqa: E402

_STYLES = ("-", "--", ":", "-.")


def read_cells(studies: list[str], tasks: list[str], models: list[str]) -> dict:
    """{(task, model, size, steps): {seed: mse}} from each study's ``PREFIX.csv`` (one-line error if missing)."""
    cells: dict = defaultdict(dict)
    for prefix in studies:
        path = Path(prefix + ".csv")
        if not path.is_file():
            raise SystemExit(f"budget_curves: no {path} (expected the combined CSV of a tasks_study.py run)")
        with path.open() as fh:
            for row in csv.DictReader(fh):
                if row["task"] in tasks and row["model"] in models:
                    key = (row["task"], row["model"], int(row["size"]), int(row["steps"]))
                    cells[key][int(row["seed"])] = float(row["mse"])
    return cells


def summarize(cells: dict, flat: float) -> dict:
    """Per (task, model, size): budgets, mean and std over seeds per budget, the last change and a verdict."""
    out: dict = defaultdict(dict)
    for (task, model, size, steps), seeds in sorted(cells.items()):
        vals = list(seeds.values())
        out[(task, model, size)][steps] = (statistics.fmean(vals), statistics.stdev(vals) if len(vals) > 1 else 0.0,
                                           len(vals))
    verdicts = {}
    for key, by_steps in out.items():
        budgets = sorted(by_steps)
        if len(budgets) < 2:
            verdicts[key] = (None, "one budget only")
            continue
        prev, last = by_steps[budgets[-2]][0], by_steps[budgets[-1]][0]
        change = last / prev - 1
        verdicts[key] = (change, "flat" if abs(change) <= flat else ("still falling" if change < 0 else "rising"))
    return {"curves": dict(out), "verdicts": verdicts}


def plot(summary: dict, tasks: list[str], models: list[str], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(tasks), figsize=(5.5 * len(tasks), 4.2), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        sizes = sorted({s for (t, _, s) in summary["curves"] if t == task})
        for model in models:
            for style, size in zip(_STYLES * 4, sizes):
                by_steps = summary["curves"].get((task, model, size))
                if not by_steps:
                    continue
                xs = sorted(by_steps)
                ax.errorbar(xs, [by_steps[x][0] for x in xs], yerr=[by_steps[x][1] for x in xs], marker="o",
                            capsize=3, linestyle=style, color=_COLOURS.get(model),
                            label=f"{LABELS.get(model, model)}, {size} trajectories")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("training steps")
        ax.set_ylabel("one-step test MSE (physical units)")
        ax.set_title(task)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def report(summary: dict, tasks: list[str], models: list[str], flat: float, png: Path | None) -> list[str]:
    lines = ["# Test error against training budget", "",
             "Written by `benchmarks/budget_curves.py` from the combined CSVs of `benchmarks/tasks_study.py` runs "
             "at several step budgets (same data, models, batch and seeds; the cosine schedule stretched to each "
             "budget). One-step test MSE in physical units, mean ± std over the seeds (n). A (model, size) is "
             f"called flat when its mean changed by at most {flat:.0%} from the second-largest to the largest "
             "budget.", ""]
    if png is not None:
        lines += [f"![test MSE against training steps]({png.name})", ""]
    ref = models[0]
    for task in tasks:
        keys = sorted(k for k in summary["curves"] if k[0] == task)
        if not keys:
            lines += [f"## {task}", "", "No cells found.", ""]
            continue
        budgets = sorted({b for k in keys for b in summary["curves"][k]})
        rows = []
        for size in sorted({k[2] for k in keys}):
            for model in models:
                by_steps = summary["curves"].get((task, model, size))
                if not by_steps:
                    continue
                change, verdict = summary["verdicts"][(task, model, size)]
                cells = [f"{fmt(by_steps[b][0])} ± {fmt(by_steps[b][1], 2)} ({by_steps[b][2]})" if b in by_steps
                         else "-" for b in budgets]
                last = "-" if change is None else f"{change:+.0%}"
                rows.append([str(size), LABELS.get(model, model), *cells, last, verdict])
        lines += [f"## {task}", "", markdown_table(
            ["train trajectories", "model", *[f"{b} steps" for b in budgets], "last change", "verdict"], rows), ""]
        ratio_rows = []
        for size in sorted({k[2] for k in keys}):
            base = summary["curves"].get((task, ref, size), {})
            for model in models[1:]:
                other = summary["curves"].get((task, model, size), {})
                ratio_rows.append([str(size), f"{LABELS.get(model, model)} / {LABELS.get(ref, ref)}", *[
                    f"{other[b][0] / base[b][0]:.2f}" if b in other and b in base else "-" for b in budgets]])
        if ratio_rows:
            lines += ["Error ratios (above 1: that model's error is that many times the "
                      f"{LABELS.get(ref, ref)}'s):", "",
                      markdown_table(["train trajectories", "ratio", *[f"{b} steps" for b in budgets]], ratio_rows),
                      ""]
    return lines


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--studies", nargs="+", required=True, help="result PREFIXes of tasks_study.py runs (PREFIX.csv)")
    p.add_argument("--tasks", nargs="+", required=True)
    p.add_argument("--models", nargs="+", default=["cs_resnet", "resnet"], help="the first is the ratios' reference")
    p.add_argument("--flat", type=float, default=0.10, help="largest relative change of the mean called flat")
    p.add_argument("--reading", default=None,
                   help="hand-written Markdown put under the title (default: OUT_reading.md when it exists)")
    p.add_argument("--out", default=None, help="write OUT.md and OUT.png")
    args = p.parse_args(argv)
    summary = summarize(read_cells(args.studies, args.tasks, args.models), args.flat)
    png = plot(summary, args.tasks, args.models, Path(args.out + ".png")) if args.out else None
    lines = report(summary, args.tasks, args.models, args.flat, png)
    reading = Path(args.reading) if args.reading else (Path(args.out + "_reading.md") if args.out else None)
    if reading is not None and reading.is_file():
        lines[2:2] = [reading.read_text().rstrip(), ""]
    lines += how_it_was_run(argv, __file__)
    text = emit_markdown(lines, args.out + ".md" if args.out else None)
    summary["text"] = text
    return summary


if __name__ == "__main__":
    main()
