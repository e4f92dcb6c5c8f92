"""Small helpers shared by the benchmark scripts (not a public API).

The benchmark scripts live in ``benchmarks/`` (not a package); each inserts this
folder into ``sys.path`` to import this module.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

import torch

from cscnn.nn.layout import synchronize

__all__ = ["write_json", "write_report", "how_it_was_run", "read_json", "machine_info", "cpu_model",
           "load_average", "command_line", "markdown_table", "fmt", "precision", "PRECISIONS", "emit_markdown",
           "save_log_plot", "validation_curve", "STAT", "time_call", "interleaved", "channels_last", "saved_bytes"]


def write_json(path, data) -> Path:
    """Write ``data`` as strict JSON atomically (temporary file, then rename), so an interrupted
    run never leaves a half-written result behind; NaN / inf are written as ``null``
    (:func:`cscnn.training.json_safe.finite_json`)."""
    from cscnn.training.json_safe import finite_json

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        json.dump(finite_json(data)[0], f, indent=2, allow_nan=False)
    os.replace(tmp, path)
    return path


def write_report(path, text: str) -> Path:
    """Write a Markdown report atomically (parent folders created) and say where."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    print(f"wrote {path}")
    return path


def how_it_was_run(argv, script) -> list[str]:
    """Report lines: a "How it was run" heading and the command in a code block."""
    return ["## How it was run", "", "```", command_line(argv, script), "```", ""]


def run_footer(argv, script, load_before: str) -> list[str]:
    """Report lines: :func:`how_it_was_run`, the CPU, torch and its threads, and the load average before
    the run and now (which says whether other work shared the machine)."""

    return [*how_it_was_run(argv, script),
            f"- {cpu_model()} ({torch.backends.cpu.get_cpu_capability()}), {os.cpu_count()} cores, torch "
            f"{torch.__version__}, {torch.get_num_threads()} torch threads",
            f"- load average before / after: {load_before} / {load_average()}"]


def read_json(path):
    """Contents of a JSON file, or None when it is missing or unreadable."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def cpu_model() -> str:
    """The CPU's model name (as ``lscpu`` shows it), or the processor string where Linux does not say."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> str:
    """The 1/5/15-minute load averages, or "unknown"."""
    try:
        return "/".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


def machine_info() -> dict:
    """CPU model and count, load average, torch version and threads, platform: what a result
    line needs to be read (a load above 0 means other processes shared the machine)."""

    load = load_average() + " (1/5/15 min)"
    return {
        "cpu_model": cpu_model(),
        "load": load,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def command_line(argv=None, script=None) -> str:
    """The command that produced a result, as a user would retype it (``script``: the benchmark's path)."""
    args = sys.argv[1:] if argv is None else list(argv)
    if script is None:
        script = Path(sys.argv[0]).as_posix() if sys.argv and sys.argv[0] else "benchmarks/<script>.py"
    script = Path(script).as_posix()
    try:
        script = Path(script).resolve().relative_to(Path.cwd()).as_posix()
    except ValueError:
        pass
    return " ".join([".venv/bin/python", script, *(shlex.quote(str(a)) for a in args)])


def emit_markdown(lines: list[str], out=None) -> str:
    """Join ``lines`` into a Markdown document, print it and write it to ``out`` (if given); return the text."""
    text = "\n".join(lines) + "\n"
    print(text)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text)
        print(f"wrote {out}")
    return text


def fmt(x, digits: int = 3) -> str:
    """Compact number formatting for tables."""
    if x is None:
        return "-"
    if isinstance(x, float):
        if x != x:  # nan
            return "nan"
        if x != 0 and (abs(x) < 1e-2 or abs(x) >= 1e4):
            return f"{x:.{digits - 1}e}"
        return f"{x:.{digits}g}" if abs(x) < 1 else f"{x:.{max(digits, 3)}g}"
    return str(x)


def markdown_table(header: list[str], rows: list[list]) -> str:
    """A GitHub Markdown table; cells formatted with :func:`fmt` unless already strings."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        lines.append("| " + " | ".join(c if isinstance(c, str) else fmt(c) for c in r) + " |")
    return "\n".join(lines)


def validation_curve(run: Path) -> list[tuple[int, float]]:
    """``(step, val/loss)`` of a ``cscnn train`` run from its CSV logs (every version: resumed runs append
    one); ``step`` is the 0-based step Lightning logs, one less than the optimizer steps done."""
    points = {}
    for path in sorted((Path(run) / "logs" / "csv").glob("version_*/metrics.csv")):
        with open(path) as f:
            for row in csv.DictReader(f):
                if row.get("val/loss"):
                    points[int(row["step"])] = float(row["val/loss"])
    return sorted(points.items())


def save_log_plot(fig, ax, path, xlabel: str, ylabel: str) -> Path:
    """Finish a figure with a log y axis (labels, grid, legend) and write it to ``path`` (PNG)."""
    from cscnn.training.plots import save_figure

    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path, dpi=120)


#: precisions of the GPU benchmarks: fp32 (TF32 off), tf32 (TF32 matmuls/convs, CUDA only), bf16 (autocast)
PRECISIONS = ("fp32", "tf32", "bf16")


@contextlib.contextmanager
def precision(name: str, device):
    """Run the body in precision ``name`` on ``device`` (see :data:`PRECISIONS`); restores the TF32 flags."""

    if name not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {name!r}")
    device = torch.device(device)
    flags = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    tf32 = name == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
    try:
        if name == "bf16":
            with torch.autocast(device.type, dtype=torch.bfloat16):
                yield
        else:
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = flags


# timing: repetitions interleaved between the compared calls, so drift and load hit all alike
STAT = {"median": statistics.median, "min": min}


def time_call(fn, repeats: int, stat=statistics.median, device="cpu") -> float:
    """``stat`` (median or min) of ``repeats`` timed calls of ``fn`` after one warm-up call, in seconds."""
    return interleaved({"fn": fn}, repeats, stat, device)["fn"]


def interleaved(fns: dict, repeats: int, stat=statistics.median, device="cpu") -> dict:
    """Time of each fn (``stat`` over repetitions), alternating between them so drift hits all alike.

    On an accelerator ``device`` each call is timed up to the end of its queued work."""
    for fn in fns.values():
        fn()
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            synchronize(device)
            t = time.perf_counter()
            fn()
            synchronize(device)
            times[k].append(time.perf_counter() - t)
    return {k: stat(v) for k, v in times.items()}


_CHANNELS_LAST = {4: torch.channels_last, 5: torch.channels_last_3d}


def channels_last(x: torch.Tensor) -> torch.Tensor:
    """``x`` (B, C, *spatial) in channels-last memory order (any number of spatial axes)."""
    fmt = _CHANNELS_LAST.get(x.ndim)
    if fmt is not None:
        return x.contiguous(memory_format=fmt)
    return x.movedim(1, -1).contiguous().movedim(-1, 1)


def saved_bytes(fn) -> int:
    """Bytes of tensors autograd saves for backward while running fn (activation memory)."""
    total = 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return total
