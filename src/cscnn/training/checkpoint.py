"""Safe checkpoint loading: ``torch.load(weights_only=True)`` and plain-data hyper-parameters.

A cscnn checkpoint is a Lightning checkpoint whose ``hyper_parameters`` hold the
model name, its constructor arguments, the metric and the task as plain Python
data (see :data:`cscnn.training.module.HPARAM_KEYS`). Loading never unpickles
arbitrary objects.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from .module import HPARAM_KEYS, ForecastModule

__all__ = ["CheckpointError", "read_checkpoint", "checkpoint_hparams", "load_module", "check_compatible",
           "find_checkpoint", "plain_data", "save_atomically", "AtomicCheckpointIO"]


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded or does not fit the requested model / task."""


def read_checkpoint(path, map_location="cpu") -> dict:
    """The raw checkpoint dict, loaded with ``weights_only=True`` (no arbitrary code execution).

    Raises :class:`CheckpointError` saying why a file is no usable checkpoint: missing,
    empty, not a PyTorch file, holding pickled objects, or without a ``state_dict``.
    """
    import pickle
    import re

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} not found")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes): it was cut off while being written "
                              "(run killed or disk full?); use the run's other checkpoint or train again")
    with open(path, "rb") as f:
        head = f.read(4)
    if not (head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"):  # zip (torch.save) or legacy pickle
        raise CheckpointError(f"{path} is not a PyTorch checkpoint (expected a .ckpt file written by `cscnn train`)")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(e))
        what = f" ({found.group(1)})" if found else ""
        raise CheckpointError(f"{path} holds pickled Python objects{what} that are not tensors or plain data; "
                              "refused: cscnn loads checkpoints with weights_only=True, so loading cannot run code "
                              "(its own checkpoints hold only tensors and plain data)") from None
    except Exception as e:  # truncated zip, corrupt records
        first = str(e).split(". ")[0].splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint (truncated or corrupt?): {first}") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise CheckpointError(f"{path} is not a Lightning checkpoint (no 'state_dict')")
    return ckpt


def checkpoint_hparams(ckpt: dict, path="checkpoint") -> dict:
    hp = ckpt.get("hyper_parameters")
    required = ("model_name", "metric", "task", "in_channels", "out_channels")
    if not isinstance(hp, dict) or any(k not in hp for k in required):
        raise CheckpointError(f"{path} is not a cscnn checkpoint: its hyper_parameters lack {required}")
    return {k: hp[k] for k in HPARAM_KEYS if k in hp}


def describe(hp: dict) -> str:
    return (f"model {hp['model_name']!r} on task {hp['task']!r} with metric {tuple(hp['metric'])}, "
            f"channels {hp['in_channels']}->{hp['out_channels']}, hidden {hp.get('hidden_channels')}, "
            f"kwargs {hp.get('model_kwargs') or {}}")


def check_compatible(hp: dict, expected: dict, path="checkpoint") -> None:
    """Raise :class:`CheckpointError` when ``hp`` (from a checkpoint) differs from ``expected`` in any
    of the keys that define the model: name, metric, task, channels, hidden width, kwargs, windows and
    symmetry-breaking inputs."""
    keys = ("model_name", "metric", "task", "in_channels", "out_channels", "hidden_channels", "model_kwargs",
            "time_history", "time_future", "symmetry_breaking")
    diffs = []
    for k in keys:
        if k not in expected or k not in hp:
            continue
        a, b = hp[k], expected[k]
        if k == "metric":
            a, b = tuple(a), tuple(b)
        if k == "symmetry_breaking":  # extra input channels of the model
            a, b = list(a or []), list(b or [])
        if k == "model_kwargs":
            a, b = plain_data(a or {}), plain_data(b or {})
        if a != b:
            diffs.append(f"{k}: checkpoint has {a!r}, expected {b!r}")
    if diffs:
        raise CheckpointError(f"{path} holds a different model than requested ({describe(hp)}):\n  "
                              + "\n  ".join(diffs))


