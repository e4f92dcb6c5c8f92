"""Why the CS-ResNet stalls on Maxwell 2D+1 spacetime blocks: small controlled experiments.

The task maps a block of T frames of the Faraday bivector field on a (T, X, Y) grid to the next T
frames. Every cell trains one model on one target map for a fixed number of steps and scores it on
the test trajectories, in physical units on the three bivector blades (Ex, Ey, c Bz), beside the
zero predictor and last-frame persistence (the last input frame repeated):

* targets: ``forward`` (the task: the next T frames), ``shift1`` (the block one frame later),
  ``persistence`` (the last input frame repeated T times) and ``identity`` (the input block itself,
  a map that commutes with time reversal);
* models: the ResNet (parameter-matched to the plain CS-ResNet, zero padding as the CS-ResNet, no
  norm layers) and CS-ResNet variants: ``cs`` (plain), ``cs+time`` (reads the time direction e_0 as
  a symmetry-breaking input field, the task's ``time`` field), ``cs+scale`` (kernel grid's time axis
  scaled to the data's c dt / dx, ``time_scale``) and ``cs+time+scale``;
* every forward model is also scored on time-reversed test blocks: the trajectory reversed in time
  and acted on by the time reflection e_0 -> -e_0 (a solution of Maxwell's equations too), whose
  next block is the reversed past of the original.

Each cell is written as one JSON file into ``--cells`` as soon as it finishes (cells already there
are skipped), so two processes can share a grid (``--shard 0/2`` and ``--shard 1/2``); ``report``
reads the cells and writes ``<out>.md``, ``.csv`` and ``.png``.

Data: any ``maxwell2d`` folder in cscnn's HDF5 layout (``train.h5``, ``valid.h5``, ``test.h5``).
``import-authors`` converts frames written by the authors' generator
(``datasets/data/maxwell2d/datagen/main.py``: one ``<idx>.pt`` tensor (T, 32, 32, 3) per trajectory
in ``<pt>/train``, ``<pt>/valid``, ``<pt>/test``) into that layout.

Usage::

    python benchmarks/spacetime_stall.py import-authors --pt /work/data/stall/pt --out /work/data/stall
    python benchmarks/spacetime_stall.py run --data /work/data/stall --seeds 0 1 2 --shard 0/2
    python benchmarks/spacetime_stall.py report --cells /work/data/stall/cells --out docs/results/spacetime_stall
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

from cscnn import CliffordAlgebra  # noqa: E402
from cscnn.data import PDEDataset, get_task  # noqa: E402
from cscnn.data.hdf5 import write_trajectories  # noqa: E402
from cscnn.data.normalization import compute_normalization  # noqa: E402
from cscnn.models import WithConstantFields, build_model, count_parameters, match_width  # noqa: E402
from cscnn.testing import transform_multivectors  # noqa: E402

TASK = "maxwell2d"
TARGETS = ("forward", "shift1", "persistence", "identity")
#: name -> (registry model, symmetry-breaking fields, scale the kernel grid's time axis to the data)
VARIANTS = {
    "resnet": ("resnet", [], False),
    "cs": ("cs_resnet", [], False),
    "cs+time": ("cs_resnet", ["time"], False),
    "cs+scale": ("cs_resnet", [], True),
    "cs+time+scale": ("cs_resnet", ["time"], True),
}
BOX, SPEED_OF_LIGHT = 100e-9, 299_792_458.0
AUTHORS_DT = 2 * math.pi / 7.5e16 / 256 * 8  # s, datagen/main.py


# ------------------------------------------------------------------ data
def import_authors(pt_dir: Path, out: Path) -> None:
    """``<pt_dir>/<split>/<idx>.pt`` (T, X, Y, 3) float64 (Ex, Ey, c Bz after the authors' log-norm
    rescaling and resize) -> ``<out>/<split>.h5`` (dataset ``faraday``, float32), trajectories in idx order."""
    out.mkdir(parents=True, exist_ok=True)
    for split in ("train", "valid", "test"):
        files = sorted((pt_dir / split).glob("*.pt"), key=lambda p: int(p.stem))
        if not files:
            raise SystemExit(f"no {split} frames in {pt_dir / split}")
        frames = [torch.load(p, weights_only=True).numpy().astype(np.float32) for p in files]
        size = frames[0].shape[1]
        attrs = {"task": TASK, "source": "authors' generator (datasets/data/maxwell2d/datagen/main.py)",
                 "dt": AUTHORS_DT, "box": BOX, "size": size}
        write_trajectories(out / f"{split}.h5", split, len(frames), ({"faraday": f} for f in frames), attrs)
        print(f"{out / split}.h5: {len(frames)} trajectories of {frames[0].shape}")


def time_reflection(dtype) -> torch.Tensor:
    """The time reflection e_0 -> -e_0 of R^{1,2}, (3, 3)."""
    return torch.diag(torch.tensor([-1.0, 1.0, 1.0], dtype=dtype))


class Blocks:
    """The normalised trajectories of one split in memory, (N, T, X, Y, 8), cut into blocks of
    ``frames`` input and ``frames`` target frames."""

    def __init__(self, data: Path, split: str, frames: int, resolution, normalization, num=None):
        ds = PDEDataset(data, TASK, frames, frames, num_trajectories=num, normalization=normalization,
                        split=split, resolution=resolution)
        self.dataset = ds
        self.traj = torch.stack([ds.trajectory(i) for i in range(ds.num_trajectories)])
        self.frames = frames

    def reversed(self) -> torch.Tensor:
        """The trajectories reversed in time and acted on by the time reflection e_0 -> -e_0."""
        alg = CliffordAlgebra(get_task(TASK).metric)
        return transform_multivectors(alg, time_reflection(self.traj.dtype), self.traj.flip(1))

    def windows(self, traj: torch.Tensor, stride: int):
        """All (input, next) block pairs, starts ``stride`` apart: two (W, 1, T, X, Y, 8)."""
        t = self.frames
        starts = range(0, traj.shape[1] - 2 * t + 1, stride)
        x = torch.stack([traj[:, s:s + t] for s in starts], 1).flatten(0, 1).unsqueeze(1)
        y = torch.stack([traj[:, s + t:s + 2 * t] for s in starts], 1).flatten(0, 1).unsqueeze(1)
        return x, y

    def batch(self, gen: torch.Generator, size: int):
        n, t_all = self.traj.shape[:2]
        i = torch.randint(n, (size,), generator=gen)
        s = torch.randint(t_all - 2 * self.frames + 1, (size,), generator=gen)
        x = torch.stack([self.traj[a, b:b + self.frames] for a, b in zip(i.tolist(), s.tolist())])
        y = torch.stack([self.traj[a, b + self.frames:b + 2 * self.frames] for a, b in zip(i.tolist(), s.tolist())])
        return x.unsqueeze(1), y.unsqueeze(1)


def reverse_blocks(x: torch.Tensor) -> torch.Tensor:
    """Time reversal of blocks (B, C, T, X, Y, 8): the time axis flipped and e_0 -> -e_0."""
    return transform_multivectors(CliffordAlgebra(get_task(TASK).metric), time_reflection(x.dtype), x.flip(2))


class TimeSymmetrised(torch.nn.Module):
    """``(f(x) + R f(R x)) / 2`` with R the time reversal of blocks: the time-reversal-equivariant part
    of ``f`` (equal to ``f`` when f commutes with R, as the CS-ResNet does)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return (self.model(x) + reverse_blocks(self.model(reverse_blocks(x)))) / 2


