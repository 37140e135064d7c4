"""MLX's matmul variants and graph helpers, composed from oxmx.core ops.

* ``gather_mm``: the batch matrices picked by flat indices (``take``) then one batched
  ``matmul``.
* ``block_masked_mm``: every mask is expanded to its element blocks; a bool mask selects
  (``where``: a masked-out block is exactly 0, NaN or not), any other mask scales the
  block (a product, so ``0 * inf`` is NaN), as MLX does.
* ``segmented_mm``: one ``matmul`` per segment of the inner dimension, the entries outside
  the segment replaced by 0 in both operands.
* ``hadamard_transform``: ``log2`` butterfly stages (Sylvester's matrix, never formed)
  times MLX's ``m x m`` Hadamard matrix for ``n = m * 2^k``, ``m`` in 12, 20, 28.
* ``depends``: the inputs passed through a ``where`` whose condition reads one element of
  every dependency, so evaluating an output evaluates the dependencies; values and
  gradients are those of the inputs.

Being composites, grad/vjp/jvp/vmap work through all of them. Where MLX's CPU kernels
stop (float32 only for gather_mm/block_masked_mm, float32/float16/bfloat16 for the
Hadamard transform) oxmx computes the other floating types too, and out-of-range indices
or segments raise IndexError when the result is evaluated instead of reading outside the
array.
"""

import math
import operator

from oxmx import _oxmx as _n

from ._device import stream as _stream
from ._dtypes import result_type as _result_type

__all__ = ["block_masked_mm", "gather_mm", "segmented_mm", "hadamard_transform", "depends"]


# ---------------------------------------------------------------- argument checks
def _shape_str(shape):
    return "(" + ",".join(str(s) for s in shape) + ")"


def _require_array(op, x, what):
    if not isinstance(x, _n.array):
        raise TypeError(f"[{op}] {what} must be an array, got {type(x).__name__}.")
    return x


def _optional_array(op, x, what):
    return None if x is None else _require_array(op, x, what)


def _check_ndim(op, a, b):
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"[{op}] Got 0 dimension input. Inputs must have at least one dimension.")


def _check_inner(op, a, b):
    if a.shape[-1] != b.shape[-2]:
        raise ValueError(
            f"[{op}] Last dimension of first input with shape {_shape_str(a.shape)} must match second "
            f"to last dimension of second input with shape {_shape_str(b.shape)}."
        )


def _float_dtype(op, a, b):
    """The result dtype of ``a @ b``; a real floating type, as MLX requires."""
    dt = _result_type(a, b)
    if not _n.issubdtype(dt, _n.floating):
        raise ValueError(
            f"[{op}] Only real floating point types are supported but {a.dtype.name} and {b.dtype.name} "
            f"were provided which results in {dt.name}, which is not a real floating point type."
        )
    return dt


def _check_integral(op, x, what):
    if x is not None and not _n.issubdtype(x.dtype, _n.integer):
        raise ValueError(f"[{op}] Got {what} with invalid dtype. {what.capitalize()} must be integral.")


def _broadcast(op, *shapes):
    """NumPy broadcasting of ``shapes`` (ValueError naming ``op`` when they do not)."""
    nd = max((len(s) for s in shapes), default=0)
    out = []
    for k in range(nd):
        sizes = {s[len(s) - nd + k] for s in shapes if len(s) - nd + k >= 0} - {1}
        if len(sizes) > 1:
            raise ValueError(f"[{op}] Shapes {' and '.join(_shape_str(s) for s in shapes)} cannot be broadcast.")
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)


def _on_stream(stream, fn, *args):
    if stream is None:
        return fn(*args)
    with _stream(stream):
        return fn(*args)


def _as_matrices(a, b):
    """1-D operands as MLX treats them in matmul: ``(K,) -> (1, K)`` on the left and
    ``(K,) -> (K, 1)`` on the right; returns the flags to squeeze those axes again."""
    drop_m = a.ndim == 1
    drop_n = b.ndim == 1
    return (a.reshape((1, a.shape[0])) if drop_m else a), (b.reshape((b.shape[0], 1)) if drop_n else b), drop_m, drop_n


def _squeeze(out, drop_m, drop_n):
    if drop_n:
        out = _n.squeeze(out, -1)
    if drop_m:
        out = _n.squeeze(out, -1 if drop_n else -2)
    return out


