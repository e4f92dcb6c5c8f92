"""Kernel networks as a few large operators, for one kernel or a bank of equal-shaped kernels.

The modules (:class:`~cscnn.nn.KernelNetwork`, :class:`~cscnn.nn.SteerableGeometricProduct`,
:class:`~cscnn.nn.GradeNorm`, ...) keep their parameters (and state_dict keys); this module evaluates
them functionally, with the parameters of ``G`` kernel networks of the same shape stacked on a
leading axis, so that a model runs all its equal-shaped kernel networks in ONE call
(:func:`cscnn.nn.conv.kernel_bank`; networks of one shape but different output widths or kernel grids
share one call too, :func:`evaluate_kernel_groups`), and one kernel runs as the same code with ``G = 1``.

Activations are blade-major with the points last, ``(G, n_blades, channels, Q)``: every per-blade
channel mixing is one batched matrix product over ``G * n_blades`` with the points as columns, the
grade statistics of GradeNorm are one product with a (grades, blades) table, and the steerable
geometric product is

* ``pairs[j, l, i, q] = x[l, i, q] * sign(l, j) * right[l xor j, i, q]`` (one product with the
  signed (n^2, n) gather table and one broadcast multiply), concatenated with ``x`` itself for the
  linear skip, and
* one batched product per (kernel, output blade) with the weight ``[W_paths, W_linear] @ M`` built
  from the path and grade weights by one matmul (``M`` maps paths and grades to (output blade, left
  blade), times 1/sqrt(2)); the biases enter as the ``baddbmm`` addend.

Outputs equal a module-by-module reference evaluation to rounding (tests/test_kernel_reference.py and its
fixture).
"""

from __future__ import annotations

import contextlib
import math

import torch

from ..algebra import clipped_form_sqrt, quadratic_floor
from .activations import _GATES
from .norms import OFFICIAL_DIVISOR_EPS


def _full_precision(device: torch.device):
    """Autocast off: kernels are computed in their parameters' dtype (float32 under mixed precision)."""
    if device.type in ("cpu", "cuda", "xpu", "mps"):
        return torch.autocast(device.type, enabled=False)
    return contextlib.nullcontext()


__all__ = ["dense_from_head", "evaluate_kernel_groups", "evaluate_kernels", "kernel_gain", "kernel_group_key",
           "kernel_tensors", "network_group_key", "network_tensors", "run_network"]



# ----------------------------------------------------------------------------- constant tables
def bank_tables(alg) -> dict[str, torch.Tensor]:
    """CPU float64 / long tables of the batched evaluation (registered as constants by the kernel)."""
    n, g = alg.n_blades, alg.n_grades
    gather = alg.gather_matrix()  # (n, n*n): (b @ T)[l * n + j] = sign(l, j) b_(l xor j)
    pair_gather = gather.unflatten(-1, (n, n)).transpose(-2, -1).flatten(-2).t().contiguous()  # (j*n + l, n)
    path_onehot = alg.path_onehot()  # (paths, l * n + j)
    p = path_onehot.shape[0]
    weight_map = torch.zeros(p + g, n, n + 1, dtype=torch.float64)  # -> (j, l'), l' = n: the linear skip
    weight_map[:p, :, :n] = path_onehot.unflatten(-1, (n, n)).transpose(-2, -1)
    weight_map[p:, :, n] = alg.grade_onehot()
    weight_map = weight_map.flatten(1)
    return {
        "bank_pair_gather": pair_gather,
        "bank_weight_map": weight_map,
        "bank_grade_metric": alg.table("grade_metric_t", dtype=torch.float64).t().contiguous(),  # (G, n)
        "bank_scalar": alg.grade_onehot()[:1].t().contiguous(),  # e_0 as a column (n, 1)
        "bank_grade_expand": alg.grade_onehot().t().contiguous(),  # (n, grades): one-hot, exact as a product
    }


