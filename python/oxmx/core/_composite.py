"""Shape and matrix ops composed from core primitives (views, concatenation, gathers)."""

import operator as _operator

from oxmx import _oxmx as _n

_INT_RANGES = {
    _n.int8: (-(2**7), 2**7 - 1), _n.int16: (-(2**15), 2**15 - 1),
    _n.int32: (-(2**31), 2**31 - 1), _n.int64: (-(2**63), 2**63 - 1),
    _n.uint8: (0, 2**8 - 1), _n.uint16: (0, 2**16 - 1),
    _n.uint32: (0, 2**32 - 1),
    # MLX wraps negative Python ints into uint64 (two's complement), as full() and
    # arithmetic with a scalar do here (convert.rs check_int_fits)
    _n.uint64: (-(2**63), 2**64 - 1),
}


def _axes(a, axis):
    if axis is None:
        return list(range(a.ndim))
    if isinstance(axis, int):
        axis = [axis]
    out = []
    for ax in axis:
        if not -a.ndim <= ax < a.ndim:
            from oxmx._errors import AxisError

            raise AxisError(f"Axis {ax} is out of bounds for array with {a.ndim} dimensions.")
        out.append(ax % a.ndim)
    return out


def flip(a, axis=None, *, stream=None):
    """Reverse the order of elements along the given axes."""
    a = _n.asarray(a)
    idx = [slice(None)] * a.ndim
    for ax in _axes(a, axis):
        idx[ax] = slice(None, None, -1)
    return a[tuple(idx)]


def _int32(op, v, what):
    """``v`` as a Python int in the 32-bit range (TypeError otherwise, as MLX's binding)."""
    if isinstance(v, float) or v is None:
        raise TypeError(f"[{op}] {what} must be an integer, got {type(v).__name__}.")
    try:
        v = _operator.index(v)
    except TypeError:
        raise TypeError(f"[{op}] {what} must be an integer, got {type(v).__name__}.") from None
    if not -(2**31) <= v < 2**31:
        raise TypeError(f"[{op}] {what} {v} does not fit in a 32-bit integer.")
    return v


def _int_tuple(op, v, what):
    """An int or a sequence of ints, as a list of Python ints (scalars give one entry)."""
    if isinstance(v, (list, tuple)):
        return [_int32(op, x, what) for x in v], True
    return [_int32(op, v, what)], False


def roll(a, shift, axis=None, *, stream=None):
    """Roll elements along the given axes (flattened when ``axis`` is None).

    As MLX: with no axis, or a single axis, the shifts are summed; with a tuple of axes,
    a single int shift applies to every axis and a tuple gives one shift per axis (extra
    shifts are ignored, too few is a ValueError).
    """
    a = _n.asarray(a)
    shifts, shift_seq = _int_tuple("roll", shift, "shift")
    if axis is None or not isinstance(axis, (list, tuple)):
        total = sum(shifts)
        if not -(2**31) <= total < 2**31:
            raise OverflowError(f"[roll] The total shift {total} does not fit in a 32-bit integer.")
        if axis is None:
            return _roll_axis(a.reshape(-1), total, 0).reshape(a.shape)
        axes = [_roll_check_axis(a, _int32("roll", axis, "axis"))]
        shifts = [total]
    else:
        axes = [_roll_check_axis(a, _int32("roll", ax, "axis")) for ax in axis]
        if shift_seq:
            if len(shifts) < len(axes):
                raise ValueError(
                    f"[roll] At least one shift value per axis is required, {len(shifts)} provided for {len(axes)} axes."
                )
        else:
            shifts = shifts * len(axes)
    for s, ax in zip(shifts, axes):
        a = _roll_axis(a, s, ax)
    return a


def _roll_check_axis(a, ax):
    if not -a.ndim <= ax < a.ndim:
        from oxmx._errors import AxisError

        raise AxisError(f"[roll] Invalid axis {ax} for array with {a.ndim} dimensions.")
    return ax % a.ndim