# ---------------------------------------------------------------- gather_mm
def _default_indices(x):
    """Every batch matrix of ``x`` once, laid out as its batch shape."""
    batch = tuple(x.shape[:-2])
    return _n.arange(math.prod(batch), dtype=_n.uint32).reshape(batch)


def _gather_matrices(x, idx, batch):
    """``x``'s batch matrices at the flat indices ``idx`` (broadcast to ``batch``)."""
    rows, cols = x.shape[-2:]
    flat = x.reshape((math.prod(x.shape[:-2]), rows, cols))
    picked = _n.take(flat, _n.broadcast_to(idx, batch).reshape((-1,)), axis=0)
    return picked.reshape(batch + (rows, cols))


def _gather_mm(a, b, lhs_indices, rhs_indices):
    op = "gather_mm"
    _check_ndim(op, a, b)
    a, b, drop_m, drop_n = _as_matrices(a, b)
    _check_inner(op, a, b)
    _check_integral(op, lhs_indices, "indices")
    _check_integral(op, rhs_indices, "indices")
    lhs = _default_indices(a) if lhs_indices is None else lhs_indices
    rhs = _default_indices(b) if rhs_indices is None else rhs_indices
    batch = _broadcast(op, tuple(lhs.shape), tuple(rhs.shape))
    dt = _float_dtype(op, a, b)
    x = _gather_matrices(a.astype(dt), lhs, batch)
    y = _gather_matrices(b.astype(dt), rhs, batch)
    return _squeeze(_n.matmul(x, y), drop_m, drop_n)


def gather_mm(a, b, /, lhs_indices=None, rhs_indices=None, *, sorted_indices=False, stream=None):
    """Matrix multiplication with matrix-level gather.

    ``lhs_indices`` and ``rhs_indices`` hold flat indices into the batch dimensions (all
    but the last two) of ``a`` and ``b``; they broadcast against each other and give the
    result's batch shape. A missing one takes every batch matrix of its operand in order.
    Without indices this is :func:`matmul`. ``sorted_indices`` is a performance hint.
    """
    op = "gather_mm"
    _require_array(op, a, "a")
    _require_array(op, b, "b")
    lhs_indices = _optional_array(op, lhs_indices, "lhs_indices")
    rhs_indices = _optional_array(op, rhs_indices, "rhs_indices")
    if not isinstance(sorted_indices, bool):
        raise TypeError(f"[{op}] sorted_indices must be a bool, got {type(sorted_indices).__name__}.")
    if lhs_indices is None and rhs_indices is None:
        return _n.matmul(a, b, stream=stream)
    return _on_stream(stream, _gather_mm, a, b, lhs_indices, rhs_indices)


# ---------------------------------------------------------------- block_masked_mm
_BLOCK_SIZES = (32, 64)


def _block_size(op, block_size):
    if isinstance(block_size, float) or block_size is None:
        raise TypeError(f"[{op}] block_size must be an integer, got {type(block_size).__name__}.")
    try:
        return operator.index(block_size)
    except TypeError:
        raise TypeError(f"[{op}] block_size must be an integer, got {type(block_size).__name__}.") from None


def _expand_mask(op, mask, axes):
    """A mask of a 1-D operand gains the axes its operand gained (as MLX's expand_dims)."""
    for ax in axes:
        if mask.ndim + 1 < -ax:
            raise IndexError(f"[{op}] A {mask.ndim}-d mask cannot gain axis {ax}: the mask of a 1-D operand "
                             f"has the block shape without the operand's missing axis.")
        mask = _n.expand_dims(mask, ax)
    return mask


def _check_mask_shape(op, what, mask, want):
    ok = mask.ndim <= len(want) and all(m in (1, w) for m, w in zip(mask.shape[::-1], want[::-1]))
    if not ok:
        raise ValueError(f"[{op}] {what} with shape {_shape_str(mask.shape)} cannot be broadcast to the "
                         f"block shape {_shape_str(want)}.")


def _blocks_to_elements(mask, bs, rows, cols):
    """``mask[..., i, j]`` repeated over the ``bs x bs`` elements of block ``(i, j)``,
    cut to ``rows x cols``."""
    lead = tuple(mask.shape[:-2])
    r, c = mask.shape[-2:]
    m = _n.expand_dims(mask, (-3, -1))
    m = _n.broadcast_to(m, lead + (r, bs, c, bs)).reshape(lead + (r * bs, c * bs))
    return m[..., :rows, :cols]


