"""A CS-ResNet training step against a plain conv stack of the same dense shapes, with a profiler breakdown.

The plain stack (:class:`PlainStack`) has one torch conv for every CS-conv of the
CS-ResNet, with the CS-conv's dense weight shape (channels x blades), GELU where the
CS-ResNet has a gate and the same residual adds, and no norms: the cheapest network
that does the same dense convolution work. It runs in both memory layouts (contiguous
NC(D)HW and channels-last); the ratio is taken to the faster one. All steps (forward,
MSE loss, backward; no optimizer) are timed in one run with repetitions interleaved.

The breakdown runs steps of each model under ``torch.profiler`` and sorts every
operator, forward and backward, into: convs (the dense convolutions), kernel networks
(:class:`~cscnn.nn.CliffordSteerableKernel`), norms and gates (MVLayerNorm, MVGate;
GELU in the plain stack), conv glue (inside a CS-conv but outside its kernel network
and its dense conv: layout copies, bias), gradient accumulation into the parameters
``.grad`` (AccumulateGrad), and other (residual adds, loss). Backward
operators are attributed to the forward operator that created them (autograd sequence
numbers). On CUDA the times are kernel (device) times, on CPU operator CPU times;
"not in operators" is the step's wall time minus all of them (Python, autograd engine).
Each category is the minimum over ``--profile-repeats`` profiled steps, the models alternating.

    .venv/bin/python benchmarks/step_speed.py --threads 1 --stat min --repeats 5 --out docs/results/step_speed.md
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    STAT,
    channels_last,
    command_line,
    emit_markdown,
    interleaved,
    load_average,
    machine_info,
    markdown_table,
    precision,
    saved_bytes,
)

from cscnn import CliffordAlgebra  # noqa: E402
from cscnn.models import CSResNet  # noqa: E402
from cscnn.nn import CliffordSteerableConv, CliffordSteerableKernel, MVGate, MVLayerNorm  # noqa: E402
from cscnn.nn.layout import get_conv_layout, layout_choices, synchronize  # noqa: E402

#: the CPU configuration (Navier-Stokes-like 2D, scaled to a CPU)
CPU_CONFIG = {"metric": (1, 1), "cin": 4, "cout": 1, "hidden": 8, "blocks": (2, 2, 2, 2), "kernel_size": 7,
              "kernel_layers": 4, "kernel_hidden": 12, "batch": 4, "grid": (64, 64)}
#: the CS-ResNet of benchmarks/tasks_study.py on Navier-Stokes (its four-task comparisons)
STUDY_CONFIG = dict(CPU_CONFIG, blocks=(1, 1), kernel_size=5, kernel_layers=3, kernel_hidden=8, batch=8, grid=(16, 16))
TINY_CONFIG = {"metric": (1, 1), "cin": 2, "cout": 1, "hidden": 2, "blocks": (1,), "kernel_size": 3,
               "kernel_layers": 2, "kernel_hidden": 4, "batch": 1, "grid": (8, 8)}
CATEGORIES = ("convs", "kernel networks", "norms and gates", "conv glue (layout copies, bias)",
              "gradient accumulation", "other")
_SCOPES = {CliffordSteerableKernel: "kernel networks", MVLayerNorm: "norms and gates", MVGate: "norms and gates",
           nn.GELU: "norms and gates", CliffordSteerableConv: "conv glue (layout copies, bias)"}
_CONV_OPS = {"aten::conv1d", "aten::conv2d", "aten::conv3d", "aten::convolution", "aten::_convolution"}
_TORCH_CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}


class PlainStack(nn.Module):
    """Plain torch convs with the dense shapes of a :class:`~cscnn.models.CSResNet`'s CS-convs.

    ``channels`` are real channels (multivector channels x blades). Embedding: 1x1 conv,
    GELU, 1x1 conv, GELU; ``n_blocks`` residual blocks: conv, GELU, conv, add, GELU (k x k);
    output: 1x1 conv, GELU, 1x1 conv. Shapes: ``(B, in, *spatial) -> (B, out, *spatial)``.
    """

    def __init__(self, dim: int, in_channels: int, out_channels: int, hidden: int, n_blocks: int, kernel_size: int):
        super().__init__()
        conv = _TORCH_CONV[dim]
        self.embedding = nn.Sequential(conv(in_channels, hidden, 1), nn.GELU(), conv(hidden, hidden, 1), nn.GELU())
        self.blocks = nn.ModuleList(
            nn.ModuleList([conv(hidden, hidden, kernel_size, padding=kernel_size // 2), nn.GELU(),
                           conv(hidden, hidden, kernel_size, padding=kernel_size // 2), nn.GELU()])
            for _ in range(n_blocks))
        self.output = nn.Sequential(conv(hidden, hidden, 1), nn.GELU(), conv(hidden, out_channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embedding(x)
        for conv1, act1, conv2, act2 in self.blocks:
            x = act2(conv2(act1(conv1(x))) + x)
        return self.output(x)


def build_models(cfg: dict, device) -> dict:
    """The CS-ResNet of ``cfg`` and its plain stack (contiguous and channels-last) with their inputs."""
    alg = CliffordAlgebra(cfg["metric"])
    n, dim = alg.n_blades, alg.dim
    cs = CSResNet(alg, cfg["cin"], cfg["cout"], cfg["hidden"], cfg["blocks"], cfg["kernel_size"],
                  kernel_num_layers=cfg["kernel_layers"], kernel_hidden_channels=cfg["kernel_hidden"]).to(device)
    plain = PlainStack(dim, cfg["cin"] * n, cfg["cout"] * n, cfg["hidden"] * n, sum(cfg["blocks"]),
                       cfg["kernel_size"]).to(device)
    plain_cl = PlainStack(dim, cfg["cin"] * n, cfg["cout"] * n, cfg["hidden"] * n, sum(cfg["blocks"]),
                          cfg["kernel_size"]).to(device)
    plain_cl.load_state_dict(plain.state_dict())
    if dim in (2, 3):
        plain_cl = plain_cl.to(memory_format=torch.channels_last if dim == 2 else torch.channels_last_3d)
    x = torch.randn(cfg["batch"], cfg["cin"], *cfg["grid"], n, device=device)
    xp = torch.randn(cfg["batch"], cfg["cin"] * n, *cfg["grid"], device=device)
    return {"cs": (cs, x), "plain": (plain, xp), "plain_cl": (plain_cl, channels_last(xp))}


def train_step(model: nn.Module, x: torch.Tensor, prec: str = "fp32"):
    """A closure running one training step (forward in ``prec``, MSE loss to zero, backward)."""
    model.train()

    def step():
        model.zero_grad(set_to_none=True)
        with precision(prec, x.device):
            y = model(x)
        y.float().square().mean().backward()

    return step


def _scope_hooks(model: nn.Module):
    """Forward hooks that wrap every module of a :data:`_SCOPES` type in a profiler scope ``cscnn::<label>``."""
    handles = []
    for m in model.modules():
        label = next((lab for cls, lab in _SCOPES.items() if isinstance(m, cls)), None)
        if label is None:
            continue

        def enter(mod, args, label=label):
            mod._bench_scope = torch.profiler.record_function(f"cscnn::{label}")
            mod._bench_scope.__enter__()

        def leave(mod, args, out):
            mod._bench_scope.__exit__(None, None, None)
            del mod._bench_scope

        handles += [m.register_forward_pre_hook(enter), m.register_forward_hook(leave)]
    return handles


def _category(event) -> str:
    """Category of a top-level forward operator: a conv op, else the innermost cscnn scope, else other."""
    if event.name in _CONV_OPS:
        return "convs"
    parent = event.cpu_parent
    while parent is not None:
        if parent.name.startswith("cscnn::"):
            return parent.name[len("cscnn::"):]
        parent = parent.cpu_parent
    return "other"


def _top_op(event):
    """The outermost operator (aten:: or autograd::) containing ``event`` (itself if none)."""
    top, parent = event, event.cpu_parent
    while parent is not None:
        if parent.name.startswith(("aten::", "autograd::")):
            top = parent
        parent = parent.cpu_parent
    return top


def breakdown(model: nn.Module, step, device) -> dict:
    """Milliseconds of one profiled ``step`` per category (:data:`CATEGORIES`), plus "not in operators"."""
    device = torch.device(device)
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    handles = _scope_hooks(model)
    try:
        step()  # warm-up with the hooks in place
        with torch.profiler.profile(activities=activities) as prof:
            t = time.perf_counter()
            step()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            wall = time.perf_counter() - t
    finally:
        for h in handles:
            h.remove()
    use_device = device.type == "cuda"
    events = list(prof.events())
    seq_category = {}
    out = defaultdict(float)
    backward = []
    for e in events:
        if e.name.startswith("autograd::engine::evaluate_function"):
            backward.append(e)
        elif e.name.startswith("aten::"):
            top = _top_op(e)
            if not top.name.startswith("aten::"):
                continue  # an operator run by backward: counted with its evaluate_function
            cat = _category(top)
            if e.sequence_nr >= 0:  # autograd nodes are made by inner operators too (matmul -> mm)
                seq_category.setdefault(e.sequence_nr, cat)
            if top is e:
                out[cat] += e.device_time_total if use_device else e.cpu_time_total
        elif e.sequence_nr >= 0 and not e.name.startswith("autograd::"):  # a custom autograd.Function
            seq_category.setdefault(e.sequence_nr, _category(e))
    for e in backward:
        if e.name.endswith("AccumulateGrad"):
            cat = "gradient accumulation"
        else:
            cat = seq_category.get(e.sequence_nr, "other")
        out[cat] += e.device_time_total if use_device else e.cpu_time_total
    ms = {c: out.get(c, 0.0) / 1e3 for c in CATEGORIES}
    ms["not in operators"] = max(0.0, 1e3 * wall - sum(ms.values())) if not use_device else 0.0
    ms["profiled step"] = 1e3 * wall
    ms["ops"] = _operator_counts(events, seq_category)
    return ms


def _is_operator(name: str) -> bool:
    """An aten operator, or a CPU kernel generated by inductor (profiled with
    ``torch._inductor.config.cpp.enable_kernel_profile``)."""
    return name.startswith("aten::") or "cpp_fused" in name


def _operator_parent(event):
    """The innermost operator (:func:`_is_operator`) that calls ``event``, None for a top-level one."""
    parent = event.cpu_parent
    while parent is not None and not _is_operator(parent.name):
        parent = parent.cpu_parent
    return parent


def _operator_counts(events, seq_category: dict) -> dict:
    """Top-level operators (:func:`_is_operator`) per category (forward and backward): an operator called
    by another is not counted; backward operators count for the category of their autograd node."""
    ops = defaultdict(int)
    for e in events:
        if not _is_operator(e.name) or _operator_parent(e) is not None:
            continue
        node = e.cpu_parent
        while node is not None and not node.name.startswith("autograd::engine::evaluate_function"):
            node = node.cpu_parent
        if node is None:
            cat = _category(e)
        elif node.name.endswith("AccumulateGrad"):
            cat = "gradient accumulation"
        else:
            cat = seq_category.get(node.sequence_nr, "other")
        ops[cat] += 1
    counts = {c: ops.get(c, 0) for c in CATEGORIES}
    counts["total"] = sum(ops.values())
    return counts


#: operators that allocate without writing: no kernel launch on a GPU
_ALLOCATING = {"empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided", "resize_"}
_ALIAS_CACHE: dict[str, bool] = {}


def _aliases(name: str) -> bool:
    """Whether the aten operator ``name`` ("aten::view") only makes a view or allocates: every overload
    of it that returns a tensor returns an alias of an input (schema annotation ``Tensor(a)``, e.g.
    view, permute, detach, slice), or it is an allocation. Such an operator launches no kernel on a GPU
    unless it calls one that does (``reshape`` or ``contiguous`` of a non-contiguous tensor copies)."""
    if name not in _ALIAS_CACHE:
        base = name.split("::", 1)[-1]
        packet = getattr(torch.ops.aten, base, None) if name.startswith("aten::") else None
        overloads = [] if packet is None else [getattr(packet, o) for o in packet.overloads()]
        tensor_ops = [op for op in overloads if any("Tensor" in str(r.type) for r in op._schema.returns)]
        _ALIAS_CACHE[name] = base in _ALLOCATING or bool(tensor_ops) and all(
            any(r.alias_info is not None and not r.alias_info.is_write for r in op._schema.returns)
            for op in tensor_ops)
    return _ALIAS_CACHE[name]


def _launching(events) -> int:
    """Top-level aten operators of ``events`` that compute (launch a kernel on a GPU): not
    :func:`_aliases` themselves, or calling an operator that computes."""
    events = [e for e in events if _is_operator(e.name)]
    children = defaultdict(list)
    for e in events:
        children[id(_operator_parent(e))].append(e)
    memo: dict[int, bool] = {}

    def computes(e) -> bool:
        if id(e) not in memo:
            memo[id(e)] = not _aliases(e.name) or any(computes(c) for c in children.get(id(e), ()))
        return memo[id(e)]

    return sum(computes(e) for e in children[id(None)])


def count_operators(step, launching: bool = False):
    """Top-level aten operators (forward and backward) of one call of ``step`` (after a warm-up call),
    counted with torch.profiler; an operator called inside another aten operator is not counted.
    ``launching=True``: returns (all, computing) where computing leaves out views and allocations
    (:func:`_launching`: the operators that launch kernels on a GPU)."""
    step()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        step()
    events = list(prof.events())
    total = _operator_counts(events, {})["total"]
    return (total, _launching(events)) if launching else total


def min_breakdown(pairs: dict, device, repeats: int = 3) -> dict:
    """Per model (name -> (model, step)), the category-wise minimum of ``repeats`` profiled steps,
    the models alternating (the least disturbed value of each category on a shared machine)."""
    runs = {k: [] for k in pairs}
    for _ in range(repeats):
        for k, (model, step) in pairs.items():
            runs[k].append(breakdown(model, step, device))
    return {k: {c: (rs[0][c] if c == "ops" else min(r[c] for r in rs)) for c in rs[0]} for k, rs in runs.items()}


def peak_memory_mb(step, device) -> float:
    """Peak allocated memory of one step on CUDA; on CPU the bytes autograd saves for backward."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        step()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) / 2**20
    return saved_bytes(step) / 2**20


