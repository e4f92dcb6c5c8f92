"""The model-level kernel bank (issue 20): equal-shaped kernel networks of a model evaluated in one call."""

import torch

from cscnn import CliffordAlgebra
from cscnn.models import CSResNet
from cscnn.nn import CliffordSteerableConv, KernelNetwork
from cscnn.nn.conv import kernel_bank
from cscnn.nn.kernel_bank import dense_from_head, evaluate_kernels

D = torch.float64
KW = {"kernel_num_layers": 3, "kernel_hidden_channels": 3}


def _net():
    torch.manual_seed(0)
    return CSResNet(CliffordAlgebra((1, 1)), 2, 1, 3, blocks=(2,), kernel_size=3, **KW).double()


def test_bank_runs_all_kernel_networks_in_one_call_and_matches_per_conv_kernels(monkeypatch):
    from cscnn.nn import kernel_bank as kb

    net = _net().train()
    convs = [m for m in net.modules() if isinstance(m, CliffordSteerableConv)]
    module_calls, network_calls = [], []
    for m in net.modules():
        if isinstance(m, KernelNetwork):
            m.register_forward_hook(lambda *a: module_calls.append(1))
    apply = kb._Network.apply
    monkeypatch.setattr(kb._Network, "apply", lambda *a: network_calls.append(a[1].shape) or apply(*a))
    with kernel_bank(net):
        # 8 convs in 4 groups of equal kernels (4 k x k, two 3 -> 3 1x1, a 2 -> 3 and a 3 -> 1 1x1): one
        # network call for all, inputs padded to the 9 points of the 3x3 grid
        assert all(c._banked_weight is not None for c in convs) and len(convs) == 8
        assert network_calls == [torch.Size([8, 4, 1, 9])] and module_calls == []
        banked = [c.weight for c in convs]
    assert all(c._banked_weight is None for c in convs)
    monkeypatch.setattr(kb._Network, "apply", apply)
    for c, w in zip(convs, banked):
        torch.testing.assert_close(w, c.kernel(), rtol=1e-12, atol=1e-14)


def test_bank_gradients_equal_per_conv_gradients():
    net = _net().train()
    x = torch.randn(2, 2, 5, 5, 4, dtype=D)
    net(x).square().sum().backward()
    banked = {k: p.grad.clone() for k, p in net.named_parameters()}
    net.zero_grad()
    h = net.embedding(x)  # the same layers called one by one: no bank, each conv its own kernel
    net.output(net.layers(h)).square().sum().backward()
    for k, p in net.named_parameters():
        torch.testing.assert_close(p.grad, banked[k], rtol=1e-10, atol=1e-14)


def test_evaluate_kernels_stacks_equal_shaped_kernels():
    convs = [CliffordSteerableConv((-1, 1, 1), 2, 2, 3, dtype=D, head="two_sided") for _ in range(3)]
    ks = [c.kernel for c in convs]
    dense = dense_from_head(evaluate_kernels(ks, ks[0].grid), 3, 3)
    for d, k in zip(dense, ks):
        torch.testing.assert_close(d, k(), rtol=1e-12, atol=1e-14)


def test_eval_mode_keeps_the_per_conv_cache_and_sees_data_writes():
    net = _net().eval()
    x = torch.randn(1, 2, 5, 5, 4, dtype=D)
    with torch.no_grad():
        y0 = net(x)
        for p in net.parameters():
            p.data.mul_(1.1)
        y1 = net(x)
        net.train()
        y2 = net(x)
    assert not torch.allclose(y0, y1)
    torch.testing.assert_close(y1, y2, rtol=1e-12, atol=1e-14)


def test_init_calibration_in_chunks_equals_the_whole_kernel_statistic():
    """kernel_gain runs the head over chunks of output channels: same statistic as the whole kernel's."""
    from cscnn.nn import ConditionalCliffordSteerableConv
    from cscnn.nn.kernel_bank import kernel_gain

    alg = CliffordAlgebra((-1, 1, 1))
    torch.manual_seed(0)
    kernels = [CliffordSteerableConv(alg, 3, 5, 3, dtype=D).kernel,
               CliffordSteerableConv(alg, 3, 5, 3, head="two_sided", dtype=D).kernel,
               ConditionalCliffordSteerableConv(alg, 3, 5, 3, dtype=D).kernel]
    for k in kernels:
        n = k.alg.n_blades
        cond = k._calibration_condition()
        with torch.no_grad():
            kern = evaluate_kernels([k], k.grid, cond)[0].reshape(k.out_channels, k.in_channels, n, n, -1)
            whole = kern.square().sum(dim=(1, 3, 4)).mean()
            for max_elements in (1, 3 * n * n * 27 * 2, 1 << 21):  # 1, 2 and all 5 output channels per chunk
                torch.testing.assert_close(kernel_gain(k, k.grid, cond, max_elements), whole, rtol=1e-13, atol=0)
        # and the constructor used it: unit gain after the rescale
        with torch.no_grad():
            torch.testing.assert_close(kernel_gain(k, k.grid, cond), torch.ones((), dtype=D), rtol=1e-10, atol=0)


