"""Sparse (gather) vs dense (weighted Cayley tensor) steerable geometric product.

The layer computes ``out_o = sum_i sum_paths W[o,i,path] <x_i^(a) y_i^(b)>_c``. The
dense form materialises an (out, in, 2^n, 2^n, 2^n) tensor per call; the sparse
form uses that the Cayley table has one nonzero per (left, output) blade pair.
Usage::

    .venv/bin/python benchmarks/geometric_product.py [--batch 256] [--channels 16]
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

import torch

from cscnn import CliffordAlgebra
from cscnn.nn.product import weighted_geometric_product

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conv_speed import time_call  # noqa: E402
from dense_product import dense_weighted_geometric_product  # noqa: E402


def _best(fn, repeats):
    """Minimum time of ``repeats`` calls: on a shared machine the least noisy estimate."""
    return time_call(fn, repeats, min)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--channels", type=int, default=16)
    p.add_argument("--repeats", type=int, default=21)
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    c = args.channels
    print(f"batch {args.batch}, {c} -> {c} channels, float32, {torch.get_num_threads()} threads, "
          f"best of {args.repeats} (ms)")
    print(f"{'metric':14} {'paths':>5} {'sparse fwd':>11} {'dense fwd':>10} {'speed-up':>9} "
          f"{'sparse f+b':>11} {'dense f+b':>10} {'speed-up':>9} {'dense W MB':>11}")
    for metric in [(1, 1), (1, 1, 1), (-1, 1, 1, 1)]:
        alg = CliffordAlgebra(metric)
        n = alg.n_blades
        x = torch.randn(args.batch, c, n, requires_grad=True)
        y = torch.randn(args.batch, c, n, requires_grad=True)
        w = torch.randn(c, c, alg.n_paths, requires_grad=True)
        gm, po = alg.gather_matrix().float(), alg.path_onehot().float()
        assert torch.allclose(weighted_geometric_product(alg, x, y, w, gm, po),
                              dense_weighted_geometric_product(alg, x, y, w), atol=1e-3, rtol=1e-4)
        sparse = functools.partial(weighted_geometric_product, alg, x, y, w, gm, po)
        dense = functools.partial(dense_weighted_geometric_product, alg, x, y, w)
        with torch.no_grad():
            sf, df = _best(sparse, args.repeats), _best(dense, args.repeats)
        sb = _best(lambda f=sparse: f().sum().backward(), args.repeats)
        db = _best(lambda f=dense: f().sum().backward(), args.repeats)
        mb = c * c * n**3 * 4 / 2**20
        print(f"{str(metric):14} {alg.n_paths:5d} {1e3 * sf:11.2f} {1e3 * df:10.2f} {df / sf:8.1f}x "
              f"{1e3 * sb:11.2f} {1e3 * db:10.2f} {db / sb:8.1f}x {mb:11.2f}")


if __name__ == "__main__":
    main()
