import pytest
import torch

from cscnn import CliffordAlgebra

METRICS = [(1, 1), (1, 1, 1), (-1, 1, 1), (-1, 1, 1, 1), (1, 1, -1, -1)]


@pytest.fixture(params=METRICS, ids=lambda m: "metric" + "".join("+" if s > 0 else "-" for s in m))
def alg(request):
    return CliffordAlgebra(request.param)


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(0)
