"""What a training run may do with its run folder (``cfg.out``): checked before any work.

* The folder must be a folder (or not exist yet) and writable: a one-line :class:`ConfigError`
  otherwise (an existing file, a path through a file, a read-only folder).
* A folder that holds any checkpoint (``checkpoints/*.ckpt``) is never overwritten silently:
  a new run there needs ``overwrite`` (``cscnn train --overwrite``), which deletes the old
  checkpoints right before training starts; ``resume`` (``--resume``) continues from
  ``checkpoints/last.ckpt`` and is refused when that file is missing but others (``best.ckpt``)
  exist, since starting afresh would replace them.
* One run per folder: :func:`lock_run_folder` holds an OS lock (``flock``) on ``train.lock`` in the
  folder for the whole of a training run; the kernel releases it when the process ends in any way
  (a SIGKILL leaves no stale lock). A second writer is refused at once with :class:`RunFolderInUse`
  naming the holder; readers (:func:`training_in_progress`) may read a held folder.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

try:
    import fcntl
except ImportError:  # not a POSIX system: runs go unlocked
    fcntl = None

from .checkpoint import CheckpointError
from .config import ConfigError

__all__ = ["check_run_folder", "remove_checkpoints", "lock_run_folder", "training_in_progress", "RunFolderInUse",
           "LOCK_NAME"]

#: the lock file a training run holds in its run folder
LOCK_NAME = "train.lock"


class RunFolderInUse(ConfigError):
    """The run folder is held by another training run (its lock file is locked)."""


def _writable_folder(out: Path) -> None:
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
    _writable_folder(out)
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


def _first_process() -> bool:
    """True unless the environment names this process as a later rank of a distributed run (those
    write no run-folder files of their own; the first process holds the lock for all)."""
    return all(os.environ.get(k) in (None, "", "0") for k in ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK"))


def _holder(path: Path) -> str:
    try:
        text = path.read_text(errors="replace").strip()
    except OSError:
        text = ""
    return text or "a process that wrote no details"


@contextlib.contextmanager
def lock_run_folder(out):
    """Hold an exclusive lock on ``out/train.lock`` for the block (creating ``out``; a folder created
    here and left holding only the lock file is removed again). Raises :class:`RunFolderInUse` at once
    when another process holds it, :class:`ConfigError` when ``out`` cannot be a writable folder. On a
    file system without ``flock`` the run goes on unlocked, with a note."""
    out = Path(out)
    if not _first_process() or fcntl is None:
        yield None
        return
    _writable_folder(out)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        for attempt in range(6):  # a reader's brief shared lock (training_in_progress) is waited out
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if attempt == 5:
                    raise RunFolderInUse(f"run folder {out} is in use by another training run ({_holder(path)}); "
                                         "wait for it to finish or choose another --out") from None
                time.sleep(0.05)
            except OSError as e:  # ENOLCK / EOPNOTSUPP: no flock on this file system
                print(f"note: cannot lock {path} ({e.strerror or e}): a second run writing {out} would not be "
                      "detected", file=sys.stderr)
                break
        stamp = time.strftime("%Y-%m-%d %H:%M:%S %Z")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"process {os.getpid()} on {socket.gethostname()}, started {stamp}\n".encode(), 0)
        yield path
    finally:
        if created and os.listdir(out) == [LOCK_NAME]:  # nothing but the lock was made: leave no trace
            with contextlib.suppress(OSError):
                path.unlink()
                out.rmdir()
        os.close(fd)  # releases the lock


def training_in_progress(path) -> str | None:
    """The holder of the run folder of ``path`` (a run folder, or a checkpoint in it or in its
    ``checkpoints/``) while a training run holds its lock, else None. Takes a shared lock for an
    instant (never waits)."""
    path = Path(path)
    if fcntl is None:
        return None
    folders = [path] if path.is_dir() else [path.parent, path.parent.parent]
    for folder in folders:
        lock = folder / LOCK_NAME
        try:
            fd = os.open(lock, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
        except BlockingIOError:
            return f"{folder} is still being trained ({_holder(lock)})"
        except OSError:
            pass
        finally:
            os.close(fd)
    return None