def _layouts_used(device) -> list[str]:
    """The CS-conv layouts in use: the fixed mode, or the measured choices on ``device``."""
    mode = get_conv_layout()
    if mode != "auto":
        return [f"{mode} (fixed)"]
    return sorted({lay for key, lay in layout_choices().items() if key.device == str(torch.device(device))})


def run(cfg: dict, device="cpu", prec="fp32", repeats: int = 5, stat=min, profile: bool = True,
        profile_repeats: int = 3, compile_backend: str | None = None, compile_mode: str | None = None) -> dict:
    """Time the three models' training steps interleaved; breakdowns and memory of the CS-ResNet and the plain stack.

    ``compile_backend`` (e.g. ``"inductor"``): also time the CS-ResNet under ``torch.compile`` with
    that backend (same parameters) and ``compile_mode`` (None: torch's default; "reduce-overhead": CUDA
    graphs on a GPU), compiled before the timings (``compile_s``: the first step). On the CPU it also counts
    the operators of the compiled step and of the plain stack compiled the same way (``compiled_ops``)."""
    models = build_models(cfg, device)
    steps = {name: train_step(m, x, prec) for name, (m, x) in models.items()}
    compile_s, compiled_ops = None, {}
    if compile_backend:
        import torch._inductor.config as inductor_config

        inductor_config.cpp.enable_kernel_profile = True  # generated CPU kernels show in the profiler
        cs, x = models["cs"]
        steps["cs_compiled"] = train_step(torch.compile(cs, backend=compile_backend, mode=compile_mode), x, prec)
        t = time.perf_counter()
        steps["cs_compiled"]()
        synchronize(device)
        compile_s = time.perf_counter() - t
        plain, xp = models["plain"]
        plain_compiled = train_step(torch.compile(plain, backend=compile_backend, mode=compile_mode), xp, prec)
        if torch.device(device).type == "cpu":
            compiled_ops = {"cs": count_operators(steps["cs_compiled"], launching=True),
                            "plain": count_operators(plain_compiled, launching=True)}
    times = interleaved(steps, repeats, stat, device)
    best_plain = min(times["plain"], times["plain_cl"])
    res = {"ms": {k: 1e3 * v for k, v in times.items()}, "ratio": times["cs"] / best_plain,
           "ratio_nchw": times["cs"] / times["plain"], "ratio_cl": times["cs"] / times["plain_cl"],
           "layouts": _layouts_used(device), "compile_backend": compile_backend, "compile_s": compile_s,
           "compiled_ops": compiled_ops, "compile_mode": compile_mode,
           "params": {k: sum(p.numel() for p in m.parameters()) for k, (m, _) in models.items()}}
    res["memory_mb"] = {k: peak_memory_mb(s, device) for k, s in steps.items()}
    if profile:
        faster = "plain" if times["plain"] <= times["plain_cl"] else "plain_cl"
        res["breakdown"] = min_breakdown({"cs": (models["cs"][0], steps["cs"]),
                                          faster: (models[faster][0], steps[faster])}, device, profile_repeats)
    return res


