"""A seeded, distributed and resumable data order.

:class:`ResumableSampler` is a :class:`torch.utils.data.DistributedSampler` (so
Lightning never replaces it) whose order is a function of ``(seed, epoch)`` only,
and :class:`ResumableLoader` a ``DataLoader`` that counts the batches it has
delivered in the current epoch and saves ``{epoch, batches}`` through
``state_dict`` / ``load_state_dict``. Lightning stores the state of such a
loader in its checkpoints (``loops.fit_loop.state_dict.combined_loader``) and
restores it before the loop resumes, so a run resumed from a mid-epoch
checkpoint continues with exactly the samples the uninterrupted run would have
seen next.

A restored position belongs to its epoch: it applies to the next pass over the
data only when that pass is over the same epoch. Lightning restores a checkpoint
written at an epoch's last step (a validation there, a stop at the end of that
step) by finishing that epoch without another pass and setting the next epoch
on the sampler; the next pass then starts that epoch from its beginning.
"""

from __future__ import annotations

from torch.utils.data import DataLoader, DistributedSampler

__all__ = ["ResumableLoader", "ResumableSampler"]


class ResumableSampler(DistributedSampler):
    """Indices of ``dataset`` for one of ``num_replicas`` processes, shuffled with
    ``seed + epoch`` (as ``DistributedSampler``). :meth:`resume_at` makes the next pass
    over one epoch start part-way into it (set by :class:`ResumableLoader` on resumption).
    ``len`` stays the whole epoch's, as Lightning counts the resumed epoch's batches from
    the checkpoint."""

    def __init__(self, dataset, num_replicas: int = 1, rank: int = 0, shuffle: bool = True, seed: int = 0):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=False)
        self._resume: tuple[int, int] | None = None  # (epoch, indices of it already seen)

    def resume_at(self, epoch: int, skip: int) -> None:
        """Set ``epoch`` and start its next pass ``skip`` indices in. A pass over any other epoch
        (the one after, when the restored epoch had no batches left) starts at its beginning and
        drops this position."""
        self.set_epoch(int(epoch))
        self._resume = (int(epoch), max(0, min(int(skip), self.num_samples)))

    @property
    def skip(self) -> int:
        """The indices the next pass skips: the resumed position if it is in the current epoch, else 0."""
        if self._resume is not None and self._resume[0] == self.epoch:
            return self._resume[1]
        return 0

    def __iter__(self):
        indices = list(super().__iter__())
        skip, self._resume = self.skip, None
        return iter(indices[skip:])


class ResumableLoader(DataLoader):
    """A ``DataLoader`` over a :class:`ResumableSampler` with a resumable position.

    ``state_dict()`` -> ``{"epoch", "batches", "seed", "num_replicas", "batch_size"}``:
    the sampler epoch and the batches already delivered in it (0 when its pass has not started)."""

    def __init__(self, dataset, sampler: ResumableSampler, **kwargs):
        super().__init__(dataset, sampler=sampler, **kwargs)
        self._position = (int(sampler.epoch), 0)  # (epoch, batches of it delivered)

    def __iter__(self):
        s = self.sampler
        epoch, delivered = int(s.epoch), s.skip // self.batch_size
        self._position = (epoch, delivered)
        for batch in super().__iter__():
            delivered += 1
            self._position = (epoch, delivered)
            yield batch

    def state_dict(self) -> dict:
        s = self.sampler
        epoch, delivered = self._position
        return {"epoch": int(s.epoch), "batches": int(delivered) if epoch == s.epoch else 0, "seed": int(s.seed),
                "num_replicas": int(s.num_replicas), "batch_size": int(self.batch_size)}

    def load_state_dict(self, state: dict) -> None:
        s = self.sampler
        same = (state.get("seed") == s.seed and state.get("num_replicas") == s.num_replicas
                and state.get("batch_size") == self.batch_size)
        if not same:  # another seed, world size or batch size: the old position means nothing here
            return
        epoch, batches = int(state["epoch"]), int(state["batches"])
        s.resume_at(epoch, batches * self.batch_size)
        self._position = (epoch, batches)