def _roll_axis(a, s, ax):
    n = a.shape[ax]
    if n == 0:
        return a
    s = s % n
    if s == 0:
        return a
    lo = [slice(None)] * a.ndim
    hi = [slice(None)] * a.ndim
    lo[ax] = slice(n - s, None)
    hi[ax] = slice(None, n - s)
    return _n.concatenate([a[tuple(lo)], a[tuple(hi)]], axis=ax)


def repeat(a, repeats, axis=None, *, stream=None):
    """Repeat each element ``repeats`` times along ``axis`` (flattened when None)."""
    a = _n.asarray(a)
    if not isinstance(repeats, int):
        raise TypeError("[repeat] repeats must be an int.")
    if repeats < 0:
        raise ValueError("[repeat] repeats must be non-negative.")
    if axis is None:
        a = a.reshape(-1)
        axis = 0
    (ax,) = _axes(a, axis)
    b = _n.expand_dims(a, ax + 1)
    shape = list(b.shape)
    shape[ax + 1] = repeats
    b = _n.broadcast_to(b, shape)
    out = list(a.shape)
    out[ax] = a.shape[ax] * repeats
    return b.reshape(out)


def tile(a, reps, *, stream=None):
    """Construct an array by repeating ``a`` ``reps`` times (NumPy semantics)."""
    a = _n.asarray(a)
    reps = [reps] if isinstance(reps, int) else list(reps)
    nd = max(a.ndim, len(reps))
    reps = [1] * (nd - len(reps)) + reps
    shape = [1] * (nd - a.ndim) + list(a.shape)
    a = a.reshape(shape)
    inter = []
    for d in shape:
        inter += [1, d]
    b = a.reshape(inter)
    target = []
    for r, d in zip(reps, shape):
        target += [r, d]
    b = _n.broadcast_to(b, target)
    return b.reshape([r * d for r, d in zip(reps, shape)])


def _pad_widths(pad_width, ndim):
    """MLX's pad_width forms: int, (int,), (before, after), or one pair per axis."""
    if not isinstance(pad_width, (list, tuple)):
        if isinstance(pad_width, (str, bytes, float)) or pad_width is None:
            raise TypeError(f"[pad] pad_width must be an int or a sequence of ints, got {type(pad_width).__name__}.")
        p = _int32("pad", pad_width, "pad_width")
        return [(p, p)] * ndim
    pw = list(pad_width)
    if len(pw) in (1, 2) and all(not isinstance(x, (list, tuple)) for x in pw):
        vals = [_int32("pad", x, "pad_width") for x in pw]
        pair = (vals[0], vals[0]) if len(vals) == 1 else tuple(vals)
        return [pair] * ndim
    pairs = []
    for p in pw:
        if not isinstance(p, (list, tuple)) or len(p) != 2:
            raise TypeError("[pad] pad_width must be an int, (int,), (int, int) or a list of (before, after) pairs.")
        pairs.append((_int32("pad", p[0], "pad_width"), _int32("pad", p[1], "pad_width")))
    if len(pairs) == 1:
        return pairs * ndim
    if len(pairs) != ndim:
        raise ValueError(f"[pad] Invalid number of padding sizes ({len(pairs)}) for an array with {ndim} dimensions.")
    return pairs


def _pad_constant(a, constant_values):
    """The fill value as a 0-d array of ``a``'s dtype (MLX uses an array's first element)."""
    if constant_values is None:
        raise TypeError("[pad] constant_values must be a scalar or an array, got NoneType.")
    if isinstance(constant_values, (list, tuple)):
        raise ValueError(f"[pad] Invalid type {type(constant_values).__name__} received for constant_values.")
    if isinstance(constant_values, int) and not isinstance(constant_values, bool) and a.dtype in _INT_RANGES:
        lo, hi = _INT_RANGES[a.dtype]
        if not lo <= constant_values <= hi:
            raise ValueError(f"[pad] Converting {constant_values} to {a.dtype.name} would result in overflow.")
    if isinstance(constant_values, (bool, int, float, complex)):
        return _n.array(constant_values).astype(a.dtype)
    c = _n.asarray(constant_values)
    if c.size == 0:
        return _n.zeros((), dtype=a.dtype)
    return c.reshape(-1)[0].astype(a.dtype)


