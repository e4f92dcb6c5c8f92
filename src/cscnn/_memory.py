"""Memory estimates checked before large allocations (models, resized data, equivariance grids).

An estimate above what the machine has is refused with a one-line :class:`MemoryEstimateError`
that gives the estimate, instead of a minutes-long attempt that ends in swapping or the OOM killer.
Imports neither torch nor anything heavy.

What the machine has: ``MemAvailable`` of ``/proc/meminfo`` (Linux), capped by a cgroup memory
limit (``memory.max``, v2) when one is set; elsewhere the free pages of ``os.sysconf``. The
environment variable ``CSCNN_MEMORY_LIMIT`` (bytes, or with a suffix K/M/G/T) replaces it, e.g.
for a batch job whose limit the process cannot see. Without any of these nothing is refused.
"""

from __future__ import annotations

import os

__all__ = ["MemoryEstimateError", "available_memory", "check_memory", "format_bytes"]

_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


class MemoryEstimateError(ValueError):
    """An allocation estimated to need more memory than the machine has."""


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError  # pragma: no cover


def _parse_limit(text: str) -> int:
    t = text.strip().upper().removesuffix("IB").removesuffix("B")
    unit = t[-1] if t and t[-1] in _UNITS and not t[-1].isdigit() else ""
    try:
        value = float(t[:-1] if unit else t)
    except ValueError:
        raise MemoryEstimateError(f"CSCNN_MEMORY_LIMIT must be a number of bytes (suffix K, M, G or T allowed), "
                                  f"got {text!r}") from None
    if not value > 0:
        raise MemoryEstimateError(f"CSCNN_MEMORY_LIMIT must be > 0, got {text!r}")
    return int(value * _UNITS[unit])


def _cgroup_limit() -> int | None:
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            text = f.read().strip()
        with open("/sys/fs/cgroup/memory.current") as f:
            used = int(f.read().strip())
    except (OSError, ValueError):
        return None
    if text == "max":
        return None
    try:
        return max(int(text) - used, 0)
    except ValueError:
        return None


def available_memory() -> int | None:
    """Bytes this process may still allocate on the host, or ``None`` when unknown (see module docs)."""
    env = os.environ.get("CSCNN_MEMORY_LIMIT")
    if env:
        return _parse_limit(env)
    avail = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            avail = None
    cg = _cgroup_limit()
    if cg is not None:
        avail = cg if avail is None else min(avail, cg)
    return avail


def check_memory(nbytes: float, what: str, hint: str = "", available: int | None = None,
                 where: str = "memory") -> None:
    """Raise :class:`MemoryEstimateError` when ``nbytes`` (an estimate for ``what``) exceeds
    :func:`available_memory` (or ``available`` bytes of ``where``, e.g. a GPU's memory). ``hint``
    ends the message (e.g. which setting to lower)."""
    avail = available_memory() if available is None else available
    if avail is None or nbytes <= avail:
        return
    tail = f"; {hint}" if hint else ""
    raise MemoryEstimateError(f"{what} needs an estimated {format_bytes(nbytes)}, more than the "
                              f"{format_bytes(avail)} of {where} available{tail}")
