"""The bad and poor input cases of issue 21: each is refused with a one-line message naming what is wrong."""

from __future__ import annotations

import math

import pytest
import torch

from cscnn import CliffordAlgebra
from cscnn.algebra import boost, sample_group_elements


# ------------------------------------------------------------- algebra / testing
@pytest.mark.parametrize("rapidity", [math.nan, math.inf, -math.inf])
def test_boost_rejects_non_finite_rapidity(rapidity):
    with pytest.raises(ValueError, match=f"finite rapidity .*got {rapidity}"):
        boost((-1, 1, 1), 0, 1, rapidity)
    with pytest.raises(ValueError, match="finite rapidity"):
        boost((-1, 1, 1), 0, 1, torch.tensor([0.5, rapidity]))


def test_boost_rejects_rapidity_whose_cosh_overflows():
    with pytest.raises(ValueError, match="cosh overflows torch.float64"):
        boost((-1, 1), 0, 1, 800.0)
    with pytest.raises(ValueError, match="cosh overflows torch.float32"):
        boost((-1, 1), 0, 1, 100.0, dtype=torch.float32)
    assert torch.isfinite(boost((-1, 1), 0, 1, 700.0)).all()  # large but representable: fine
    with pytest.raises(ValueError, match="max_rapidity must be a finite number"):
        sample_group_elements((-1, 1, 1), 2, max_rapidity=math.nan)


def _x(alg):
    return torch.randn(1, 2, 4, 4, alg.n_blades, dtype=torch.float64, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("n", [0, -1, 1.5, True])
def test_assert_equivariant_needs_at_least_one_sample(n):
    from cscnn.testing import assert_equivariant

    alg = CliffordAlgebra((1, 1))
    with pytest.raises(ValueError, match=f"n_samples must be an integer >= 1.*got {n!r}"):
        assert_equivariant(lambda t: t, alg, _x(alg), n_samples=n)


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_assert_equivariant_fails_on_non_finite_outputs(value):
    """A module that outputs NaN / inf used to give error NaN, which passed the rtol check."""
    from cscnn.testing import assert_equivariant, equivariance_error

    alg = CliffordAlgebra((1, 1))
    x = _x(alg)
    with pytest.raises(AssertionError, match=r"not equivariant: .*f\(x\) .*NaN or inf"):
        assert_equivariant(lambda t: t * value, alg, x)

    def sometimes(t):  # finite on x, non-finite on a transformed input only
        return t if torch.equal(t, x) else t * value

    with pytest.raises(AssertionError, match=r"f\(g\.x\) .*NaN or inf"):
        assert_equivariant(sometimes, alg, x, n_samples=8)
    g = torch.eye(2, dtype=torch.float64)
    with pytest.raises(ValueError, match="NaN or inf"):
        equivariance_error(lambda t: t * value, alg, x, g)
    with pytest.raises(ValueError, match="input x .* NaN or inf"):
        assert_equivariant(lambda t: t, alg, x * value)
    assert assert_equivariant(lambda t: 2 * t, alg, x) == 0.0  # an equivariant finite module still passes
