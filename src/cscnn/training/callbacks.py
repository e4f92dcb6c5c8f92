"""Lightning callbacks used by :func:`cscnn.training.train`."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Checkpoint

__all__ = ["ValidateAtEnd", "LatestCheckpoint", "RestoreDataPosition", "TrainingInterrupted", "stop_on_signals"]

#: the signals that stop training after the current step (a second one stops at once)
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class ValidateAtEnd(L.Callback):
    """Run validation (and so save ``best``/``last`` checkpoints) at the final step of a
    ``max_steps`` budget, also when it falls in the middle of an epoch.

    Lightning validates on its own when ``trainer.should_stop`` is set, so this sets it
    once ``global_step`` reaches ``max_steps``.
    """

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.max_steps is not None and trainer.max_steps > 0 and trainer.global_step >= trainer.max_steps:
            trainer.should_stop = True


class RestoreDataPosition(L.Callback):
    """Puts the training loader at the position in the epoch saved with the checkpoint a run resumes from.

    Lightning (checked with 2.6) hands the saved position (``loops.fit_loop.state_dict.combined_loader``) to the
    loader only when it builds the loader after restoring its loops. With ``max_epochs`` set,
    ``trainer.estimated_stepping_batches`` (the length of the learning-rate schedule, read in
    ``configure_optimizers``) builds it before, and the position was dropped: a run resumed mid-epoch
    repeated the epoch's first batches. At the start of training the loops are restored and no batch has
    been drawn, so this loads a position still pending and starts the epoch's pass again from it."""

    def on_train_start(self, trainer, pl_module):
        loop = trainer.fit_loop
        if not (loop.restarting and loop._combined_loader_states_to_load and loop._combined_loader is not None):
            return
        loop._load_combined_loader_states()
        iter(loop._data_fetcher)  # a new pass: the one made before the restore has not drawn a batch


class TrainingInterrupted(Exception):
    """Training stopped by a signal (SIGINT, SIGTERM) at the end of a step, after saving the latest state."""

    def __init__(self, signum: int, step: int, path: Path):
        self.signum, self.step, self.path = int(signum), int(step), Path(path)
        self.signame = signal.Signals(signum).name
        super().__init__(f"training stopped by {self.signame} at step {step}; the latest state is in {path}")


class LatestCheckpoint(Checkpoint):
    """Keeps ``path`` (``checkpoints/last.ckpt``) the latest state of training: written after every
    validation (whether or not the validation loss improved), at the end of training (``max_steps``,
    ``max_epochs``, ``max_time``, early stopping) and, when a stop signal arrived (:func:`stop_on_signals`),
    at the end of the current training step, which then raises :class:`TrainingInterrupted`.

    As a :class:`lightning.pytorch.callbacks.Checkpoint` it runs after the other callbacks of a hook
    (after the ``best`` ModelCheckpoint has recorded the new best score), so the state it saves is
    complete. It saves through ``trainer.save_checkpoint``, hence through the trainer's checkpoint
    writer (atomic with :class:`cscnn.training.checkpoint.AtomicCheckpointIO`) and the module's refusal
    to save non-finite weights."""

    def __init__(self, path):
        self.path = Path(path)
        self.signal: int | None = None
        self._saved_step: int | None = None
        self._step_before = -1
        self._handling = False  # set by stop_on_signals
        self._pid = os.getpid()

    def _save(self, trainer) -> None:
        if trainer.global_step == self._saved_step or trainer.sanity_checking:
            return
        trainer.save_checkpoint(self.path, weights_only=False)  # the whole state (resume point)
        self._saved_step = trainer.global_step

    def _take_signals(self) -> None:
        """Lightning installs its own SIGTERM handler when ``fit`` starts (it ends training with exit
        status 0, mid-validation too, without saving): while training, the signals come here alone."""
        if self._handling and threading.current_thread() is threading.main_thread():
            for s in STOP_SIGNALS:
                signal.signal(s, self.request_stop)

    def on_sanity_check_start(self, trainer, pl_module):
        self._take_signals()

    def on_train_start(self, trainer, pl_module):
        self._take_signals()
        self._saved_step = trainer.global_step  # a resumed run: last.ckpt already holds this step

    def on_validation_end(self, trainer, pl_module):
        self._save(trainer)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._step_before = trainer.global_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self._step_before:  # gradients still accumulating: not a step's end
            return
        stop = trainer.strategy.reduce_boolean_decision(self.signal is not None, all=False)  # any process
        if stop:
            self._save(trainer)
            raise TrainingInterrupted(self.signal or signal.SIGTERM, trainer.global_step, self.path)

    def on_train_end(self, trainer, pl_module):
        self._save(trainer)

    def request_stop(self, signum, frame=None) -> None:
        """Signal handler: the first signal asks for a stop after the current step, a second one
        stops at once (as Ctrl+C does without this handler). In a data-loader worker (a fork that
        inherited the handler; Ctrl+C signals the whole process group) it does nothing: the worker
        keeps serving batches until the training process stops."""
        if os.getpid() != self._pid:
            return
        if self.signal is not None:
            raise KeyboardInterrupt
        self.signal = signum
        print(f"\n{signal.Signals(signum).name} received: stopping after the current step and saving {self.path} "
              "(send it again to stop at once)", file=sys.stderr, flush=True)


@contextlib.contextmanager
def stop_on_signals(callback: LatestCheckpoint):
    """Route SIGINT and SIGTERM to ``callback.request_stop`` while the block runs (main thread only;
    the callback takes them back from Lightning once ``fit`` has installed its own), then restore the
    handlers there were before."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    for s in STOP_SIGNALS:
        signal.signal(s, callback.request_stop)
    callback._handling, callback._pid = True, os.getpid()
    try:
        yield
    finally:
        callback._handling = False
        for s, handler in previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)
