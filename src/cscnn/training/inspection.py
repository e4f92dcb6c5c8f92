"""Inspect a model without training it: equivariance error of a checkpoint, size of a config or checkpoint."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .._memory import check_memory
from ..data import get_task
from .checkpoint import describe, find_checkpoint, load_module, read_checkpoint
from .checks import DataDirError, check_metric, check_positive, resolve_task, task_options
from .evaluation import load_for_eval, run_data_dir

__all__ = ["equivariance", "grid_memory", "info"]


def equivariance(ckpt, data_dir=None, num_elements: int = 8, split: str = "test", grid: int | None = None,
                 seed: int = 0, dtype=torch.float64, progress: bool = False) -> dict:
    """Worst relative equivariance error ``|f(g.x) - g.f(x)| / |g.f(x)|`` of a checkpoint's model
    under sampled grid-symmetry group elements (cscnn.testing), on a test sample ``x: (1, C, *grid, 2^n)``
    (or a random field with ``grid`` points per axis when ``grid`` is given or no data is found).

    Only the grid symmetries that map the domain onto itself are drawn: on a non-square grid those
    that keep its shape, and with a per-axis ``padding_mode`` (e.g. periodic x, walled y) those that
    map each axis onto one padded alike (a rotation swapping the axes is no symmetry of such a model).

    A model with symmetry-breaking inputs (``data.symmetry_breaking``) is checked as
    ``f(g.x, g.e) = g.f(x, e)``, the fields ``e`` transformed with the data (``worst``, ``mean``);
    ``fixed_worst`` / ``fixed_mean`` hold ``e`` fixed, which a model that learned the direction breaks.

    ``caveat`` says when the number does not measure equivariance to the data's symmetries (a layout
    whose components do not all transform as their blades), else None.

    A random input whose estimated memory (:func:`grid_memory`) exceeds what the machine has is refused
    with :class:`cscnn._memory.MemoryEstimateError` before anything is allocated; ``progress`` shows a bar
    over the group elements."""
    from ..data import split_files
    from ..models import WithConstantFields
    from ..testing import equivariance_error

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
            _, _, task, _, ds, _ = load_for_eval(path, data_dir, split)
            x = ds[0][0].unsqueeze(0).to(dtype)
            source = f"{split_files(data_dir, split)[0]}[0]"
        else:
            grid = 16
    if grid is not None:
        spatial = [grid] * alg.dim  # grid axes of a sample (time included for spacetime tasks)
        if task.time_as_axis:
            spatial[0] = hp["time_history"]
        check_memory(grid_memory(hp, alg.n_blades, spatial, dtype), f"an equivariance check on a random "
                     f"{'x'.join(map(str, spatial))} grid ({hp['model_name']}, float64)", "choose a smaller --grid")
        x = torch.randn(1, hp["in_channels"], *spatial, alg.n_blades, generator=gen, dtype=dtype)
        source = f"random field {tuple(x.shape)}"
    gs = _domain_symmetries(alg, x.shape[2:-1], (hp.get("model_kwargs") or {}).get("padding_mode"), num_elements,
                            gen, dtype)
    out = {"checkpoint": str(path), "model": hp["model_name"], "task": task.name, "metric": list(alg.metric),
           "input": source, "num_elements": len(gs), "elements": [g.tolist() for g in gs],
           "dtype": str(dtype).replace("torch.", ""), "symmetry_breaking": list(hp.get("symmetry_breaking") or []),
           "caveat": _layout_caveat(task, path)}
    bar = tqdm(total=len(gs) * (2 if isinstance(model, WithConstantFields) else 1), desc="equivariance",
               unit="element", disable=not progress, leave=False)

    def err(f, inp, g):
        e = equivariance_error(f, alg, inp, g)
        bar.update()
        return e

    with bar:
        if isinstance(model, WithConstantFields):
            # f(g.x, g.e) = g.f(x, e): the inner model on [x, e], the fields transformed with the data
            errors = [err(model.model, model.expand(x), g) for g in gs]
            fixed = [err(model, x, g) for g in gs]
            out.update(fixed_worst=max(fixed), fixed_mean=sum(fixed) / len(fixed), fixed_errors=fixed)
        else:
            errors = [err(model, x, g) for g in gs]
    out.update(worst=max(errors), mean=sum(errors) / len(errors), errors=errors)
    return out


def _layout_caveat(task, path: Path) -> str | None:
    """Why the error does not measure equivariance to the data's symmetries, or None: a layout that
    carries components on blades that do not transform like them (The Well's ``tensor_fields:
    decompose``: the symmetric traceless parts of rank-2 tensors as plain numbers on scalar blades).
    Without data to resolve the layout from, the run's ``data.well`` options tell whether it may."""
    from .evaluation import run_config

    what = ("the data layout carries the symmetric traceless parts of rank-2 tensor fields as plain numbers on "
            "scalar blades (data.well.tensor_fields: decompose), which do not transform as scalars: the error above "
            "measures the model under the multivector action, not under the data's symmetries, which that layout "
            "breaks")
    layout_equivariant = getattr(task.source, "equivariant", None)
    if layout_equivariant is False:
        return what
    if layout_equivariant is None and task.source is not None \
            and task_options(run_config(path)).get("tensor_fields") == "decompose":
        return "if the run's data hold rank-2 tensor fields, " + what
    return None


