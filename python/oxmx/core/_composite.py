"""Shape and matrix ops composed from core primitives (views, concatenation, gathers)."""

from oxmx import _oxmx as _n


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


def roll(a, shift, axis=None, *, stream=None):
    """Roll elements along the given axes (flattened when ``axis`` is None)."""
    a = _n.asarray(a)
    if axis is None:
        return roll(a.reshape(-1), shift, 0).reshape(a.shape)
    shifts = [shift] if isinstance(shift, int) else list(shift)
    axes = [axis] if isinstance(axis, int) else list(axis)
    if len(shifts) == 1 and len(axes) > 1:
        shifts = shifts * len(axes)
    if len(shifts) != len(axes):
        raise ValueError("[roll] shift and axis must have the same length.")
    for s, ax in zip(shifts, _axes(a, axes)):
        n = a.shape[ax]
        if n == 0:
            continue
        s = s % n
        if s == 0:
            continue
        lo = [slice(None)] * a.ndim
        hi = [slice(None)] * a.ndim
        lo[ax] = slice(n - s, None)
        hi[ax] = slice(None, n - s)
        a = _n.concatenate([a[tuple(lo)], a[tuple(hi)]], axis=ax)
    return a


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
    if isinstance(pad_width, int):
        return [(pad_width, pad_width)] * ndim
    pw = list(pad_width)
    if len(pw) == 2 and all(isinstance(x, int) for x in pw):
        return [tuple(pw)] * ndim
    if len(pw) == 1:
        p = pw[0]
        p = (p, p) if isinstance(p, int) else tuple(p)
        return [p] * ndim
    if len(pw) != ndim:
        raise ValueError("[pad] pad_width must have one (before, after) pair per axis.")
    return [(p, p) if isinstance(p, int) else tuple(p) for p in pw]


def pad(a, pad_width, mode="constant", constant_values=0, *, stream=None):
    """Pad with a constant or by repeating the edge values."""
    a = _n.asarray(a)
    if mode not in ("constant", "edge"):
        raise ValueError(f"[pad] Unsupported mode '{mode}': use 'constant' or 'edge'.")
    for ax, (before, after) in enumerate(_pad_widths(pad_width, a.ndim)):
        if before < 0 or after < 0:
            raise ValueError("[pad] Padding widths must be non-negative.")
        if before == 0 and after == 0:
            continue
        parts = []
        for width, side in ((before, 0), (after, -1)):
            if width == 0:
                parts.append(None)
                continue
            shape = list(a.shape)
            shape[ax] = width
            if mode == "constant":
                parts.append(_n.full(shape, constant_values, dtype=a.dtype))
            else:
                if a.shape[ax] == 0:
                    raise ValueError("[pad] Cannot edge-pad an empty axis.")
                idx = [slice(None)] * a.ndim
                idx[ax] = slice(0, 1) if side == 0 else slice(-1, None)
                parts.append(_n.broadcast_to(a[tuple(idx)], shape))
        seq = [p for p in (parts[0], a, parts[1]) if p is not None]
        a = _n.concatenate(seq, axis=ax)
    return a


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
        if x.ndim > 1:
            raise ValueError("[cumulative_sum] axis is required for arrays with more than one dimension.")
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
        if x.ndim > 1:
            raise ValueError("[cumulative_prod] axis is required for arrays with more than one dimension.")
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
    return _n.sum(cmp(a, _n.expand_dims(v, -1)), axis=-1).astype(_n.int64)


def unique(a, *, stream=None):
    """Sorted unique values of the flattened array (evaluates: data-dependent shape)."""
    s = _n.sort(_n.asarray(a).reshape(-1), axis=0)
    if s.size == 0:
        return s
    keep = _n.concatenate([_n.array([True]), _n.not_equal(s[1:], s[:-1])])
    return s[keep]
