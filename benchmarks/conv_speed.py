"""CS-conv speed against a plain torch conv with the same dense weight shape, in both memory layouts.

Prints one table, all numbers from the same run with repetitions interleaved (ratios
are what to read: the machine is shared and noisy), and the CPU model. ``plain`` is
the torch conv on a contiguous NC(D)HW input, ``plain_cl`` on a channels-last input;
``*_ratio_best`` is CS / the faster of the two, and ``*_layout`` the layout the CS-conv
chose (``cscnn.nn.layout``). Each case is timed at two positions in a network (``position``):
``between`` layers (the input is an activation that needs a gradient, and the CS-conv gets the
field in the memory order of its chosen layout, as the previous CS-conv's output has it, just as
the plain convs get their inputs in the layout timed) and ``first`` (input data without gradient,
the CS-conv's field contiguous (B, C, *spatial, n_blades), one extra copy). Usage::

    .venv/bin/python benchmarks/conv_speed.py [--repeats 15] [--threads 1] [--stat min] [--markdown]
        [--position both|between|first] [--upstream dense|sum]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    STAT,
    channels_last,
    interleaved,
    load_average,
    machine_info,
    precision,
    saved_bytes,
    time_call,
)

from cscnn import CliffordAlgebra  # noqa: E402
from cscnn.nn import CliffordSteerableConv, CliffordSteerableKernel  # noqa: E402
from cscnn.nn.functional import conv_nd  # noqa: E402
from cscnn.nn.layout import channels_to_fields, choose_layout, fields_to_channels, layout_choices  # noqa: E402

CASES = [
    # name, metric, c_in, c_out, spatial size, batch, kernel size
    ("2D", (1, 1), 16, 16, (64, 64), 4, 7),
    ("3D", (1, 1, 1), 4, 4, (24, 24, 24), 2, 5),
]
TINY_CASES = [("2D", (1, 1), 2, 2, (8, 8), 1, 3), ("3D", (1, 1, 1), 1, 1, (4, 4, 4), 1, 3)]
KERNEL_CASES = [
    ("2D 16->16 k7", (1, 1), 16, 16, 7),
    ("3D 4->4 k5", (1, 1, 1), 4, 4, 5),
    ("R^{1,2} 12->12 k7", (-1, 1, 1), 12, 12, 7),
    ("4D 4->4 k5", (-1, 1, 1, 1), 4, 4, 5),
]
TINY_KERNEL_CASES = [("2D 2->2 k3", (1, 1), 2, 2, 3)]


#: gradients the timed training steps can back-propagate (see :func:`upstream_backward`)
UPSTREAM = ("dense", "sum")


def upstream_backward(upstream: str = "dense"):
    """``backward(y, key)`` for the timed training steps: ``"dense"`` back-propagates a fixed random
    gradient with the output's memory layout (drawn once per ``key``), as a following layer would
    hand back in training; ``"sum"`` back-propagates ``y.sum()``, whose gradient is a stride-0
    expanded tensor that some conv backends handle much more slowly in one layout than the other."""
    if upstream not in UPSTREAM:
        raise ValueError(f"upstream must be one of {UPSTREAM}, got {upstream!r}")
    grads: dict = {}

    def backward(y: torch.Tensor, key) -> None:
        if upstream == "sum":
            y.float().sum().backward()
            return
        g = grads.get(key)
        if g is None or g.shape != y.shape or g.stride() != y.stride() or g.dtype != y.dtype:
            g = grads[key] = torch.randn_like(y)  # keeps y's strides (memory layout)
        y.backward(g)

    return backward


#: where in a network the timed conv sits (see :func:`bench_case`)
POSITIONS = ("between", "first")


def bench_case(name, metric, c_in, c_out, size, batch, k, repeats, stat=statistics.median, device="cpu",
               prec="fp32", upstream="dense", position="between"):
    """One CS-conv against the plain conv of its dense weight shape in both layouts: times (ms), ratios,
    the layout the CS-conv chose and the bytes autograd saves (``prec``: see ``_common.PRECISIONS``;
    ``upstream``: the gradient fed to backward, see :func:`upstream_backward`).

    ``position="between"``: the conv sits between two layers of a network, so its input is an
    activation that needs a gradient, and the CS-conv gets the field in the memory order of its
    chosen layout (the order the previous CS-conv's output has), as the plain convs get theirs in the
    layout timed. ``"first"``: the network's first layer, input data without gradient, the CS-conv's
    field contiguous (B, C, *spatial, n_blades), which costs it one copy into its layout."""
    if position not in POSITIONS:
        raise ValueError(f"position must be one of {POSITIONS}, got {position!r}")
    backward = upstream_backward(upstream)
    alg = CliffordAlgebra(metric)
    n = alg.n_blades
    conv = CliffordSteerableConv(alg, c_in, c_out, k, bias=False).to(device)
    between = position == "between"
    x = torch.randn(batch, c_in, *size, n, device=device, requires_grad=between)
    weight = torch.nn.Parameter(torch.randn(c_out * n, c_in * n, *([k] * len(size)), device=device) * 0.01)
    xp = torch.randn(batch, c_in * n, *size, device=device)
    xl = channels_last(xp).requires_grad_(between)  # the same plain conv on a channels-last input
    xp.requires_grad_(between)

    def chosen(train: bool) -> tuple[str, str]:
        """The layout the CS-conv uses for x in train or eval mode (measuring on first use), and its
        label for the table: the layout if measured, "preferred" if the fixed preference applies."""
        conv.train(train)
        probe = x if train else x.detach()
        with torch.set_grad_enabled(train), precision(prec, device):
            conv(probe)
            used = choose_layout(probe, conv.weight, conv.stride, conv._pad, conv.padding_mode, conv.dilation)
        conv.train()
        measured = any(key.input_shape == tuple(x.shape) and key.weight_shape == tuple(weight.shape)
                       and key.device == str(x.device) and key.train == train
                       and key.input_grad == (train and between)  # the input needs a gradient only then
                       for key in layout_choices())
        return used, used if measured else "preferred"

    used = {mode: chosen(mode == "train") for mode in ("train", "eval")}
    layouts = {mode: label for mode, (_, label) in used.items()}
    inputs = {mode: x for mode in layouts}
    if between:
        with torch.no_grad():
            for mode, (lay, _) in used.items():
                inputs[mode] = channels_to_fields(fields_to_channels(x, lay), n).requires_grad_(mode == "train")

    def cs_train():
        conv.zero_grad(set_to_none=True)
        inputs["train"].grad = None
        with precision(prec, device):
            y = conv(inputs["train"])
        backward(y, "cs")

    def plain_train(inp):
        def run():
            weight.grad = inp.grad = None
            with precision(prec, device):
                y = conv_nd(inp, weight, 1, k // 2)
            backward(y, id(inp))
        return run

    def cs_eval():
        with torch.no_grad(), precision(prec, device):
            conv(inputs["eval"])

    def plain_eval(inp):
        def run():
            with torch.no_grad(), precision(prec, device):
                conv_nd(inp, weight, 1, k // 2)
        return run

    conv.train()
    t_train = interleaved({"cs": cs_train, "plain": plain_train(xp), "plain_cl": plain_train(xl)}, repeats, stat,
                           device)
    conv.eval()
    t_eval = interleaved({"cs": cs_eval, "plain": plain_eval(xp), "plain_cl": plain_eval(xl)}, repeats, stat, device)
    conv.train()
    mem_cs = saved_bytes(lambda: conv(inputs["train"]).sum())
    mem_plain = saved_bytes(lambda: conv_nd(xp, weight, 1, k // 2).sum())
    row = {"case": f"{name} {c_in}->{c_out} ch, {'x'.join(map(str, size))}, batch {batch}, k {k}",
           "position": position}
    for mode, t in (("train", t_train), ("eval", t_eval)):
        row[f"{mode}_cs_ms"] = 1e3 * t["cs"]
        row[f"{mode}_plain_ms"] = 1e3 * t["plain"]
        row[f"{mode}_plain_cl_ms"] = 1e3 * t["plain_cl"]
        row[f"{mode}_ratio"] = t["cs"] / t["plain"]
        row[f"{mode}_ratio_cl"] = t["cs"] / t["plain_cl"]
        row[f"{mode}_ratio_best"] = t["cs"] / min(t["plain"], t["plain_cl"])
        row[f"{mode}_layout"] = layouts[mode]
    row["saved_cs_mb"] = mem_cs / 2**20
    row["saved_plain_mb"] = mem_plain / 2**20
    return row


def bench_kernels(repeats, stat=statistics.median, cases=KERNEL_CASES):
    rows = []
    for name, metric, c_in, c_out, k in cases:
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
    p.add_argument("--upstream", choices=UPSTREAM, default="dense",
                   help="gradient back-propagated in the training steps: a fixed random one in the output's "
                        "layout (dense, as in training) or that of y.sum() (a stride-0 expanded tensor)")
    p.add_argument("--position", choices=("both", *POSITIONS), default="both",
                   help="the conv between two layers (input with gradient, field in the conv's layout) or "
                        "first (input without gradient, contiguous field), or both")
    p.add_argument("--tiny", action="store_true", help="toy sizes (for the tests)")
    args = p.parse_args(argv)
    stat = STAT[args.stat]
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    info = machine_info()
    print(f"{info['cpu_model']} ({info['cpu_capability']}), torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, float32, CPU, load average {load_average()}")
    print(f"\nCS-conv vs plain conv of the same dense weight shape ({args.stat} ms of {args.repeats};"
          f" train = forward+backward incl. kernel generation, upstream gradient {args.upstream};"
          " eval = cached kernel, no grad;"
          "\nplain = contiguous NCHW input, plain_cl = channels-last input; position between = input with gradient,"
          " CS field in its layout's memory order; first = input without gradient, contiguous CS field;"
          "\nratio = cs / plain, ratio_best = cs / faster plain; layout = the CS-conv's choice)")
    positions = POSITIONS if args.position == "both" else (args.position,)
    rows = [bench_case(*c, args.repeats, stat, upstream=args.upstream, position=pos)
            for c in (TINY_CASES if args.tiny else CASES) for pos in positions]
    print(_table(rows, args.markdown))
    print("\nKernel generation (dense weight from the kernel network)")
    kernel_rows = bench_kernels(args.repeats, stat, TINY_KERNEL_CASES if args.tiny else KERNEL_CASES)
    print(_table(kernel_rows, args.markdown))
    return {"rows": rows, "kernel_rows": kernel_rows, "machine": info}


if __name__ == "__main__":
    main()
