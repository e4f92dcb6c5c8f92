"""Small helpers shared by the benchmark scripts (not a public API).

The benchmark scripts live in ``benchmarks/`` (not a package); each inserts this
folder into ``sys.path`` to import this module.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import sys
from pathlib import Path

__all__ = ["write_json", "write_report", "how_it_was_run", "read_json", "machine_info", "command_line",
           "markdown_table", "fmt"]


def write_json(path, data) -> Path:
    """Write ``data`` as JSON atomically (temporary file, then rename), so an interrupted
    run never leaves a half-written result behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2)
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


def read_json(path):
    """Contents of a JSON file, or None when it is missing or unreadable."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def machine_info() -> dict:
    """CPU count, torch version and threads, platform: what a result line needs to be read."""
    import torch

    return {
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