# ----------------------------------------------------- the network as one node with a hand-written backward
def _stacked_network_inputs(metric, activation, g=2, q=3, seed=0):
    """A kernel network, stacked parameters of ``g`` perturbed copies and an input (g, n, 1, q), float64."""
    from cscnn.nn.kernel_bank import network_tensors

    torch.manual_seed(seed)
    net = KernelNetwork(CliffordAlgebra(metric), 3, num_layers=3, hidden_channels=2, activation=activation).double()
    params = [torch.stack([t.detach() + 0.3 * torch.randn_like(t) for _ in range(g)]).requires_grad_()
              for t in network_tensors(net)]
    x = torch.randn(g, net.layers[0].alg.n_blades, 1, q, dtype=D, requires_grad=True)
    return net, x, params


def _network_fn(net):
    from cscnn.nn.kernel_bank import run_network

    return lambda x, *params: run_network(x, list(params), net)


# Cl(1, 2): grade forms of both signs (the |forms| branch); both gates
def test_network_backward_passes_gradcheck_and_gradgradcheck():
    for metric, activation in (((1, 1), "gelu"), ((-1, 1, 1), "silu")):
        net, x, params = _stacked_network_inputs(metric, activation)
        fn = _network_fn(net)
        assert torch.autograd.gradcheck(fn, (x, *params), eps=1e-6, atol=1e-7)  # full Jacobian
        assert torch.autograd.gradgradcheck(fn, (x, *params), eps=1e-6, atol=1e-6, fast_mode=True)


def test_network_backward_equals_autograd_of_the_composite():
    from cscnn.nn.kernel_bank import _run_layers

    net, x, params = _stacked_network_inputs((1, 1, 1), "gelu", g=3, q=7, seed=1)
    tables = {name: getattr(net, name) for name in net.bank_table_names}
    grad = torch.randn(3, 8, 3, 7, dtype=D)
    mine = torch.autograd.grad(_network_fn(net)(x, *params), [x, *params], grad)
    ref = torch.autograd.grad(_run_layers(x, params, "gelu", 3, tables, net.layers[0].norm.eps), [x, *params], grad)
    for a, b in zip(mine, ref):
        torch.testing.assert_close(a, b, rtol=1e-11, atol=1e-13)
    # one autograd node for the whole network (not one per operator)
    out = _network_fn(net)(x, *params)
    assert type(out.grad_fn).__name__ == "_NetworkBackward"


def test_groups_of_different_sizes_and_heads_share_one_network_call():
    """Kernel sizes 3 and 1, widths 2x2 / 3x2 / 1x3 and a two-sided head (spacetime Cl(1,2)) in one call:
    each group's kernels equal their own evaluation, gradients included."""
    from cscnn.nn.kernel_bank import evaluate_kernel_groups

    torch.manual_seed(0)
    specs = [(2, 2, 3, "left"), (2, 2, 3, "left"), (2, 3, 1, "left"), (3, 1, 3, "two_sided")]
    convs = [CliffordSteerableConv((-1, 1, 1), i, o, k, dtype=D, head=h, num_layers=3, hidden_channels=3)
             for i, o, k, h in specs]
    groups = [[convs[0].kernel, convs[1].kernel], [convs[2].kernel], [convs[3].kernel]]
    kerns = evaluate_kernel_groups(groups)
    weights = [torch.randn_like(c.kernel()) for c in convs]
    together = [dense_from_head(kern, g[0].kernel_size, 3) for kern, g in zip(kerns, groups)]
    together = [d for dense in together for d in dense.unbind(0)]
    loss = sum((d * w).sum() for d, w in zip(together, weights))
    grads = torch.autograd.grad(loss, [p for c in convs for p in c.kernel.parameters()])
    alone = [c.kernel() for c in convs]
    for a, b in zip(together, alone):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    ref = torch.autograd.grad(sum((d * w).sum() for d, w in zip(alone, weights)),
                              [p for c in convs for p in c.kernel.parameters()])
    for a, b in zip(grads, ref):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-13)
