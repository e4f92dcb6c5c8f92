"""One round of ablation on Navier-Stokes with the gravity input.

Run by ``tasks_study.py --ablation`` when the CS-ResNet reading the gravity direction trails the
ResNet on ``navier-stokes``: the cheapest levers of the CS-ResNet, one at a time, each under the
study's Navier-Stokes protocol (same data, steps, batch, schedule; width 8 as the study's
CS-ResNet) at one training-set size and two seeds. The learning-rate variants train the
parameter-matched ResNet too, so a learning rate that suits only one model is visible.

Not in the round: the initialisation of the authors' code (not implemented as an option in
cscnn) and the kernel-network depth alone (the 4 x 12 variant changes depth and width).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import sample_efficiency as se  # noqa: E402

TASK = "navier-stokes"
MODEL = "cs_resnet+gravity"
SIZE = 32
SEEDS = (0, 1)

#: variant -> (what changes, extra sample_efficiency arguments, models trained)
VARIANTS: dict[str, tuple[str, list[str], list[str]]] = {
    "kernel-4x12": ("kernel network 4 layers x 12 channels (the paper's; study: 3 x 8)",
                    ["--kernel-layers", "4", "--kernel-hidden", "12"], [MODEL]),
    "no-norm": ("no MVLayerNorm in the residual blocks", ["--cs-kwargs", '{"norm": false}'], [MODEL]),
    "silu-gate": ("SiLU gate instead of GELU", ["--cs-kwargs", '{"activation": "silu"}'], [MODEL]),
    "lr-3e-3": ("learning rate 3e-3 (study: 1e-3), ResNet too", ["--lr", "3e-3"], [MODEL, "resnet"]),
    "lr-3e-4": ("learning rate 3e-4, ResNet too", ["--lr", "3e-4"], [MODEL, "resnet"]),
}


def key(variant: str) -> str:
    """Folder of a variant's cells below ``--out`` and ``--archive``."""
    return f"{TASK}-ablation/{variant}"


def variant_args(study, variant: str, args, seeds) -> list[str]:
    """sample_efficiency arguments of one variant: the study's protocol for TASK, then the variant's changes."""
    _, extra, models = VARIANTS[variant]
    return study.narrowed_args(TASK, args, seeds, key(variant), SIZE, models) + ["--reference", MODEL] + extra


def cells(args, variant: str) -> list[dict]:
    return [c for c in se.load_cells(Path(args.out) / key(variant)) if c["size"] == SIZE and c["seed"] in SEEDS]


def section(args, study_cells: list[dict]) -> list[str]:
    """Markdown lines of the ablation: each variant's mean test MSE over its seeds against the study's
    CS-ResNet (with gravity) and ResNet at the same size and seeds."""
    done = {v: cells(args, v) for v in VARIANTS}
    if not any(done.values()):
        return []

    def mean(cs, model):
        vals = [c["mse"] for c in cs if c["model"] == model]
        return (sum(vals) / len(vals), len(vals)) if vals else (None, 0)

    base = [c for c in study_cells if c["size"] == SIZE and c["seed"] in SEEDS]
    ref, n_ref = mean(base, MODEL)
    res, n_res = mean(base, "resnet")
    lines = ["## Ablation: the CS-ResNet with the gravity input on navier-stokes (item 3)", "",
             f"One lever at a time, {SIZE} training trajectories, seeds {', '.join(map(str, SEEDS))}, the "
             "protocol above otherwise. Test MSE (physical units), mean over the seeds finished; the last "
             "column divides by the study's ResNet at the same size and seeds"
             + (f" ({res:.3e}, {n_res} seeds)" if res else "") + ".", "",
             "| variant | change | parameters (CS + gravity) | seeds | CS-ResNet + gravity MSE | / study's CS-ResNet "
             "+ gravity | ResNet MSE (same change) | CS + gravity / study's ResNet |",
             "|---|---|---|---|---|---|---|---|"]

    def params(cs):
        return next((f"{c['params']:,}" for c in cs if c["model"] == MODEL), "-")

    if ref:
        lines.append(f"| study (reference) | - | {params(base)} | {n_ref} | {ref:.3e} | 1.00 | "
                     + (f"{res:.3e} | {ref / res:.2f} |" if res else "- | - |"))
    for v, (what, _, models) in VARIANTS.items():
        m, n = mean(done[v], MODEL)
        if m is None:
            lines.append(f"| {v} | {what} | - | 0 | not run yet | | | |")
            continue
        r, _ = mean(done[v], "resnet") if "resnet" in models else (None, 0)
        lines.append(f"| {v} | {what} | {params(done[v])} | {n} | {m:.3e} | "
                     + (f"{m / ref:.2f} | {f'{r:.3e}' if r else '-'} | {m / res:.2f} |" if ref and res
                        else "| | |"))
    lines += ["", "Not in this round: " + __doc__.split("Not in the round: ")[1].strip().replace("\n", " "), ""]
    return lines
