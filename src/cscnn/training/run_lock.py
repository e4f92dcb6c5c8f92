"""One training run per run folder: an OS lock (``flock``) on ``train.lock`` in the folder.

:func:`lock_run_folder` holds it for the whole of a training run; the kernel releases it when the
process ends in any way (a SIGKILL leaves no stale lock). A second writer is refused at once with
:class:`RunFolderInUse` naming the holder (the lock file holds its process id, host and start time);
readers (:func:`training_in_progress`) may read a held folder and say that it is still training.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import time
from pathlib import Path

try:
    import fcntl
except ImportError:  # not a POSIX system: runs go unlocked
    fcntl = None

from .config import ConfigError

__all__ = ["LOCK_NAME", "RunFolderInUse", "lock_run_folder", "training_in_progress"]

#: the lock file a training run holds in its run folder
LOCK_NAME = "train.lock"


class RunFolderInUse(ConfigError):
    """The run folder is held by another training run (its lock file is locked)."""


def _first_process() -> bool:
    """True unless the environment names this process as a later rank of a distributed run (those
    write no run-folder files of their own; the first process holds the lock for all): the variables
    torchrun, Lightning's launcher, SLURM (``srun``) and LSF set."""
    keys = ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK")
    return all(os.environ.get(k) in (None, "", "0") for k in keys)


def _holder(path: Path) -> str:
    try:
        text = path.read_text(errors="replace").strip()
    except OSError:
        text = ""
    return text or "a process that wrote no details"


@contextlib.contextmanager
def lock_run_folder(out):
    """Hold an exclusive lock on ``out/train.lock`` for the block (creating ``out``, which should have
    passed :func:`cscnn.training.run_folder.check_writable`; a folder created here and left holding only
    the lock file is removed again). Raises :class:`RunFolderInUse` at once when another process holds
    it. On a file system without ``flock`` the run goes on unlocked, with a note."""
    out = Path(out)
    if not _first_process() or fcntl is None:
        yield None
        return
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    held = False
    try:
        for attempt in range(6):  # a reader's brief shared lock (training_in_progress) is waited out
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                held = True
                break
            except BlockingIOError:
                if attempt == 5:
                    raise RunFolderInUse(f"run folder {out} is in use by another training run ({_holder(path)}); "
                                         "wait for it to finish or choose another --out") from None
                time.sleep(0.05)
            except OSError as e:  # ENOLCK / EOPNOTSUPP: no flock on this file system
                print(f"note: cannot lock {path} ({e.strerror or e}): a second run writing {out} would not be "
                      "detected", file=sys.stderr)
                held = True
                break
        stamp = time.strftime("%Y-%m-%d %H:%M:%S %Z")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"process {os.getpid()} on {socket.gethostname()}, started {stamp}\n".encode(), 0)
        yield path
    finally:
        if held and created and os.listdir(out) == [LOCK_NAME]:  # nothing but the lock was made: no trace
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
