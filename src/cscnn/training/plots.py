"""Figures: target / prediction / error panels per field, rollout-error curves, rollout GIFs.

Frames are multivector fields ``(*spatial, 2^n)``; they are split into physical
fields with :func:`cscnn.training.metrics.split_fields`. 3D grids are shown as
their middle slice along the last axis; vector fields as their components.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .metrics import split_fields

__all__ = ["field_images", "plot_fields", "plot_rollout_mse", "rollout_gif", "save_figure"]


def _backend():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path, dpi: int = 90) -> Path:
    """Lay out, write (creating folders) and close ``fig``; returns the path."""
    plt = _backend()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def field_images(task, frame: torch.Tensor) -> dict[str, np.ndarray]:
    """One frame ``(*spatial, 2^n)`` -> ``{label: 2D array}``, one image per field component."""
    fields = split_fields(task, frame.detach().double().cpu())
    out = {}
    for name, v in fields.items():
        comps = v.shape[-1]
        for c in range(comps):
            img = v[..., c]
            while img.ndim > 2:  # middle slice of extra (3D) axes
                img = img[..., img.shape[-1] // 2]
            label = name if comps == 1 else f"{name}[{c}]"
            out[label] = img.numpy()
    return out


def plot_fields(task, target: torch.Tensor, prediction: torch.Tensor, path, title: str | None = None) -> Path:
    """Save a PNG with one row per field component: target, prediction, |error|.

    Args:
        target, prediction: one frame each, ``(*spatial, 2^n)``.
    """
    plt = _backend()
    t_img, p_img = field_images(task, target), field_images(task, prediction)
    rows = list(t_img)
    fig, axes = plt.subplots(len(rows), 3, figsize=(9, 2.8 * len(rows)), squeeze=False)
    for r, name in enumerate(rows):
        t, p = t_img[name], p_img[name]
        lo, hi = float(min(t.min(), p.min())), float(max(t.max(), p.max()))
        err = np.abs(p - t)
        for c, (img, lab, kw) in enumerate(((t, "target", {"vmin": lo, "vmax": hi}),
                                            (p, "prediction", {"vmin": lo, "vmax": hi}),
                                            (err, "|error|", {"cmap": "magma"}))):
            ax = axes[r, c]
            im = ax.imshow(img.T, origin="lower", **kw)
            ax.set_title(f"{name}: {lab}" + (f" (mse {float((err ** 2).mean()):.2e})" if c == 2 else ""), fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def plot_rollout_mse(curves: dict, path, title: str = "rollout MSE", time_history: int | None = None) -> Path:
    """Save a log-scale plot of rollout MSE per predicted step; ``curves``: {label: [mse per step]}."""
    plt = _backend()
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for label, ys in curves.items():
        xs = np.arange(1, len(ys) + 1)
        ax.plot(xs, ys, marker="o", ms=3, label=label)
    ax.set_yscale("log")
    ax.set_xlabel("predicted step" + (f" (after {time_history} input frames)" if time_history else ""))
    ax.set_ylabel("MSE")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if len(curves) > 1:
        ax.legend(fontsize=8)
    return save_figure(fig, path)


def rollout_gif(task, target: torch.Tensor, prediction: torch.Tensor, path, fps: int = 4,
                fields: list[str] | None = None, progress: bool = False) -> Path:
    """Animated GIF (matplotlib PillowWriter) of a rollout: per field component, target,
    prediction and |error| side by side, one frame per predicted step.

    Args:
        target, prediction: ``(S, *spatial, 2^n)``.
        fields: component labels to show (default: all).
        progress: a progress bar over the frames written.
    """
    plt = _backend()
    from matplotlib.animation import FuncAnimation, PillowWriter

    steps = prediction.shape[0]
    t_frames = [field_images(task, target[s]) for s in range(steps)]
    p_frames = [field_images(task, prediction[s]) for s in range(steps)]
    rows = [r for r in t_frames[0] if fields is None or r in fields or r.split("[")[0] in fields]
    if not rows:
        raise ValueError(f"no field among {list(t_frames[0])} matches {fields}")
    fig, axes = plt.subplots(len(rows), 3, figsize=(7.5, 2.5 * len(rows)), squeeze=False)
    ims = []
    for r, name in enumerate(rows):
        t_all = np.stack([f[name] for f in t_frames])
        p_all = np.stack([f[name] for f in p_frames])
        lo, hi = float(t_all.min()), float(t_all.max())
        emax = float(np.abs(p_all - t_all).max()) or 1.0
        row = []
        for c, (lab, kw) in enumerate((("target", {"vmin": lo, "vmax": hi}), ("prediction", {"vmin": lo, "vmax": hi}),
                                       ("|error|", {"vmin": 0.0, "vmax": emax, "cmap": "magma"}))):
            ax = axes[r, c]
            img = t_all[0] if c == 0 else p_all[0] if c == 1 else np.abs(p_all[0] - t_all[0])
            row.append(ax.imshow(img.T, origin="lower", **kw))
            ax.set_title(f"{name}: {lab}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
        ims.append((row, t_all, p_all))
    title = fig.suptitle("step 1")
    fig.tight_layout()

    def update(s):
        artists = []
        for row, t_all, p_all in ims:
            row[0].set_data(t_all[s].T)
            row[1].set_data(p_all[s].T)
            row[2].set_data(np.abs(p_all[s] - t_all[s]).T)
            artists += row
        title.set_text(f"step {s + 1}/{steps}")
        return artists

    anim = FuncAnimation(fig, update, frames=steps, blit=False)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    from tqdm.auto import tqdm

    with tqdm(total=steps, desc=f"writing {path.name}", unit="frame", disable=not progress, leave=False) as bar:
        anim.save(str(path), writer=PillowWriter(fps=fps), dpi=55, progress_callback=lambda i, n: bar.update())
    plt.close(fig)
    return path
