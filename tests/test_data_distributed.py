"""Generation at cluster scale and its safety: Dask scheduler, --shard I/N + merge, workers that die
with their parent, the output lock, and bad input of `cscnn generate`."""

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import h5py
import numpy as np
import pytest

from cscnn.cli import main
from cscnn.data import DataError, PDEDataset, generate_dataset, merge_shards, parse_shard

MX_TINY = dict(n_large=14, n=6, skip_nt=10, nt=3, sample_rate=4)
KEYS = ("d_field", "h_field")


def _same_data(a, b, split="train"):
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        for k in KEYS:
            np.testing.assert_array_equal(fa[split][k][()], fb[split][k][()])
        for k in ("task", "split", "preset", "params", "seed", "num_trajectories"):
            assert fa.attrs[k] == fb.attrs[k], k


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    return generate_dataset("maxwell3d", "train", 5, tmp_path_factory.mktemp("single"), params=MX_TINY,
                            progress=False, seed=3)


def test_shards_read_together_and_merge_to_the_single_process_file(single, tmp_path):
    paths = [generate_dataset("maxwell3d", "train", 5, tmp_path, params=MX_TINY, progress=False, seed=3,
                              shard=f"{i}/3") for i in (2, 0, 1)]
    assert [p.name for p in sorted(paths)] == [f"train_shard000{i}-of-0003.h5" for i in range(3)]
    with h5py.File(paths[1], "r") as f:
        assert f.attrs["shard"] == "0/3" and f.attrs["first_index"] == 0 and f["train/d_field"].shape[0] == 1
    ds = PDEDataset(tmp_path, "maxwell3d", split="train", time_history=2)  # the shards, read as one data set
    ref = PDEDataset(single, "maxwell3d", time_history=2)
    assert ds.num_trajectories == 5
    for i in range(5):
        np.testing.assert_array_equal(ds.raw_fields(i), ref.raw_fields(i))
    assert main(["merge", str(tmp_path), "--split", "train"]) == 0
    _same_data(tmp_path / "train.h5", single)


def test_merge_refuses_incomplete_or_mixed_shards(tmp_path):
    generate_dataset("maxwell3d", "train", 4, tmp_path, params=MX_TINY, progress=False, shard="0/2")
    with pytest.raises(DataError, match="cover 2 of 4 trajectories"):
        merge_shards(tmp_path, "train")
    generate_dataset("maxwell3d", "train", 4, tmp_path, params=MX_TINY, progress=False, shard="1/2", seed=9)
    with pytest.raises(DataError, match="train_shard0000-of-0002.h5 and .*train_shard0001-of-0002.h5 were generated "
                                        "with different settings"):
        merge_shards(tmp_path, "train")
    with pytest.raises(ValueError, match=r"shard must look like I/N \(e.g. 0/4\), got 'half'"):
        parse_shard("half")