def _apply_mask(x, mask, bs, dt):
    full = _blocks_to_elements(mask, bs, *x.shape[-2:])
    if mask.dtype == _n.bool_:
        return _n.where(full, x, _n.zeros((), dtype=dt))
    return x * full.astype(dt)


def _block_masked_mm(a, b, bs, mask_out, mask_lhs, mask_rhs):
    op = "block_masked_mm"
    _check_ndim(op, a, b)
    a, b, drop_m, drop_n = _as_matrices(a, b)
    _check_inner(op, a, b)
    dt = _float_dtype(op, a, b)
    batch = _broadcast(op, tuple(a.shape[:-2]), tuple(b.shape[:-2]))
    (m, k), n = a.shape[-2:], b.shape[-1]
    tm, tk, tn = -(-m // bs), -(-k // bs), -(-n // bs)
    masks = {}
    for what, mask, axes, want in (
        ("mask_out", mask_out, (-1,) * drop_n + (-2,) * drop_m, batch + (tm, tn)),
        ("mask_lhs", mask_lhs, (-2,) * drop_m, batch + (tm, tk)),
        ("mask_rhs", mask_rhs, (-1,) * drop_n, batch + (tk, tn)),
    ):
        if mask is not None:
            mask = _expand_mask(op, mask, axes)
            _check_mask_shape(op, what, mask, want)
            masks[what] = _n.broadcast_to(mask, want)
    a = a.astype(dt)
    b = b.astype(dt)
    if "mask_lhs" in masks:
        a = _apply_mask(a, masks["mask_lhs"], bs, dt)
    if "mask_rhs" in masks:
        b = _apply_mask(b, masks["mask_rhs"], bs, dt)
    out = _n.matmul(a, b)
    if "mask_out" in masks:
        out = _apply_mask(out, masks["mask_out"], bs, dt)
    return _squeeze(out, drop_m, drop_n)


def block_masked_mm(a, b, /, block_size=64, mask_out=None, mask_lhs=None, mask_rhs=None, *, stream=None):
    """Matrix multiplication with block masking.

    For ``a`` of shape ``(..., M, K)`` and ``b`` of shape ``(..., K, N)``, ``mask_lhs``,
    ``mask_rhs`` and ``mask_out`` have one entry per ``block_size x block_size`` block of
    ``a``, ``b`` and the result (shapes ``(..., ceil(M/bs), ceil(K/bs))``, ...). A bool
    mask zeroes the blocks where it is False; any other mask multiplies each block by its
    entry. ``block_size`` must be 32 or 64 when a mask is given.
    """
    op = "block_masked_mm"
    _require_array(op, a, "a")
    _require_array(op, b, "b")
    bs = _block_size(op, block_size)
    mask_out = _optional_array(op, mask_out, "mask_out")
    mask_lhs = _optional_array(op, mask_lhs, "mask_lhs")
    mask_rhs = _optional_array(op, mask_rhs, "mask_rhs")
    if mask_out is None and mask_lhs is None and mask_rhs is None:
        return _n.matmul(a, b, stream=stream)
    if bs not in _BLOCK_SIZES:
        raise ValueError(f"[{op}] Only block_sizes 32, 64 are supported. Got block size {bs}.")
    return _on_stream(stream, _block_masked_mm, a, b, bs, mask_out, mask_lhs, mask_rhs)


# ---------------------------------------------------------------- segmented_mm
def _checked_offsets(off, k):
    """``off`` unchanged, but an offset outside ``[0, k]`` makes the gather fail (IndexError
    when the result is evaluated) instead of reading outside ``a`` and ``b``."""
    off = off.astype(_n.int64)
    off = _n.where(off < 0, k + 1, off)  # negative offsets are out of range, not counted from the end
    return _n.take(_n.arange(k + 1, dtype=_n.int64), off)


def _segmented_mm(a, b, segments):
    op = "segmented_mm"
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"[{op}] Batched matmul not supported: a and b must be 2-D, got shapes "
                         f"{_shape_str(a.shape)} and {_shape_str(b.shape)}.")
    _check_integral(op, segments, "segments")
    if segments.ndim == 0 or segments.shape[-1] != 2:
        raise ValueError(f"[{op}] The segments should have shape (..., 2) but {_shape_str(segments.shape)} was provided.")
    _check_inner(op, a, b)
    dt = _float_dtype(op, a, b)
    (m, k), n = a.shape, b.shape[1]
    batch = tuple(segments.shape[:-1])
    seg = segments.reshape((-1, 2))
    start = _checked_offsets(seg[:, :1], k)
    stop = _checked_offsets(seg[:, 1:], k)
    pos = _n.arange(k, dtype=_n.int64)
    inside = (pos >= start) & (pos < stop)  # (S, K)
    zero = _n.zeros((), dtype=dt)
    x = _n.where(_n.expand_dims(inside, 1), a.astype(dt), zero)  # (S, M, K)
    y = _n.where(_n.expand_dims(inside, 2), b.astype(dt), zero)  # (S, K, N)
    return _n.matmul(x, y).reshape(batch + (m, n))


