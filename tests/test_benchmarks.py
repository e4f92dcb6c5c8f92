"""Benchmark scripts at toy size: they run, write their files, and the sample-efficiency study resumes."""

from __future__ import annotations

import csv
import importlib
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str):
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    return importlib.import_module(name)


@pytest.fixture(scope="module")
def ns_data(tmp_path_factory):
    from cscnn.training.synthetic import write_synthetic_splits

    return write_synthetic_splits("navier-stokes", tmp_path_factory.mktemp("ns"), num_train=3, num_valid=1,
                                  num_test=2, steps=7, size=8)


def _se_args(data, out, *extra):
    return ["--data", str(data), "--out", str(out), "--sizes", "1", "2", "--models", "cs_resnet", "resnet",
            "--steps", "1", "--hidden", "2", "--blocks", "1", "--kernel-size", "3", "--kernel-layers", "2",
            "--kernel-hidden", "4", "--batch-size", "4", "--test-stride", "2", "--clean-max", "3", *extra]


def test_sample_efficiency_runs_writes_and_resumes(ns_data, tmp_path):
    se = _load("sample_efficiency")
    out = tmp_path / "study"
    first = se.main(_se_args(ns_data, out))
    assert first["ran"] == 4 and first["skipped"] == 0
    plan = first["plan"]
    assert set(plan) == {"cs_resnet", "resnet"}
    assert abs(plan["resnet"]["params"] - plan["cs_resnet"]["params"]) < 0.2 * plan["cs_resnet"]["params"]
    cells = sorted(p.name for p in (out / "cells").glob("*.json"))
    assert cells == ["cs_resnet_n1_s0.json", "cs_resnet_n2_s0.json", "resnet_n1_s0.json", "resnet_n2_s0.json"]
    for suffix in (".csv", ".md", ".png"):
        assert (out / f"sample_efficiency{suffix}").stat().st_size > 0
    with open(out / "sample_efficiency.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and all(float(r["mse"]) > 0 for r in rows)
    md = (out / "sample_efficiency.md").read_text()
    assert "CS-ResNet" in md and "ResNet / CS-ResNet" in md and "How it was run" in md
    mtimes = {p.name: p.stat().st_mtime_ns for p in (out / "cells").glob("*.json")}

    second = se.main(_se_args(ns_data, out))  # finished cells are skipped, the summary is rewritten
    assert second["ran"] == 0 and second["skipped"] == 4
    assert {p.name: p.stat().st_mtime_ns for p in (out / "cells").glob("*.json")} == mtimes

    third = se.main(_se_args(ns_data, out, "--seeds", "0", "1", "--sizes", "1"))
    assert third["ran"] == 2 and third["skipped"] == 2  # only the new seed's cells run
    fourth = se.main(_se_args(ns_data, out, "--seeds", "0", "1", "2", "--summarize"))
    assert fourth["ran"] == 0  # seed 2 is not trained, the summary covers the finished cells
    assert (out / "cells" / "resnet_n1_s1.json").is_file()


def test_sample_efficiency_results_prefix_and_metrics(ns_data, tmp_path):
    se = _load("sample_efficiency")
    res = se.main(["--data", str(ns_data), "--out", str(tmp_path / "o"), "--results", str(tmp_path / "r" / "ns"),
                   "--sizes", "1", "--models", "resnet", "--reference", "resnet", "--hidden", "4", "--blocks", "1",
                   "--kernel-size", "3", "--steps", "1", "--test-stride", "3"])
    assert res["ran"] == 1
    assert {Path(p).name for p in res["paths"].values()} == {"ns.csv", "ns.md", "ns.png"}
    cell = se.read_json(tmp_path / "o" / "cells" / "resnet_n1_s0.json")
    assert cell["steps"] == 1 and cell["num_test_samples"] == 2 * 1  # (7 - 5) // 3 + 1 windows per trajectory
    assert "mse_clean" not in cell  # only with --clean-max


def test_matching_size_interpolates():
    se = _load("sample_efficiency")
    agg = {("cs", 8): {"mean": 1.0}, ("cs", 32): {"mean": 0.25}}
    assert se.matching_size(agg, "cs", 0.5) == pytest.approx(16.0)
    assert se.matching_size(agg, "cs", 2.0) == 8.0
    assert se.matching_size(agg, "cs", 0.1) is None


def test_speed_toy(tmp_path):
    sp = _load("speed")
    out = tmp_path / "speed.md"
    res = sp.main(["--settings", "2d", "--models", "cs_resnet", "resnet", "--scale", "0.125", "--repeats", "1",
                   "--conv-repeats", "1", "--out", str(out)])
    assert {r["model"] for r in res["rows"]} == {"cs_resnet", "resnet"}
    assert all(r["fb_ms_per_sample"] > 0 and r["saved_mb_per_sample"] > 0 for r in res["rows"])
    assert len(res["conv_rows"]) == 1 and res["conv_rows"][0]["train_ratio"] > 0
    text = out.read_text()
    assert "saved_tensors_hooks" in text and "CS-ResNet" in text and "plain conv" in text


def test_boost_field_conventions():
    bc = _load("boost_consistency")
    from cscnn import CliffordAlgebra
    from cscnn.algebra import boost
    from cscnn.nn import CliffordSteerableConv

    alg = CliffordAlgebra(bc.METRIC)
    gen = torch.Generator().manual_seed(0)
    x = bc.smooth_bivector_field(alg, (9, 9, 9), 1, gen, torch.float64)
    eye = torch.eye(3, dtype=torch.float64)
    assert torch.allclose(bc.boost_field(alg, eye, x), x, atol=1e-12)
    g = boost(bc.METRIC, 0, 1, 0.4)
    mask = bc.interior_mask((9, 9, 9), g, 0, torch.float64)
    assert 0 < mask.sum() < mask.numel()
    # a pointwise (1x1) CS-conv commutes with the boost action exactly: checks rho(g) and the resampling agree
    conv = CliffordSteerableConv(alg, 1, 2, 1).double()
    with torch.no_grad():
        lhs, rhs = conv(bc.boost_field(alg, g, x)), bc.boost_field(alg, g, conv(x))
    assert torch.allclose(lhs, rhs, atol=1e-10)


def test_boost_consistency_toy(tmp_path):
    bc = _load("boost_consistency")
    res = bc.main(["--out", str(tmp_path / "bc"), "--frames", "8", "--size", "8", "--hidden", "2", "--blocks", "1",
                   "--kernel-size", "3", "--samples", "1", "--rapidities", "0", "0.2"])
    for p in res["paths"]:
        assert Path(p).stat().st_size > 0
    assert set(res["errors"]) == {"cs_resnet", "resnet", "cs_conv", "plain_conv"}
    for errs in res["errors"].values():
        assert errs[0] < 1e-10  # rapidity 0: identity
        assert errs[1] > 0


def test_filter_data_drops_blown_up_trajectories(tmp_path):
    import h5py

    from cscnn.data import PDEDataset
    from cscnn.training.synthetic import write_synthetic_dataset

    fd = _load("filter_data")
    src = write_synthetic_dataset("navier-stokes", tmp_path / "src" / "train.h5", "train", num=3, steps=6, size=8)
    with h5py.File(src, "r+") as f:
        f["train"]["vx"][1, 2, 0, 0] = 1e3  # one blown-up frame in trajectory 1
    res = fd.main([str(tmp_path / "src"), str(tmp_path / "dst"), "--max-abs", "10"])
    assert res == {"train": (2, 3)}
    ds = PDEDataset(tmp_path / "dst" / "train.h5", "navier-stokes")
    assert ds.num_trajectories == 2
    with h5py.File(tmp_path / "dst" / "train.h5", "r") as f:
        assert f.attrs["num_trajectories"] == 2 and f.attrs["kept_indices"] == "[0, 2]"
        assert f["train"]["t"].shape[0] == 2


def test_kernel_completeness_toy(tmp_path):
    kc = _load("kernel_completeness")
    out = tmp_path / "kc.md"
    assert kc.main(["--algebras", "Cl(2,0)", "--points", "1", "--out", str(out)]) == 0
    text = out.read_text()
    row = next(line for line in text.splitlines() if line.startswith("| Cl(2,0) | spacelike | (0.5, 0)"))
    assert row.split(" | ")[3:7] == ["7/8", "8/8", "14/16", "16/16"]
    assert "Cl(2,0) 7/8" in text and "How it was run" in text and "Cl(3,0)" not in text


def test_conditional_speed_toy(tmp_path):
    cs = _load("conditional_speed")
    out = tmp_path / "cs.md"
    assert cs.main(["--batches", "1", "2", "--channels", "1", "--size", "6", "--kernel-size", "3", "--repeats", "1",
                    "--out", str(out)]) == 0
    text = out.read_text()
    assert "conditional/plain" in text and "Load:" in text and "How it was run" in text
    assert "| 2 |" in text and "target" not in text.lower()  # no batch 8: no verdict line


def test_sample_efficiency_same_width(ns_data):
    se = _load("sample_efficiency")
    args = se.parse_args(_se_args(ns_data, "unused", "--models", "cs_resnet", "cs_resnet_two_sided", "resnet",
                                  "--same-width", "cs_resnet_two_sided"))
    from cscnn.data import get_task

    plan, _ = se.plan_models(args, get_task("navier-stokes"))
    assert plan["cs_resnet_two_sided"]["hidden"] == plan["cs_resnet"]["hidden"] == 2
    assert plan["cs_resnet_two_sided"]["params"] > plan["cs_resnet"]["params"]
