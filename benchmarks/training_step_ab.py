"""A whole CS-ResNet training step (forward, loss, backward, Adam step) with issue 20's last two changes
undone, against today's code, in one process with repetitions interleaved.

Variants (same model shape and initialisation, each its own copy and optimizer), each adding one change:

* ``before``: one kernel-network call per group of equal-shaped kernels, a conv alone in its group
  evaluating its own kernel; the network differentiated by autograd of its composite
  (:func:`cscnn.nn.kernel_bank._run_layers`); torch's default Adam (on CPU: one update per parameter
  tensor, about ten operators each);
* ``+ hand-written backward``: the kernel network as one autograd node
  (:class:`cscnn.nn.kernel_bank._Network`);
* ``+ one network call``: all kernel networks of the model in one call
  (:func:`cscnn.nn.kernel_bank.evaluate_kernel_groups`);
* ``today``: and cscnn's training optimizer (:func:`cscnn.training.module.adam`: torch's fused Adam).

Configurations: ``cpu`` is step_speed.py's (the paper's architecture at hidden 8, 64x64, batch 4),
``study`` the CS-ResNet of benchmarks/tasks_study.py on Navier-Stokes (hidden 8, blocks (1, 1),
kernel 5, network 3x8, 16x16, batch 8).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/training_step_ab.py --threads 1 --repeats 9
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit_markdown, load_average, markdown_table, run_footer  # noqa: E402
from conv_speed import STAT, _interleaved  # noqa: E402
from step_speed import CPU_CONFIG, STUDY_CONFIG, TINY_CONFIG, build_models, count_operators, describe, matched_resnet  # noqa: E402

from cscnn.nn import conv as conv_module  # noqa: E402
from cscnn.nn import kernel_bank  # noqa: E402
from cscnn.training.module import adam  # noqa: E402

CONFIGS = {
    "cpu": CPU_CONFIG,
    "study": STUDY_CONFIG,
    "tiny": TINY_CONFIG,
}
VARIANTS = ("before", "+ hand-written backward", "+ one network call", "today")
_NETWORK_APPLY = kernel_bank._Network.apply
_GROUPS = conv_module.evaluate_kernel_groups


def _per_group(groups):
    """The bank as before: one call per group, a lone kernel through its own modules."""
    return [kernel_bank.evaluate_kernels(g, g[0].grid) for g in groups]


def _composite(meta, x, *params):
    gate, num_layers, tables, eps = meta
    return kernel_bank._run_layers(x, list(params), gate, num_layers, tables, eps)


def training_step(model, x, opt, composite: bool, per_group: bool):
    """A closure: zero grads, forward, MSE to zero, backward, optimizer step."""
    model.train()

    def step():
        kernel_bank._Network.apply = _composite if composite else _NETWORK_APPLY
        conv_module.evaluate_kernel_groups = _per_group if per_group else _GROUPS
        try:
            opt.zero_grad(set_to_none=True)
            model(x).square().mean().backward()
            opt.step()
        finally:
            kernel_bank._Network.apply = _NETWORK_APPLY
            conv_module.evaluate_kernel_groups = _GROUPS

    return step


def run(cfg: dict, repeats: int, stat) -> dict:
    cs, x = build_models(cfg, "cpu")["cs"]
    steps = {}
    for name in VARIANTS:
        model = copy.deepcopy(cs)
        opt = adam(model.parameters(), lr=1e-4) if name == "today" else torch.optim.Adam(model.parameters(), lr=1e-4)
        steps[name] = training_step(model, x, opt, composite=name == "before",
                                    per_group=name in ("before", "+ hand-written backward"))
    resnet, width = matched_resnet(cfg, sum(p.numel() for p in cs.parameters()))
    steps[f"ResNet (hidden {width}, parameter-matched), fused Adam"] = training_step(
        resnet, x, adam(resnet.parameters(), lr=1e-4), composite=False, per_group=False)
    ops = {name: count_operators(step) for name, step in steps.items()}
    times = _interleaved(steps, repeats, stat)
    return {"ms": {k: 1e3 * v for k, v in times.items()}, "ops": ops}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", nargs="+", default=["study", "cpu"], choices=sorted(CONFIGS))
    p.add_argument("--repeats", type=int, default=9)
    p.add_argument("--stat", choices=sorted(STAT), default="min")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", default=None, help="write a Markdown report here")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    load_before = load_average()
    lines = ["# CS-ResNet training step: issue 20's hand-written kernel-network backward and fused Adam, A/B", ""]
    results = {}
    for name in args.configs:
        cfg = CONFIGS[name]
        res = results[name] = run(cfg, args.repeats, STAT[args.stat])
        base = res["ms"]["before"]
        today = res["ms"]["today"]
        rows = [[v, f"{ms:.1f}", f"{ms / base:.2f}", f"{ms / today:.2f}", str(res["ops"][v])]
                for v, ms in res["ms"].items()]
        lines += [f"**{name}**: {describe(cfg)}; {args.stat} of {args.repeats} interleaved steps; the last row is "
                  "the baseline ResNet of benchmarks/tasks_study.py's comparisons at the CS-ResNet's parameter count",
                  "", markdown_table(["variant", "step ms (with optimizer)", "/ before", "/ today",
                                      "operators per step"], rows), ""]
    lines += run_footer(argv, __file__, load_before)
    emit_markdown(lines, args.out)
    return results


if __name__ == "__main__":
    main()
