"""Two-sided kernel head: dense reference, steerability with sampled O(p,q) elements, equivariance."""

import pytest
import torch

from cscnn import CliffordAlgebra
from cscnn.algebra import grid_symmetries, sample_group_elements
from cscnn.models import CSResNet, CSUNet, build_model
from cscnn.nn import CliffordSteerableConv, CliffordSteerableKernel, TwoSidedHead
from cscnn.nn.kernel_head import two_sided_paths
from cscnn.testing import assert_equivariant, equivariance_error, perturb_parameters

D = torch.float64
METRICS = [(1, 1), (1, 1, 1), (-1, 1, 1), (-1, 1, 1, 1)]


def _perturb(module, scale=0.3, seed=0):
    return perturb_parameters(module, scale, seed)


@pytest.mark.parametrize("metric", [(1, 1), (-1, 1, 1)], ids=str)
def test_two_sided_head_matches_grade_projected_products(metric):
    alg = CliffordAlgebra(metric)
    n = alg.n_blades
    head = TwoSidedHead(alg, 2, 3, dtype=D)
    k = torch.randn(4, 2, 3, n, dtype=D)
    out = head(k).unflatten(-1, (n, n))  # (P, o, i, j, m)
    ref = torch.zeros_like(out)
    basis = torch.eye(n, dtype=D)
    for p, (a, b, c, d) in enumerate(two_sided_paths(alg)):
        ka, kc = alg.grade_project(k, [a]), alg.grade_project(k, [c])
        for m in range(n):
            f = alg.grade_project(basis[m], [b]).expand_as(k)
            prod = alg.grade_project(alg.geometric_product(alg.geometric_product(ka, f), kc), [d])
            ref[..., m] += head.weight[None, :, :, p, None] * prod
    assert torch.allclose(out, ref, atol=1e-12)


def test_two_sided_paths_count():
    # every (a, b, c) grade triple reaches at least one output grade; Cl(2,0) has 33 paths
    assert len(two_sided_paths(CliffordAlgebra((1, 1)))) == 33
    assert TwoSidedHead((1, 1, 1), 1, 1).n_paths == len(two_sided_paths(CliffordAlgebra((1, 1, 1))))


@pytest.mark.parametrize("metric", METRICS, ids=str)
def test_two_sided_kernel_steerability(metric):
    """K(g v) = rho(g) K(v) rho(g)^-1 with boosts and reflections."""
    torch.manual_seed(0)
    alg = CliffordAlgebra(metric)
    kernel = _perturb(CliffordSteerableKernel(alg, 2, 2, 3, head="two_sided", hidden_channels=6, dtype=D))
    pts = torch.randn(6, alg.dim, dtype=D) * 0.6
    gs = sample_group_elements(alg, 4, max_rapidity=1.2, generator=torch.Generator().manual_seed(1))
    assert (torch.linalg.det(gs) < 0).any()  # reflections among them
    for g in gs:
        m = alg.outermorphism(g)
        lhs = kernel.evaluate(pts @ g.T)
        rhs = torch.einsum("ja,poaib,bm->pojim", m, kernel.evaluate(pts), torch.linalg.inv(m))
        assert ((lhs - rhs).abs().max() / rhs.abs().max()) < 1e-10


def test_two_sided_adds_the_sandwich_map():
    """In Cl(2,0) the two-sided kernel reaches the map e0 -> e0, e1 -> -e1 at v = e0, the left one does not."""
    alg = CliffordAlgebra((1, 1))
    v = torch.tensor([[0.5, 0.0]], dtype=D)
    target = torch.zeros(4, 4, dtype=D)
    target[1, 1], target[2, 2] = 1.0, -1.0

    def residual(head):
        mats = []
        for seed in range(12):
            torch.manual_seed(seed)
            kern = _perturb(CliffordSteerableKernel(alg, 1, 1, 1, head=head, dtype=D), 0.5, seed)
            with torch.no_grad():
                mats.append(kern.evaluate(v).reshape(16))
        a = torch.stack(mats, 1)
        coef = torch.linalg.lstsq(a, target.reshape(16)).solution
        return float((a @ coef - target.reshape(16)).norm())

    assert residual("left") > 0.1
    assert residual("two_sided") < 1e-8


@pytest.mark.parametrize("metric,size", [((1, 1), (7, 7)), ((1, 1, 1), (5, 5, 5)), ((-1, 1, 1), (4, 5, 5)),
                                         ((-1, 1, 1, 1), (3, 4, 4, 4))], ids=str)
@pytest.mark.parametrize("padding_mode", ["zeros", "circular", "reflect", "replicate"])
def test_two_sided_conv_grid_equivariance(metric, size, padding_mode):
    torch.manual_seed(0)
    alg = CliffordAlgebra(metric)
    conv = _perturb(CliffordSteerableConv(alg, 2, 2, 3, padding_mode=padding_mode, head="two_sided",
                                          num_layers=2, hidden_channels=4, dtype=D))
    x = torch.randn(1, 2, *size, alg.n_blades, dtype=D)
    gs = grid_symmetries(alg)
    for g in gs[torch.randperm(len(gs), generator=torch.Generator().manual_seed(2))[:3]]:
        assert equivariance_error(conv, alg, x, g) < 1e-10


def test_head_option_validated_and_passed_through():
    with pytest.raises(ValueError, match="head must be one of"):
        CliffordSteerableKernel((1, 1), 1, 1, 3, head="right")
    net = CSResNet((1, 1), 1, 1, 2, blocks=(1,), kernel_size=3, kernel_num_layers=2, kernel_hidden_channels=4,
                   kernel_head="two_sided")
    convs = [m for m in net.modules() if isinstance(m, CliffordSteerableConv)]
    assert convs and all(c.kernel.head == "two_sided" and c.kernel.two_sided is not None for c in convs)
    unet = CSUNet((1, 1), 1, 1, 2, channel_mults=(1, 2), kernel_size=3, kernel_num_layers=2,
                  kernel_hidden_channels=4, kernel_head="two_sided")
    assert all(c.kernel.head == "two_sided" for c in unet.modules() if isinstance(c, CliffordSteerableConv))
    assert build_model("cs_resnet_two_sided", (1, 1), 1, 1, 2, blocks=[1], kernel_size=3).kernel_head == "two_sided"


@pytest.mark.parametrize("metric", [(1, 1), (-1, 1, 1)], ids=str)
def test_two_sided_model_equivariance(metric):
    torch.manual_seed(0)
    alg = CliffordAlgebra(metric)
    net = CSResNet(alg, 2, 1, 3, blocks=(1,), kernel_size=3, kernel_num_layers=2, kernel_hidden_channels=4,
                   kernel_head="two_sided").double()
    x = torch.randn(2, 2, *([6] * alg.dim), alg.n_blades, dtype=D)
    assert_equivariant(net, alg, x, n_samples=4, generator=torch.Generator().manual_seed(0))