@pytest.mark.slow  # starting a 2-process Dask cluster and fdtd in its workers: ~55 s on 2 busy cores
def test_dask_cluster_gives_the_single_process_data(single, tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cl:
        path = generate_dataset("maxwell3d", "train", 5, tmp_path, params=MX_TINY, progress=False, seed=3,
                                scheduler=cl.scheduler_address)
    _same_data(path, single)


def test_unreachable_scheduler_is_a_clear_error(tmp_path, monkeypatch):
    pytest.importorskip("distributed")
    from cscnn.data import generation

    monkeypatch.setattr(generation, "DASK_CONNECT_TIMEOUT", "1s")
    with pytest.raises(DataError, match="cannot connect to the Dask scheduler at tcp://127.0.0.1:9"):
        generate_dataset("maxwell3d", "train", 1, tmp_path, params=MX_TINY, progress=False,
                         scheduler="tcp://127.0.0.1:9")


# ----------------------------------------------------------------- safety
_SLOW_RUN = textwrap.dedent("""
    import dataclasses, os, sys, time
    import numpy as np
    from cscnn.data import TASKS, generate_dataset

    def slow(params, seed):  # records the worker's pid, then simulates for a long time
        open(os.path.join(sys.argv[2], f"pid-{os.getpid()}"), "w").close()
        time.sleep(600)
        return {"d_field": np.zeros((2, 2, 2, 2, 3)), "h_field": np.zeros((2, 2, 2, 2, 3))}

    spec = dataclasses.replace(TASKS["maxwell3d"], simulate=slow)
    generate_dataset(spec, "train", 4, sys.argv[1], workers=int(sys.argv[3]), progress=False)
""")


def _start_slow(tmp_path, out, workers):
    script = tmp_path / "slow_run.py"
    script.write_text(_SLOW_RUN)
    pids = tmp_path / f"pids-{workers}"
    pids.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, str(script), str(out), str(pids), str(workers)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return proc, pids


def _wait_for(cond, timeout=120.0):
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return True
        time.sleep(0.2)
    return False


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie waiting for its (new) parent to reap it counts as dead
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_lock_names_the_holder(tmp_path):
    from cscnn.data.generation import _Lock

    with _Lock(tmp_path / ".train.lock", "x"):  # held by this process through another file handle
        with pytest.raises(DataError, match=rf"train.h5 is being generated by another run \(pid {os.getpid()} on host "
                                            rf"{socket.gethostname()}, started 20"):
            generate_dataset("maxwell3d", "train", 1, tmp_path, params=MX_TINY, progress=False)
    assert not (tmp_path / ".train.lock").exists()
    generate_dataset("maxwell3d", "train", 1, tmp_path, params=MX_TINY, progress=False)  # free again


@pytest.mark.slow  # a subprocess with two loky workers: ~55 s on 2 busy cores
@pytest.mark.skipif(sys.platform != "linux", reason="process checks use /proc")
def test_workers_die_with_a_sigkilled_parent_and_the_lock_names_its_holder(tmp_path):
    out = tmp_path / "out"
    proc, pids = _start_slow(tmp_path, out, workers=2)
    try:
        assert _wait_for(lambda: len(list(pids.iterdir())) == 2), proc.stdout.read1().decode()
        workers = [int(p.name.split("-")[1]) for p in pids.iterdir()]
        assert all(_alive(w) for w in workers)
        # a second run into the same output is refused while the first holds the lock
        with pytest.raises(DataError, match=rf"being generated by another run \(pid {proc.pid} on host "):
            generate_dataset("maxwell3d", "train", 4, out, params=MX_TINY, progress=False)
        assert main(["generate", "maxwell3d", "--num", "4", "--out", str(out), "--no-progress"]) == 2
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        assert _wait_for(lambda: not any(_alive(w) for w in workers), timeout=20), "a worker outlived its parent"
    finally:
        proc.kill()
    # the kernel released the dead holder's lock: a new run may start (and resumes the work folder)
    assert json.loads((out / ".train.work" / "config.json").read_text())["task"] == "maxwell3d"


def test_generate_bad_input_exits_2(tmp_path, capsys):
    afile = tmp_path / "file.txt"
    afile.write_text("x")
    cases = [
        (["--out", str(afile)], "is a file; expected a folder"),
        (["--out", "/sys"], "cannot write to output folder '/sys'"),  # read-only even for root
        (["--out", str(tmp_path / "d"), "--workers", "0"], "workers must be a positive integer, got 0"),
        (["--out", str(tmp_path / "d"), "--workers", "-2"], "workers must be a positive integer, got -2"),
        (["--out", str(tmp_path / "d"), "--shard", "2/2"], "shard I/N needs 0 <= I < N"),
    ]
    for extra, msg in cases:
        assert main(["generate", "maxwell3d", "--num", "1", "--no-progress", *extra]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and msg in err and err.count("\n") == 1, err
    assert not (tmp_path / "d").exists()  # nothing created before the input was checked


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_generate_into_a_read_only_folder(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        assert main(["generate", "maxwell3d", "--num", "1", "--out", str(ro), "--no-progress"]) == 2
        assert "cannot write to output folder" in capsys.readouterr().err
    finally:
        ro.chmod(0o700)
