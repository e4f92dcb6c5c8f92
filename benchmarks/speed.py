"""Speed and activation memory of every model, side by side, at the paper's configurations scaled down.

For each setting (2D Navier-Stokes grid, 3D Maxwell grid, R^{1,2} spacetime block)
every registered model is built at a parameter count matched to the CS-ResNet
(:func:`cscnn.models.match_width`) and timed in one run, repetitions interleaved
across models so that machine noise hits all alike. The CS-ResNet uses the paper's 1x1
CS-convs (``pointwise="kernel"``, the default; ``pointwise="linear"`` would use MVLinear):

* ``forward``: eval mode, no grad (the CS-convs use their cached kernels);
* ``fwd+bwd``: train mode, forward, MSE-like loss and backward (kernel generation included);
* ``saved MB``: bytes autograd saves for backward during one training forward
  (``torch.autograd.graph.saved_tensors_hooks``), i.e. activation memory; it is
  neither process RSS nor the peak of the allocator.

A second table times a single CS-conv against a plain torch conv with the same
dense weight shape (``benchmarks/conv_speed.py``), at the conv shapes the CS-ResNets use.

    .venv/bin/python benchmarks/speed.py --repeats 5 --out docs/results/speed.md
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import command_line, fmt, machine_info, markdown_table  # noqa: E402
from conv_speed import saved_bytes  # noqa: E402

#: setting -> metric, in/out multivector channels, grid, batch, CS-ResNet width, blocks, kernel size, FNO modes
SETTINGS = {
    "2d": {"label": "Navier-Stokes 2D, Cl(2,0)", "metric": (1, 1), "cin": 4, "cout": 1, "grid": (64, 64),
           "batch": 2, "hidden": 12, "blocks": (1, 1), "kernel_size": 7, "fno_modes": 16},
    "3d": {"label": "Maxwell 3D, Cl(3,0)", "metric": (1, 1, 1), "cin": 4, "cout": 1, "grid": (32, 32, 32),
           "batch": 1, "hidden": 4, "blocks": (1, 1), "kernel_size": 5, "fno_modes": 8,
           "exclude": {"steerable_resnet": "left out by default in 3D (escnn O(3) model: in a toy run, `--scale "
                                           "0.125`, it saved 250 MB for backward per sample on a 4^3 grid and was "
                                           "the slowest model; `--all-3d` includes it)"}},
    "spacetime": {"label": "Maxwell 2D+1 spacetime, Cl(1,2)", "metric": (-1, 1, 1), "cin": 1, "cout": 1,
                  "grid": (32, 32, 32), "batch": 1, "hidden": 4, "blocks": (1, 1), "kernel_size": 5,
                  "fno_modes": 8},
}
MODELS = ("cs_resnet", "resnet", "clifford_resnet", "steerable_resnet", "fno")
LABELS = {"cs_resnet": "CS-ResNet", "resnet": "ResNet", "clifford_resnet": "Clifford ResNet",
          "steerable_resnet": "Steerable ResNet", "fno": "FNO", "cs_unet": "CS-U-Net"}


def _kwargs(name: str, s: dict) -> dict:
    if name == "fno":
        return {"modes": s["fno_modes"], "n_layers": 4}
    return {"blocks": list(s["blocks"]), "kernel_size": s["kernel_size"]}


def build_models(s: dict, models) -> tuple[dict, list[str]]:
    """Models of one setting at the CS-ResNet's parameter count; notes for those that cannot be built."""
    from cscnn.models import build_model, count_parameters, match_width

    target = count_parameters(build_model("cs_resnet", s["metric"], s["cin"], s["cout"], s["hidden"],
                                          **_kwargs("cs_resnet", s)))
    out, notes = {}, []
    for name in models:
        kw = _kwargs(name, s)
        try:
            w = s["hidden"] if name == "cs_resnet" else match_width(name, s["metric"], s["cin"], s["cout"], target,
                                                                    max_width=256, **kw)
            out[name] = (build_model(name, s["metric"], s["cin"], s["cout"], w, **kw), w)
        except (ImportError, ValueError, TypeError) as e:
            notes.append(f"{LABELS.get(name, name)} skipped for {s['label']}: {str(e).splitlines()[0]}")
    return out, notes


