"""CS-conv speed against a plain torch conv with the same dense weight shape.

Prints one table, all numbers from the same run (ratios are what to read: the
machine is shared and noisy). Usage::

    .venv/bin/python benchmarks/conv_speed.py [--repeats 15] [--threads 2] [--markdown]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from cscnn import CliffordAlgebra
from cscnn.nn import CliffordSteerableConv, CliffordSteerableKernel

CASES = [
    # name, metric, c_in, c_out, spatial size, batch, kernel size
    ("2D", (1, 1), 16, 16, (64, 64), 4, 7),
    ("3D", (1, 1, 1), 4, 4, (24, 24, 24), 2, 5),
]
KERNEL_CASES = [
    ("2D 16->16 k7", (1, 1), 16, 16, 7),
    ("3D 4->4 k5", (1, 1, 1), 4, 4, 5),
    ("R^{1,2} 12->12 k7", (-1, 1, 1), 12, 12, 7),
    ("4D 4->4 k5", (-1, 1, 1, 1), 4, 4, 5),
]
_CONV = {2: F.conv2d, 3: F.conv3d}


STAT = {"median": statistics.median, "min": min}


def time_call(fn, repeats: int, stat=statistics.median) -> float:
    """``stat`` (median or min) of ``repeats`` timed calls of ``fn`` after one warm-up call, in seconds."""
    return _interleaved({"fn": fn}, repeats, stat)["fn"]


def _interleaved(fns: dict, repeats: int, stat=statistics.median) -> dict:
    """Time of each fn (``stat`` over repetitions), alternating between them so drift hits all alike."""
    for fn in fns.values():
        fn()
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t)
    return {k: stat(v) for k, v in times.items()}


def saved_bytes(fn) -> int:
    """Bytes of tensors autograd saves for backward while running fn (activation memory)."""
    total = 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return total


def bench_case(name, metric, c_in, c_out, size, batch, k, repeats, stat=statistics.median):
    alg = CliffordAlgebra(metric)
    n = alg.n_blades
    conv = CliffordSteerableConv(alg, c_in, c_out, k, bias=False)
    x = torch.randn(batch, c_in, *size, n)
    weight = torch.nn.Parameter(torch.randn(c_out * n, c_in * n, *([k] * len(size))) * 0.01)
    xp = torch.randn(batch, c_in * n, *size)
    # the same plain conv on a channels-last input (the memory order the CS-conv uses inside)
    xl = xp.contiguous(memory_format=torch.channels_last if len(size) == 2 else torch.channels_last_3d)
    plain = _CONV[len(size)]

    def cs_train():
        conv.zero_grad(set_to_none=True)
        conv(x).sum().backward()

    def plain_train(inp):
        def run():
            weight.grad = None
            plain(inp, weight, padding=k // 2).sum().backward()
        return run

    conv.train()
    t_train = _interleaved({"cs": cs_train, "plain": plain_train(xp), "plain_cl": plain_train(xl)}, repeats, stat)
    conv.eval()

    def cs_eval():
        with torch.no_grad():
            conv(x)

    def plain_eval(inp):
        def run():
            with torch.no_grad():
                plain(inp, weight, padding=k // 2)
        return run

    t_eval = _interleaved({"cs": cs_eval, "plain": plain_eval(xp), "plain_cl": plain_eval(xl)}, repeats, stat)
    conv.train()
    mem_cs = saved_bytes(lambda: conv(x).sum())
    mem_plain = saved_bytes(lambda: plain(xp, weight, padding=k // 2).sum())
    row = {"case": f"{name} {c_in}->{c_out} ch, {'x'.join(map(str, size))}, batch {batch}, k {k}"}
    for mode, t in (("train", t_train), ("eval", t_eval)):
        row[f"{mode}_cs_ms"] = 1e3 * t["cs"]
        row[f"{mode}_plain_ms"] = 1e3 * t["plain"]
        row[f"{mode}_plain_cl_ms"] = 1e3 * t["plain_cl"]
        row[f"{mode}_ratio"] = t["cs"] / t["plain"]
        row[f"{mode}_ratio_cl"] = t["cs"] / t["plain_cl"]
    row["saved_cs_mb"] = mem_cs / 2**20
    row["saved_plain_mb"] = mem_plain / 2**20
    return row


def bench_kernels(repeats, stat=statistics.median):
    rows = []
    for name, metric, c_in, c_out, k in KERNEL_CASES:
        kernel = CliffordSteerableKernel(CliffordAlgebra(metric), c_in, c_out, k)

        def gen(kernel=kernel):
            kernel().sum().backward()

        with torch.no_grad():
            t_fwd = time_call(kernel, repeats, stat)
        t_fb = time_call(gen, max(3, repeats // 3), stat)
        rows.append({"kernel": name, "points": k ** len(metric), "forward_ms": 1e3 * t_fwd,
                     "fwd_bwd_ms": 1e3 * t_fb, "saved_mb": saved_bytes(lambda kernel=kernel: kernel().sum()) / 2**20})
    return rows


def _table(rows, markdown):
    keys = list(rows[0])
    fmt = [lambda v: f"{v:.2f}" if isinstance(v, float) else str(v)] * len(keys)
    cells = [[f(r[k]) for f, k in zip(fmt, keys)] for r in rows]
    if markdown:
        out = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
        out += ["| " + " | ".join(c) + " |" for c in cells]
        return "\n".join(out)
    widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
    lines = ["  ".join(k.ljust(w) for k, w in zip(keys, widths))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--markdown", action="store_true", help="print Markdown tables")
    p.add_argument("--stat", choices=sorted(STAT), default="median",
                   help="statistic over repetitions (min is the least noisy on a shared machine)")
    args = p.parse_args(argv)
    stat = STAT[args.stat]
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32, CPU")
    print(f"\nCS-conv vs plain conv of the same dense weight shape ({args.stat} ms of {args.repeats};"
          " train = forward+backward incl. kernel generation; eval = cached kernel, no grad;"
          "\nplain = contiguous NCHW input, plain_cl = channels-last input; ratio = cs / plain)")
    print(_table([bench_case(*c, args.repeats, stat) for c in CASES], args.markdown))
    print("\nKernel generation (dense weight from the kernel network)")
    print(_table(bench_kernels(args.repeats, stat), args.markdown))


if __name__ == "__main__":
    main()
