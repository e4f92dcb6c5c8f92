"""Data generation speed and file size per task and preset.

Generates ``--num`` trajectories per (task, preset) with ``--workers`` processes
into a temporary folder (wall-clock time includes worker start-up and JIT
compilation, as a user would see it) and prints a table of trajectories per
minute and file sizes.

    python benchmarks/data_generation.py                       # small presets
    python benchmarks/data_generation.py --runs navier-stokes:small:64 maxwell3d:pdearena:4
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

DEFAULT_RUNS = ["navier-stokes:small:64", "maxwell3d:small:16", "maxwell2d:small:4"]


def measure(task: str, preset: str, num: int, workers: int, seed: int = 0) -> dict:
    from cscnn.data import generate_dataset

    tmp = Path(tempfile.mkdtemp(prefix="cscnn-bench-"))
    try:
        t0 = time.perf_counter()
        path = generate_dataset(task, "train", num, tmp, preset=preset, workers=workers, seed=seed, progress=False)
        wall = time.perf_counter() - t0
        size = path.stat().st_size
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "task": task,
        "preset": preset,
        "num": num,
        "workers": workers,
        "seconds": wall,
        "traj_per_min": 60 * num / wall,
        "mb_per_traj": size / num / 2**20,
        "mb_total": size / 2**20,
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", nargs="+", default=DEFAULT_RUNS, help="task:preset:num entries")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    rows = []
    print(f"cpus: {os.cpu_count()}, workers: {args.workers}, load average: {os.getloadavg()[0]:.1f}", flush=True)
    header = f"{'task':<14} {'preset':<9} {'num':>4} {'seconds':>8} {'traj/min':>9} {'MB/traj':>8} {'MB total':>9}"
    print(header, flush=True)
    for run in args.runs:
        task, preset, num = run.split(":")
        r = measure(task, preset, int(num), args.workers)
        rows.append(r)
        print(
            f"{r['task']:<14} {r['preset']:<9} {r['num']:>4} {r['seconds']:>8.1f} {r['traj_per_min']:>9.2f} "
            f"{r['mb_per_traj']:>8.2f} {r['mb_total']:>9.1f}",
            flush=True,
        )
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    return rows


if __name__ == "__main__":
    main()
