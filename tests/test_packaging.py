"""Installing and using cscnn outside the repository: the wheel carries every config and the files a user
looks for, packaged config names work wherever a config path does, the extras' bounds admit the pinned
versions, tasks of other installed packages (entry points) reach every command, ``cscnn generate --set``,
own arrays in The Well's layout, and a quiet training run.

The fresh-venv install of the wheel with ``[data,train,baselines]`` is ``-m slow`` (minutes, network)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
CONFIG_FILES = sorted(p.relative_to(ROOT / "configs").as_posix() for p in (ROOT / "configs").rglob("*.yaml"))


def _env(*paths, **extra) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(str(p) for p in paths), OMP_NUM_THREADS="1", **extra)
    env.pop("PYTEST_ADDOPTS", None)
    return env


def _cscnn(args, cwd, *paths, timeout=600):
    """Run ``python -m cscnn ARGS`` in a new process with ``paths`` (then src/) on PYTHONPATH."""
    return subprocess.run([sys.executable, "-m", "cscnn", *map(str, args)], cwd=cwd, env=_env(*paths, SRC),
                          capture_output=True, text=True, timeout=timeout)


# ------------------------------------------------------------------- the wheel
@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel built (no dependencies, no isolation: seconds) from a copy of the repository's sources."""
    tmp = tmp_path_factory.mktemp("wheel")
    copy = tmp / "repo"
    for name in ("src", "configs"):
        shutil.copytree(ROOT / name, copy / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "setup.py", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, copy / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp / "dist"), str(copy)], check=True, capture_output=True, timeout=300)
    (whl,) = (tmp / "dist").glob("cscnn-*.whl")
    return whl


def test_wheel_carries_every_config_and_the_user_files(wheel):
    sys.path.insert(0, str(SRC))
    from cscnn import __version__

    names = zipfile.ZipFile(wheel).namelist()
    assert sorted(n[len("cscnn/configs/"):] for n in names if n.startswith("cscnn/configs/")) == CONFIG_FILES
    assert "cscnn/py.typed" in names
    dist = f"cscnn-{__version__}.dist-info"
    assert wheel.name.startswith(f"cscnn-{__version__}-") and f"{dist}/licenses/LICENSE" in names
    meta = zipfile.ZipFile(wheel).read(f"{dist}/METADATA").decode()
    head, _, description = meta.partition("\n\n")
    assert "License-Expression: MIT" in head and "Author: " in head and "Classifier: Typing :: Typed" in head
    assert "Project-URL: Paper, https://arxiv.org/abs/2402.14730" in head and "Keywords: " in head
    links = re.findall(r"\]\(([^)\s]+)\)", description)
    assert links and all(re.match(r"(https?://|#)", link) for link in links), [
        link for link in links if not re.match(r"(https?://|#)", link)]


def test_packaged_configs_read_from_the_repository(tmp_path, monkeypatch):
    from cscnn._configs import config_dir, config_names, config_summary, resolve_config

    monkeypatch.chdir(tmp_path)  # names, not paths relative to the working folder
    assert config_dir() == ROOT / "configs"
    assert [f"{n}.yaml" for n in config_names()] == CONFIG_FILES
    path = resolve_config("paper/ns_cs_resnet")
    assert path == ROOT / "configs" / "paper" / "ns_cs_resnet.yaml"
    assert resolve_config("paper/ns_cs_resnet.yaml") == path == resolve_config("configs/paper/ns_cs_resnet.yaml")
    assert config_summary("cpu/maxwell3d_cs_resnet")["task"] == "maxwell3d"
    with pytest.raises(FileNotFoundError, match=r"did you mean cpu/ns_cs_resnet"):
        resolve_config("cpu/ns_cs_resnt")
    with pytest.raises(FileNotFoundError, match="not found"):
        resolve_config("../pyproject")


def test_every_config_summary_matches_its_yaml():
    import yaml

    from cscnn._configs import config_names, config_summary

    for name in config_names():
        d = yaml.safe_load(resolve_text := (ROOT / "configs" / f"{name}.yaml").read_text())
        s = config_summary(name)
        assert (s["task"], s["model"]) == (d["task"], d["model"]["name"]), (name, resolve_text[:80])