def bench_setting(key: str, s: dict, models, repeats: int) -> tuple[list[dict], list[str]]:
    import torch

    from cscnn.models import count_parameters

    excluded = {m: why for m, why in s.get("exclude", {}).items() if m in models}
    built, notes = build_models(s, [m for m in models if m not in excluded])
    notes += [f"{LABELS.get(m, m)} {why}" for m, why in excluded.items()]
    n = 2 ** len(s["metric"])
    x = torch.randn(s["batch"], s["cin"], *s["grid"], n)
    fwd, fb = {}, {}
    for name, (m, _) in built.items():
        def forward(m=m):
            m.eval()
            with torch.no_grad():
                m(x)

        def fwd_bwd(m=m):
            m.train()
            m.zero_grad(set_to_none=True)
            m(x).square().mean().backward()

        fwd[name], fb[name] = forward, fwd_bwd
    for name in built:  # warm-up (kernel caches, lazy inits, allocator)
        fwd[name]()
        fb[name]()
    times = {name: {"fwd": [], "fb": []} for name in built}
    for _ in range(repeats):  # interleaved: every model once per round
        for name in built:
            for mode, fn in (("fwd", fwd[name]), ("fb", fb[name])):
                t = time.perf_counter()
                fn()
                times[name][mode].append(time.perf_counter() - t)
    rows = []
    ref = statistics.median(times["resnet"]["fb"]) if "resnet" in times else None
    for name, (m, w) in built.items():
        m.train()
        sb = saved_bytes(lambda m=m: m(x).square().mean())
        t_f, t_fb = statistics.median(times[name]["fwd"]), statistics.median(times[name]["fb"])
        rows.append({"setting": key, "model": name, "width": w, "params": count_parameters(m),
                     "fwd_ms_per_sample": 1e3 * t_f / s["batch"], "fb_ms_per_sample": 1e3 * t_fb / s["batch"],
                     "fb_vs_resnet": t_fb / ref if ref else None, "saved_mb_per_sample": sb / 2**20 / s["batch"],
                     "fwd_spread": (max(times[name]["fwd"]) - min(times[name]["fwd"])) / t_f})
    return rows, notes


def conv_cases(settings: dict) -> list[tuple]:
    """The k x k CS-conv of each setting's CS-ResNet: (name, metric, c_in, c_out, grid, batch, k)."""
    return [(s["label"].split(",")[0], s["metric"], s["hidden"], s["hidden"], s["grid"], s["batch"],
             s["kernel_size"]) for s in settings.values()]


