"""Parameter counts of every registered model at the paper's configurations.

The CS-ResNet uses the paper's widths (48 multivector channels for Navier-Stokes, 12 for Maxwell
3D and 2D+1) and the ResNet the paper's 96 channels for Navier-Stokes; every other model's width
is picked by ``cscnn.models.match_width`` to come closest to the CS-ResNet's count. The CS models
use the paper's 1x1 CS-convs (``pointwise="kernel"``); one extra row per task counts the CS-ResNet
with ``pointwise="linear"`` (MVLinear 1x1 layers) at the same width.

    python benchmarks/param_counts.py                 # all tasks, markdown table
    python benchmarks/param_counts.py --task ns       # one task
    python benchmarks/param_counts.py --skip steerable_resnet
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch

from cscnn.models import MODELS, build_model, count_parameters, match_width

# task: (metric, in_channels, out_channels, {model: fixed width}, {model: extra kwargs})
TASKS = {
    "ns": ((1, 1), 4, 1, {"cs_resnet": 48, "resnet": 96}, {"fno": {"modes": 16}, "gfno": {"modes": 16}}),
    "maxwell3d": ((1, 1, 1), 4, 1, {"cs_resnet": 12}, {"fno": {"modes": 8}, "gfno": {"modes": 8}}),
    "maxwell2d+1": ((-1, 1, 1), 1, 1, {"cs_resnet": 12}, {"fno": {"modes": 8}, "gfno": {"modes": 8}}),
}
#: variants of the CS models at their parent's paper width (their extra parameters are the point)
SAME_WIDTH = {"cond_cs_resnet": "cs_resnet", "cs_resnet_two_sided": "cs_resnet"}
TITLES = {"ns": "Navier-Stokes 2D, Cl(2,0), 4 -> 1 time steps",
          "maxwell3d": "Maxwell 3D, Cl(3,0), 4 -> 1 time steps",
          "maxwell2d+1": "Maxwell 2D+1 (spacetime), Cl(1,2), 1 -> 1 field (time is a grid axis)"}
UNITS = {"cs_resnet": "multivector channels", "cs_unet": "base multivector channels",
         "cond_cs_resnet": "multivector channels", "cond_cs_unet": "base multivector channels",
         "cs_resnet_two_sided": "multivector channels",
         "resnet": "scalar channels", "clifford_resnet": "multivector channels",
         "steerable_resnet": "regular O(n) fields", "fno": "scalar channels",
         "gfno": "regular fields of the grid symmetries"}


def table(task: str, skip: set[str]) -> list[str]:
    metric, c_in, c_out, fixed, extra = TASKS[task]
    target = count_parameters(build_model("cs_resnet", metric, c_in, c_out, fixed["cs_resnet"]))
    rows = [f"### {TITLES[task]}", "",
            "| model | hidden width | params | vs CS-ResNet | width chosen by |",
            "|---|---|---|---|---|"]
    for name in MODELS:
        if name in skip:
            continue
        kw = dict(extra.get(name, {}))
        search = {}
        if name == "steerable_resnet":
            # escnn builds are slow (about a minute per model in 3D at k = 7): skip its He init, which does
            # not change the count, and trust the exact quadratic count-vs-width fit (3 tiny builds)
            kw["initialize"], search["exact_quadratic"] = False, True
        t0 = time.time()
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", "Initializing zero-element tensors")  # neuraloperator, width 1
                if name in fixed:
                    width, how = fixed[name], "paper"
                elif SAME_WIDTH.get(name) in fixed:
                    width, how = fixed[SAME_WIDTH[name]], f"{SAME_WIDTH[name]}'s width"
                else:
                    width = match_width(name, metric, c_in, c_out, target, max_width=512, **search, **kw)
                    how = "match_width" + (" (exact quadratic fit)" if search else "")
                n = count_parameters(build_model(name, metric, c_in, c_out, width, **kw))
        except (ImportError, ValueError) as err:
            why = "library missing" if isinstance(err, ImportError) else "not for this metric"
            rows.append(f"| {name} | - | - | - | n/a ({why}) |")
            print(f"  [{task}] {name}: n/a ({err})", flush=True)
            continue
        rows.append(f"| {name} | {width} ({UNITS[name]}) | {n:,} | {n / target:.2f} | {how} |")
        print(f"  [{task}] {name}: {n:,} params at width {width} ({time.time() - t0:.1f} s)", flush=True)
        if name == "cs_resnet":
            n = count_parameters(build_model(name, metric, c_in, c_out, width, pointwise="linear"))
            rows.append(f"| cs_resnet, pointwise=\"linear\" | {width} ({UNITS[name]}) | {n:,} | {n / target:.2f} | "
                        f"{how} |")
    return rows + [""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=sorted(TASKS), action="append")
    parser.add_argument("--skip", action="append", default=[], choices=sorted(MODELS))
    args = parser.parse_args()
    torch.set_num_threads(1)
    lines = []
    for task in args.task or list(TASKS):
        lines += table(task, set(args.skip))
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    main()