def target_of(name: str, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The training target of map ``name`` for input block x and next block y, (B, 1, T, X, Y, 8)."""
    if name == "forward":
        return y
    if name == "shift1":
        return torch.cat([x[:, :, 1:], y[:, :, :1]], 2)
    if name == "persistence":
        return x[:, :, -1:].expand_as(y)
    if name == "identity":
        return x
    raise ValueError(f"target must be one of {TARGETS}, got {name!r}")


# ------------------------------------------------------------------ models
def make_model(variant: str, args, time_scale: float, seed: int):
    name, fields, scaled = VARIANTS[variant]
    task = get_task(TASK)
    alg = CliffordAlgebra(task.metric)
    common = {"blocks": (args.blocks,), "kernel_size": args.kernel, "padding_mode": "zeros", "norm": False}
    cs_kw = {**common, "kernel_num_layers": args.kernel_layers, "kernel_hidden_channels": args.kernel_hidden}
    target = count_parameters(build_model("cs_resnet", alg, 1, 1, args.hidden, **cs_kw))
    torch.manual_seed(seed)
    k = len(fields)
    if name == "resnet":
        width = match_width("resnet", alg, 1 + k, 1, target, **common)
        torch.manual_seed(seed)
        model = build_model("resnet", alg, 1 + k, 1, width, **common)
    else:
        if scaled:
            cs_kw["time_scale"] = time_scale
        model = build_model("cs_resnet", alg, 1 + k, 1, args.hidden, **cs_kw)
    if fields:
        model = WithConstantFields(model, torch.as_tensor(task.symmetry_breaking_fields(fields), dtype=torch.float32))
    return model


# ------------------------------------------------------------------ one cell
def physical_mse(pred, y, norm, blades) -> float:
    """Mean over the physical blades of the squared error in physical units."""
    d = norm.denormalize(pred.detach())[..., blades] - norm.denormalize(y)[..., blades]
    return float(d.pow(2).mean())


@torch.no_grad()
def evaluate(model, x, y, norm, blades, batch: int, **kwargs) -> float:
    """Mean physical-blade MSE of ``model(x, **kwargs)`` against y over all blocks."""
    model.eval()
    total = 0.0
    for i in range(0, len(x), batch):
        p = model(x[i:i + batch], **kwargs)
        total += physical_mse(p, y[i:i + batch], norm, blades) * len(p)
    model.train()
    return total / len(x)


def run_cell(args, variant: str, target: str, seed: int, num_train: int) -> dict:
    task = get_task(TASK)
    train_ds = PDEDataset(args.data, TASK, args.frames, args.frames, num_trajectories=num_train, split="train",
                          resolution=args.resolution)
    norm = compute_normalization(train_ds)
    train = Blocks(args.data, "train", args.frames, args.resolution, norm, num_train)
    test = Blocks(args.data, "test", args.frames, args.resolution, norm)
    size = test.traj.shape[-2]
    time_scale = SPEED_OF_LIGHT * AUTHORS_DT / (BOX / size)  # light's pixels per frame at this resolution
    blades = list(task.layout.blades)
    model = make_model(variant, args, time_scale, seed)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(1000 + seed)
    losses = []
    t0 = time.perf_counter()
    for _ in range(args.steps):
        x, y = train.batch(gen, args.batch)
        y = target_of(target, x, y)
        loss = (model(x) - y)[..., blades].pow(2).mean()  # the physical blades, normalised units
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(float(loss.detach()))
    step_s = (time.perf_counter() - t0) / args.steps
    tail = max(1, args.steps // 10)
    row = {"variant": variant, "target": target, "seed": seed, "num_train": num_train, "steps": args.steps,
           "hidden": args.hidden, "kernel": args.kernel, "blocks": args.blocks, "frames": args.frames,
           "resolution": size, "batch": args.batch, "time_scale": time_scale if VARIANTS[variant][2] else 1.0,
           "params": count_parameters(model), "s_per_step": step_s,
           "train_loss_first": float(np.mean(losses[:tail])), "train_loss_last": float(np.mean(losses[-tail:]))}
    x, y = test.windows(test.traj, args.stride)
    y = target_of(target, x, y)
    row["test_mse"] = evaluate(model, x, y, norm, blades, args.batch)
    row["zero_mse"] = physical_mse(torch.zeros_like(y), y, norm, blades)
    row["persistence_mse"] = physical_mse(x[:, :, -1:].expand_as(y), y, norm, blades)
    if target == "forward":
        # two maps that commute with time reversal: the input block itself, its time average repeated
        row["block_copy_mse"] = physical_mse(x, y, norm, blades)
        row["block_mean_mse"] = physical_mse(x.mean(2, keepdim=True).expand_as(y), y, norm, blades)
        row["symmetrised_mse"] = evaluate(TimeSymmetrised(model), x, y, norm, blades, args.batch)
        xr, yr = test.windows(test.reversed(), args.stride)
        row["reversed_mse"] = evaluate(model, xr, yr, norm, blades, args.batch)
        row["reversed_zero_mse"] = physical_mse(torch.zeros_like(yr), yr, norm, blades)
        row["reversed_persistence_mse"] = physical_mse(xr[:, :, -1:].expand_as(yr), yr, norm, blades)
        if VARIANTS[variant][1]:  # the field moved with the data: g.e_0 = -e_0, the reflected observer
            moved = transform_multivectors(CliffordAlgebra(task.metric), time_reflection(model.fields.dtype),
                                           model.fields)
            row["reversed_mse_field_reversed"] = evaluate(model, xr, yr, norm, blades, args.batch, fields=moved)
    return row


def floors(args) -> None:
    """Errors of maps that need no training on the test blocks, for several T: zero, last-frame
    persistence, and two maps that commute with time reversal (the block itself, its mean repeated)."""
    task = get_task(TASK)
    blades = list(task.layout.blades)
    rows = []
    for frames in args.frames:
        norm = compute_normalization(PDEDataset(args.data, TASK, frames, frames, split="train",
                                                resolution=args.resolution))
        test = Blocks(args.data, "test", frames, args.resolution, norm)
        x, y = test.windows(test.traj, args.stride)
        rows.append({"frames": frames, "resolution": test.traj.shape[-2], "blocks": len(x),
                     "zero_mse": physical_mse(torch.zeros_like(y), y, norm, blades),
                     "persistence_mse": physical_mse(x[:, :, -1:].expand_as(y), y, norm, blades),
                     "block_copy_mse": physical_mse(x, y, norm, blades),
                     "block_mean_mse": physical_mse(x.mean(2, keepdim=True).expand_as(y), y, norm, blades),
                     "block_vs_shift1_mse": physical_mse(x, target_of("shift1", x, y), norm, blades)})
        print(rows[-1], flush=True)
    _common.write_json(Path(args.cells) / f"floors_r{args.resolution}.json",
                       {"rows": rows, "command": _common.command_line(sys.argv[1:], __file__)})


def cell_key(variant, target, seed, num_train, args) -> str:
    return (f"{variant}_{target}_n{num_train}_s{seed}_h{args.hidden}_k{args.kernel}_b{args.blocks}"
            f"_T{args.frames}_r{args.resolution}_steps{args.steps}")


def run(args) -> None:
    torch.set_num_threads(1)
    cells = Path(args.cells)
    cells.mkdir(parents=True, exist_ok=True)
    todo = [(v, t, s, n) for n in args.num_train for t in args.targets for s in args.seeds for v in args.variants]
    if args.shard:
        i, k = (int(p) for p in args.shard.split("/"))
        todo = todo[i::k]
    for v, t, s, n in todo:
        path = cells / f"{cell_key(v, t, s, n, args)}.json"
        if path.exists():
            continue
        t0 = time.perf_counter()
        row = run_cell(args, v, t, s, n)
        row.update({"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                    "wall_s": time.perf_counter() - t0, "machine": _common.machine_info(),
                    "command": _common.command_line(sys.argv[1:], __file__)})
        _common.write_json(path, row)
        print(f"{path.name}: test {row['test_mse']:.4g} (persistence {row['persistence_mse']:.4g}, "
              f"zero {row['zero_mse']:.4g}), {row['s_per_step'] * 1e3:.0f} ms/step", flush=True)


# ------------------------------------------------------------------ report
def report(args) -> None:
    import csv
    from collections import defaultdict

    rows = [json.loads(p.read_text()) for p in sorted(Path(args.cells).glob("*.json"))
            if not p.name.startswith("floors_")]
    if not rows:
        raise SystemExit(f"no cells in {args.cells}")
    out = Path(args.out)
    cols = ["variant", "target", "num_train", "seed", "steps", "hidden", "kernel", "blocks", "frames", "resolution",
            "time_scale", "params", "s_per_step", "train_loss_first", "train_loss_last", "test_mse", "zero_mse",
            "persistence_mse", "block_copy_mse", "block_mean_mse", "symmetrised_mse",
            "reversed_mse", "reversed_mse_field_reversed", "reversed_zero_mse",
            "reversed_persistence_mse"]
    with open(out.with_suffix(".csv"), "w", newline="") as f:
        w = csv.DictWriter(f, cols, extrasaction="ignore")
        w.writeheader()
        for r in sorted(rows, key=lambda r: [str(r.get(c)) for c in cols[:10]]):
            w.writerow(r)
    groups = defaultdict(list)
    for r in rows:
        groups[(r["target"], r["num_train"], r["steps"], r["hidden"], r["kernel"], r["frames"], r["resolution"],
                r["variant"])].append(r)

    def stat(rs, key):
        v = [r[key] for r in rs if r.get(key) is not None]
        return f"{np.mean(v):.3g} ({', '.join(f'{x:.3g}' for x in v)})" if v else "-"

    lines = ["| target | train traj. | steps | hidden | kernel | T | grid | model | params | seeds | "
             "train loss first -> last | test MSE | zero | persistence | time-symmetrised part: test MSE | "
             "reversed test MSE | ms/step |",
             "|" + "---|" * 17]
    for key in sorted(groups, key=lambda k: (TARGETS.index(k[0]), *k[1:7], list(VARIANTS).index(k[7]))):
        rs = sorted(groups[key], key=lambda r: r["seed"])
        tgt, n, steps, hidden, kernel, frames, res, variant = key
        lines.append(f"| {tgt} | {n} | {steps} | {hidden} | {kernel} | {frames} | {res} | {variant} | "
                     f"{rs[0]['params']} | {len(rs)} | {np.mean([r['train_loss_first'] for r in rs]):.3g} -> "
                     f"{stat(rs, 'train_loss_last')} | {stat(rs, 'test_mse')} | {rs[0]['zero_mse']:.3g} | "
                     f"{rs[0]['persistence_mse']:.3g} | {stat(rs, 'symmetrised_mse')} | {stat(rs, 'reversed_mse')} | "
                     f"{1e3 * np.mean([r['s_per_step'] for r in rs]):.0f} |")
    plot(groups, out.with_suffix(".png"))
    first = rows[0]
    m = first["machine"]
    dates = sorted(r["date"] for r in rows)
    reading = Path(str(out) + "_reading.md")  # written by hand, kept across regenerations of the report
    text = reading.read_text().strip() + "\n" if reading.is_file() else ""
    floor_lines = []
    for fp in sorted(Path(args.cells).glob("floors_r*.json")):
        fl = json.loads(fp.read_text())
        floor_lines += ["| T -> T | grid | test blocks | zero | persistence | block itself | block mean repeated | "
                        "block itself, scored against the block 1 frame later |", "|---|---|---|---|---|---|---|---|"]
        floor_lines += [f"| {r['frames']} -> {r['frames']} | {r['resolution']}^2 | {r['blocks']} | "
                        f"{r['zero_mse']:.3g} | {r['persistence_mse']:.3g} | {r['block_copy_mse']:.3g} | "
                        f"{r['block_mean_mse']:.3g} | {r['block_vs_shift1_mse']:.3g} |"
                        for r in fl["rows"]]
        floor_lines += ["", "```", fl["command"], "```", ""]
    body = [
        "# Why the CS-ResNet stalls on Maxwell 2D+1 spacetime blocks", "",
        f"Written by `benchmarks/{Path(__file__).name}`; the reading is by hand (`{reading.name}`), the rest "
        "generated from the cells.", "",
        text,
        "## Maps without training", "",
        "One-step test MSE (physical units, bivector blades) of maps that need no training, on the same test "
        "blocks (starts 4 frames apart). The last two commute with time reversal, as every CS-ResNet does.", "",
        *floor_lines,
        "## All cells", "",
        "Test MSE in physical units over the three bivector blades (Ex, Ey, c Bz), mean over seeds (each "
        "seed in brackets); train loss: mean over the first and last 10 % of the steps, normalised units, "
        "the target's physical blades. zero / persistence: the zero predictor and the last input frame "
        "repeated, on the same test blocks and target. Time-symmetrised part: the prediction "
        "(f(x) + R f(R x)) / 2 with R the time reversal of a block, the part of the trained model that commutes "
        "with time reversal (equal to the model for every CS-ResNet without the time field). "
        "Reversed: the forward models on time-reversed test "
        "blocks (trajectory reversed, e_0 -> -e_0; the target is the reversed past), the time field held "
        "fixed.", "",
        *lines, "",
        f"Cells: `{out.with_suffix('.csv').name}` (one row per cell); plot: `{out.with_suffix('.png').name}`.", "",
        "## How it was run", "",
        "```", *sorted({r["command"] for r in rows}),
        f"python benchmarks/{Path(__file__).name} report --cells {args.cells} --out {args.out}", "```", "",
        f"- {m['cpu_model']}, {m['cpus']} cores shared with other jobs (load {m['load']} at the first cell), "
        f"torch {m['torch']}, 1 thread per run, Python {m['python']}",
        f"- dates {dates[0]} to {dates[-1]}",
    ]
    _common.write_report(out.with_suffix(".md"), "\n".join(body) + "\n")


def plot(groups, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fwd = sorted({k for k in groups if k[0] == "forward"}, key=lambda k: (k[1:7], list(VARIANTS).index(k[7])))
    settings = sorted({k[1:7] for k in fwd})
    fig, axes = plt.subplots(1, len(settings), figsize=(4.2 * len(settings), 3.6), squeeze=False)
    for ax, s in zip(axes[0], settings):
        ks = [k for k in fwd if k[1:7] == s]
        names = [k[7] for k in ks]
        for j, k in enumerate(ks):
            rs = groups[k]
            ax.scatter([j] * len(rs), [r["test_mse"] for r in rs], color="C0", label="forward" if j == 0 else None)
            ax.scatter([j + 0.2] * len(rs), [r["reversed_mse"] for r in rs], color="C3", marker="x",
                       label="time-reversed" if j == 0 else None)
        r0 = groups[ks[0]][0]
        ax.axhline(r0["persistence_mse"], color="k", ls="--", lw=1, label="persistence")
        ax.axhline(r0["zero_mse"], color="gray", ls=":", lw=1, label="zero")
        ax.axhline(r0["block_copy_mse"], color="C2", ls="-.", lw=1, label="block itself")
        ax.set_yscale("log")
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
        ax.set_title(f"{s[0]} traj., {s[1]} steps, h{s[2]} k{s[3]}, {s[4]}->{s[4]} frames, {s[5]}^2", fontsize=8)
        ax.set_ylabel("one-step test MSE (bivector blades)")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("import-authors", help="convert the authors' generator output (.pt) to cscnn's HDF5")
    a.add_argument("--pt", type=Path, required=True)
    a.add_argument("--out", type=Path, required=True)
    r = sub.add_parser("run", help="train and score the cells not yet in --cells")
    r.add_argument("--data", type=Path, required=True)
    r.add_argument("--cells", default="/work/data/stall/cells")
    r.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    r.add_argument("--targets", nargs="+", default=["forward"], choices=TARGETS)
    r.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    r.add_argument("--num-train", nargs="+", type=int, default=[32])
    r.add_argument("--steps", type=int, default=400)
    r.add_argument("--frames", type=int, default=8, help="T of the T -> T blocks")
    r.add_argument("--resolution", type=int, default=16, help="grid read at this size (stored: 32)")
    r.add_argument("--hidden", type=int, default=4)
    r.add_argument("--kernel", type=int, default=3)
    r.add_argument("--blocks", type=int, default=2)
    r.add_argument("--kernel-layers", type=int, default=4)
    r.add_argument("--kernel-hidden", type=int, default=12)
    r.add_argument("--batch", type=int, default=8)
    r.add_argument("--lr", type=float, default=1e-3)
    r.add_argument("--stride", type=int, default=4, help="distance between test block starts")
    r.add_argument("--shard", default=None, help="I/K: run every K-th cell from the I-th")
    f = sub.add_parser("floors", help="errors of the untrained maps on the test blocks for several T")
    f.add_argument("--data", type=Path, required=True)
    f.add_argument("--cells", default="/work/data/stall/cells")
    f.add_argument("--frames", nargs="+", type=int, default=[4, 8, 16, 32])
    f.add_argument("--resolution", type=int, default=16)
    f.add_argument("--stride", type=int, default=4)
    q = sub.add_parser("report", help="write <out>.md/.csv/.png from the cells")
    q.add_argument("--cells", default="/work/data/stall/cells")
    q.add_argument("--out", default="docs/results/spacetime_stall")
    args = p.parse_args(argv)
    if args.cmd == "import-authors":
        import_authors(args.pt, args.out)
    elif args.cmd == "run":
        run(args)
    elif args.cmd == "floors":
        floors(args)
    else:
        report(args)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
