"""Symmetry-breaking inputs: constant multivector fields fed to a model as extra channels.

An E(p,q)-equivariant model cannot learn a preferred direction such as gravity: for every
group element g, ``f(g.x) = g.f(x)``. Making the direction an *input* restores an exact
statement that such a model satisfies and that the physics satisfies too::

    f(g.x, g.e) = g.f(x, e)

where ``e`` is a constant multivector field (e.g. the buoyancy direction, the grade-1
multivector ``e_1`` at every grid point). :class:`WithConstantFields` wraps any model
mapping ``(B, C + k, *X, 2^n) -> (B, C_out, *X, 2^n)`` and appends the ``k`` stored fields
to every input; the data keep their own ``C`` channels, so training, evaluation and
rollouts are unchanged. With ``e`` held fixed (the wrapper's default) the wrapped model is
free to use "up"; transforming ``e`` with the data (``forward(x, fields=g.e)``, or the inner
model on ``[x, e]``) gives back exact equivariance.

The stored fields are one set for the whole task. Inputs that change from one trajectory to the
next, such as The Well's constant scalars (a Reynolds number per simulation), are appended by the
data sets instead (``TaskSpec.constant_inputs``, :class:`cscnn.data.PDEDataset`), so that they
travel with each sample.

Example::

    import torch
    from cscnn import CliffordAlgebra
    from cscnn.models import CSResNet, WithConstantFields
    alg = CliffordAlgebra((1, 1))
    up = torch.tensor([[0.0, 0.0, 1.0, 0.0]])                # (k=1, 2^n): the vector e_1
    net = WithConstantFields(CSResNet(alg, 4 + 1, 1, 4, blocks=(1,), kernel_size=3), up)
    y = net(torch.randn(2, 4, 16, 16, 4))                    # (2, 1, 16, 16, 4)
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["WithConstantFields"]


class WithConstantFields(nn.Module):
    """Append constant multivector fields to a model's input channels.

    Args:
        model: maps ``(B, C + k, *X, 2^n) -> (B, C_out, *X, 2^n)``.
        fields: ``(k, 2^n)`` multivectors, one per extra channel, constant over the grid
            (stored as a buffer, so it moves with ``.to()`` and is saved in the state dict).

    ``forward(x)`` reads ``x: (B, C, *X, 2^n)`` and returns the model's output on
    ``cat([x, fields broadcast to (B, k, *X, 2^n)], dim=1)``.
    """

    def __init__(self, model: nn.Module, fields):
        super().__init__()
        # checked on the CPU, also when the model is built under a meta-device context (size estimates)
        fields = fields.detach().cpu() if isinstance(fields, torch.Tensor) else torch.tensor(fields, device="cpu")
        if fields.ndim != 2 or fields.shape[0] < 1:
            raise ValueError(f"fields must have shape (k >= 1, n_blades), got {tuple(fields.shape)}")
        alg = getattr(model, "alg", None)
        if alg is not None and fields.shape[1] != alg.n_blades:
            raise ValueError(f"fields have {fields.shape[1]} blades, the model's algebra has {alg.n_blades}")
        if not torch.isfinite(fields).all():
            raise ValueError("symmetry-breaking fields must be finite")
        self.model = model
        self.register_buffer("fields", fields.to(torch.get_default_dtype()).clone())

    @property
    def alg(self):
        return getattr(self.model, "alg", None)

    @property
    def num_fields(self) -> int:
        return int(self.fields.shape[0])

    def field_tensor(self, x: torch.Tensor, fields: torch.Tensor | None = None) -> torch.Tensor:
        """The fields over ``x``'s batch and grid: ``(B, k, *X, 2^n)`` in ``x``'s dtype.

        ``fields``: None (the stored ones), ``(k, 2^n)`` constant multivectors, or a whole
        field ``(B, k, *X, 2^n)`` (e.g. the stored one transformed by a group element)."""
        if x.ndim < 3:
            raise ValueError(f"x must have shape (B, C, *grid, n_blades), got {tuple(x.shape)}")
        e = self.fields if fields is None else fields
        if e.ndim == 2:
            if e.shape != self.fields.shape:
                raise ValueError(f"fields must have shape {tuple(self.fields.shape)}, got {tuple(e.shape)}")
            shape = (x.shape[0], e.shape[0], *x.shape[2:-1], e.shape[1])
            return e.to(x.dtype).reshape(1, e.shape[0], *([1] * (x.ndim - 3)), e.shape[1]).expand(shape)
        if e.shape != (x.shape[0], self.num_fields, *x.shape[2:]):
            raise ValueError(f"fields must have shape {(x.shape[0], self.num_fields, *x.shape[2:])} "
                             f"or {tuple(self.fields.shape)}, got {tuple(e.shape)}")
        return e.to(x.dtype)

    def expand(self, x: torch.Tensor, fields: torch.Tensor | None = None) -> torch.Tensor:
        """The model's input ``(B, C + k, *X, 2^n)``: ``x`` with the fields appended (``fields`` as in
        :meth:`field_tensor`)."""
        return torch.cat([x, self.field_tensor(x, fields)], dim=1)

    def forward(self, x: torch.Tensor, fields: torch.Tensor | None = None) -> torch.Tensor:
        return self.model(self.expand(x, fields))

    def extra_repr(self) -> str:
        return f"fields={self.fields.tolist()}"