def plain_data(x):
    """Tensors / arrays / tuples / paths inside ``x`` -> lists, numbers and strings, so a checkpoint
    holding it loads with ``torch.load(weights_only=True)`` and compares equal after a round trip."""
    import numpy as np

    if isinstance(x, dict):
        return {str(k): plain_data(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [plain_data(v) for v in x]
    if isinstance(x, (torch.Tensor, np.ndarray)):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, Path):
        return str(x)
    return x


def load_module(path, map_location="cpu", expected: dict | None = None) -> ForecastModule:
    """Rebuild the :class:`ForecastModule` of a checkpoint and load its weights.

    Args:
        expected: optional hyper-parameters the checkpoint must match (see :func:`check_compatible`),
            e.g. ``{"task": "maxwell3d", "metric": (1, 1, 1)}``.
    """
    ckpt = read_checkpoint(path, map_location)
    hp = checkpoint_hparams(ckpt, path)
    if expected:
        check_compatible(hp, expected, path)
    try:
        module = ForecastModule(**hp)
    except Exception as e:
        raise CheckpointError(f"cannot rebuild the model of {path} ({describe(hp)}): {e}") from e
    _check_state_dict(module, ckpt["state_dict"], path, hp)
    module.load_state_dict(ckpt["state_dict"], strict=True)
    module.eval()
    return module


def _check_state_dict(module, state: dict, path, hp: dict) -> None:
    """:class:`CheckpointError` naming every missing, unexpected or mis-shaped weight (full key names)."""
    want = {k: v for k, v in module.state_dict().items() if isinstance(v, torch.Tensor)}
    have = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    problems = []
    missing = [k for k in want if k not in have]
    unexpected = [k for k in have if k not in want]
    shapes = [f"{k} {tuple(have[k].shape)} (model: {tuple(v.shape)})" for k, v in want.items()
              if k in have and have[k].shape != v.shape]
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes)):
        if keys:
            more = f" and {len(keys) - 20} more" if len(keys) > 20 else ""
            problems.append(f"{label}: {', '.join(keys[:20])}{more}")
    if problems:
        raise CheckpointError(f"weights in {path} do not fit {describe(hp)}: {'; '.join(problems)}")


def find_checkpoint(path, prefer: str = "best") -> Path:
    """A checkpoint file from ``path``: the file itself, or in a run folder
    ``checkpoints/best.ckpt`` (or ``last.ckpt``; ``prefer`` picks which first). A run folder that a
    training run still holds is read all the same, with a note on stderr (checkpoints are replaced
    atomically, so a read sees one whole checkpoint)."""
    import sys

    from .run_lock import training_in_progress

    path = Path(path)
    busy = training_in_progress(path) if path.exists() else None
    if busy:
        print(f"note: {busy}; reading its checkpoints as they are now", file=sys.stderr)
    if path.is_file():
        return path
    if not path.exists():
        raise CheckpointError(f"{str(path)!r} does not exist (expected a .ckpt file or a run folder)")
    order = ("best", "last") if prefer == "best" else ("last", "best")
    for name in order:
        for cand in (path / "checkpoints" / f"{name}.ckpt", path / f"{name}.ckpt"):
            if cand.is_file():
                return cand
    raise CheckpointError(f"no checkpoints/best.ckpt or checkpoints/last.ckpt in run folder {str(path)!r}")


def save_atomically(obj: dict, path) -> None:
    """``torch.save(obj, path)`` as one step: written to a temporary file in the same folder, flushed to
    disk (``fsync``), then renamed over ``path``. A kill or a full disk part-way leaves ``path`` as it
    was; a failed write is a one-line :class:`CheckpointError` saying so (the temporary file is removed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        try:
            tmp.unlink()
        except OSError:
            pass
        why = e.strerror or str(e)
        if e.errno == errno.ENOSPC:
            why = f"{why} (disk full)"
        kept = f"the previous {path.name} is intact" if path.is_file() else f"no {path.name} was written"
        raise CheckpointError(f"cannot write checkpoint {path}: {why}; {kept}") from None
    try:  # make the rename itself durable
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer with every write made atomic by :func:`save_atomically`
    (passed to ``lightning.Trainer(plugins=[AtomicCheckpointIO()])``)."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO takes no storage_options")
        save_atomically(checkpoint, path)