def pad(a, pad_width, mode="constant", constant_values=0, *, stream=None):
    """Pad with a constant, the edge values, or a reflection (``reflect``/``symmetric``)."""
    a = _n.asarray(a)
    if not isinstance(mode, str):
        raise TypeError(f"[pad] mode must be a string, got {type(mode).__name__}.")
    if mode not in ("constant", "edge", "reflect", "symmetric"):
        raise ValueError(
            f"[pad] Invalid padding mode '{mode}': use 'constant', 'edge', 'reflect' or 'symmetric'."
        )
    widths = _pad_widths(pad_width, a.ndim)
    for ax, (before, after) in enumerate(widths):
        if before < 0 or after < 0:
            side, w = ("low", before) if before < 0 else ("high", after)
            raise ValueError(f"[pad] Invalid {side} padding size ({w}) for axis {ax}: padding sizes must be non-negative.")
    fill = _pad_constant(a, constant_values) if mode == "constant" else None
    for ax, (before, after) in enumerate(widths):
        if before == 0 and after == 0:
            continue
        n = a.shape[ax]
        if mode in ("reflect", "symmetric"):
            if n == 0:
                raise ValueError(f"[pad] Cannot pad empty axis {ax} using mode '{mode}'.")
            a = _n.take(a, _reflect_indices(n, before, after, mode == "symmetric"), axis=ax)
            continue
        parts = []
        for width, side in ((before, 0), (after, -1)):
            if width == 0:
                continue
            shape = list(a.shape)
            shape[ax] = width
            if mode == "constant" or n == 0:
                # MLX edge-pads an empty axis with zeros.
                v = fill if mode == "constant" else _n.zeros((), dtype=a.dtype)
                parts.append((side, _n.broadcast_to(v, shape)))
            else:
                idx = [slice(None)] * a.ndim
                idx[ax] = slice(0, 1) if side == 0 else slice(-1, None)
                parts.append((side, _n.broadcast_to(a[tuple(idx)], shape)))
        seq = [p for sd, p in parts if sd == 0] + [a] + [p for sd, p in parts if sd == -1]
        a = _n.concatenate(seq, axis=ax)
    return a


def _reflect_indices(n, before, after, symmetric):
    """Source positions along an axis of length ``n`` for reflect/symmetric padding.

    Positions repeat with period ``2n`` (symmetric, the edge repeated) or ``2(n - 1)``
    (reflect, the edge not repeated), as NumPy and MLX.
    """
    j = _n.arange(-before, n + after, dtype=_n.int32)
    if symmetric:
        period = 2 * n
        k = _n.remainder(j, period)
        return _n.where(k < n, k, period - 1 - k)
    if n == 1:
        return _n.zeros(j.shape, dtype=_n.int32)
    period = 2 * (n - 1)
    k = _n.remainder(j, period)
    return _n.where(k < n, k, period - k)


def diagonal(a, offset=0, axis1=0, axis2=1, *, stream=None):
    """The diagonal of the 2-D slices over ``axis1``/``axis2`` (placed last)."""
    a = _n.asarray(a)
    if a.ndim < 2:
        raise ValueError("[diagonal] Array must have at least 2 dimensions.")
    x1, x2 = _axes(a, [axis1, axis2])
    if x1 == x2:
        raise ValueError("[diagonal] axis1 and axis2 cannot be the same axis.")
    rest = [i for i in range(a.ndim) if i not in (x1, x2)]
    b = _n.transpose(a, rest + [x1, x2])
    n, m = b.shape[-2], b.shape[-1]
    if offset >= 0:
        length = max(0, min(n, m - offset))
        rows = _n.arange(0, length, dtype=_n.int64)
        cols = rows + offset
    else:
        length = max(0, min(n + offset, m))
        cols = _n.arange(0, length, dtype=_n.int64)
        rows = cols - offset
    if length == 0:
        return _n.zeros(tuple(b.shape[:-2]) + (0,), dtype=a.dtype)
    return b[..., rows, cols]


