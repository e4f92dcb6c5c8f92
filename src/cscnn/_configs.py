"""The experiment configs that ship with cscnn, by name: ``paper/ns_cs_resnet``, ``cpu/maxwell3d_cs_resnet``.

One source: the YAML files of ``configs/`` at the repository root. An installed wheel carries them as
``cscnn/configs/`` (``setup.py`` maps that folder into the package); a source checkout, plain or installed
editable, reads ``configs/`` itself. A name is the file's path below that folder without ``.yaml``.

Everything that takes a config (``cscnn train --config``, ``cscnn info``, the benchmarks) goes through
:func:`resolve_config`: an existing file path wins, otherwise a packaged name (with or without ``.yaml``).
Relative paths *inside* a config (``data.dir``, ``out``) are read from the current working folder, wherever
the config came from.

Imports nothing from cscnn and nothing heavy (the CLI lists configs without importing torch).
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path

__all__ = ["config_dir", "config_names", "resolve_config", "is_packaged_config", "config_summary"]

_SUFFIXES = (".yaml", ".yml")


def config_dir() -> Path | None:
    """The folder holding the packaged configs: ``cscnn/configs`` in an installed wheel, else the
    ``configs/`` folder of the source checkout this module was imported from; None if neither exists."""
    here = Path(__file__).resolve().parent
    for folder in (here / "configs", here.parent.parent / "configs"):
        if folder.is_dir():
            return folder
    return None


def config_names() -> list[str]:
    """Every packaged config name (``cpu/ns_cs_resnet``, ...), sorted."""
    root = config_dir()
    if root is None:
        return []
    files = [p for p in root.rglob("*") if p.suffix in _SUFFIXES and p.is_file()]
    return sorted(p.relative_to(root).with_suffix("").as_posix() for p in files)


def resolve_config(source) -> Path:
    """The YAML file ``source`` names: an existing file path as given, else the packaged config of that
    name (``paper/ns_cs_resnet`` or ``paper/ns_cs_resnet.yaml``; also ``configs/paper/ns_cs_resnet.yaml``
    as written in older commands). ``FileNotFoundError`` names the closest packaged names."""
    path = Path(source)
    if path.is_file():
        return path
    name = path.as_posix()
    for suffix in _SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    name = re.sub(r"^(\./)?configs/", "", name)
    root = config_dir()
    if root is not None and ".." not in Path(name).parts:
        for suffix in _SUFFIXES:
            candidate = root / f"{name}{suffix}"
            if candidate.is_file():
                return candidate
    if path.is_dir():
        raise FileNotFoundError(f"{str(source)!r} is a folder; expected a YAML config file or a packaged "
                                "config name such as cpu/ns_cs_resnet")
    names = config_names()
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise FileNotFoundError(f"config {str(source)!r} not found: neither a file nor a packaged config{hint}; "
                            "`cscnn configs` lists the packaged ones")


def is_packaged_config(source) -> bool:
    """True when ``source`` is not an existing path but names a packaged config."""
    if Path(source).exists():
        return False
    try:
        resolve_config(source)
    except FileNotFoundError:
        return False
    return True


def config_summary(name: str) -> dict:
    """``{"name", "task", "model", "description"}`` of a packaged config, read from its text (its ``task:``
    and ``model: name:`` lines and its first comment line) without a YAML parser."""
    text = resolve_config(name).read_text(encoding="utf-8")
    task = re.search(r"^task:\s*([^\s#]+)", text, re.M)
    model = re.search(r"^model:\s*\n(?:[ \t]+.*\n)*?[ \t]+name:\s*([^\s#]+)", text, re.M) \
        or re.search(r"^model:\s*\{[^}]*\bname:\s*([^\s,}#]+)", text, re.M)
    first = re.match(r"#\s*(.*)", text)
    return {"name": name, "task": task.group(1) if task else "?", "model": model.group(1) if model else "?",
            "description": first.group(1).strip() if first else ""}