def render(rows, conv_rows, notes, meta) -> str:
    lines = ["# Speed and activation memory of the models", ""]
    lines.append("Median over interleaved repetitions in one run; per sample = batch time / batch size. "
                 "`fwd+bwd / ResNet` is the ratio of training-step times to the width-matched plain ResNet "
                 "in the same setting. `saved MB` = bytes autograd saves for backward in one training forward "
                 "(via `torch.autograd.graph.saved_tensors_hooks`; activation memory, not process RSS).")
    for key, s in meta["settings"].items():
        sub = [r for r in rows if r["setting"] == key]
        if not sub:
            continue
        lines += ["", f"## {s['label']}: grid {'x'.join(map(str, s['grid']))}, batch {s['batch']}, "
                      f"{s['cin']} -> {s['cout']} multivector channels, blocks {tuple(s['blocks'])}, "
                      f"kernel {s['kernel_size']}", ""]
        table = [[LABELS.get(r["model"], r["model"]), str(r["width"]), f"{r['params']:,}",
                  f"{r['fwd_ms_per_sample']:.1f}", f"{r['fb_ms_per_sample']:.1f}",
                  "-" if r["fb_vs_resnet"] is None else f"{r['fb_vs_resnet']:.2f}",
                  f"{r['saved_mb_per_sample']:.1f}"] for r in sub]
        lines.append(markdown_table(["model", "width", "params", "forward ms/sample", "fwd+bwd ms/sample",
                                     "fwd+bwd / ResNet", "saved MB/sample"], table))
    if conv_rows:
        lines += ["", "## One CS-conv against a plain conv of the same dense weight shape", "",
                  "From `benchmarks/conv_speed.py` (`bench_case`), same run. train = forward+backward including "
                  "kernel generation; eval = cached kernel, no grad; plain = torch conv on NC(D)HW input; "
                  "ratio = CS / plain.", ""]
        table = [[r["case"], f"{r['train_cs_ms']:.1f}", f"{r['train_plain_ms']:.1f}", f"{r['train_ratio']:.2f}",
                  f"{r['eval_cs_ms']:.1f}", f"{r['eval_plain_ms']:.1f}", f"{r['eval_ratio']:.2f}",
                  f"{r['saved_cs_mb']:.1f}", f"{r['saved_plain_mb']:.1f}"] for r in conv_rows]
        lines.append(markdown_table(["conv", "train CS ms", "train plain ms", "train ratio", "eval CS ms",
                                     "eval plain ms", "eval ratio", "saved MB CS", "saved MB plain"], table))
    mi = meta["machine"]
    lines += ["", "## How it was run", "", "```", meta["command"], "```", "",
              f"- machine: {mi['cpus']} CPU cores ({mi['platform']}), torch {mi['torch']}, {mi['threads']} torch "
              f"threads, float32" + (f", GPU {mi['cuda']}" if mi.get("cuda") else ", CPU only"),
              f"- {meta['repeats']} interleaved repetitions after one warm-up; total wall time "
              f"{meta['seconds'] / 60:.1f} min; the machine is shared, so read ratios rather than absolute times",
              "- sizes are the paper's configurations scaled to this machine: paper widths and depth "
              "(48 / 12 / 12 hidden multivector channels, 8 blocks, kernel 7) are out of reach on 2 CPU cores"]
    lines += [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    p.add_argument("--models", nargs="+", default=list(MODELS))
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--conv-repeats", type=int, default=5, help="repetitions of the CS-conv vs plain conv table")
    p.add_argument("--no-conv", action="store_true", help="skip the CS-conv vs plain conv table")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--scale", type=float, default=1.0, help="multiply grid sizes (tests use a tiny scale)")
    p.add_argument("--out", default=None, help="write the Markdown table here")
    p.add_argument("--all-3d", action="store_true", help="also time the models left out in 3D by default")
    args = p.parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    settings = {}
    for k in args.settings:
        s = dict(SETTINGS[k])
        s["grid"] = tuple(max(4, int(round(g * args.scale))) for g in s["grid"])
        if args.all_3d:
            s.pop("exclude", None)
        settings[k] = s
    t0 = time.time()
    rows, notes = [], []
    for k, s in settings.items():
        r, nt = bench_setting(k, s, args.models, args.repeats)
        rows += r
        notes += nt
        for row in r:
            print(f"{k:<9} {row['model']:<17} {row['params']:>8,} params  fwd {row['fwd_ms_per_sample']:8.1f} ms  "
                  f"fwd+bwd {row['fb_ms_per_sample']:8.1f} ms  x ResNet {fmt(row['fb_vs_resnet'])}  "
                  f"saved {row['saved_mb_per_sample']:.1f} MB", flush=True)
    conv_rows = []
    if not args.no_conv:
        from conv_speed import bench_case

        for case in conv_cases(settings):
            conv_rows.append(bench_case(*case, args.conv_repeats))
            print(conv_rows[-1]["case"], f"train ratio {conv_rows[-1]['train_ratio']:.2f}, "
                  f"eval ratio {conv_rows[-1]['eval_ratio']:.2f}", flush=True)
    meta = {"settings": settings, "machine": machine_info(), "command": command_line(argv, __file__),
            "repeats": args.repeats, "seconds": time.time() - t0}
    text = render(rows, conv_rows, notes, meta)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
        print(f"wrote {args.out}")
    else:
        print(text)
    return {"rows": rows, "conv_rows": conv_rows, "notes": notes, "text": text}


if __name__ == "__main__":
    main()
