"""GPU benchmark: CS-conv and paper-size CS-ResNet training step against plain convs, fp32 / TF32 / bf16.

For every precision (fp32 with TF32 off, TF32, bf16 autocast) it times, in one run with
repetitions interleaved and the device synchronised around every call:

* one CS-conv against a plain torch conv of the same dense weight shape, contiguous and
  channels-last input, training (forward + backward, kernel generation included) and
  eval (cached kernel, no grad): ``benchmarks/conv_speed.py``;
* a training step of the paper-size CS-ResNet (Cl(2,0), hidden 48, blocks (2, 2, 2, 2),
  k 7, kernel network 4x12, batch 8, 64x64; 1x1 layers are CS-convs as in the paper)
  against a plain conv stack of the same dense shapes with GELU, peak memory and a
  torch-profiler breakdown (convs, kernel networks, norms and gates, layout copies) with the
  top-level operators per training step of each category and in total:
  ``benchmarks/step_speed.py``.

Target: the CS-ResNet step at most 1.3x the plain stack in bf16 on the GPU. With
``--compile inductor --compile-mode reduce-overhead`` the CS-ResNet is also timed under
``torch.compile`` with CUDA graphs (what ``cscnn train --set trainer.compile=reduce-overhead`` uses),
which replays the step without per-operator launches.
One command on a CUDA machine writes the results file::

    .venv/bin/python benchmarks/gpu_speed.py --out docs/results/gpu_speed.md

``--device cpu --tiny`` runs the same code at toy sizes (the test suite does that).
A case that fails (for example a precision the device lacks) is reported in the file
with its error and the run goes on.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import step_speed  # noqa: E402
from _common import PRECISIONS, STAT, command_line, emit_markdown, load_average, machine_info, markdown_table  # noqa: E402
from conv_speed import TINY_CASES, bench_case  # noqa: E402

#: conv cases at the paper's widths: Navier-Stokes 2D (48 channels) and Maxwell 3D (12 channels)
CONV_CASES = [
    ("2D", (1, 1), 48, 48, (64, 64), 8, 7),
    ("3D", (1, 1, 1), 12, 12, (32, 32, 32), 2, 5),
]
PAPER_CONFIG = dict(step_speed.CPU_CONFIG, hidden=48, batch=8)
TARGET_BF16 = 1.3


def _conv_rows(prec, cases, device, repeats, stat) -> tuple[list[list[str]], list[str]]:
    rows, errors = [], []
    for case in cases:
        try:
            r = bench_case(*case, repeats, stat, device, prec)
        except Exception as e:  # noqa: BLE001 - reported in the results file, the run goes on
            errors.append(f"- conv {case[0]} in {prec} failed: {type(e).__name__}: {str(e).splitlines()[0]}")
            continue
        rows.append([prec, r["case"], f"{r['train_cs_ms']:.2f}", f"{r['train_plain_ms']:.2f}",
                     f"{r['train_plain_cl_ms']:.2f}", f"{r['train_ratio_best']:.2f}", r["train_layout"],
                     f"{r['eval_cs_ms']:.2f}", f"{r['eval_plain_ms']:.2f}", f"{r['eval_plain_cl_ms']:.2f}",
                     f"{r['eval_ratio_best']:.2f}", r["eval_layout"]])
    return rows, errors


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=PRECISIONS)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--step-repeats", type=int, default=10)
    p.add_argument("--stat", choices=sorted(STAT), default="median")
    p.add_argument("--profile-repeats", type=int, default=3, help="profiled steps per model (minimum per category)")
    p.add_argument("--no-cudnn-benchmark", action="store_true",
                   help="leave torch.backends.cudnn.benchmark off (default: on, for CS and plain alike)")
    p.add_argument("--compile", default=None, metavar="BACKEND",
                   help="also time the CS-ResNet step under torch.compile with this backend (e.g. inductor)")
    p.add_argument("--compile-mode", default=None, help="torch.compile mode with --compile (e.g. reduce-overhead)")
    p.add_argument("--tiny", action="store_true", help="toy sizes (for the tests; runs on CPU too)")
    p.add_argument("--out", default=None, help="write the Markdown results here")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda needs a CUDA build of torch and a GPU; use --device cpu --tiny to try the script")
    torch.backends.cudnn.benchmark = not args.no_cudnn_benchmark
    torch.manual_seed(0)
    stat = STAT[args.stat]
    cases = TINY_CASES if args.tiny else CONV_CASES
    cfg = step_speed.TINY_CONFIG if args.tiny else PAPER_CONFIG
    t0 = time.time()
    conv_rows, errors, steps = [], [], {}
    for prec in args.precisions:
        rows, errs = _conv_rows(prec, cases, device, args.repeats, stat)
        conv_rows += rows
        errors += errs
        try:
            steps[prec] = step_speed.run(cfg, device, prec, args.step_repeats, stat, True, args.profile_repeats,
                                         args.compile, args.compile_mode)
        except Exception as e:  # noqa: BLE001 - reported in the results file, the run goes on
            errors.append(f"- CS-ResNet step in {prec} failed: {type(e).__name__}: {str(e).splitlines()[0]}")
        print(f"{prec}: done ({time.time() - t0:.0f} s)", flush=True)
    info = machine_info()
    dev_name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU: {info['cpu_model']}"
    lines = ["# GPU speed: CS-conv and CS-ResNet against plain convs of the same dense shapes", "",
             f"Device: {dev_name}; torch {torch.__version__}"
             + (f", CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}" if device.type == "cuda" else "")
             + f"; cudnn.benchmark {torch.backends.cudnn.benchmark}; {args.stat} over interleaved repetitions.", "",
             "## One CS-conv against a plain conv of the same dense weight shape", "",
             f"{args.repeats} repetitions. train = forward + backward, kernel generation included; eval = cached "
             "kernel, no grad; plain / plain_cl = torch conv on a contiguous / channels-last input; ratio = CS / "
             "faster plain; layout = the CS-conv's choice (cscnn.nn.layout).", ""]
    if conv_rows:
        lines.append(markdown_table(["precision", "conv", "train CS ms", "train plain ms", "train plain_cl ms",
                                     "train ratio", "train layout", "eval CS ms", "eval plain ms", "eval plain_cl ms",
                                     "eval ratio", "eval layout"], conv_rows))
    lines += ["", "## CS-ResNet training step against a plain conv stack of the same dense shapes", "",
              f"Target: at most {TARGET_BF16}x the faster plain stack in bf16. Memory: peak allocated on CUDA "
              "(bytes autograd saves for backward on CPU).", ""]
    for prec, res in steps.items():
        lines += [f"### {prec}", "", *step_speed.render(res, cfg, prec, device, args.stat, args.step_repeats), ""]
    if "bf16" in steps:
        r = steps["bf16"]["ratio"]
        lines += [f"bf16 step ratio {r:.2f} ({'meets' if r <= TARGET_BF16 else 'misses'} the {TARGET_BF16}x target).",
                  ""]
    if errors:
        lines += ["## Failures", "", *errors, ""]
    lines += ["## How it was run", "", f"    {command_line(argv, __file__)}", "",
              f"- {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, total {time.time() - t0:.0f} s",
              f"- host CPU {info['cpu_model']}, {info['cpus']} cores, {info['threads']} torch threads, "
              f"load average {load_average()}; python {info['python']}, {info['platform']}"]
    text = emit_markdown(lines, args.out)
    return {"conv_rows": conv_rows, "steps": steps, "errors": errors, "text": text}


if __name__ == "__main__":
    main()
