import pytest
import torch

from cscnn import CliffordAlgebra

# Test inputs are tiny: one intra-op thread avoids OpenMP start-up/spin costs that
# dominate small ops (and collapse under load on 2-core machines).
torch.set_num_threads(1)

METRICS = [(1, 1), (1, 1, 1), (-1, 1, 1), (-1, 1, 1, 1), (1, 1, -1, -1)]


@pytest.fixture(params=METRICS, ids=lambda m: "metric" + "".join("+" if s > 0 else "-" for s in m))
def alg(request):
    return CliffordAlgebra(request.param)


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(0)
