"""Copy a generated data folder keeping only trajectories whose fields stay bounded.

The CPU-size Navier-Stokes generator (``--preset small``) occasionally produces
frames with solver blow-ups (velocities of 10^2..10^3 where the rest of the data
is O(1)); a handful of them dominate normalisation statistics and MSE means.
This writes ``DST/<split>.h5`` with the trajectories of ``SRC/<split>.h5`` whose
every stored component satisfies ``|value| <= --max-abs``, same layout and
attributes (``num_trajectories`` updated, ``filtered_from`` / ``kept_indices`` added).

    .venv/bin/python benchmarks/filter_data.py data/bench-ns data/bench-ns-clean --max-abs 10
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def bounded_indices(group, max_abs: float, fields) -> list[int]:
    n = next(iter(group.values())).shape[0]
    keep = []
    for i in range(n):
        if all(np.abs(group[k][i]).max() <= max_abs for k in fields):
            keep.append(i)
    return keep


def filter_file(src: Path, dst: Path, max_abs: float) -> tuple[int, int]:
    """Write the bounded trajectories of ``src`` to ``dst``; returns (kept, total)."""
    import h5py

    with h5py.File(src, "r") as f:
        (gname,) = list(f.keys())
        g = f[gname]
        n = next(iter(g.values())).shape[0]
        fields = [k for k, v in g.items() if v.ndim >= 3]  # the field arrays (N, T, *grid[, C])
        keep = bounded_indices(g, max_abs, fields)
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(f".{dst.name}.tmp")
        with h5py.File(tmp, "w") as o:
            for k, v in f.attrs.items():
                o.attrs[k] = v
            og = o.create_group(gname)
            for k, v in g.attrs.items():
                og.attrs[k] = v
            for k, v in g.items():
                og.create_dataset(k, data=v[keep] if v.shape and v.shape[0] == n else v[()])
            o.attrs["num_trajectories"] = len(keep)
            o.attrs["filtered_from"] = str(src)
            o.attrs["kept_indices"] = json.dumps(keep)
            o.attrs["filter"] = f"max |component| <= {max_abs}"
        tmp.replace(dst)
    return len(keep), n


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src")
    p.add_argument("dst")
    p.add_argument("--max-abs", type=float, default=10.0)
    p.add_argument("--splits", nargs="+", default=["train", "valid", "test"])
    args = p.parse_args(argv)
    out = {}
    for s in args.splits:
        src = Path(args.src) / f"{s}.h5"
        if src.is_file():
            kept, total = filter_file(src, Path(args.dst) / f"{s}.h5", args.max_abs)
            out[s] = (kept, total)
            print(f"{s}: kept {kept} of {total} trajectories (max |component| <= {args.max_abs})")
    return out


if __name__ == "__main__":
    main()
