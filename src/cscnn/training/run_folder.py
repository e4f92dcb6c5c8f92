"""What a training run may do with its run folder (``cfg.out``): checked before any work.

* The folder must be a folder (or not exist yet) and writable: a one-line :class:`ConfigError`
  otherwise (an existing file, a path through a file, a read-only folder).
* A folder that holds any checkpoint (``checkpoints/*.ckpt``) is never overwritten silently:
  a new run there needs ``overwrite`` (``cscnn train --overwrite``), which deletes the old
  checkpoints right before training starts; ``resume`` (``--resume``) continues from
  ``checkpoints/last.ckpt`` and is refused when that file is missing but others (``best.ckpt``)
  exist, since starting afresh would replace them.
* One run per folder: :mod:`cscnn.training.run_lock`.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from .checkpoint import CheckpointError
from .config import ConfigError

__all__ = ["check_run_folder", "check_writable", "remove_checkpoints"]


def check_writable(out: Path) -> None:
    """ConfigError unless ``out`` is (or can be created as) a writable folder; creates nothing."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"run folder {str(out)!r} (--out / out) is an existing file, not a folder; "
                          "choose another --out")
    probe = out
    while not probe.exists():  # the nearest existing ancestor is where the folder would be created
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise ConfigError(f"cannot create run folder {str(out)!r}: {str(probe)!r} is a file, not a folder; "
                          "choose another --out")
    try:
        with tempfile.TemporaryFile(dir=probe, prefix=".cscnn-write-test-"):
            pass
    except OSError as e:
        why = e.strerror or str(e)
        if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            why = f"{why} (read-only folder {str(probe)!r})"
        raise ConfigError(f"cannot write run folder {str(out)!r}: {why}; choose a writable --out") from None


def check_run_folder(out, resume: bool = False, overwrite: bool = False) -> list[Path]:
    """Check the run folder ``out`` for a training run; returns the checkpoints to delete before
    training (non-empty only with ``overwrite``). Raises :class:`ConfigError` for a folder that
    cannot be written and :class:`CheckpointError` when the run would replace checkpoints."""
    out = Path(out)
    if resume and overwrite:
        raise ConfigError("--resume and --overwrite exclude each other: --resume continues the run in the "
                          "folder, --overwrite deletes its checkpoints and starts a new one")
    check_writable(out)
    ckpt_dir = out / "checkpoints"
    found = sorted(ckpt_dir.glob("*.ckpt")) if ckpt_dir.is_dir() else []
    if not found:
        return []
    names = ", ".join(p.name for p in found)
    last = ckpt_dir / "last.ckpt"
    if overwrite:
        return found
    if not resume:
        raise CheckpointError(f"{out} already holds a run (checkpoints/{names}); pass --resume to continue it, "
                              "--overwrite to delete its checkpoints and start a new run, or choose another --out")
    if not last.is_file():
        raise CheckpointError(f"cannot resume the run in {out}: {last} is missing, and a new run there would "
                              f"overwrite checkpoints/{names}; pass --overwrite to delete them and start a new run, "
                              "or choose another --out")
    return []


def remove_checkpoints(paths) -> None:
    """Delete ``paths`` (the old checkpoints of ``--overwrite``); ConfigError naming one that cannot be."""
    for p in paths:
        try:
            os.unlink(p)
        except FileNotFoundError:
            pass
        except OSError as e:
            raise ConfigError(f"--overwrite cannot delete {p}: {e.strerror or e}") from None