def matched_resnet(cfg: dict, target: int, device="cpu"):
    """The baseline ResNet (GroupNorm, GELU) of ``cfg``'s metric, channels, blocks and kernel size whose
    parameter count is closest to ``target``, and its hidden width."""
    from cscnn.models.baselines.resnet import ResNet

    def build(h):
        return ResNet(cfg["metric"], cfg["cin"], cfg["cout"], h, cfg["blocks"], cfg["kernel_size"])

    width = min(range(2, 128), key=lambda h: abs(sum(p.numel() for p in build(h).parameters()) - target))
    return build(width).to(device), width


def operator_report(cfg: dict, device="cpu", repeats: int = 5, stat=min) -> list[str]:
    """Markdown: top-level operators per training step of the CS-ResNet of ``cfg`` and its plain stack, a
    CS-U-Net of the same algebra and widths, and the small Maxwell 3D CS-ResNet (Cl(3,0), hidden 2) with
    its plain stack and a parameter-matched ResNet, whose step times are compared as well."""
    from cscnn.models import CSUNet
    from cscnn.training.module import adam

    alg = CliffordAlgebra(cfg["metric"])
    n = alg.n_blades
    models = build_models(cfg, device)
    rows = []

    def add(name, model, x):
        counts = ["{:,} ({:,})".format(*count_operators(train_step(model, x), launching=True))]
        for make in (lambda ps: torch.optim.Adam(ps), lambda ps: adam(ps)):  # torch's default, cscnn's training
            step, opt = train_step(model, x), make(list(model.parameters()))

            def with_optimizer(step=step, opt=opt):
                step()
                opt.step()

            counts.append("{:,} ({:,})".format(*count_operators(with_optimizer, launching=True)))
        rows.append([name, f"{sum(p.numel() for p in model.parameters()):,}",
                     f"{sum(1 for _ in model.parameters()):,}", *counts])

    add(f"CS-ResNet ({describe(cfg)})", *models["cs"])
    add("plain stack of the same dense shapes", *models["plain"])
    unet = CSUNet(alg, cfg["cin"], cfg["cout"], cfg["hidden"], kernel_size=cfg["kernel_size"],
                  kernel_num_layers=cfg["kernel_layers"], kernel_hidden_channels=cfg["kernel_hidden"]).to(device)
    add("CS-U-Net (channel_mults (1, 2, 2), 1 block per level, same kernel size and network)", unet,
        torch.randn(cfg["batch"], cfg["cin"], *cfg["grid"], n, device=device))
    mx = {"metric": (1, 1, 1), "cin": 4, "cout": 1, "hidden": 2, "blocks": (1, 1), "kernel_size": 3,
          "kernel_layers": 3, "kernel_hidden": 8, "batch": 2, "grid": (16, 16, 16)}
    mxm = build_models(mx, device)
    cs3, x3 = mxm["cs"]
    add(f"Maxwell 3D CS-ResNet ({describe(mx)})", cs3, x3)
    add("its plain stack", *mxm["plain"])
    resnet, width = matched_resnet(mx, sum(p.numel() for p in cs3.parameters()), device)
    add(f"parameter-matched ResNet (hidden {width}, GroupNorm, GELU)", resnet, x3)
    times = interleaved({"cs": train_step(cs3, x3), "resnet": train_step(resnet, x3)}, repeats, stat, device)
    return [markdown_table(["model", "params", "parameter tensors", "operators: forward + backward",
                            "+ Adam step (torch's default)", "+ Adam step (cscnn training: fused)"], rows), "",
            "In brackets: the operators that compute, i.e. launch a kernel on a GPU (views such as "
            "reshape, permute or detach, and allocations, left out unless they copy).", "",
            f"Maxwell 3D CS-ResNet step {1e3 * times['cs']:.1f} ms, parameter-matched ResNet "
            f"{1e3 * times['resnet']:.1f} ms: **{times['cs'] / times['resnet']:.2f}x** (target 2x; {repeats} "
            "interleaved steps each)."]