# ----------------------------------------------------------------------------- parameters
def network_tensors(net) -> list[torch.Tensor]:
    """The parameters of a :class:`~cscnn.nn.KernelNetwork`, in the order :func:`run_network` reads them:
    per geometric-product layer (weight, right.weight, right.bias, norm.s, linear.weight,
    linear.bias), then the GradeNorm scale ``s`` of every hidden layer."""
    out = []
    layers = list(net.layers)
    for idx in range(0, len(layers), 3):
        gp = layers[idx]
        if gp.linear is None or gp.linear.bias is None:
            raise ValueError("the batched kernel network needs the KernelNetwork layer structure")
        # (compat="official": no right-hand bias; zeros in its place keep one layout for both)
        right_bias = gp.right.bias if gp.right.bias is not None else gp.weight.new_zeros(gp.in_channels)
        out += [gp.weight, gp.right.weight, right_bias, gp.norm.s, gp.linear.weight, gp.linear.bias]
        if idx + 1 < len(layers):
            out.append(layers[idx + 1].s)
    return out


def kernel_tensors(kernel) -> list[torch.Tensor]:
    """sigma, shell_sigma, head_weight, init_scale, [two_sided.weight], then :func:`network_tensors`."""
    head = [kernel.sigma, kernel.shell_sigma, kernel.head_weight, kernel.init_scale]
    if kernel.two_sided is not None:
        head.append(kernel.two_sided.weight)
    return head + network_tensors(kernel.net)


def _head_size(kernel) -> int:
    """How many of :func:`kernel_tensors` belong to the head (the rest are :func:`network_tensors`)."""
    return 4 if kernel.two_sided is None else 5


def _split_head(kernel, tensors: list) -> tuple[tuple, list]:
    """:func:`kernel_tensors` of ``kernel`` (stacked or not, or only the head's) as ((sigma, shell_sigma,
    head_weight, init_scale, two-sided weight or None), the network's tensors)."""
    h = _head_size(kernel)
    return (*tensors[:4], tensors[4] if h == 5 else None), tensors[h:]


class _Stack(torch.autograd.Function):
    """``torch.stack`` whose backward is one ``unbind`` (autograd's runs one ``select`` per tensor) of the
    gradient made contiguous: each parameter's gradient is then a contiguous view, which autograd's
    accumulation takes over instead of copying. (Eager, the hand-written backward already gives
    contiguous gradients; under ``torch.compile`` the composite's gradients come in the layouts of its
    operators, and without this about half of a CS-ResNet's parameter gradients were copied one by one.)"""

    @staticmethod
    def forward(ctx, *tensors):
        return torch.stack(tensors)

    @staticmethod
    def backward(ctx, grad):
        if torch.compiler.is_compiling() or not grad.is_contiguous():
            grad = grad.contiguous()
        return grad.unbind(0)


def _stack(groups: list[list[torch.Tensor]]) -> list[torch.Tensor]:
    """The i-th tensors of all groups stacked on a new leading axis, for each i."""
    compiling = torch.compiler.is_compiling()
    if len(groups) == 1 and not compiling:
        return [t.unsqueeze(0) for t in groups[0]]
    out = []
    for ts in zip(*groups):
        # (only tensors that need a gradient: dynamo traces an autograd.Function of tensors that need
        # none wrongly in torch 2.13, a stack of two 0-d buffers came out with one element)
        if torch.is_grad_enabled() and any(t.requires_grad for t in ts):
            out.append(_Stack.apply(*ts))
        else:
            out.append(torch.stack(ts))
    return out


# ----------------------------------------------------------------------------- the network
# Each step below is written once, as a differentiable composite; with a ``tape`` (a list) it also
# records what its hand-written backward (``_*_backward``) needs. :class:`_Network` runs the whole
# network as ONE autograd node with those backwards: a few dozen large operators per layer forward
# and backward, where autograd of the composite made about three times as many nodes.
def _grade_norm(x: torch.Tensor, s: torch.Tensor, tables, eps: float, tape: list | None = None,
                official: bool = False) -> torch.Tensor:
    """GradeNorm of x (G, n, C, Q) with scales s (G, C, grades); ``official``: the authors' norm
    (``compat="official"`` of :class:`~cscnn.nn.GradeNorm`; no hand-written backward, so no ``tape``)."""
    g, n, c, q = x.shape
    ctx = torch.autocast(x.device.type, enabled=False) if x.device.type in ("cpu", "cuda", "xpu", "mps") \
        else contextlib.nullcontext()
    with ctx:
        forms = tables["bank_grade_metric"] @ x.square().reshape(g, n, c * q)  # (G, grades, C*Q)
        floor = quadratic_floor(x.dtype, eps)
        if official:
            norms = clipped_form_sqrt(forms).unflatten(-1, (c, q))
        else:
            norms = forms.abs().clamp_min(floor).sqrt().unflatten(-1, (c, q))
        gate = torch.sigmoid(s).transpose(1, 2).unsqueeze(-1)  # (G, grades, C, 1)
        divisor = torch.addcmul(1 - gate, gate, norms)  # (G, grades, C, Q)
        if official:
            divisor = divisor + OFFICIAL_DIVISOR_EPS
        expanded = (tables["bank_grade_expand"] @ divisor.reshape(g, -1, c * q)).view(g, n, c, q)
        y = x / expanded
        if tape is not None:
            tape.append((y, forms, floor, norms, gate, expanded))
        return y


