"""Kernel networks against the outputs of the pre-batching code (issue 20): the state_dicts and float64
outputs in tests/fixtures/kernel_reference.pt were written by tests/fixtures/make_kernel_reference.py
at commit e9e730a. Today's classes must load those checkpoints (same state_dict keys) and give the
same outputs to 1e-12 relative."""

import importlib.util
from pathlib import Path

import pytest
import torch

FIXTURE = Path(__file__).with_name("fixtures") / "kernel_reference.pt"
_spec = importlib.util.spec_from_file_location("make_kernel_reference", FIXTURE.with_name("make_kernel_reference.py"))
maker = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(maker)
REFERENCE = torch.load(FIXTURE, weights_only=False)


def _close(a: torch.Tensor, b: torch.Tensor, rtol: float = 1e-12) -> None:
    assert a.shape == b.shape and a.dtype == b.dtype
    err = (a - b).abs().max() / b.abs().max().clamp_min(1e-300)
    assert err <= rtol, f"relative error {err:.3e}"


def _rebuild(case):
    m = maker.build(case["class"], case["spec"])
    m.load_state_dict(case["state_dict"], strict=True)
    return m


@pytest.mark.parametrize("name", sorted(REFERENCE))
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_outputs_equal_reference(name, mode):
    case = REFERENCE[name]
    m = _rebuild(case)
    m.train(mode == "train")
    x = case["input"]
    ref = case["outputs"]
    if "evaluate" in ref:
        _close(m.evaluate(x), ref["evaluate"])
        _close(m(), ref["dense"])
        return
    for _ in range(2):  # the second call in eval mode reads the kernel cache
        _close(m(x), ref["out"])
    if "dense" in ref:
        _close(m.weight, ref["dense"])


@pytest.mark.parametrize("name", sorted(n for n in REFERENCE if "grads" in REFERENCE[n]["outputs"]))
def test_gradients_equal_reference(name):
    case = REFERENCE[name]
    m = _rebuild(case)
    m(case["input"]).square().sum().backward()
    grads = case["outputs"]["grads"]
    assert sorted(grads) == sorted(k for k, p in m.named_parameters() if p.grad is not None)
    for k, p in m.named_parameters():
        if k in grads:
            _close(p.grad, grads[k], 1e-10)
