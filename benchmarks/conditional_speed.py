"""Conditional and two-sided CS-convs against the plain CS-conv: training step time and memory.

One training step = forward + backward of ``conv(x).sum()`` with kernel generation included (the
conditional conv also computes its condition summary, one batched kernel-network call and one
grouped convolution). Every variant is timed in the same run with repetitions interleaved
(:func:`_common.interleaved`); ratios are against the plain CS-conv at the same batch.
``cond_loop`` is the per-sample loop the authors' JAX code uses (vmap of batch-1 convolutions),
written as a Python loop over samples, for comparison. Usage::

    .venv/bin/python benchmarks/conditional_speed.py [--batches 1 8 32] [--repeats 7] [--threads 1] \\
        [--out docs/results/conditional_speed.md]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    cpu_model,
    how_it_was_run,
    interleaved,
    machine_info,
    markdown_table,
    saved_bytes,
    write_report,
)

from cscnn.nn import CliffordSteerableConv, ConditionalCliffordSteerableConv  # noqa: E402

VARIANTS = ("plain", "two_sided", "conditional", "cond_two_sided", "cond_loop")


def build(variant: str, metric, c_in: int, c_out: int, k: int):
    if variant == "plain":
        return CliffordSteerableConv(metric, c_in, c_out, k, bias=False)
    if variant == "two_sided":
        return CliffordSteerableConv(metric, c_in, c_out, k, bias=False, head="two_sided")
    head = "two_sided" if variant == "cond_two_sided" else "left"
    return ConditionalCliffordSteerableConv(metric, c_in, c_out, k, bias=False, head=head)


def bench(batch: int, metric, c_in: int, c_out: int, size, k: int, repeats: int, stat) -> dict:
    n = 2 ** len(metric)
    x = torch.randn(batch, c_in, *size, n)
    convs = {v: build("conditional" if v == "cond_loop" else v, metric, c_in, c_out, k) for v in VARIANTS}

    def step(name):
        conv = convs[name]

        def run():
            conv.zero_grad(set_to_none=True)
            if name == "cond_loop":
                y = torch.cat([conv(x[b:b + 1]) for b in range(batch)])
            else:
                y = conv(x)
            y.sum().backward()
        return run

    times = interleaved({v: step(v) for v in VARIANTS}, repeats, stat)
    row = {"batch": batch}
    for v in VARIANTS:
        row[f"{v}_ms"] = 1e3 * times[v]
    for v in VARIANTS[1:]:
        row[f"{v}/plain"] = times[v] / times["plain"]
    for v in ("plain", "two_sided", "conditional"):
        row[f"saved_{v}_mb"] = saved_bytes(lambda v=v: convs[v](x).sum()) / 2**20
    return row


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument("--channels", type=int, default=16, help="multivector channels in and out")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--kernel-size", type=int, default=7)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--stat", choices=["median", "min"], default="median")
    p.add_argument("--out", default=None, help="write a Markdown report here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    stat = statistics.median if args.stat == "median" else min
    load_before = os.getloadavg()
    start = time.perf_counter()
    rows = []
    for b in args.batches:
        row = bench(b, (1, 1), args.channels, args.channels, (args.size, args.size), args.kernel_size, args.repeats,
                    stat)
        rows.append(row)
        print(row, flush=True)
    load_after = os.getloadavg()
    header = list(rows[0])
    table = markdown_table(header, [[r[h] for h in header] for r in rows])
    print(table)
    if args.out:
        info = machine_info()
        at8 = next((r for r in rows if r["batch"] == 8), None)
        verdict = "" if at8 is None else (
            f"- Target: conditional training step <= 2x the plain CS-conv's at batch 8: measured "
            f"{at8['conditional/plain']:.2f}x ({'met' if at8['conditional/plain'] <= 2 else 'NOT met'}).")
        text = "\n".join([
            "# Conditional and two-sided CS-conv: training-step time and memory",
            "",
            f"2D Cl(2,0), {args.channels} -> {args.channels} multivector channels "
            f"({args.channels * 4} -> {args.channels * 4} scalar), {args.size}x{args.size}, kernel "
            f"{args.kernel_size}, float32, no bias. One step = forward + backward of `conv(x).sum()`, kernel "
            "generation (and for the conditional convs the condition summary) included; "
            f"{args.stat} of {args.repeats} interleaved repetitions after one warm-up; ratios against the "
            "plain CS-conv of the same run. `cond_loop`: the conditional conv applied sample by sample "
            "(what a vmap of batch-1 convolutions does), for comparison with the grouped convolution. "
            "`saved_*_mb`: tensors autograd keeps for backward.",
            "",
            table,
            "",
            verdict,
            "",
            *how_it_was_run(argv, __file__),
            f"- CPU: {cpu_model()} ({info['cpu_capability']}), {info['cpus']} cores, torch {info['torch']}, "
            f"{args.threads} torch thread(s); {time.perf_counter() - start:.0f} s.",
            f"- Load: load average {load_before[0]:.1f} before and {load_after[0]:.1f} after the run (above ~0.5 "
            "other processes shared the CPU and absolute times are inflated; the interleaved ratios are what to "
            "read).",
        ]) + "\n"
        write_report(args.out, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