def _grade_norm_backward(grad: torch.Tensor, x: torch.Tensor, saved, tables):
    """Gradients of :func:`_grade_norm` in x (G, n, C, Q) and s (G, C, grades)."""
    y, forms, floor, norms, gate, expanded = saved
    g, n, c, q = x.shape
    gx = grad / expanded
    gdiv = (tables["bank_grade_expand"].t() @ (-gx * y).reshape(g, n, c * q)).view(g, -1, c, q)  # (G, grades, C, Q)
    gs = ((gdiv * (norms - 1)).sum(-1) * (gate * (1 - gate)).squeeze(-1)).transpose(1, 2).contiguous()  # (G, C, grades)
    # d sqrt(max(|f|, floor)) / df = sign(f) / (2 sqrt(|f|)) where |f| > floor, else 0
    gforms = torch.where(forms.abs() > floor, (gdiv * gate).flatten(2) * forms.sign() / (2 * norms.flatten(2)), 0)
    gx = torch.addcmul(gx, x, (tables["bank_grade_metric"].t() @ gforms).view(g, n, c, q), value=2)
    return gx, gs


def _gate_backward(grad: torch.Tensor, x: torch.Tensor, gate_fn: str) -> torch.Tensor:
    """Gradient of ``x * gate(x[:, :1])`` (x: (G, n, C, Q), scalar blade first) in x."""
    from .activations import _gate_derivative

    s = x[:, :1]
    gx = grad * _GATES[gate_fn](s)
    gx[:, :1] += (grad * x).sum(1, keepdim=True) * _gate_derivative(gate_fn, s)
    return gx


def _product_layer(x: torch.Tensor, params, tables, eps: float, tape: list | None = None,
                   official: bool = False) -> torch.Tensor:
    """Steerable geometric product (with linear skip) of x (G, n, C, Q) -> (G, n, O, Q)."""
    w, rw, rb, rs, lw, lb = params
    g, n, c, q = x.shape
    o = w.shape[1]
    # right = GradeNorm(MVLinear(x)): one batched product per (kernel, blade), bias as the addend
    rwe = (rw @ tables["bank_grade_expand"].t()).permute(0, 3, 1, 2).reshape(g * n, c, c)  # (G*n, C_out, C_in)
    rbias = (rb.unsqueeze(1) * tables["bank_scalar"]).reshape(g * n, c, 1)
    right0 = torch.baddbmm(rbias, rwe, x.reshape(g * n, c, q)).view(g, n, c, q)
    norm_tape = [] if tape is not None else None
    right = _grade_norm(right0, rs, tables, eps, norm_tape, official)
    # all products x_l * sign(l, j) right_(l xor j), then [pairs, x] mixed by one product per blade j
    signed = (tables["bank_pair_gather"] @ right.reshape(g, n, c * q)).view(g, n, n, c, q)  # (G, j, l, C, Q)
    features = torch.cat([(signed * x.unsqueeze(1)).view(g, n, n * c, q), x], 2)  # (G, j, (n+1)*C, Q)
    # (tables hold exact values only: a module cast with .double() converts its float32 buffers)
    weight = (torch.cat([w, lw], -1) @ tables["bank_weight_map"] / math.sqrt(2)).view(g, o, c, n, n + 1)
    weight = weight.permute(0, 3, 1, 4, 2).reshape(g * n, o, (n + 1) * c)
    bias = (lb.unsqueeze(1) * (tables["bank_scalar"] / math.sqrt(2))).reshape(g * n, o, 1)
    y = torch.baddbmm(bias, weight, features.reshape(g * n, (n + 1) * c, q)).view(g, n, o, q)
    if tape is not None:
        tape.append((rwe, right0, norm_tape[0], signed, features, weight))
    return y