def test_an_existing_file_wins_over_a_packaged_name(tmp_path, monkeypatch):
    from cscnn.training.config import load_config

    own = tmp_path / "cpu" / "ns_cs_resnet.yaml"
    own.parent.mkdir()
    own.write_text("task: maxwell3d\nmodel: {name: resnet}\ntrainer: {max_steps: 1}\n")
    monkeypatch.chdir(tmp_path)
    assert load_config("cpu/ns_cs_resnet.yaml").task == "maxwell3d"  # the file in the working folder
    assert load_config("cpu/ns_cs_resnet").task == "navier-stokes"  # no such file: the packaged config


def test_cli_configs_list_show_and_errors(tmp_path, capsys):
    from cscnn.cli import main

    assert main(["configs"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(CONFIG_FILES)
    row = next(line.split() for line in lines if line.startswith("paper/ns_cs_resnet "))
    assert row == ["paper/ns_cs_resnet", "navier-stokes", "cs_resnet"]
    assert main(["configs", "show", "cpu/ns_cs_resnet"]) == 0
    assert capsys.readouterr().out == (ROOT / "configs" / "cpu" / "ns_cs_resnet.yaml").read_text()
    for argv, message in ((["configs", "show", "cpu/nope"], "not found"), (["configs", "show"], "needs a config"),
                          (["configs", "cpu/ns_cs_resnet"], "did you mean `cscnn configs show")):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err


def test_info_takes_a_packaged_name(capsys):
    from cscnn.cli import main

    assert main(["info", "paper/ns_cs_resnet", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["kind"] == "config" and r["num_parameters"] == 7202561 and r["task"] == "navier-stokes"


# --------------------------------------------------------------------- extras
def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements" / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


def test_constraints_pins_satisfy_the_extras_bounds():
    tomllib = pytest.importorskip("tomllib")

    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins, checked = _pins(), 0
    groups = {"core": project["dependencies"], **project["optional-dependencies"]}
    for group, reqs in groups.items():
        for text in reqs:
            req = Requirement(text)
            key = re.sub(r"[-_.]+", "-", req.name).lower()
            if key == "cscnn" or key not in pins:
                continue
            assert req.specifier.contains(pins[key], prereleases=True), \
                f"requirements/constraints.txt pins {key}=={pins[key]}, outside [{group}]'s {req}"
            checked += 1
    assert checked >= 20
    # the bounds that let [data] and [baselines] install together, in any order
    data = [Requirement(r) for r in project["optional-dependencies"]["data"]]
    base = [Requirement(r) for r in project["optional-dependencies"]["baselines"]]
    for reqs in (data, base):
        assert not next(r for r in reqs if r.name == "numpy").specifier.contains("2.0.0")
    assert not next(r for r in data if r.name == "jax").specifier.contains("0.7.0")


def test_a_numpy_mismatch_of_a_simulator_is_one_line_with_the_fix(tmp_path, monkeypatch, capsys):
    import dataclasses

    from cscnn.cli import main
    from cscnn.data import TASKS, register_task
    from cscnn.data.generation import numpy_mismatch

    def broken(params, seed):
        try:
            raise AttributeError("_ARRAY_API not found")
        except AttributeError as e:
            raise ImportError("numpy.core.multiarray failed to import") from e

    spec = dataclasses.replace(TASKS["navier-stokes"], name="broken-numpy", simulate=broken)
    monkeypatch.delitem(TASKS, "broken-numpy", raising=False)
    register_task(spec)
    try:
        assert main(["generate", "broken-numpy", "--num", "1", "--out", str(tmp_path), "--no-progress"]) == 2
    finally:
        TASKS.pop("broken-numpy", None)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not run with the installed numpy" in err and 'pip install "numpy' in err
    assert numpy_mismatch(ValueError("other")) is None


# ------------------------------------------------------------ cscnn generate --set
def test_generate_set_overrides_simulator_parameters(tmp_path, capsys):
    import h5py

    from cscnn.cli import main

    out = tmp_path / "nsp"
    argv = ["generate", "navier-stokes-periodic", "--num", "1", "--out", str(out), "--no-progress", "--set",
            "n=16", "nt=3", "skip_nt=1", "L=8", "noise_scale=4.0", "noise_smoothness=3.0", "backend=numpy"]
    assert main(argv) == 0
    with h5py.File(out / "train.h5", "r") as f:
        assert f["train"]["velocity"].shape == (1, 3, 16, 16, 2)
        assert json.loads(f.attrs["params"])["n"] == 16
    unknown = "unknown parameter 'nx' for navier-stokes-periodic (did you mean 'n'?); known: n, "
    for sets, message in ((["nx=16"], unknown),
                          (["n=3.5"], "parameter 'n' of navier-stokes-periodic must be int"),
                          (["n"], "must look like KEY=VALUE")):
        capsys.readouterr()
        assert main(["generate", "navier-stokes-periodic", "--num", "1", "--out", str(tmp_path / "x"),
                     "--set", *sets]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err


def test_generate_refuses_a_task_without_simulator(tmp_path, capsys):
    from cscnn.cli import main

    assert main(["generate", "the-well", "--num", "1", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "task 'the-well' has no simulator and no presets" in err and "the-well-download" in err


# ------------------------------------------------------- your own data (The Well)
def _own_arrays(seed=0):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((12, 7, 12, 12, 3)).astype(np.float32)  # (N, T, X, Y, C): pressure, vx, vy
    return {s: {"pressure": a[sl, ..., 0], "velocity": a[sl, ..., 1:3]}
            for s, sl in (("train", slice(0, 8)), ("valid", slice(8, 10)), ("test", slice(10, 12)))}


def test_write_well_dataset_reads_back_as_the_arrays(tmp_path):
    import torch

    from cscnn.data import PDEDataset, get_task, write_well_dataset
    from cscnn.data.tasks.the_well import describe_file

    splits = _own_arrays()
    base = write_well_dataset(tmp_path / "mine", splits, boundary_conditions=("periodic", "wall"), dt=0.5,
                              scalars={"Reynolds": 100.0})
    info = describe_file(base / "data" / "train" / "mine_train.hdf5")
    assert info.fields == (("pressure",), ("velocity",), ()) and info.axis_boundaries == ("PERIODIC", "WALL")
    assert info.grid == (12, 12) and info.n_trajectories == 8 and info.constant_scalars == ("Reynolds",)
    task = get_task("the-well").resolve(base)
    assert task.metric == (1, 1) and task.padding == ("circular", "zeros")
    ds = PDEDataset(sorted((base / "data" / "test").glob("*.hdf5")), task, time_history=2, time_future=1,
                    normalization=None)
    x, _ = ds[0]
    test = splits["test"]
    expected = np.stack([test["pressure"][0, :2], test["velocity"][0, :2, ..., 0],
                         test["velocity"][0, :2, ..., 1], np.zeros_like(test["pressure"][0, :2])], -1)
    torch.testing.assert_close(x, torch.from_numpy(expected))


@pytest.mark.parametrize("bad, message", [
    (dict(boundary_conditions=("periodic",)), "must name 2 or 3 grid axes"),
    (dict(boundary_conditions=("periodic", "slip")), "must name 2 or 3 grid axes"),
    (dict(dt=0), "dt must be a positive number"),
    (dict(splits={"train": {"u": np.zeros((2, 3, 4, 4, 3))}}), "field 'u' has shape (2, 3, 4, 4, 3)"),
    (dict(splits={"train": {"u": np.full((2, 3, 4, 4), np.nan)}}), "NaN or infinite"),
    (dict(splits={"train": {"u": np.zeros((2, 3, 4, 4))}, "test": {"u": np.zeros((2, 3, 5, 4))}}),
     "every split needs the same fields on the same grid"),
    (dict(scalars={"Re": [1.0, 2.0, 3.0]}), "one number or one per trajectory"),
])
def test_write_well_dataset_bad_input(tmp_path, bad, message):
    from cscnn.data import write_well_dataset

    kw = dict(splits={"train": {"u": np.zeros((2, 3, 4, 4))}}, boundary_conditions=("open", "wall"), dt=1.0)
    kw.update(bad)
    with pytest.raises(ValueError, match=re.escape(message)):
        write_well_dataset(tmp_path / "x", kw.pop("splits"), **kw)


def test_own_data_recipe_trains_evaluates_plots_and_is_equivariant(tmp_path, capsys):
    from cscnn.cli import main
    from cscnn.data import write_well_dataset

    data = write_well_dataset(tmp_path / "data" / "my_flow", _own_arrays(), boundary_conditions=("periodic", "wall"),
                              dt=0.1)
    run = tmp_path / "run"
    assert main(["train", "--config", "cpu/well_cs_resnet", "--data", str(data), "--out", str(run), "--no-progress",
                 "--evaluate", "--set", "trainer.max_steps=2", "trainer.val_check_interval=2",
                 "model.hidden_channels=2", "eval.rollout_steps=2"]) == 0
    out = capsys.readouterr().out
    assert "one-step test MSE" in out and "Tip" not in out
    assert main(["plot", str(run), "--no-gif", "--no-progress", "--rollout-steps", "2"]) == 0
    assert main(["equivariance", str(run), "--num", "4", "--no-progress"]) == 0
    worst = float(re.search(r"worst relative equivariance error over \d+ grid symmetries: (\S+)",
                            capsys.readouterr().out).group(1))
    assert worst < 1e-10


# -------------------------------------------------------- tasks of other packages
_TASK_MODULE = '''
"""A task of another package: 2D diffusing tracer on cscnn's own file layout, no simulator."""
from cscnn.data import TaskSpec
from cscnn.fields import FieldLayout

TASK = TaskSpec(
    name="tracer-demo", metric=(1, 1), grid_dims=2, time_as_axis=False, time_history=2, time_future=1,
    layout=FieldLayout(task="tracer-demo", metric=(1, 1), components=("c",), blades=(0,), signs=(1.0,),
                       groups=(("c", (0,)),)),
    datasets=(("c", None),), padding="circular", description="tracer concentration (a plug-in task)")
'''


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory) -> Path:
    """A tiny distribution with a ``cscnn.tasks`` entry point, installed by pip into a scratch site dir."""
    tmp = tmp_path_factory.mktemp("plugin")
    pkg = tmp / "cscnn-tracer-demo"
    pkg.mkdir()
    (pkg / "cscnn_tracer_demo.py").write_text(_TASK_MODULE)
    (pkg / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=64"]\nbuild-backend = "setuptools.build_meta"\n\n'
        '[project]\nname = "cscnn-tracer-demo"\nversion = "0.0.1"\n\n'
        '[project.entry-points."cscnn.tasks"]\ntracer-demo = "cscnn_tracer_demo:TASK"\n\n'
        '[tool.setuptools]\npy-modules = ["cscnn_tracer_demo"]\n')
    site = tmp / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    "--target", str(site), str(pkg)], check=True, capture_output=True, timeout=300)
    assert (site / "cscnn_tracer_demo.py").is_file() and list(site.glob("cscnn_tracer_demo-*.dist-info"))
    return site


def _write_tracer_data(folder: Path) -> None:
    from cscnn.data.hdf5 import write_trajectories

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for split, n in (("train", 4), ("valid", 1), ("test", 1)):
        trajs = ({"c": rng.standard_normal((5, 8, 8)).astype(np.float32)} for _ in range(n))
        write_trajectories(folder / f"{split}.h5", split, n, trajs, {"task": "tracer-demo"})


def test_an_entry_point_task_reaches_every_command_in_new_processes(plugin_site, tmp_path):
    data, run = tmp_path / "data", tmp_path / "run"
    _write_tracer_data(data)
    cfg = tmp_path / "tracer.yaml"
    cfg.write_text("task: tracer-demo\nmodel: {name: cs_resnet, hidden_channels: 2, kwargs: {blocks: [1], "
                   "kernel_size: 3, kernel_num_layers: 2, kernel_hidden_channels: 2}}\n"
                   "data: {batch_size: 2}\ntrainer: {max_steps: 2, accelerator: cpu, devices: 1}\n"
                   "eval: {rollout_steps: 2}\n")
    gen = _cscnn(["generate", "tracer-demo", "--num", "1", "--out", tmp_path / "g"], tmp_path, plugin_site)
    assert gen.returncode == 2 and "task 'tracer-demo' has no simulator and no presets" in gen.stderr, gen.stderr
    assert gen.stderr.count("\n") == 1
    tr = _cscnn(["train", "--config", cfg, "--data", data, "--out", run, "--no-progress"], tmp_path, plugin_site)
    assert tr.returncode == 0, tr.stderr[-3000:]
    log = tr.stdout + tr.stderr  # a quiet run: no advertising tips, no third-party deprecation warnings
    assert "training done" in log and "Tip:" not in log and "LeafSpec" not in log and "weights_only" not in log, log
    ev = _cscnn(["evaluate", run, "--no-progress"], tmp_path, plugin_site)
    assert ev.returncode == 0, ev.stderr[-3000:]
    assert "cs_resnet on tracer-demo" in ev.stdout
    # the entry point is what makes the task known: listed with the distribution on the path, not without
    probe = [sys.executable, "-c", "from cscnn._catalog import task_names; print(task_names())"]
    for paths, known in (((plugin_site, SRC), True), ((SRC,), False)):
        out = subprocess.run(probe, env=_env(*paths), capture_output=True, text=True, timeout=120, check=True)
        assert ("'tracer-demo'" in out.stdout) is known


# ----------------------------------------------------------------- quiet runs
def test_quiet_third_party_drops_only_tips_and_listed_deprecations(caplog):
    import logging
    import warnings

    from cscnn.training.quiet import quiet_third_party

    quiet_third_party()
    quiet_third_party()  # idempotent
    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    with caplog.at_level(logging.INFO, logger="lightning.pytorch.utilities.rank_zero"):
        logger.info("💡 Tip: For seamless cloud logging, try installing something")
        logger.info("GPU available: False, used: False")
    assert [r.getMessage() for r in caplog.records] == ["GPU available: False, used: False"]
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("default")
        quiet_third_party()  # filters installed after simplefilter take precedence
        warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated, use ...", FutureWarning, stacklevel=1)
        warnings.warn("cscnn's own warning", UserWarning, stacklevel=1)
    assert [str(w.message) for w in seen] == ["cscnn's own warning"]


# ------------------------------------------------------------ the user files
def test_version_in_one_place_and_the_files_a_user_looks_for():
    import yaml

    from cscnn import __version__

    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "version" not in project and "version" in project["dynamic"]  # read from cscnn.__version__
    assert yaml.safe_load((ROOT / "CITATION.cff").read_text())["version"] == __version__
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert re.search(rf"^## \[{re.escape(__version__)}\] - \d{{4}}-\d{{2}}-\d{{2}}$", changelog, re.M)
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    readme = (ROOT / "README.md").read_text()
    assert "arXiv:2402.14730" in readme.replace("eprint    = {", "arXiv:") and "2510.14007" in readme
    assert "https://github.com/maxxxzdn/clifford-group-equivariant-cnns" in readme


# ----------------------------------------------------------------- fresh venv
@pytest.mark.slow
def test_fresh_venv_installs_the_wheel_with_every_extra_and_runs_outside_the_repo(wheel, tmp_path):
    """pip install torch, then the wheel with [data,train,baselines], in a new venv; from a folder outside
    the repository: cscnn configs, cscnn info paper/ns_cs_resnet, and a tiny generate + train + evaluate."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    py = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTEST_ADDOPTS")}
    for spec in ("torch==2.13.0", f"{wheel}[data,train,baselines]"):
        r = subprocess.run([str(py), "-m", "pip", "install", "-q", spec], env=env, capture_output=True, text=True,
                           timeout=3600)
        assert r.returncode == 0, r.stderr[-3000:]
    imports = "jax, phi.flow, pycharge, fdtd, h5py, lightning, escnn, cliffordlayers, neuralop"
    r = subprocess.run([str(py), "-c", f"import {imports}"], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    work = tmp_path / "elsewhere"
    work.mkdir()
    env["OMP_NUM_THREADS"] = "1"

    def cscnn(*args):
        out = subprocess.run([str(venv / "bin" / "cscnn"), *args], cwd=work, env=env, capture_output=True,
                             text=True, timeout=1800)
        assert out.returncode == 0, out.stderr[-3000:]
        return out.stdout + out.stderr

    assert len(cscnn("configs").splitlines()) == len(CONFIG_FILES)
    assert "parameters: 7,202,561" in cscnn("info", "paper/ns_cs_resnet")
    log = cscnn("train", "--config", "cpu/ns_cs_resnet", "--generate", "--evaluate", "--no-progress", "--set",
                "data.generate.train=2", "data.generate.valid=1", "data.generate.test=1", "data.generate.workers=1",
                "data.generate.params.nx=16", "data.generate.params.ny=16", "data.generate.params.nt=8",
                "trainer.max_steps=2", "trainer.val_check_interval=2", "data.batch_size=2", "eval.rollout_steps=2")
    assert "one-step test MSE" in log and "Tip:" not in log and "LeafSpec" not in log, log
    assert (work / "data" / "cpu" / "navier-stokes" / "train.h5").is_file()  # data.dir read from the working folder