def _domain_symmetries(alg, sizes, padding_mode, n: int, generator, dtype) -> list[torch.Tensor]:
    """``n`` grid symmetries (cycled when fewer) that map the model's domain onto itself: every grid axis
    onto one of the same size (a non-square grid, The Well: no 90-degree rotations) and, for a per-axis
    padding mode, onto one padded alike (periodic x, walled y: reflections only). Drawn as
    :func:`cscnn.testing.sample_elements` draws them, from the kept ones."""
    from ..algebra import grid_symmetries

    d = len(sizes)
    modes = [padding_mode] * d if padding_mode is None or isinstance(padding_mode, str) else list(padding_mode)
    if len(modes) != d:
        modes = [None] * d  # the model checks its own padding; do not filter on a mode it would refuse

    def keeps(g):
        to = [int(g[:, i].abs().argmax()) for i in range(d)]  # axis i -> axis to[i]
        return all(sizes[to[i]] == sizes[i] and modes[to[i]] == modes[i] for i in range(d))

    kept = [g for g in grid_symmetries(alg, dtype) if keeps(g)]  # the identity always stays
    idx = torch.randperm(len(kept), generator=generator)
    return [kept[int(i)] for i in idx.repeat(n // len(kept) + 1)[:n]]


def grid_memory(hp: dict, n_blades: int, spatial, dtype=torch.float64) -> int:
    """Estimated peak bytes of an equivariance check of the model of hyper-parameters ``hp`` on one
    input of grid ``spatial``: per grid point and blade, 4 copies of the input and of the output
    channels (x, g.x, f(x), f(g.x) and their differences) and 12 of the hidden width (activations,
    dense-conv outputs, norms, gates and shortcuts alive at once), the width counted in multivector
    channels (scalar-channel baselines alike). Calibrated on a CS-ResNet in float64 on CPU: peak RSS
    1.08 GiB at hidden 2 / 2 input channels and 3.6 GiB at hidden 8 / 4 input channels on a
    1000x1000 grid, where this gives 1.1 and 3.7 GiB."""
    from ..models import DEFAULT_HIDDEN

    hidden = hp.get("hidden_channels") or DEFAULT_HIDDEN.get(hp["model_name"], 64)
    channels = 4 * hp["in_channels"] + 4 * hp["out_channels"] + 12 * hidden
    itemsize = torch.empty((), dtype=dtype).element_size()
    return math.prod(spatial) * n_blades * channels * itemsize


def info(source, overrides=()) -> dict:
    """Model size of a config (a YAML file or a packaged name such as ``paper/ns_cs_resnet``) or a
    checkpoint / run folder; for a checkpoint also its epoch and ``global_step`` (for a run folder those
    of ``checkpoints/last.ckpt``, the latest state)."""
    from .._configs import is_packaged_config
    from ..models import count_parameters
    from .config import load_config
    from .fit import build_module

    src = Path(source)
    if src.suffix in (".yaml", ".yml") or is_packaged_config(src):
        cfg = load_config(src, overrides)
        task = resolve_task(cfg.task, cfg.data.dir if get_task(cfg.task).source is not None else None,
                            task_options(cfg))
        check_metric(cfg.model.metric, task)
        module = build_module(cfg, task)
        hp, origin = dict(module.hparams), "config"
    else:
        path = find_checkpoint(src, prefer="last")  # a run folder: its latest state
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