def segmented_mm(a, b, /, segments, *, stream=None):
    """Matrix multiplication with the inner dimension cut into segments.

    ``a`` is ``M x K``, ``b`` is ``K x N`` and ``segments`` holds ``[start, stop)`` offsets
    into ``K`` (shape ``(..., 2)``); the result has shape ``(..., M, N)`` with
    ``a[:, start:stop] @ b[start:stop]`` per segment (zeros for an empty segment).
    """
    op = "segmented_mm"
    _require_array(op, a, "a")
    _require_array(op, b, "b")
    _require_array(op, segments, "segments")
    return _on_stream(stream, _segmented_mm, a, b, segments)


# ---------------------------------------------------------------- hadamard_transform
def _chi5(x):
    """Quadratic character of GF(5): squares 1, 4; non-squares 2, 3."""
    return 0 if x % 5 == 0 else (1 if x % 5 in (1, 4) else -1)


def _paley12():
    """Paley's second construction for q = 5: ``C (x) B + I (x) A`` with the conference
    matrix ``C = [[0, 1^T], [1, Q]]`` (``Q`` the Jacobsthal matrix of GF(5)); the 2 x 2
    blocks ``A``, ``B`` in the order that gives MLX's (symmetric) matrix."""
    c = [[0] + [1] * 5] + [[1] + [_chi5(j - i) for j in range(5)] for i in range(5)]
    blk_a = [[1, -1], [-1, -1]]
    blk_b = [[1, 1], [1, -1]]
    h = [[0] * 12 for _ in range(12)]
    for i in range(6):
        for j in range(6):
            for r in range(2):
                for s in range(2):
                    h[2 * i + r][2 * j + s] = c[i][j] * blk_b[r][s] + (i == j) * blk_a[r][s]
    return h


def _williamson(rows):
    """The Williamson array of the symmetric circulants with first rows ``A, B, C, D``:
    ``[[A, B, C, D], [-B, A, -D, C], [-C, D, A, -B], [-D, -C, B, A]]``."""
    q = len(rows[0])
    circ = [[[r[(j - i) % q] for j in range(q)] for i in range(q)] for r in rows]
    layout = [[(0, 1), (1, 1), (2, 1), (3, 1)], [(1, -1), (0, 1), (3, -1), (2, 1)],
              [(2, -1), (3, 1), (0, 1), (1, -1)], [(3, -1), (2, -1), (1, 1), (0, 1)]]
    h = []
    for brow in layout:
        for i in range(q):
            h.append([sign * circ[blk][i][j] for blk, sign in brow for j in range(q)])
    return h


_M_MATRICES = {
    12: _paley12,
    # Williamson matrices of orders 5 and 7 (the matrices MLX uses for 20 and 28)
    20: lambda: _williamson([[1, -1, -1, -1, -1], [1, -1, -1, -1, -1], [1, 1, -1, -1, 1], [1, -1, 1, 1, -1]]),
    28: lambda: _williamson([[1, -1, -1, -1, -1, -1, -1], [1, 1, -1, -1, -1, -1, 1],
                             [1, -1, 1, -1, -1, 1, -1], [1, -1, -1, 1, 1, -1, -1]]),
}
_M_CACHE = {}


def _hadamard_m(m):
    """MLX's ``m x m`` Hadamard matrix (rows: outputs), as nested lists."""
    if m not in _M_CACHE:
        _M_CACHE[m] = _M_MATRICES[m]()
    return _M_CACHE[m]


def _split_size(n):
    """``(m, k)`` with ``n = m * 2**k`` and ``m`` in (1, 12, 20, 28), or None."""
    for m in (1, 12, 20, 28):
        q = n // m
        if q * m == n and q & (q - 1) == 0:
            return m, q.bit_length() - 1
    return None


