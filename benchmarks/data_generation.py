"""Data generation speed and file size per task and preset; Maxwell 2D+1 fields against pycharge.

Generates ``--num`` trajectories per (task, preset) with ``--workers`` processes
into a temporary folder (wall-clock time includes worker start-up and JIT
compilation, as a user would see it) and prints a table of trajectories per
minute and file sizes.

    python benchmarks/data_generation.py                       # small presets
    python benchmarks/data_generation.py --runs navier-stokes:small:64 maxwell3d:pdearena:4

``--maxwell2d-vs-pycharge`` instead times the Liénard-Wiechert fields of one ``maxwell2d``
frame (all points of the preset's fine grid, one source draw, ``variant="consistent"``, the
one pycharge can express) computed by cscnn's vectorised solver and by pycharge 2's
``potentials_and_fields`` (JAX, jit-compiled before timing), on the same frames, repetitions
interleaved, one thread; it prints the seconds per frame of both, their ratio and the
largest relative difference of the fields (``--results PATH`` also writes a Markdown page):

    OMP_NUM_THREADS=1 python benchmarks/data_generation.py --maxwell2d-vs-pycharge --preset paper --repeats 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

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


def maxwell2d_vs_pycharge(preset: str = "paper", frames=(0, 128), repeats: int = 3, seed: int = 0) -> dict:
    """Seconds per frame of cscnn's Liénard-Wiechert fields and pycharge 2's on the same frames
    (interleaved repetitions), their ratio and the largest relative difference of the fields."""
    from importlib.metadata import version

    import numpy as np
    import torch
    from _common import load_average

    from cscnn.data import resolve_params
    from cscnn.data.tasks import maxwell2d as m2

    torch.set_num_threads(1)
    # XLA's CPU thread pool off: pycharge on one thread too (set before JAX is imported)
    os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
    load_before = load_average()
    params = resolve_params("maxwell2d", preset)
    src = m2.sample_sources(params, np.random.RandomState(seed))
    axis = np.linspace(-params["lim"], params["lim"], params["grid"])
    x, y = (a.ravel() for a in np.meshgrid(axis, axis, indexing="ij"))
    times = np.asarray(frames) * params["dt"]
    pycharge = m2.pycharge_field_function(src)
    t0 = time.perf_counter()
    pycharge(x, y, times[:1])  # jit compilation, not timed below
    compile_s = time.perf_counter() - t0
    timings = {"ours": ([], []), "pycharge": ([], [])}  # (wall, cpu) seconds per frame
    err = 0.0

    def timed(name, fn):
        wall, cpu = time.perf_counter(), time.process_time()
        out = fn()
        timings[name][0].append(time.perf_counter() - wall)
        timings[name][1].append(time.process_time() - cpu)
        return out

    for _ in range(repeats):
        for t in times:
            ours, converged = timed("ours", lambda t=t: m2.faraday_fields(src, x, y, [t], "consistent"))
            ref = timed("pycharge", lambda t=t: pycharge(x, y, [t]))
            rel = np.linalg.norm(ours - ref, axis=-1) / np.linalg.norm(ref, axis=-1)
            err = max(err, float(rel.max()))
    med = {f"{name}_{kind}": float(np.median(v[i])) for name, v in timings.items()
           for i, kind in enumerate(("wall_s", "cpu_s"))}
    return {"preset": preset, "grid": params["grid"], "sources": len(src.q), "frames": list(frames),
            "repeats": repeats, "timings": timings, **med, "ratio_wall": med["pycharge_wall_s"] / med["ours_wall_s"],
            "ratio_cpu": med["pycharge_cpu_s"] / med["ours_cpu_s"], "max_rel_diff": err,
            "pycharge_compile_s": compile_s, "converged": bool(converged), "load_before": load_before,
            "numpy": np.__version__, "pycharge": version("pycharge"), "jax": version("jax")}


def _maxwell2d_page(r: dict, command: str) -> str:
    from _common import machine_info

    m = machine_info()

    def fmt(v):
        return ", ".join(f"{s:.3f}" for s in v)

    return "\n".join([
        "# Maxwell 2D+1 data: cscnn's field solver against pycharge",
        "",
        f"Command: `{command}` (script: `benchmarks/data_generation.py`).",
        f"Machine: {m['cpu_model']}, {m['cpus']} cores shared with other jobs (load average {r['load_before']} "
        f"before, {m['load']} after); Python {m['python']}, torch {m['torch']}, numpy {r['numpy']}, "
        f"pycharge {r['pycharge']}, jax {r['jax']}; one thread; {time.strftime('%Y-%m-%d', time.gmtime())} (UTC).",
        "",
        f"One source draw of the `{r['preset']}` preset ({r['sources']} charges, `variant=\"consistent\"`, the one "
        f"pycharge can express), the Liénard-Wiechert fields (Ex, Ey, c Bz) at all {r['grid']}x{r['grid']} points "
        f"of frames {r['frames']}, {r['repeats']} repetitions, cscnn and pycharge 2 (`potentials_and_fields`, "
        f"JAX, jit-compiled before timing: {r['pycharge_compile_s']:.1f} s) alternating frame by frame.",
        "",
        "| | CPU seconds per frame (median) | wall seconds per frame (median) | CPU seconds, every frame |",
        "|---|---|---|---|",
        f"| cscnn (`faraday_fields`) | {r['ours_cpu_s']:.3f} | {r['ours_wall_s']:.3f} | "
        f"{fmt(r['timings']['ours'][1])} |",
        f"| pycharge 2 | {r['pycharge_cpu_s']:.3f} | {r['pycharge_wall_s']:.3f} | "
        f"{fmt(r['timings']['pycharge'][1])} |",
        "",
        f"Ratio pycharge / cscnn (medians): **{r['ratio_cpu']:.2f}x** in CPU time, {r['ratio_wall']:.2f}x in wall "
        f"time. Largest relative difference of the fields (vector norm per point): {r['max_rel_diff']:.1e}.",
        "",
        "The machine was shared with other jobs: both solvers ran alternating under the same load, one thread "
        "each (CPU time counts every thread of the process), and the CPU-time ratio is the number to read. The "
        "rescaling and the resize of a frame are not included (a few milliseconds).",
        "",
    ])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", nargs="+", default=DEFAULT_RUNS, help="task:preset:num entries")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--maxwell2d-vs-pycharge", action="store_true",
                    help="time maxwell2d's field solver against pycharge 2 on the same frames instead")
    ap.add_argument("--preset", default="paper", help="maxwell2d preset for --maxwell2d-vs-pycharge")
    ap.add_argument("--frames", type=int, nargs="+", default=[0, 128], help="frame indices (--maxwell2d-vs-pycharge)")
    ap.add_argument("--repeats", type=int, default=3, help="repetitions (--maxwell2d-vs-pycharge)")
    ap.add_argument("--results", default=None, help="Markdown page for --maxwell2d-vs-pycharge")
    args = ap.parse_args(argv)
    if args.maxwell2d_vs_pycharge:
        import json

        r = maxwell2d_vs_pycharge(args.preset, args.frames, args.repeats)
        print(json.dumps(r, indent=1))
        if args.results:
            from _common import command_line

            Path(args.results).write_text(_maxwell2d_page(r, command_line()))
        return r
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
