"""How predictable Maxwell 2D+1 trajectories are: frame correlations and the two trivial floors.

For every trajectory of a ``maxwell2d`` split file (``faraday``: ``(N, T, X, Y, 3)``), optionally
resized to ``--resolution`` points per axis as the data loader resizes (``data.resolution``):

* the frame correlation at lag L: Pearson's correlation of frame t and frame t + L over all
  points and the three components, averaged over t and trajectories (min and max over
  trajectories beside it);
* for blocks of T frames in -> the next T frames out (every start frame, stride 1): the mean
  squared error of the zero predictor (the mean square of the target) and of last-frame
  persistence (the last input frame repeated T times), over points and components, and their
  ratio. A model that learnt anything must end below both.

    python benchmarks/maxwell2d_predictability.py data/study/maxwell2d/test.h5 --resolution 16
"""

from __future__ import annotations

import argparse
import json

import h5py
import numpy as np


def frame_correlation(traj: np.ndarray, lag: int) -> float:
    """Mean over t of the correlation of frames t and t + lag of ``traj (T, ...)``."""
    a = traj[:-lag].reshape(len(traj) - lag, -1)
    b = traj[lag:].reshape(len(traj) - lag, -1)
    a = a - a.mean(1, keepdims=True)
    b = b - b.mean(1, keepdims=True)
    return float(np.mean((a * b).sum(1) / np.sqrt((a * a).sum(1) * (b * b).sum(1))))


def floors(traj: np.ndarray, block: int) -> tuple[float, float]:
    """(zero-predictor MSE, persistence MSE) of ``block -> block`` frame blocks of ``traj (T, ...)``,
    averaged over every start frame."""
    zero, persist = [], []
    for s in range(len(traj) - 2 * block + 1):
        target = traj[s + block:s + 2 * block]
        zero.append(float(np.mean(target**2)))
        persist.append(float(np.mean((target - traj[s + block - 1]) ** 2)))
    return float(np.mean(zero)), float(np.mean(persist))


def analyse(path, split: str | None = None, resolution: int | None = None, lags=(1, 4, 8), blocks=(4, 8, 16, 32),
            limit: int | None = None) -> dict:
    with h5py.File(path, "r") as f:
        split = split or next(iter(f.keys()))
        data = f[split]["faraday"]
        n = len(data) if limit is None else min(limit, len(data))
        trajs = [np.asarray(data[i], dtype=np.float64) for i in range(n)]
        attrs = {k: f.attrs[k] for k in ("preset", "params") if k in f.attrs}
    if resolution is not None:
        from cscnn.data.resize import resize_fields

        trajs = [resize_fields(t, (resolution, resolution)) for t in trajs]
    out = {"file": str(path), "split": split, "trajectories": n, "shape": list(trajs[0].shape),
           "preset": str(attrs.get("preset", "")), "correlation": {}, "blocks": {}}
    for lag in lags:
        c = [frame_correlation(t, lag) for t in trajs]
        out["correlation"][lag] = {"mean": float(np.mean(c)), "min": float(np.min(c)), "max": float(np.max(c))}
    for block in blocks:
        if 2 * block > len(trajs[0]):
            continue
        z, p = zip(*(floors(t, block) for t in trajs))
        ratios = np.array(p) / np.array(z)
        out["blocks"][block] = {"zero": float(np.mean(z)), "persistence": float(np.mean(p)),
                                "ratio": float(np.mean(p) / np.mean(z)), "ratio_min": float(ratios.min()),
                                "ratio_max": float(ratios.max())}
    out["std"] = float(np.std(np.stack(trajs)))
    return out


def markdown(r: dict) -> str:
    shape = "x".join(str(s) for s in r["shape"][:3])
    lines = [f"{r['file']} ({r['split']}, {r['trajectories']} trajectories of {shape} frames x points, std "
             f"{r['std']:.2f})", "",
             "| lag | frame correlation (mean; min-max over trajectories) |", "|---|---|"]
    lines += [f"| {lag} | {c['mean']:.3f} ({c['min']:.3f}-{c['max']:.3f}) |" for lag, c in r["correlation"].items()]
    lines += ["", "| block | zero predictor MSE | persistence MSE | persistence / zero (min-max) |",
              "|---|---|---|---|"]
    lines += [f"| {b} -> {b} | {v['zero']:.3f} | {v['persistence']:.4f} | {v['ratio']:.4f} "
              f"({v['ratio_min']:.4f}-{v['ratio_max']:.4f}) |" for b, v in r["blocks"].items()]
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+", help="maxwell2d split files (HDF5)")
    ap.add_argument("--split", default=None, help="group in the file (default: its only group)")
    ap.add_argument("--resolution", type=int, default=None, help="resize to this many points per axis first")
    ap.add_argument("--limit", type=int, default=None, help="first trajectories only")
    ap.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    args = ap.parse_args(argv)
    for path in args.files:
        r = analyse(path, args.split, args.resolution, limit=args.limit)
        print(json.dumps(r, indent=1) if args.json else markdown(r) + "\n")


if __name__ == "__main__":
    main()
