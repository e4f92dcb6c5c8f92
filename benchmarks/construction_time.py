"""Construction time of large CS-ResNets (target: at most 10 s each on an idle 2-core machine).

Each construction runs in a fresh Python process (imports excluded from the timing), so no cache or
warm allocator helps it: ``CSResNet(CliffordAlgebra((-1, 1, 1)), 4, 1, 48, **kw)`` for the plain, the
conditional and the two-sided kernel head. Wall time (``time.perf_counter``) and the process's CPU time
(``time.process_time``; above the wall time when torch uses several threads) are reported with the
load average before and after, which says whether the machine was idle.

    .venv/bin/python benchmarks/construction_time.py --out docs/results/construction_time.md
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit_markdown, load_average, markdown_table, run_footer  # noqa: E402

CASES = {"plain": {}, "conditional=True": {"conditional": True},
         'kernel_head="two_sided"': {"kernel_head": "two_sided"}}
_CHILD = """
import json, sys, time
import torch
from cscnn import CliffordAlgebra
from cscnn.models import CSResNet
if {threads}:
    torch.set_num_threads({threads})
kw = json.loads(sys.argv[1])
w0, c0 = time.perf_counter(), time.process_time()
model = CSResNet(CliffordAlgebra({metric}), 4, 1, {hidden}, **kw)
print(json.dumps({{"wall": time.perf_counter() - w0, "cpu": time.process_time() - c0,
                  "params": sum(p.numel() for p in model.parameters()), "threads": torch.get_num_threads()}}))
"""


def construct(kw: dict, metric, hidden: int, threads: int | None) -> dict:
    """Build one CSResNet in a fresh process; its wall and CPU seconds, parameter count and threads."""
    code = _CHILD.format(metric=tuple(metric), hidden=hidden, threads=threads or 0)
    out = subprocess.run([sys.executable, "-c", code, json.dumps(kw)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hidden", type=int, default=48)
    p.add_argument("--metric", type=int, nargs="+", default=[-1, 1, 1])
    p.add_argument("--threads", type=int, default=None, help="torch threads in each process (default: torch's)")
    p.add_argument("--repeats", type=int, default=1, help="fresh processes per case (the minimum is reported)")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    load_before = load_average()
    rows, res = [], {}
    for name, kw in CASES.items():
        runs = [construct(kw, args.metric, args.hidden, args.threads) for _ in range(args.repeats)]
        best = min(runs, key=lambda r: r["wall"])
        res[name] = best
        rows.append([name, f"{best['params']:,}", f"{best['wall']:.1f}", f"{best['cpu']:.1f}", str(best["threads"]),
                     "met" if best["wall"] <= 10 else "not met"])
    lines = [f"# Construction of `CSResNet(CliffordAlgebra({tuple(args.metric)}), 4, 1, {args.hidden}, **kw)`", "",
             f"Fresh process per construction, imports excluded; minimum of {args.repeats}.", "",
             markdown_table(["kw", "params", "wall s", "CPU s", "torch threads", "target 10 s wall"], rows), "",
             *run_footer(argv, __file__, load_before)]
    emit_markdown(lines, args.out)
    return res


if __name__ == "__main__":
    main()
