"""Lightning callbacks used by :func:`cscnn.training.train`."""

from __future__ import annotations

import lightning as L

__all__ = ["ValidateAtEnd"]


class ValidateAtEnd(L.Callback):
    """Run validation (and so save ``best``/``last`` checkpoints) at the final step of a
    ``max_steps`` budget, also when it falls in the middle of an epoch.

    Lightning validates on its own when ``trainer.should_stop`` is set, so this sets it
    once ``global_step`` reaches ``max_steps``.
    """

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.max_steps is not None and trainer.max_steps > 0 and trainer.global_step >= trainer.max_steps:
            trainer.should_stop = True