def diag(a, k=0, *, stream=None):
    """Extract a diagonal (2-D input) or build a diagonal matrix (1-D input)."""
    a = _n.asarray(a)
    if a.ndim == 2:
        return diagonal(a, k, 0, 1)
    if a.ndim != 1:
        raise ValueError("[diag] Input must be 1-D or 2-D.")
    n = a.shape[0]
    m = n + abs(k)
    mask = _n.eye(m, k=k, dtype=_n.bool_)
    if k >= 0:
        v = pad(a, (0, k))
        return _n.where(mask, v[:, None], _n.zeros((), dtype=a.dtype))
    v = pad(a, (-k, 0))
    return _n.where(mask, v[:, None], _n.zeros((), dtype=a.dtype))


def diff(a, n=1, axis=-1, prepend=None, append=None, *, stream=None):
    """n-th discrete difference along ``axis``."""
    a = _n.asarray(a)
    if n < 0:
        raise ValueError("[diff] order must be non-negative.")
    (ax,) = _axes(a, axis)
    if prepend is not None or append is not None:
        parts = []
        for extra in (prepend,):
            if extra is not None:
                e = _n.asarray(extra, dtype=a.dtype)
                if e.ndim == 0:
                    s = list(a.shape)
                    s[ax] = 1
                    e = _n.broadcast_to(e, s)
                parts.append(e)
        parts.append(a)
        if append is not None:
            e = _n.asarray(append, dtype=a.dtype)
            if e.ndim == 0:
                s = list(a.shape)
                s[ax] = 1
                e = _n.broadcast_to(e, s)
            parts.append(e)
        a = _n.concatenate(parts, axis=ax)
    for _ in range(n):
        hi = [slice(None)] * a.ndim
        lo = [slice(None)] * a.ndim
        hi[ax] = slice(1, None)
        lo[ax] = slice(None, -1)
        if a.dtype == _n.bool_:
            a = _n.not_equal(a[tuple(hi)], a[tuple(lo)])
        else:
            a = a[tuple(hi)] - a[tuple(lo)]
    return a


def matrix_transpose(a, *, stream=None):
    return _n.swapaxes(_n.asarray(a), -1, -2)


def trace(a, offset=0, axis1=0, axis2=1, dtype=None, *, stream=None):
    d = diagonal(a, offset, axis1, axis2)
    if dtype is not None:
        d = d.astype(dtype)
    return _n.sum(d, axis=-1)


def kron(a, b, *, stream=None):
    """Kronecker product."""
    a = _n.asarray(a)
    b = _n.asarray(b)
    nd = max(a.ndim, b.ndim)
    a = a.reshape([1] * (nd - a.ndim) + list(a.shape))
    b = b.reshape([1] * (nd - b.ndim) + list(b.shape))
    ai = []
    bi = []
    for da, db in zip(a.shape, b.shape):
        ai += [da, 1]
        bi += [1, db]
    out = a.reshape(ai) * b.reshape(bi)
    return out.reshape([da * db for da, db in zip(a.shape, b.shape)])


def cumulative_sum(x, /, *, axis=None, dtype=None, include_initial=False, stream=None):
    """Array API cumulative sum (``include_initial`` prepends the zero)."""
    x = _n.asarray(x)
    if dtype is not None:
        x = x.astype(dtype)
    if axis is None:
        # MLX (an alias of cumsum/cumprod): axis=None scans the flattened array
        x = x.reshape(-1)
        axis = 0
    r = _n.cumsum(x, axis=axis)
    if include_initial:
        r = pad(r, [(1, 0) if i == axis % r.ndim else (0, 0) for i in range(r.ndim)])
    return r


def cumulative_prod(x, /, *, axis=None, dtype=None, include_initial=False, stream=None):
    """Array API cumulative product (``include_initial`` prepends the one)."""
    x = _n.asarray(x)
    if dtype is not None:
        x = x.astype(dtype)
    if axis is None:
        # MLX (an alias of cumsum/cumprod): axis=None scans the flattened array
        x = x.reshape(-1)
        axis = 0
    r = _n.cumprod(x, axis=axis)
    if include_initial:
        r = pad(r, [(1, 0) if i == axis % r.ndim else (0, 0) for i in range(r.ndim)], constant_values=1)
    return r