def describe(cfg: dict) -> str:
    alg = CliffordAlgebra(cfg["metric"])
    return (f"CS-ResNet Cl{alg.signature}, {cfg['cin']} -> {cfg['cout']} multivector channels, hidden "
            f"{cfg['hidden']}, blocks {tuple(cfg['blocks'])}, kernel {cfg['kernel_size']}, kernel network "
            f"{cfg['kernel_layers']}x{cfg['kernel_hidden']}, batch {cfg['batch']}, grid "
            f"{'x'.join(map(str, cfg['grid']))}")


def render(res: dict, cfg: dict, prec: str, device, stat_name: str, repeats: int) -> list[str]:
    """Markdown lines: the timing table and the breakdown table of one run."""
    mem_name = "peak MB" if torch.device(device).type == "cuda" else "saved MB"
    lines = [f"{describe(cfg)}; {prec}; {stat_name} of {repeats} interleaved steps; CS-conv layouts chosen: "
             f"{', '.join(res['layouts']) or 'the preference (convs too small to time)'}", ""]
    rows = [["CS-ResNet", f"{res['params']['cs']:,}", f"{res['ms']['cs']:.1f}", f"{res['ratio']:.2f}",
             f"{res['memory_mb']['cs']:.1f}"]]
    best = min(res["ms"]["plain"], res["ms"]["plain_cl"])
    if "cs_compiled" in res["ms"]:
        mode = f", mode {res['compile_mode']}" if res.get("compile_mode") else ""
        took = f"compiling took {res['compile_s']:.0f} s"
        rows.append([f"CS-ResNet, torch.compile ({res['compile_backend']}{mode}; {took})",
                     f"{res['params']['cs']:,}", f"{res['ms']['cs_compiled']:.1f}",
                     f"{res['ms']['cs_compiled'] / best:.2f}", f"{res['memory_mb']['cs_compiled']:.1f}"])
    for key, label in (("plain", "plain stack, contiguous"), ("plain_cl", "plain stack, channels-last")):
        rows.append([label, f"{res['params'][key]:,}", f"{res['ms'][key]:.1f}", f"{res['ms'][key] / best:.2f}",
                     f"{res['memory_mb'][key]:.1f}"])
    lines.append(markdown_table(["model", "params", "step ms", "/ faster plain", mem_name], rows))
    if res.get("compiled_ops"):
        (cs_all, cs_c), (pl_all, pl_c) = res["compiled_ops"]["cs"], res["compiled_ops"]["plain"]
        lines += ["", f"Operators per compiled training step (top-level aten operators and inductor's generated "
                  f"kernels; in brackets those that compute): CS-ResNet {cs_all:,} ({cs_c:,}), plain stack "
                  f"compiled the same way {pl_all:,} ({pl_c:,}): **{cs_all / pl_all:.1f}x** "
                  f"({cs_c / pl_c:.1f}x)."]
    if "breakdown" in res:
        names = list(res["breakdown"])
        lines += ["", "Profiled steps, ms per category: the minimum over profiled steps of each model, alternating "
                  "(torch.profiler adds overhead, mostly to \"not in operators\"):", ""]
        cats = list(CATEGORIES) + ["not in operators", "profiled step"]
        table = [[c] + [f"{res['breakdown'][n][c]:.1f}" + (f" ({res['breakdown'][n]['ops'][c]} ops)"
                                                           if c in CATEGORIES else "") for n in names]
                 for c in cats]
        table.append(["operators per step (top-level aten, forward + backward)"]
                     + [f"{res['breakdown'][n]['ops']['total']}" for n in names])
        if "cs" in res["breakdown"]:
            other = next(n for n in names if n != "cs")
            table.append(["operators, CS-ResNet / plain stack", "", "{:.1f}x".format(
                res["breakdown"]["cs"]["ops"]["total"] / res["breakdown"][other]["ops"]["total"])])
        lines.append(markdown_table(["category"] + ["CS-ResNet" if n == "cs" else f"plain stack ({n})" for n in names],
                                    table))
    return lines


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", default="fp32", choices=("fp32", "tf32", "bf16"))
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--stat", choices=sorted(STAT), default="min")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--hidden", type=int, default=None, help="override the hidden width")
    p.add_argument("--batch", type=int, default=None, help="override the batch size")
    p.add_argument("--no-profile", action="store_true", help="skip the profiler breakdown")
    p.add_argument("--profile-repeats", type=int, default=3, help="profiled steps per model (minimum per category)")
    p.add_argument("--compile", default=None, metavar="BACKEND",
                   help="also time the CS-ResNet under torch.compile with this backend (inductor: minutes to compile)")
    p.add_argument("--compile-mode", default=None, help="torch.compile mode with --compile (e.g. reduce-overhead)")
    p.add_argument("--op-counts", action="store_true",
                   help="also count operators per step of a CS-U-Net and a small Maxwell 3D CS-ResNet (hidden 2), "
                        "and time the latter against a parameter-matched ResNet")
    p.add_argument("--tiny", action="store_true", help="toy sizes (for the tests)")
    p.add_argument("--study-size", action="store_true",
                   help="the CS-ResNet of benchmarks/tasks_study.py (hidden 8, blocks (1, 1), 16x16, batch 8)")
    p.add_argument("--out", default=None, help="write a Markdown report here")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = dict(TINY_CONFIG if args.tiny else STUDY_CONFIG if args.study_size else CPU_CONFIG)
    for key in ("hidden", "batch"):
        if getattr(args, key) is not None:
            cfg[key] = getattr(args, key)
    load_before = load_average()
    res = run(cfg, args.device, args.precision, args.repeats, STAT[args.stat], not args.no_profile,
              args.profile_repeats, args.compile, args.compile_mode)
    extra = []
    if args.op_counts:
        extra = ["", "## Operators per training step (top-level aten operators, forward + backward)", "",
                 *operator_report(cfg, args.device, args.repeats, STAT[args.stat])]
    info = machine_info()
    lines = ["# CS-ResNet training step against a plain conv stack of the same dense shapes", "",
             *render(res, cfg, args.precision, args.device, args.stat, args.repeats), *extra, "",
             "## How it was run", "",
             f"    {command_line(argv, __file__)}", "",
             f"- {info['cpu_model']} ({info['cpu_capability']}), {info['cpus']} cores, torch {info['torch']}, "
             f"{info['threads']} torch threads, device {args.device}" + (f" ({info['cuda']})" if info["cuda"] else ""),
             f"- load average before / after: {load_before} / {load_average()} (a shared machine: other jobs ran)"]
    text = emit_markdown(lines, args.out)
    res["text"] = text
    return res


if __name__ == "__main__":
    main()