def _product_layer_backward(grad: torch.Tensor, x: torch.Tensor, saved, tables):
    """Gradients of :func:`_product_layer` in x and its six parameters, from grad (G, n, O, Q)."""
    rwe, right0, norm_saved, signed, features, weight = saved
    g, n, c, q = x.shape
    o = grad.shape[2]
    paths = tables["bank_weight_map"].shape[0] - tables["bank_grade_expand"].shape[1]
    root2 = math.sqrt(2)
    gy = grad.reshape(g * n, o, q)
    glb = grad[:, 0].sum(-1) / root2  # the biases sit on the scalar blade: (G, O)
    gweight = gy @ features.reshape(g * n, (n + 1) * c, q).transpose(1, 2)  # (G*n, O, (n+1)*C)
    gfeatures = (weight.transpose(1, 2) @ gy).view(g, n, n + 1, c, q)  # (G, j, l', C, Q)
    gwl = gweight.view(g, n, o, n + 1, c).permute(0, 2, 4, 1, 3).reshape(g, o, c, n * (n + 1)) / root2
    # path and linear-skip weights as two products: contiguous gradients, which autograd's accumulation
    # into the parameters takes over instead of copying
    gw = gwl @ tables["bank_weight_map"][:paths].t()  # (G, O, C, paths)
    glw = gwl @ tables["bank_weight_map"][paths:].t()  # (G, O, C, grades)
    gpairs = gfeatures[:, :, :n]  # (G, j, l, C, Q)
    gx = gfeatures[:, :, n] + (gpairs * signed).sum(1)
    gsigned = gpairs * x.unsqueeze(1)
    gright = (tables["bank_pair_gather"].t() @ gsigned.reshape(g, n * n, c * q)).view(g, n, c, q)
    gright0, grs = _grade_norm_backward(gright, right0, norm_saved, tables)
    grb = gright0[:, 0].sum(-1)  # (G, C)
    gr = gright0.reshape(g * n, c, q)
    grw = (gr @ x.reshape(g * n, c, q).transpose(1, 2)).view(g, n, c, c).permute(0, 2, 3, 1)  # (G, C, C, n)
    grw = grw @ tables["bank_grade_expand"]  # (G, C, C, grades)
    gx = gx + (rwe.transpose(1, 2) @ gr).view(g, n, c, q)
    return gx, [gw, grw, grb, grs, glw, glb]


def _run_layers(x: torch.Tensor, params: list[torch.Tensor], gate_fn: str, num_layers: int, tables, eps: float,
                tape: list | None = None, official: bool = False) -> torch.Tensor:
    """The network as a differentiable composite (with ``tape``: recording for :class:`_Network`);
    ``official``: the layers of ``compat="official"``."""
    gate = _GATES[gate_fn]
    i = 0
    for layer in range(num_layers):
        if tape is not None:
            tape.append(x)
        x = _product_layer(x, params[i:i + 6], tables, eps, tape, official)
        i += 6
        if layer < num_layers - 1:
            if tape is not None:
                tape.append(x)
            x = _grade_norm(x, params[i], tables, eps, tape, official)
            if tape is not None:
                tape.append(x)
            x = x * gate(x[:, :1])
            i += 1
    return x


class _Network(torch.autograd.Function):
    """:func:`_run_layers` as one autograd node with a hand-written backward (first order); a double
    backward (``create_graph=True``) differentiates the composite instead, so it is exact too."""

    @staticmethod
    def forward(ctx, meta, x, *params):
        gate_fn, num_layers, tables, eps = meta
        tape: list = []
        y = _run_layers(x, list(params), gate_fn, num_layers, tables, eps, tape)
        ctx.meta, ctx.tape = meta, tape
        ctx.save_for_backward(x, *params)
        return y

    @staticmethod
    def backward(ctx, grad):
        x, *params = ctx.saved_tensors
        gate_fn, num_layers, tables, eps = ctx.meta
        if torch.is_grad_enabled():  # create_graph: gradients that are themselves differentiable
            wanted = [t for t, need in zip([x, *params], ctx.needs_input_grad[1:]) if need]
            with torch.enable_grad():
                y = _run_layers(x, params, gate_fn, num_layers, tables, eps)
                found = iter(torch.autograd.grad(y, wanted, grad, create_graph=True, allow_unused=True))
            return (None, *[next(found) if need else None for need in ctx.needs_input_grad[1:]])
        tape = ctx.tape  # per layer: input, product record, [norm input, norm record, gate input]
        grads: list = [None] * len(params)
        for layer in reversed(range(num_layers)):
            i, b = 7 * layer, 5 * layer
            if layer < num_layers - 1:
                grad = _gate_backward(grad, tape[b + 4], gate_fn)
                grad, grads[i + 6] = _grade_norm_backward(grad, tape[b + 2], tape[b + 3], tables)
            grad, grads[i:i + 6] = _product_layer_backward(grad, tape[b], tape[b + 1], tables)
        return (None, grad, *grads)


