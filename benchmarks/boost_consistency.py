"""Boost consistency on spacetime R^{1,2}: does a model commute with Lorentz boosts?

For Maxwell 2D+1 (metric (-1, 1, 1), time the first grid axis) a model maps a
spacetime block of the Faraday bivector field to a block of the same shape. A
boost g (rapidity r, mixing t and x) acts on a field by

    (g.F)(v) = rho(g) F(g^-1 v),

implemented by resampling F on the boosted grid (trilinear interpolation,
``torch.nn.functional.grid_sample``, grid coordinates centred on the block, in
cells) and transforming the multivector values by ``alg.outermorphism(g)``.
We compare ``f(g.F)`` with ``g.f(F)`` on the interior points whose boosted
pre-images stay inside the block, both at least ``margin`` cells (default: the
model's receptive radius) away from the block boundary, so zero padding cannot
reach them:

    rel. error(r) = |f(g.F) - g.f(F)|_interior / |g.f(F)|_interior.

A boost-equivariant model gives zero up to the discretisation of kernels and
fields; the interpolation round trip ``g^-1.(g.F)`` against ``F`` is printed as a
yardstick for that. Models are the CS-ResNet and a plain ResNet at a matched
parameter count, untrained (random init, as constructed) unless checkpoints are given.

    .venv/bin/python benchmarks/boost_consistency.py --out docs/results/boost_consistency
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import command_line, fmt, machine_info, markdown_table, write_json  # noqa: E402

METRIC = (-1, 1, 1)
LABELS = {"cs_resnet": "CS-ResNet", "resnet": "ResNet", "clifford_resnet": "Clifford ResNet", "fno": "FNO",
          "cs_conv": "one CS-conv", "plain_conv": "one plain conv"}


def single_convs(alg, kernel_size: int, seed: int):
    """One CS-conv (1 -> 1 multivector channel) and a plain conv3d with a random dense weight of the same
    shape and scale: the layer-level version of the comparison."""
    import torch
    import torch.nn.functional as F

    from cscnn.nn import CliffordSteerableConv

    torch.manual_seed(seed)
    cs = CliffordSteerableConv(alg, 1, 1, kernel_size, bias=False)
    with torch.no_grad():
        w = cs.kernel()
    weight = torch.randn(w.shape) * w.std()

    class PlainConv(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(weight)

        def forward(self, x):  # (B, 1, T, X, Y, n) -> same, blades as channels
            b, _, *sizes, n = x.shape
            y = F.conv3d(x.movedim(-1, 2).reshape(b, n, *sizes), self.weight, padding=kernel_size // 2)
            return y.reshape(b, 1, n, *sizes).movedim(2, -1)

    return cs, PlainConv()


# ------------------------------------------------------------------- fields
def centred_coords(sizes, dtype, device=None):
    """(T, X, Y, 3) grid coordinates in cells, centred on the block."""
    import torch

    axes = [torch.arange(s, dtype=dtype, device=device) - (s - 1) / 2 for s in sizes]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), -1)


def resample(x, g):
    """Scalar resampling ``F(g^-1 v)`` of ``x: (B, C, T, X, Y, n)`` (trilinear, zero outside)."""
    import torch
    import torch.nn.functional as F

    b, c, *sizes, n = x.shape
    v = centred_coords(sizes, x.dtype, x.device)
    u = v @ torch.linalg.inv(g).to(x).T  # g^-1 v
    half = torch.tensor([(s - 1) / 2 for s in sizes], dtype=x.dtype, device=x.device)
    grid = (u / half).flip(-1)  # grid_sample wants (W, H, D) = (Y, X, T) order in [-1, 1]
    inp = x.movedim(-1, 2).reshape(b, c * n, *sizes)
    out = F.grid_sample(inp, grid.expand(b, *grid.shape), mode="bilinear", padding_mode="zeros", align_corners=True)
    return out.reshape(b, c, n, *sizes).movedim(2, -1)


def boost_field(alg, g, x):
    """``(g.F)(v) = rho(g) F(g^-1 v)`` for ``x: (B, C, T, X, Y, n)``."""
    return alg.act(g.to(x), resample(x, g))


def interior_mask(sizes, g, margin: float, dtype):
    """Points v with v and g^-1 v both at least ``margin`` cells inside the block: (T, X, Y) bool."""
    import torch

    v = centred_coords(sizes, dtype)
    u = v @ torch.linalg.inv(g).to(dtype).T
    half = torch.tensor([(s - 1) / 2 for s in sizes], dtype=dtype) - margin
    return (v.abs() <= half + 1e-9).all(-1) & (u.abs() <= half + 1e-9).all(-1)


def smooth_bivector_field(alg, sizes, batch: int, generator, dtype, waves: int = 4, max_k: float = 2.0):
    """Random smooth Faraday-like fields: sums of low-frequency plane waves in the bivector blades."""
    import torch

    v = centred_coords(sizes, dtype)
    span = torch.tensor(sizes, dtype=dtype)
    x = torch.zeros(batch, 1, *sizes, alg.n_blades, dtype=dtype)
    grade2 = [i for i, bl in enumerate(alg.blades) if len(bl) == 2]
    for b in range(batch):
        for i in grade2:
            for _ in range(waves):
                k = (torch.rand(3, generator=generator, dtype=dtype) * 2 - 1) * max_k
                ph = torch.rand((), generator=generator, dtype=dtype) * 2 * math.pi
                amp = torch.randn((), generator=generator, dtype=dtype)
                x[b, 0, ..., i] += amp * torch.cos(2 * math.pi * (v / span * k).sum(-1) + ph)
    return x / x.std()


def data_blocks(args, dtype):
    """The first ``--frames`` frames of the first ``--samples`` trajectories of the ``--split`` split of
    ``--data`` (a maxwell2d data folder), read at ``--size`` x ``--size`` and normalised as the first
    checkpoint's training data were: ``(samples, 1, frames, size, size, 8)``."""
    import torch

    from cscnn.data import Normalization, PDEDataset
    from cscnn.training import read_checkpoint

    norm = None
    ckpt = args.ckpt_cs_resnet or args.ckpt_resnet
    if ckpt:
        hp = read_checkpoint(ckpt)["hyper_parameters"]
        norm = Normalization.from_dict(hp["normalization"]) if hp.get("normalization") else None
    ds = PDEDataset(args.data, "maxwell2d", time_history=args.frames, time_future=1, split=args.split,
                    normalization=norm, resolution=args.size)
    if ds.num_trajectories < args.samples:
        raise SystemExit(f"--samples {args.samples}: {args.data} has {ds.num_trajectories} {args.split} trajectories")
    blocks = [torch.as_tensor(ds.trajectory(i))[:args.frames] for i in range(args.samples)]
    if blocks[0].shape[0] < args.frames:
        raise SystemExit(f"--frames {args.frames}: the trajectories of {args.data} have {blocks[0].shape[0]} frames")
    return torch.stack(blocks)[:, None].to(dtype)


