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
"""

from __future__ import annotations

from torch.utils.data import DataLoader, DistributedSampler

__all__ = ["ResumableLoader", "ResumableSampler"]


class ResumableSampler(DistributedSampler):
    """Indices of ``dataset`` for one of ``num_replicas`` processes, shuffled with
    ``seed + epoch`` (as ``DistributedSampler``), optionally starting ``skip`` indices
    into the epoch (set by :class:`ResumableLoader` on resumption). ``len`` stays the
    whole epoch's, as Lightning counts the resumed epoch's batches from the checkpoint."""

    def __init__(self, dataset, num_replicas: int = 1, rank: int = 0, shuffle: bool = True, seed: int = 0):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=False)
        self.skip = 0

    def __iter__(self):
        indices = list(super().__iter__())
        skip, self.skip = self.skip, 0
        return iter(indices[skip:])


class ResumableLoader(DataLoader):
    """A ``DataLoader`` over a :class:`ResumableSampler` with a resumable position.

    ``state_dict()`` -> ``{"epoch", "batches", "seed", "num_replicas", "batch_size"}``:
    the sampler epoch and the batches already delivered in it."""

    def __init__(self, dataset, sampler: ResumableSampler, **kwargs):
        super().__init__(dataset, sampler=sampler, **kwargs)
        self._delivered = 0

    def __iter__(self):
        self._delivered = self.sampler.skip // self.batch_size if self.sampler.skip else 0
        for batch in super().__iter__():
            self._delivered += 1
            yield batch

    def state_dict(self) -> dict:
        s = self.sampler
        return {"epoch": int(s.epoch), "batches": int(self._delivered), "seed": int(s.seed),
                "num_replicas": int(s.num_replicas), "batch_size": int(self.batch_size)}

    def load_state_dict(self, state: dict) -> None:
        s = self.sampler
        same = (state.get("seed") == s.seed and state.get("num_replicas") == s.num_replicas
                and state.get("batch_size") == self.batch_size)
        if not same:  # another seed, world size or batch size: the old position means nothing here
            return
        s.set_epoch(int(state["epoch"]))
        s.skip = min(int(state["batches"]) * self.batch_size, s.num_samples)
        self._delivered = int(state["batches"])
