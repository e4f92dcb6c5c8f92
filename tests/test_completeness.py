"""The kernel completeness certificate (cscnn.testing.kernel_completeness)."""

import pytest
import torch

from cscnn import CliffordAlgebra
from cscnn.algebra import is_in_group
from cscnn.nn import CliffordSteerableKernel
from cscnn.testing import commutant_basis, kernel_completeness, stabiliser_elements

D = torch.float64


def _factory(metric, head="left", condition_channels=0):
    return lambda draw: CliffordSteerableKernel(metric, 1, 1, 1, head=head, condition_channels=condition_channels)


@pytest.mark.parametrize("v", [(0.2, 0.6, 0.0), (0.6, 0.2, 0.1), (0.5, 0.5, 0.0)], ids=["space", "time", "light"])
def test_stabiliser_elements_fix_v_and_lie_in_the_group(v):
    alg = CliffordAlgebra((-1, 1, 1))
    v = torch.tensor(v, dtype=D)
    els, lie_dim, n_refl = stabiliser_elements(alg, v, 6, generator=torch.Generator().manual_seed(0))
    assert lie_dim == 1 and n_refl > 0  # one-parameter stabiliser (rotation, boost or null rotation) + reflections
    assert is_in_group(els, alg.metric).all()
    assert torch.allclose(els @ v, v.expand(len(els), 3), atol=1e-10)
    assert (torch.linalg.det(els) < 0).any() and (els - torch.eye(3, dtype=D)).abs().amax((1, 2)).max() > 0.1


def test_commutant_of_a_reflection_is_block_diagonal():
    """Cl(2,0), v = e0: Stab = {1, e1 -> -e1}; rho is diag(1, 1, -1, -1), commutant = two 2x2 blocks (8)."""
    alg = CliffordAlgebra((1, 1))
    els, lie_dim, _ = stabiliser_elements(alg, torch.tensor([0.5, 0.0], dtype=D), 4)
    assert lie_dim == 0
    basis = commutant_basis(alg, els)
    assert basis.shape == (8, 4, 4)
    off = torch.ones(4, 4, dtype=torch.bool)
    off[:2, :2] = off[2:, 2:] = False
    assert basis[:, off].abs().max() < 1e-12


def test_plain_kernel_is_incomplete_and_two_sided_complete_in_cl20():
    v = torch.tensor([0.5, 0.0], dtype=D)
    plain = kernel_completeness(_factory((1, 1)), (1, 1), v)
    assert (plain.span_dim, plain.commutant_dim) == (7, 8) and str(plain) == "7/8" and not plain.complete
    assert plain.max_outside < 1e-10 and plain.kept_sv > 1e3 * max(plain.dropped_sv, 1e-300)
    two = kernel_completeness(_factory((1, 1), "two_sided"), (1, 1), v)
    assert str(two) == "8/8" and two.complete and two.ratio == 1.0


def test_conditional_kernel_certificate_uses_the_stabiliser_of_v_and_c():
    v = torch.tensor([0.5, 0.0], dtype=D)
    c = torch.tensor([[0.3, 0.2, -0.4, 0.7]], dtype=D)
    left = kernel_completeness(_factory((1, 1), "left", 1), (1, 1), v, c)
    assert left.commutant_dim == 16 and left.stabiliser_dim == 0  # generic c: trivial stabiliser
    assert left.span_dim == 14  # the left products <k^(a) f^(b)>_c span 14 of the 16 maps
    # a condition fixed by the reflection e1 -> -e1 keeps that stabiliser element
    c_sym = torch.tensor([[0.3, 0.2, 0.0, 0.0]], dtype=D)
    sym = kernel_completeness(_factory((1, 1), "left", 1), (1, 1), v, c_sym)
    assert sym.commutant_dim == 8 and sym.max_outside < 1e-10


def test_certificate_rejects_bad_input():
    with pytest.raises(ValueError, match="single-channel"):
        kernel_completeness(lambda d: CliffordSteerableKernel((1, 1), 1, 2, 1), (1, 1), torch.tensor([0.5, 0.0]))
    with pytest.raises(ValueError, match="v must have shape"):
        kernel_completeness(_factory((1, 1)), (1, 1), torch.tensor([0.5, 0.0, 0.0]))


@pytest.mark.slow
@pytest.mark.parametrize("metric,v,plain,two", [
    ((1, 1, 1), (0.5, 0.2, 0.0), "10/12", "12/12"),
    ((-1, 1, 1), (0.2, 0.6, 0.0), "10/12", "12/12"),
    ((-1, 1, 1), (0.6, 0.2, 0.1), "10/12", "12/12"),
    ((-1, 1, 1, 1), (0.1, 0.5, 0.0, 0.0), "13/16", "16/16"),
    ((-1, 1, 1, 1), (0.6, 0.1, 0.2, 0.0), "13/16", "16/16"),
], ids=str)
def test_certificate_per_signature(metric, v, plain, two):
    v = torch.tensor(v, dtype=D)
    assert str(kernel_completeness(_factory(metric), metric, v)) == plain
    assert str(kernel_completeness(_factory(metric, "two_sided"), metric, v)) == two