# ------------------------------------------------------------------- models
def receptive_radius(blocks, kernel_size: int) -> int:
    """Cells a residual stack of ``sum(blocks)`` blocks of two k x k convs can see (1x1 embeddings add none)."""
    return 2 * sum(blocks) * (kernel_size // 2)


def build(args):
    """``{name: (model, description)}``: checkpoints when given, else untrained models at matched sizes."""
    import torch

    from cscnn.models import build_model, count_parameters, match_width

    models = {}
    kw = {"blocks": list(args.blocks), "kernel_size": args.kernel_size}
    target = None
    for name in args.models:
        if name in ("cs_conv", "plain_conv"):
            from cscnn import CliffordAlgebra

            pair = dict(zip(("cs_conv", "plain_conv"), single_convs(CliffordAlgebra(METRIC), args.kernel_size,
                                                                     args.seed)))
            models[name] = (pair[name].eval().to(torch.float64),
                            f"untrained, 1 -> 1 channel, kernel {args.kernel_size}"
                            + (" (random dense weight of the CS-conv's shape and scale)" if name == "plain_conv"
                               else ""))
            continue
        ckpt = getattr(args, f"ckpt_{name}", None) if name in ("cs_resnet", "resnet") else None
        if ckpt:
            from cscnn.training import load_module

            m = load_module(ckpt, map_location="cpu").model
            desc = f"trained ({ckpt})"
        else:
            torch.manual_seed(args.seed)
            if target is None:
                target = count_parameters(build_model("cs_resnet", METRIC, 1, 1, args.hidden, **kw))
            w = args.hidden if name == "cs_resnet" else match_width(name, METRIC, 1, 1, target, max_width=256, **kw)
            m = build_model(name, METRIC, 1, 1, w, **kw)
            desc = f"untrained (random init), width {w}"
        models[name] = (m.eval().to(torch.float64), f"{desc}, {count_parameters(m):,} params")
    return models


# --------------------------------------------------------------------- main
def measure(args) -> dict:
    import torch

    from cscnn import CliffordAlgebra
    from cscnn.algebra import boost

    alg = CliffordAlgebra(METRIC)
    dtype = torch.float64
    gen = torch.Generator().manual_seed(args.seed)
    sizes = (args.frames, args.size, args.size)
    models = build(args)
    x = (data_blocks(args, dtype) if args.data else smooth_bivector_field(alg, sizes, args.samples, gen, dtype))
    margin = args.margin if args.margin is not None else receptive_radius(args.blocks, args.kernel_size)
    results = {name: [] for name in models}
    floor, fractions, fields = [], [], {}
    with torch.no_grad():
        fx = {name: m(x) for name, (m, _) in models.items()}
        for r in args.rapidities:
            g = boost(METRIC, 0, 1, r, dtype=dtype)
            mask = interior_mask(sizes, g, margin, dtype)
            fractions.append(float(mask.double().mean()))
            m6 = mask[None, None, ..., None]
            gx = boost_field(alg, g, x)
            back = boost_field(alg, torch.linalg.inv(g), gx)
            floor.append(float(((back - x) * m6).norm() / (x * m6).norm()))
            for name, (m, _) in models.items():
                lhs, rhs = m(gx), boost_field(alg, g, fx[name])
                err = float(((lhs - rhs) * m6).norm() / (rhs * m6).norm().clamp_min(1e-300))
                results[name].append(err)
                if abs(r - args.show_rapidity) < 1e-9 and name in args.models[:2]:
                    fields[name] = (lhs[0, 0], rhs[0, 0], mask)
            print(f"rapidity {r:4.2f} (v = {math.tanh(r):.2f} c): interior {fractions[-1]:6.1%}  "
                  + "  ".join(f"{name} {results[name][-1]:.3e}" for name in models)
                  + f"  interpolation round trip {floor[-1]:.3e}", flush=True)
    return {"rapidities": list(args.rapidities), "errors": results, "round_trip": floor, "interior": fractions,
            "margin": margin, "sizes": sizes, "models": {k: d for k, (_, d) in models.items()}, "fields": fields}


def figure(res, path: Path, show_r: float, alg_blades) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(res["errors"])
    fig = plt.figure(figsize=(4.5 + 3 * 3, 3.2 * max(1, len(res["fields"]))))
    gs = fig.add_gridspec(max(1, len(res["fields"])), 4, width_ratios=[1.5, 1, 1, 1])
    ax = fig.add_subplot(gs[:, 0])
    for n in names:
        ax.plot(res["rapidities"], res["errors"][n], marker="o", label=LABELS.get(n, n))
    ax.plot(res["rapidities"], res["round_trip"], ls="--", color="gray", label="interpolation round trip")
    ax.set_yscale("symlog", linthresh=1e-4)
    ax.set_xlabel("rapidity (boost along x)")
    ax.set_ylabel("relative error |f(g.F) - g.f(F)| / |g.f(F)|")
    ax.set_title("boost consistency on R^{1,2}", fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    blade = next(i for i, b in enumerate(alg_blades) if b == (0, 1))
    for row, (n, (lhs, rhs, mask)) in enumerate(res["fields"].items()):
        t = lhs.shape[0] // 2
        a, b = lhs[t, ..., blade].numpy(), rhs[t, ..., blade].numpy()
        mk = mask[t].numpy()
        vmax = max(abs(a[mk]).max(), abs(b[mk]).max()) if mk.any() else 1.0
        for col, (img, title) in enumerate(((a, "f(g.F)"), (b, "g.f(F)"), (a - b, "difference"))):
            axi = fig.add_subplot(gs[row, col + 1])
            axi.imshow(img * mk, cmap="RdBu_r", vmin=-vmax, vmax=vmax, origin="lower")
            axi.contour(mk, levels=[0.5], colors="k", linewidths=0.5)
            axi.set_title(f"{LABELS.get(n, n)}: {title}", fontsize=8)
            axi.set_xticks([])
            axi.set_yticks([])
    fig.suptitle(f"e01 (E_x-like) component at the central time slice, rapidity {show_r}; "
                 "outside the contour: not compared", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(res, meta) -> str:
    names = list(res["errors"])
    header = ["rapidity", "speed v/c", "interior points"] + [f"{LABELS.get(n, n)} rel. error" for n in names]
    pairs = [(a, b) for a, b in (("resnet", "cs_resnet"), ("plain_conv", "cs_conv")) if {a, b} <= set(names)]
    header += [f"{LABELS[a]} / {LABELS[b]}" for a, b in pairs]
    header += ["interpolation round trip"]
    rows = []
    for i, r in enumerate(res["rapidities"]):
        row = [f"{r:.2f}", f"{math.tanh(r):.2f}", f"{res['interior'][i]:.1%}"]
        row += [fmt(res["errors"][n][i]) for n in names]
        for a, b in pairs:
            den = res["errors"][b][i]
            row.append(f"{res['errors'][a][i] / den:.2f}" if den > 1e-12 else "-")
        row.append(fmt(res["round_trip"][i]))
        rows.append(row)
    lines = ["# Boost consistency on spacetime R^{1,2} (Maxwell 2D+1)", "",
             "Relative error |f(g.F) - g.f(F)| / |g.f(F)| on the interior region, for boosts g along x with "
             "the given rapidity. g acts on a field by resampling it on the boosted spacetime grid (trilinear "
             "interpolation) and transforming its multivector values by rho(g) (`alg.outermorphism`). "
             f"Block (T, X, Y) = {tuple(res['sizes'])} cells; compared points lie at least {res['margin']} cells "
             "(the receptive radius) inside the block, for both v and g^-1 v.", "",
             markdown_table(header, rows), "",
             "Models (float64):"]
    lines += [f"- {LABELS.get(n, n)}: {d}" for n, d in res["models"].items()]
    inputs = (f"the first {res['sizes'][0]} frames of {meta['samples']} {meta['split']} trajectories of "
              f"`{meta['data']}`, read at {res['sizes'][1]}x{res['sizes'][2]}" if meta.get("data") else
              f"random smooth bivector (Faraday) fields, sums of low-frequency plane waves, {meta['samples']} "
              "sample(s)")
    lines += ["", f"Inputs: {inputs}. The interpolation round trip g^-1.(g.F) vs F measures how much "
              "resampling alone loses on the same region: an error near it is as small as this test can see.",
              "", f"![boost consistency]({meta['png']})", "", "## How it was run", "", "```", meta["command"],
              "```", "", f"- machine: {meta['machine'].get('cpu_model', 'CPU')}, {meta['machine']['cpus']} CPU "
              f"cores, torch {meta['machine']['torch']}, {time.strftime('%Y-%m-%d')}; wall time "
              f"{meta['seconds']:.0f} s"]
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="outputs/bench/boost_consistency", help="writes OUT.md, OUT.png, OUT.json")
    p.add_argument("--models", nargs="+", default=["cs_resnet", "resnet", "cs_conv", "plain_conv"],
                   help="registry models (cs_resnet, resnet, ...) and/or the single layers cs_conv, plain_conv")
    p.add_argument("--rapidities", type=float, nargs="+", default=[0.0, 0.1, 0.25, 0.5, 0.75])
    p.add_argument("--show-rapidity", type=float, default=0.5, help="rapidity of the field panels")
    p.add_argument("--frames", type=int, default=32, help="time extent of the block (grid cells)")
    p.add_argument("--size", type=int, default=32, help="spatial extent of the block")
    p.add_argument("--samples", type=int, default=2, help="random input fields")
    p.add_argument("--hidden", type=int, default=4, help="CS-ResNet hidden multivector channels")
    p.add_argument("--blocks", type=int, nargs="+", default=[1, 1])
    p.add_argument("--kernel-size", type=int, default=5)
    p.add_argument("--margin", type=float, default=None, help="cells kept away from the boundary "
                                                               "(default: receptive radius)")
    p.add_argument("--ckpt-cs-resnet", dest="ckpt_cs_resnet", default=None, help="trained CS-ResNet checkpoint")
    p.add_argument("--ckpt-resnet", dest="ckpt_resnet", default=None, help="trained ResNet checkpoint")
    p.add_argument("--data", default=None, help="maxwell2d data folder: its test blocks as inputs instead of random "
                                                 "smooth fields (normalised as the first checkpoint's training data)")
    p.add_argument("--split", default="test", help="split of --data")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    import torch

    from cscnn import CliffordAlgebra

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.show_rapidity not in args.rapidities:
        args.show_rapidity = max(args.rapidities)
    t0 = time.time()
    res = measure(args)
    out = Path(args.out)
    png = out.with_suffix(".png")
    figure(res, png, args.show_rapidity, CliffordAlgebra(METRIC).blades)
    meta = {"command": command_line(argv, __file__), "machine": machine_info(), "seconds": time.time() - t0,
            "samples": args.samples, "png": png.name, "data": args.data, "split": args.split}
    text = report(res, meta)
    out.with_suffix(".md").write_text(text)
    plain = {k: v for k, v in res.items() if k != "fields"}
    write_json(out.with_suffix(".json"), {**plain, "command": meta["command"], "seconds": meta["seconds"]})
    print(f"wrote {out.with_suffix('.md')}, {png}, {out.with_suffix('.json')}")
    return {**plain, "paths": [str(out.with_suffix(s)) for s in (".md", ".png", ".json")]}


if __name__ == "__main__":
    main()