def round(a, /, decimals=0, *, stream=None):  # noqa: A001 - MLX's name
    """Round half to even to ``decimals``; complex inputs round both parts."""
    a = _n.asarray(a) if not isinstance(a, (int, float)) else _n.array(a)
    if a.dtype == _n.complex64:
        re = _n.round(_n.real(a), decimals)
        im = _n.round(_n.imag(a), decimals)
        return re.astype(_n.complex64) + im.astype(_n.complex64) * 1j
    return _n.round(a, decimals, stream=stream)


def minmax(a, /, axis=None, keepdims=False, *, stream=None):
    """The minimum and the maximum over the given axes, as a tuple."""
    return (_n.min(a, axis=axis, keepdims=keepdims, stream=stream), _n.max(a, axis=axis, keepdims=keepdims, stream=stream))


def searchsorted(a, v, side="left", *, stream=None):
    """Insertion indices of ``v`` into the sorted 1-D array ``a`` (NumPy semantics)."""
    a = _n.asarray(a)
    v = _n.asarray(v) if not isinstance(v, (int, float, bool)) else _n.array(v)
    if a.ndim != 1:
        raise ValueError("[searchsorted] a must be 1-D.")
    if side not in ("left", "right"):
        raise ValueError("[searchsorted] side must be 'left' or 'right'.")
    cmp = _n.less if side == "left" else _n.less_equal
    return _n.sum(cmp(a, _n.expand_dims(v, -1)), axis=-1).astype(_n.uint32)


def unique(a, /, size, return_index=False, return_inverse=False, return_counts=False, fill_value=None, *, stream=None):
    """The sorted unique values of the flattened array in a result of static length
    ``size`` (MLX's signature): missing entries are ``fill_value`` (default: the smallest
    value), extra unique values are dropped. Optionally the index of each value's first
    occurrence (uint32), the inverse map (uint32) and the counts (int32). Lazy: no
    evaluation, the shape does not depend on the data."""
    if isinstance(size, bool) or not isinstance(size, int):
        raise TypeError("[unique] size must be an int.")
    if size < 0:
        raise ValueError("[unique] size must be non-negative.")
    flat = _n.asarray(a).reshape(-1)
    n = flat.size
    if n == 0 and size > 0 and fill_value is None:
        raise ValueError("[unique] A fill value is required for an empty input with a non-zero size.")
    order = _n.argsort(flat, axis=0, stream=stream)
    s = _n.take(flat, order, axis=0)
    if n:
        first = _n.concatenate([_n.array([True]), _n.not_equal(s[1:], s[:-1])])
    else:
        first = _n.zeros((0,), dtype=_n.bool_)
    group = _n.cumsum(first.astype(_n.int32), axis=0) - 1
    # a group's slot, or the spare slot ``size`` for repeats and groups past the end
    slot = _n.where(_n.logical_and(first, group < size), group, size)
    if n == 0:
        fill = _n.zeros((1,), dtype=flat.dtype) if fill_value is None else _n.array(fill_value, dtype=flat.dtype)
    else:
        fill = s[:1] if fill_value is None else _n.array(fill_value, dtype=flat.dtype)
    values = _n.broadcast_to(fill, (size + 1,))
    values = _put(values, slot, s)[:size]
    out = [values]
    if return_index:
        idx0 = _n.broadcast_to(order[:1], (size + 1,)).astype(_n.uint32) if n else _n.zeros((size + 1,), _n.uint32)
        out.append(_put(idx0, slot, order.astype(_n.uint32))[:size])
    if return_inverse:
        inv = _n.zeros((n,), dtype=_n.uint32)
        out.append(_put(inv, order, group.astype(_n.uint32)).reshape(_n.asarray(a).shape))
    if return_counts:
        gslot = _n.where(group < size, group, size)
        counts = _n.zeros((size + 1,), dtype=_n.int32).at[gslot].add(1)
        out.append(counts[:size])
    return values if len(out) == 1 else tuple(out)


def _put(target, idx, vals):
    """``target`` with ``target[idx] = vals`` (a copy; repeated indices hold equal values)."""
    t = _n.array(target)
    if idx.size:
        t[idx] = vals
    return t