def _sylvester(x, k):
    """``x @ H.T`` over the last axis for Sylvester's ``H`` of order ``2**k``: one
    butterfly (sum, difference) per bit of the index."""
    lead = tuple(x.shape[:-1])
    size = 1 << k
    for j in range(k):
        post = 1 << j
        y = x.reshape(lead + (size // (2 * post), 2, post))
        lo, hi = y[..., 0, :], y[..., 1, :]
        x = _n.stack([lo + hi, lo - hi], axis=-2).reshape(lead + (size,))
    return x


def _scale(op, scale, n):
    if scale is None:
        return 1.0 / math.sqrt(n)
    if isinstance(scale, (str, bytes, complex)):
        raise TypeError(f"[{op}] scale must be a float, got {type(scale).__name__}.")
    try:
        return float(scale)
    except (TypeError, ValueError):
        raise TypeError(f"[{op}] scale must be a float, got {type(scale).__name__}.") from None


def _compute_dtype(dt):
    """(compute dtype, result dtype): low-precision floats are summed in float32;
    integers and bools give float32; float32, float64 and complex64 stay."""
    if dt in (_n.float16, _n.bfloat16):
        return _n.float32, dt
    if dt in (_n.float32, _n.float64, _n.complex64):
        return dt, dt
    return _n.float32, _n.float32


def _hadamard(a, scale):
    op = "hadamard_transform"
    n = a.shape[-1] if a.ndim else 1
    mk = _split_size(n) if n else None
    if a.size == 0:
        raise ValueError(f"[{op}] Does not support empty arrays.")
    if mk is None:
        raise ValueError(f"[{op}] Only supports n = m*2^k where m in (1, 12, 20, 28), got n = {n}.")
    m, k = mk
    s = _scale(op, scale, n)
    cdt, rdt = _compute_dtype(a.dtype)
    x = a.astype(cdt)
    if a.ndim:
        lead = tuple(a.shape[:-1])
        x = _sylvester(x.reshape(lead + (m, 1 << k)), k)
        if m > 1:
            x = _n.matmul(_n.array(_hadamard_m(m), dtype=cdt), x)
        x = x.reshape(lead + (n,))
    return (x * s).astype(rdt)


def hadamard_transform(a, /, scale=None, *, stream=None):
    """Perform the Walsh-Hadamard transform along the final axis.

    Equivalent to ``(hadamard(n) @ x) * scale`` for each vector ``x`` along the last axis
    (``scipy.linalg.hadamard`` for ``n`` a power of two). Supports ``n = m * 2^k`` for
    ``m`` in ``(1, 12, 20, 28)``. ``scale`` defaults to ``1/sqrt(n)`` (orthonormal).
    Floating and complex inputs keep their dtype; integers and bools give float32.
    """
    op = "hadamard_transform"
    _require_array(op, a, "a")
    return _on_stream(stream, _hadamard, a, scale)


# ---------------------------------------------------------------- depends
class _ArgTypeError(TypeError, RuntimeError):
    """A non-array argument: a TypeError, and a RuntimeError as MLX's (``std::bad_cast``)."""


def _array_list(op, x, what):
    if isinstance(x, _n.array):
        return [x], True
    if isinstance(x, (list, tuple)):
        for v in x:
            if not isinstance(v, _n.array):
                raise _ArgTypeError(f"[{op}] {what} must be arrays, got {type(v).__name__}.")
        return list(x), False
    raise _ArgTypeError(f"[{op}] {what} must be an array or a sequence of arrays, got {type(x).__name__}.")


def _touch(d):
    """A bool scalar read from one element of ``d``: computing it evaluates ``d``."""
    corner = d[(slice(0, 1),) * d.ndim] if d.ndim else d
    return _n.all(_n.equal(corner, corner))


def depends(inputs, dependencies, /):
    """Insert dependencies between arrays in the graph.

    The outputs are identical to ``inputs`` (values, dtypes and gradients), but evaluating
    them also evaluates ``dependencies``. Returns an array for an array and a list for a
    sequence.
    """
    op = "depends"
    xs, single = _array_list(op, inputs, "inputs")
    deps, _ = _array_list(op, dependencies, "dependencies")
    if deps:
        flag = _touch(deps[0])
        for d in deps[1:]:
            flag = _n.logical_and(flag, _touch(d))
        # where(c, x, x) is x bit for bit whatever c is; its gradient goes to x only
        xs = [_n.where(flag, x, x) for x in xs]
    return xs[0] if single else xs
