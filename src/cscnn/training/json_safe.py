"""Strict JSON for results: non-finite numbers (NaN, inf) become ``null`` and are listed.

Python's ``json`` writes NaN as a bare ``NaN`` token, which is not JSON; a diverged
model's metrics would make ``metrics.json`` unreadable to other tools.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

__all__ = ["finite_json", "write_json"]


def finite_json(obj, _path: str = "") -> tuple[object, list[str]]:
    """``obj`` with every non-finite float replaced by None, and the dotted paths of those
    entries (list items as ``key[i]``), e.g. ``["one_step.mse", "rollout.mse_per_step[3]"]``."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None, [_path or "<value>"]
    if isinstance(obj, dict):
        out, bad = {}, []
        for k, v in obj.items():
            out[k], b = finite_json(v, f"{_path}.{k}" if _path else str(k))
            bad += b
        return out, bad
    if isinstance(obj, (list, tuple)):
        out, bad = [], []
        for i, v in enumerate(obj):
            x, b = finite_json(v, f"{_path}[{i}]")
            out.append(x)
            bad += b
        return out, bad
    return obj, []


def write_json(obj: dict, path) -> list[str]:
    """Write ``obj`` as strict JSON (``allow_nan=False``) to ``path``; non-finite numbers are written
    as ``null`` and their paths are stored under ``"non_finite"`` and returned."""
    clean, bad = finite_json(obj)
    if bad:
        clean["non_finite"] = bad
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(clean, indent=2, allow_nan=False, default=str))
    return bad