def run_network(x: torch.Tensor, params: list[torch.Tensor], net) -> torch.Tensor:
    """The kernel network on x (G, n, C_in, Q) with stacked :func:`network_tensors` -> (G, n, C_out, Q).

    ``net``: one of the :class:`~cscnn.nn.KernelNetwork` modules (its shape, gate and tables). Runs as
    one autograd node with a hand-written backward (:class:`_Network`); under ``torch.compile`` as the
    composite, which the compiler fuses itself."""
    tables = {name: getattr(net, name) for name in net.bank_table_names}
    eps = net.layers[0].norm.eps
    if net.compat == "official":  # the authors' layers: autograd of the composite
        return _run_layers(x, params, net.activation, net.num_layers, tables, eps, official=True)
    if torch.compiler.is_compiling():
        return _run_layers(x, params, net.activation, net.num_layers, tables, eps)
    return _Network.apply((net.activation, net.num_layers, tables, eps), x, *params)


# ----------------------------------------------------------------------------- the kernel
def _signed_gaussian(q: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """sign(q) exp(-|q| / (2 sigma^2)) with sign(0) = +1."""
    sign = torch.where(q < 0, -torch.ones_like(q), torch.ones_like(q))
    return sign * torch.exp(-q.abs() / (2 * sigma**2))


def network_input(kernel, points: torch.Tensor, sigma: torch.Tensor, condition: torch.Tensor | None):
    """Kernel-network input (G, n, 1 + C, Q), Q = [B *] P, and eta(v, v) (P,). sigma: (G,)."""
    alg = kernel.alg
    n, p, g = alg.n_blades, points.shape[0], sigma.shape[0]
    q = (points * points * kernel.metric_diag).sum(-1)  # eta(v, v): (P,)
    s = _signed_gaussian(q, sigma[:, None])  # (G, P)
    mv = torch.cat([s[:, None], points.t().expand(g, -1, -1), points.new_zeros(g, n - 1 - alg.dim, p)], 1)
    if condition is None:
        return mv.unsqueeze(2), q
    b, c = condition.shape[:2]
    cond = condition.permute(2, 1, 0).reshape(1, n, c, b, 1).expand(g, n, c, b, p)
    mv = torch.cat([mv.reshape(g, n, 1, 1, p).expand(g, n, 1, b, p), cond], 2)
    return mv.reshape(g, n, 1 + c, b * p), q


def kernel_head(kernel, k: torch.Tensor, q: torch.Tensor, shell_sigma, head_weight, init_scale, two_sided_weight,
                batch: int | None) -> torch.Tensor:
    """Shells and head: network output k (G, n, O*I, [B*]P) -> K (G, O, I, j*n + m, [B,] P)."""
    g, n, _, qq = k.shape
    o, i = shell_sigma.shape[1:3]
    p = q.shape[0]
    tables = kernel.net
    shell = _signed_gaussian(q, shell_sigma.permute(0, 3, 1, 2).reshape(g, -1, o * i, 1))  # (G, grades, O*I, P)
    shell = (tables.bank_grade_expand @ shell.flatten(2)).view(g, n, o * i, p)  # (G, n, O*I, P)
    if batch is None:
        k = k * shell
    else:
        k = (k.view(g, n, o * i, batch, p) * shell.unsqueeze(3)).view(g, n, o * i, qq)
    kp = k.view(g, n, o, i, qq).permute(0, 2, 3, 1, 4)  # (G, O, I, l, Q)
    w = (head_weight * init_scale.reshape(g, 1, 1, 1)) @ kernel.head_paths  # (G, O, I, j*n + m)
    # left product: kk[j*n + m] = sign(j, m) k[j xor m], a product with the signed one-hot head matrix
    out = (kernel.head_matrix.t() @ kp) * w.unsqueeze(-1)  # (G, O, I, j*n+m, Q)
    if two_sided_weight is not None:
        head = kernel.two_sided
        kp = kp.contiguous()
        u = kp.index_select(3, head.bank_xor_index).view(g, o, i, n, n, qq) * kp.unsqueeze(3)  # (G,O,I,d,l,Q)
        t = (two_sided_weight @ head.signed_onehot).view(g, o, i, n, n, n).transpose(-2, -1)  # (G,O,I,d,j,l)
        kd = (t @ u).view(g, o, i, n * n, qq)  # (G, O, I, d*n + j, Q)
        out = out + kd.index_select(3, head.out_index) * init_scale.reshape(g, 1, 1, 1, 1)
    if batch is not None:
        out = out.view(g, o, i, n * n, batch, p)
    return out


def evaluate_kernels(kernels, points: torch.Tensor, condition: torch.Tensor | None = None,
                     tensors: list[list[torch.Tensor]] | None = None) -> torch.Tensor:
    """K (G, O, I, j*n + m, [B,] P) of G equal-shaped kernels (see :func:`kernel_group_key`) at ``points``.

    ``tensors``: their :func:`kernel_tensors` (read from the kernels if None)."""
    first = kernels[0]
    tensors = [kernel_tensors(kern) for kern in kernels] if tensors is None else tensors
    (sigma, shell_sigma, head_weight, init_scale, two), net_params = _split_head(first, _stack(tensors))
    x, q = network_input(first, points, sigma, condition)
    if len(kernels) == 1:
        # one kernel: through the KernelNetwork module (its hooks and forward see the (Q, C, n) layout)
        k = first.net(x[0].permute(2, 1, 0)).permute(2, 1, 0).unsqueeze(0)
    else:
        k = run_network(x, net_params, first.net)
    return kernel_head(first, k, q, shell_sigma, head_weight, init_scale, two,
                       None if condition is None else condition.shape[0])


def network_group_key(kernel) -> tuple:
    """Kernels with equal keys have kernel networks of the same shape apart from the last layer's output
    width (``out_channels * in_channels``): :func:`evaluate_kernel_groups` runs them in one network call."""
    net = kernel.net
    return (kernel.alg.metric, net.num_layers, net.hidden_channels, net.activation, net.compat,
            kernel.condition_channels, kernel.sigma.dtype, kernel.sigma.device)


def _pad_last_layer(tensors: list[torch.Tensor], width: int) -> list[torch.Tensor]:
    """:func:`network_tensors` with the last layer's output-width parameters (path weight (O, C, paths),
    linear weight (O, C, grades) and bias (O,)) zero-padded to ``width`` outputs."""
    o = tensors[-1].shape[0]
    if o == width:
        return tensors
    out = list(tensors)
    for i in (-6, -2, -1):  # weight, linear.weight, linear.bias of the last SteerableGeometricProduct
        t = tensors[i]
        out[i] = torch.cat([t, t.new_zeros(width - o, *t.shape[1:])])
    return out


def evaluate_kernel_groups(groups: list[list]) -> list[torch.Tensor]:
    """:func:`evaluate_kernels` of several groups of equal-shaped kernels (each at its own grid), all
    kernel networks of the same :func:`network_group_key` in ONE network call: their inputs are zero-padded
    to the largest number of grid points and their last layers to the widest output, and the outputs are
    cut back before each group's head. Returns K (G, O, I, j*n + m, P) per group, in order.

    The result equals per-group evaluation to rounding (the padded points and outputs are computed and
    dropped; they never mix with the others: the network is pointwise and per kernel)."""
    out: list = [None] * len(groups)
    buckets: dict[tuple, list[int]] = {}
    for idx, kernels in enumerate(groups):
        buckets.setdefault(network_group_key(kernels[0]), []).append(idx)
    for members in buckets.values():
        tensors = {idx: [kernel_tensors(k) for k in groups[idx]] for idx in members}
        heads = {idx: _head_size(groups[idx][0]) for idx in members}
        width = max(k.out_channels * k.in_channels for idx in members for k in groups[idx])
        qmax = max(groups[idx][0].grid.shape[0] for idx in members)
        net_params = _stack([_pad_last_layer(t[heads[idx]:], width) for idx in members for t in tensors[idx]])
        inputs, shapes, head_params = [], [], {}
        for idx in members:
            first = groups[idx][0]
            head_params[idx], _ = _split_head(first, _stack([t[:heads[idx]] for t in tensors[idx]]))
            x, q = network_input(first, first.grid, head_params[idx][0], None)  # (G, n, 1, P)
            inputs.append(x if x.shape[-1] == qmax else torch.nn.functional.pad(x, (0, qmax - x.shape[-1])))
            shapes.append((len(groups[idx]), first.out_channels * first.in_channels, x.shape[-1], q))
        x = inputs[0] if len(inputs) == 1 else torch.cat(inputs)
        k_all = run_network(x, net_params, groups[members[0]][0].net)  # (G_all, n, width, qmax)
        start = 0
        for idx, (g, o, p, q) in zip(members, shapes):
            _, shell_sigma, head_weight, init_scale, two = head_params[idx]
            k = k_all[start:start + g, :, :o, :p]
            out[idx] = kernel_head(groups[idx][0], k, q, shell_sigma, head_weight, init_scale, two, None)
            start += g
    return out


def kernel_gain(kernel, points: torch.Tensor, condition: torch.Tensor | None = None,
                max_elements: int = 1 << 21) -> torch.Tensor:
    """The init-calibration statistic of one kernel: ``sum K^2 / (O * n)`` over (o, i, j, m, [b,] points),
    i.e. the mean over (output channel, output blade) of the squared norm of a kernel row; a 0-d tensor.

    Equal to the statistic of :func:`evaluate_kernels`'s output, but the head runs over chunks of output
    channels of at most ``max_elements`` kernel entries each, so the two-sided head's (O, I, n, n, P)
    temporaries never exist for the whole kernel (they are n times the dense kernel)."""
    head, _ = _split_head(kernel, kernel_tensors(kernel))  # the network runs as its module below
    sigma, shell_sigma, head_weight, init_scale, two = (None if t is None else t.unsqueeze(0) for t in head)
    x, q = network_input(kernel, points, sigma, condition)
    k = kernel.net(x[0].permute(2, 1, 0)).permute(2, 1, 0).unsqueeze(0)  # (1, n, O*I, Q)
    o, i, n, qq = kernel.out_channels, kernel.in_channels, kernel.alg.n_blades, k.shape[-1]
    k = k.view(1, n, o, i, qq)
    chunk = max(1, max_elements // (i * n * n * qq))
    batch = None if condition is None else condition.shape[0]
    total = k.new_zeros(())
    for a in range(0, o, chunk):
        b = min(o, a + chunk)
        part = kernel_head(kernel, k[:, :, a:b].reshape(1, n, (b - a) * i, qq), q, shell_sigma[:, a:b],
                           head_weight[:, a:b], init_scale, None if two is None else two[:, a:b], batch)
        total = total + part.square().sum()
    return total / (o * n)


def kernel_group_key(kernel) -> tuple:
    """Kernels with equal keys are evaluated together by :func:`cscnn.nn.conv.kernel_bank`."""
    return (type(kernel), kernel.alg.metric, kernel.in_channels, kernel.out_channels, kernel.kernel_size,
            kernel.net.num_layers, kernel.net.hidden_channels, kernel.net.activation, kernel.net.compat,
            kernel.head, kernel.condition_channels, kernel.time_scale, kernel.sigma.dtype, kernel.sigma.device)


def dense_from_head(kern: torch.Tensor, kernel_size: int, dim: int) -> torch.Tensor:
    """K (G, O, I, j*n+m, [B,] P) -> dense (G, [B,] O*n, I*n, k, ..., k)."""
    g, o, i, nn_ = kern.shape[:4]
    n = math.isqrt(nn_)
    if kern.ndim == 6:
        b = kern.shape[4]
        kern = kern.view(g, o, i, n, n, b, -1).permute(0, 5, 1, 3, 2, 4, 6)
        return kern.reshape(g, b, o * n, i * n, *([kernel_size] * dim))
    kern = kern.view(g, o, i, n, n, -1).permute(0, 1, 3, 2, 4, 5)
    return kern.reshape(g, o * n, i * n, *([kernel_size] * dim))
