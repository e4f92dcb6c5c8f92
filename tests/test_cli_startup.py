"""The ``cscnn`` command answers --version, --help, argument errors and config errors without importing
torch or Lightning (issue 21, item 3), and the static name tables it uses match the registries."""

from __future__ import annotations

import importlib
import json
import pkgutil
import subprocess
import sys
import typing
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: (argv, expected exit status); each must finish without torch or lightning in sys.modules
LIGHT_CASES = [
    (["--version"], 0),
    (["--help"], 0),
    ([], 2),
    *[([cmd, "--help"], 0) for cmd in ("generate", "merge", "train", "evaluate", "plot", "equivariance", "info",
                                       "configs")],
    (["configs"], 0),  # the packaged configs, listed without importing torch
    (["configs", "show", "paper/ns_cs_resnet"], 0),
    (["configs", "show", "paper/no_such_config"], 2),
    (["train", "--config", "cpu/ns_cs_resnet", "--set", "trainer.max_step=1"], 2),  # a packaged name, checked
    (["generate", "no-such-task", "--num", "1", "--out", "x"], 2),  # argument error: unknown task
    (["generate", "navier-stokes", "--num", "1", "--out", "x", "--preset", "huge"], 2),  # unknown preset
    (["train"], 2),  # --config missing
    (["evaluate", "--batch-size", "two", "run"], 2),  # not an int
    (["nonsense"], 2),
    (["train", "--config", "configs/cpu/ns_cs_resnet.yaml", "--set", "trainer.max_step=1"], 2),  # unknown key
    (["train", "--config", "configs/cpu/ns_cs_resnet.yaml", "--set", "model.name=cs_resnett"], 2),  # model
    (["train", "--config", "configs/cpu/ns_cs_resnet.yaml", "--set", "task=navier"], 2),  # unknown task
    (["train", "--config", "configs/cpu/ns_cs_resnet.yaml", "--set", "optim.lr=-1"], 2),  # bad value
    (["train", "--config", "configs/cpu/ns_cs_resnet.yaml", "--set", "trainer.precision=33-bits"], 2),
    (["train", "--config", "configs/cpu/ns_cs_resnet.yaml", "--set", "data.batch_size=[1"], 2),  # not YAML
    (["train", "--config", "no/such/config.yaml"], 2),
]

_RUNNER = r"""
import contextlib, io, json, sys
from cscnn.cli import main
out = []
for argv, want in json.loads(sys.argv[1]):
    buf, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(err):
        try:
            rc = main(argv)
        except SystemExit as e:
            rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    heavy = sorted(m for m in ("torch", "lightning", "numpy") if m in sys.modules)
    out.append({"argv": argv, "rc": rc, "want": want, "heavy": heavy, "stdout": buf.getvalue()[-300:],
                "stderr": err.getvalue()})
print(json.dumps(out))
"""


def test_cli_answers_without_torch():
    """One interpreter runs every case in order; the first case that imports torch, Lightning or numpy
    is reported (later cases would be blind to it)."""
    r = subprocess.run([sys.executable, "-c", _RUNNER, json.dumps(LIGHT_CASES)], cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    for case in json.loads(r.stdout):
        assert case["rc"] == case["want"], case
        assert not case["heavy"], f"cscnn {' '.join(case['argv'])} imported {case['heavy']}: {case}"
        if case["want"] == 2 and case["argv"]:
            lines = [ln for ln in case["stderr"].splitlines() if ln.strip()]
            one_line = len(lines) == 1 and lines[0].startswith("error: ")
            assert one_line or lines[-1].startswith("cscnn"), case  # ours, or argparse's usage + error
            assert "Traceback" not in case["stderr"], case


def test_version_in_a_fresh_interpreter_imports_no_torch():
    """``python -X importtime -m cscnn --version``: the import log names no torch or lightning module."""
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "cscnn", "--version"], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.startswith("cscnn "), r
    imported = {ln.split("|")[-1].strip().split(".")[0] for ln in r.stderr.splitlines() if "|" in ln}
    assert not imported & {"torch", "lightning", "numpy", "yaml"}, sorted(imported)


def test_catalog_matches_the_registries():
    from lightning.fabric.connector import _PRECISION_INPUT_STR, _PRECISION_INPUT_STR_ALIAS

    from cscnn import _catalog
    from cscnn.data import TASKS
    from cscnn.models import MODELS

    hint = "update src/cscnn/_catalog.py (the CLI's static copy of the registries)"
    import cscnn.data.tasks as task_pkg

    modules = [m.name for m in pkgutil.iter_modules(task_pkg.__path__) if not m.name.startswith("_")]
    names = {importlib.import_module(f"cscnn.data.tasks.{m}").TASK.name for m in modules}
    builtin = {n: t for n, t in TASKS.items() if n in names}
    assert set(_catalog.TASK_PRESETS) == set(builtin), hint
    for name, spec in builtin.items():
        assert tuple(_catalog.TASK_PRESETS[name]) == tuple(spec.presets), (name, hint)
        assert _catalog.TASK_DESCRIPTIONS[name] == spec.description, (name, hint)
    assert tuple(_catalog.MODEL_NAMES) == tuple(MODELS), hint
    precisions = typing.get_args(_PRECISION_INPUT_STR) + typing.get_args(_PRECISION_INPUT_STR_ALIAS)
    assert set(_catalog.PRECISIONS) == set(precisions), hint


def test_every_task_has_the_common_preset_names():
    """`--preset small` and `--preset pdearena` work for every task that simulates (issue 21, item 2)."""
    from cscnn._catalog import TASK_PRESETS

    for name, presets in TASK_PRESETS.items():
        if presets:
            assert {"small", "pdearena"} <= set(presets), name


def test_registered_names_outside_the_catalog_are_accepted(monkeypatch):
    """A model added to the live registry passes config validation (the catalog is only a fast path)."""
    from cscnn.models import MODELS
    from cscnn.training.config import ConfigError, config_from_dict

    d = {"task": "navier-stokes", "model": {"name": "my_net"}, "trainer": {"max_steps": 1}}
    with pytest.raises(ConfigError, match="unknown model 'my_net'"):
        config_from_dict(d)
    monkeypatch.setitem(MODELS, "my_net", MODELS["resnet"])
    assert config_from_dict(d).model.name == "my_net"
