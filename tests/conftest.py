import pytest
import torch

from cscnn import CliffordAlgebra

# Test inputs are tiny: one intra-op thread avoids OpenMP start-up/spin costs that
# dominate small ops (and collapse under load on 2-core machines).
torch.set_num_threads(1)

METRICS = [(1, 1), (1, 1, 1), (-1, 1, 1), (-1, 1, 1, 1), (1, 1, -1, -1)]

#: devices of the device-parametrised tests: the CPU always, CUDA where a GPU is present
#: (`pytest -k cuda` runs exactly those on a GPU machine; here they are skipped)
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                                  reason="no CUDA device"))]


@pytest.fixture(params=DEVICES)
def device(request):
    return torch.device(request.param)


@pytest.fixture(params=METRICS, ids=lambda m: "metric" + "".join("+" if s > 0 else "-" for s in m))
def alg(request):
    return CliffordAlgebra(request.param)


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(0)


@pytest.fixture(autouse=True)
def _torch_global_state_untouched():
    """Fail a test that leaks global torch state (autograd switch, default dtype), then restore it."""
    grad, dtype = torch.is_grad_enabled(), torch.get_default_dtype()
    yield
    leaked = (torch.is_grad_enabled(), torch.get_default_dtype()) != (grad, dtype)
    torch.set_grad_enabled(grad)
    torch.set_default_dtype(dtype)
    assert not leaked, "test changed torch's global grad mode or default dtype"
