"""Inspect a model without training it: equivariance error of a checkpoint, size of a config or checkpoint."""

from __future__ import annotations

from pathlib import Path

import torch

from ..data import get_task
from .checkpoint import describe, find_checkpoint, load_module, read_checkpoint
from .checks import DataDirError, check_metric, check_positive, resolve_task, task_options
from .evaluation import load_for_eval, run_data_dir

__all__ = ["equivariance", "info"]


def equivariance(ckpt, data_dir=None, num_elements: int = 8, split: str = "test", grid: int | None = None,
                 seed: int = 0, dtype=torch.float64) -> dict:
    """Worst relative equivariance error ``|f(g.x) - g.f(x)| / |g.f(x)|`` of a checkpoint's model
    under sampled grid-symmetry group elements (cscnn.testing), on a test sample ``x: (1, C, *grid, 2^n)``
    (or a random field with ``grid`` points per axis when ``grid`` is given or no data is found).

    A model with symmetry-breaking inputs (``data.symmetry_breaking``) is checked as
    ``f(g.x, g.e) = g.f(x, e)``, the fields ``e`` transformed with the data (``worst``, ``mean``);
    ``fixed_worst`` / ``fixed_mean`` hold ``e`` fixed, which a model that learned the direction breaks."""
    from ..data import split_files
    from ..models import WithConstantFields
    from ..testing import equivariance_error, sample_elements

    check_positive("the number of group elements", num_elements)
    check_positive("grid (points per axis)", grid, allow_none=True)
    path = find_checkpoint(ckpt)
    module = load_module(path)
    hp = dict(module.hparams)
    task = resolve_task(hp["task"])
    model = module.model.to(dtype)
    alg = module.alg
    gen = torch.Generator().manual_seed(seed)
    if grid is None:
        if data_dir is None:
            try:
                data_dir = run_data_dir(path)
            except DataDirError:
                data_dir = None
        if data_dir is not None and split_files(data_dir, split):
            _, _, _, _, ds, _ = load_for_eval(path, data_dir, split)
            x = ds[0][0].unsqueeze(0).to(dtype)
            source = f"{split_files(data_dir, split)[0]}[0]"
        else:
            grid = 16
    if grid is not None:
        spatial = [grid] * alg.dim  # grid axes of a sample (time included for spacetime tasks)
        if task.time_as_axis:
            spatial[0] = hp["time_history"]
        x = torch.randn(1, hp["in_channels"], *spatial, alg.n_blades, generator=gen, dtype=dtype)
        source = f"random field {tuple(x.shape)}"
    gs = sample_elements(alg, num_elements, "grid", generator=gen, dtype=dtype)
    sizes = x.shape[2:-1]  # a non-square grid (The Well): only the symmetries that keep its shape
    gs = [g for g in gs if all(sizes[int(g[:, i].abs().argmax())] == sizes[i] for i in range(len(sizes)))]
    out = {"checkpoint": str(path), "model": hp["model_name"], "task": task.name, "metric": list(alg.metric),
           "input": source, "num_elements": len(gs), "elements": [g.tolist() for g in gs],
           "dtype": str(dtype).replace("torch.", ""), "symmetry_breaking": list(hp.get("symmetry_breaking") or [])}
    if isinstance(model, WithConstantFields):
        # f(g.x, g.e) = g.f(x, e): the inner model on [x, e], the fields transformed with the data
        errors = [equivariance_error(model.model, alg, model.expand(x), g) for g in gs]
        fixed = [equivariance_error(model, alg, x, g) for g in gs]
        out.update(fixed_worst=max(fixed), fixed_mean=sum(fixed) / len(fixed), fixed_errors=fixed)
    else:
        errors = [equivariance_error(model, alg, x, g) for g in gs]
    out.update(worst=max(errors), mean=sum(errors) / len(errors), errors=errors)
    return out


def info(source, overrides=()) -> dict:
    """Model size of a config file (YAML) or a checkpoint / run folder."""
    from ..models import count_parameters
    from .config import load_config
    from .fit import build_module

    src = Path(source)
    if src.suffix in (".yaml", ".yml"):
        cfg = load_config(src, overrides)
        task = resolve_task(cfg.task, cfg.data.dir if get_task(cfg.task).source is not None else None,
                            task_options(cfg))
        check_metric(cfg.model.metric, task)
        module = build_module(cfg, task)
        hp, origin = dict(module.hparams), "config"
    else:
        path = find_checkpoint(src)
        module = load_module(path)
        hp, origin = dict(module.hparams), "checkpoint"
        ckpt = read_checkpoint(path)
        hp["global_step"] = ckpt.get("global_step")
        hp["epoch"] = ckpt.get("epoch")
    size = sum(p.numel() * p.element_size() for p in module.model.parameters())
    size += sum(b.numel() * b.element_size() for b in module.model.buffers())
    res = {"source": str(src), "kind": origin, "description": describe(hp),
           "num_parameters": count_parameters(module.model), "size_mb": size / 2**20}
    for k in ("model_name", "task", "metric", "in_channels", "out_channels", "hidden_channels", "model_kwargs",
              "time_history", "time_future", "global_step", "epoch"):
        if k in hp:
            res[k] = hp[k]
    return res
