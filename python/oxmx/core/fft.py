"""oxmx.core.fft — discrete Fourier transforms (MLX's ``mlx.core.fft``).

Every transform is built from one native primitive, ``_fft_axis``: an unnormalised DFT of
length ``n`` along one axis (complex, real-to-half-spectrum or half-spectrum-to-real),
multiplied by a scale. Multi-axis transforms are one call per axis; ``n``/``s`` padding
and truncation are ordinary slices and pads, so their derivatives come from those ops.

The primitive is wrapped in a ``custom_function`` whose rules are transforms again:

* jvp: the transform is linear, so the tangent goes through the same transform;
* vjp: MLX's convention for complex cotangents (``dL/dRe + i dL/dIm``), under which the
  vjp of a linear map is its Hermitian adjoint. The adjoint of an unnormalised DFT is the
  unnormalised transform with the opposite sign; for the real transforms the half
  spectrum stands for two conjugate bins, hence the halving/doubling of every bin but
  DC and Nyquist;
* vmap: the primitive (always on the last axis) already runs over every other axis; a
  batch axis that is the last one is moved to the front.

Results are complex64 (float32 for the inverse real transforms) whatever the input type,
as in MLX.
"""

import contextlib as _contextlib
import math as _math
import operator as _operator

from oxmx import _oxmx as _native
from oxmx._oxmx import array as _array
from oxmx._errors import AxisError as _AxisError
import oxmx.core as _mx
from ._transforms import custom_function as _custom_function

__all__ = [
    "fft", "ifft", "fft2", "ifft2", "fftn", "ifftn", "rfft", "irfft", "rfft2", "irfft2",
    "rfftn", "irfftn", "fftfreq", "rfftfreq", "fftshift", "ifftshift", "stft", "istft",
]

_NORMS = ("backward", "ortho", "forward")
# istft divides by the overlap-added squared window, clamped below at this value (as MLX)
_ENVELOPE_FLOOR = 1e-8


# ------------------------------------------------------------------ the differentiable primitive
def _transform(x, axis, inverse, real, n, scale, stream=None):
    """``scale`` times the unnormalised DFT of length ``n`` along ``axis`` (>= 0) of ``x``
    (complex64; float32 for a forward real transform), differentiable and batchable."""
    last = x.ndim - 1
    if axis == last:
        return _last_axis(x, inverse, real, n, scale, stream)
    # the primitive's own graph must be the bare transform node (the engine differentiates
    # a custom_function's output, not views of its body), so axes move out here
    y = _last_axis(_mx.moveaxis(x, axis, last), inverse, real, n, scale, stream)
    return _mx.moveaxis(y, last, axis)


def _last_axis(x, inverse, real, n, scale, stream):
    """The transform along the last axis of ``x`` as a ``custom_function``."""
    cf = _custom_function(lambda a: _native._fft_axis(a, a.ndim - 1, inverse, real, n, scale, stream=stream))

    def rule_vjp(primals, cotangent, output):
        return (_adjoint(cotangent, inverse, real, n, scale, stream),)

    def rule_jvp(primals, tangents):
        return _last_axis(_in_type(tangents[0], inverse, real), inverse, real, n, scale, stream)

    def rule_vmap(primals, axes):
        a, b = primals[0], axes[0]
        if b is not None and b == a.ndim - 1:
            a, b = _mx.moveaxis(a, b, 0), 0
        return _last_axis(a, inverse, real, n, scale, stream), b

    cf.vjp(rule_vjp)
    cf.jvp(rule_jvp)
    cf.vmap(rule_vmap)
    return cf(x)


def _in_type(x, inverse, real):
    """``x`` as the primitive's input type (float32 for a forward real transform)."""
    want = _mx.float32 if (real and not inverse) else _mx.complex64
    return x if x.dtype == want else x.astype(want)


def _bin_weights(n, mid):
    """Weights of the ``n // 2 + 1`` half-spectrum bins: 1 for DC (and Nyquist for even
    ``n``), ``mid`` for the bins that stand for a pair of conjugate bins."""
    m = n // 2 + 1
    w = [1.0] + [mid] * (m - 1)
    if n % 2 == 0 and m > 1:
        w[-1] = 1.0
    return _mx.array(w, dtype=_mx.float32)


def _adjoint(ct, inverse, real, n, scale, stream):
    """The Hermitian adjoint of the last-axis primitive applied to the cotangent ``ct``."""
    if not real:
        return _last_axis(_in_type(ct, False, False), not inverse, False, n, scale, stream)
    if not inverse:
        # rfft: g_j = scale * Re(sum_k ct_k e^{+2 pi i jk/n}); the unnormalised inverse
        # real transform counts every inner bin twice, so those are halved first
        c = _in_type(ct, True, True) * _bin_weights(n, 0.5)
        return _last_axis(c, True, True, n, scale, stream)
    # irfft: each inner bin appears twice in the real signal, so its gradient doubles
    g = _last_axis(_in_type(ct, False, True), False, True, n, scale, stream)
    return g * _bin_weights(n, 2.0)


# ------------------------------------------------------------------ argument checks
def _on(stream):
    """A context running the ops created in it on ``stream`` (when one is given)."""
    return _contextlib.nullcontext() if stream is None else _mx.stream(stream)


def _check_array(op, name, a):
    if not isinstance(a, _array):
        raise TypeError(f"[{op}] {name} must be an array, got {type(a).__name__}.")


def _integer(op, name, v):
    """An integer argument (bool and NumPy integers included, as MLX accepts them)."""
    try:
        return _operator.index(v)
    except TypeError:
        raise TypeError(f"[{op}] {name} must be an integer, got {type(v).__name__}.") from None


def _norm_type(op, norm):
    if not isinstance(norm, str):
        raise TypeError(f"[{op}] norm must be a string, got {type(norm).__name__}.")


def _check_norm(op, norm):
    _norm_type(op, norm)
    if norm not in _NORMS:
        raise ValueError(f"[{op}] Invalid norm. Expected one of {{'backward', 'ortho', 'forward'}}, got '{norm}'.")


def _check_bool(op, name, v):
    if not isinstance(v, bool):
        raise TypeError(f"[{op}] {name} must be a bool, got {type(v).__name__}.")


def _axis(op, axis, ndim):
    axis = _integer(op, "axis", axis)
    if not -ndim <= axis < ndim:
        raise _AxisError(f"[{op}] Invalid axis {axis} for array with {ndim} dimensions.")
    return axis % ndim


def _int_sequence(op, name, v):
    if isinstance(v, (str, bytes)) or not hasattr(v, "__iter__"):
        raise TypeError(f"[{op}] {name} must be a sequence of integers, got {type(v).__name__}.")
    return [_integer(op, name, i) for i in v]


def _size(op, n):
    if n <= 0:
        raise ValueError(f"[{op}] Invalid FFT output size requested ({n}).")
    return n


def _scale(norm, n, inverse):
    if norm == "ortho":
        return 1.0 / _math.sqrt(n)
    return 1.0 / n if (norm == "forward") != inverse else 1.0


def _resize(x, axis, n):
    """``x`` truncated or zero-padded to length ``n`` along ``axis``."""
    have = x.shape[axis]
    if have == n:
        return x
    if have > n:
        idx = [slice(None)] * x.ndim
        idx[axis] = slice(0, n)
        return x[tuple(idx)]
    widths = [(0, 0)] * x.ndim
    widths[axis] = (0, n - have)
    return _mx.pad(x, widths)


# ------------------------------------------------------------------ the n-dimensional driver
def _plan(op, a, s, axes, real, inverse, norm):
    """The axes (normalised) and their transform sizes. Sizes ``s`` need explicit
    ``axes``, as in MLX (NumPy 2 deprecates guessing them). Wrong argument types are
    TypeErrors before any value is looked at (MLX's binding refuses them first)."""
    _check_array(op, "a", a)
    s = None if s is None else _int_sequence(op, "s", s)
    axes = None if axes is None else _int_sequence(op, "axes", axes)
    _norm_type(op, norm)
    if a.ndim == 0:
        raise _AxisError(f"[{op}] Requires array with at least one dimension.")
    if axes is None:
        if s is not None:
            raise ValueError(f"[{op}] `axes` should not be `None` if `s` is not `None`.")
        axes = list(range(a.ndim))
    if s is not None and len(s) != len(axes):
        raise ValueError(f"[{op}] Shape and axes have different sizes ({len(s)} and {len(axes)}).")
    norm_axes = [_axis(op, ax, a.ndim) for ax in axes]
    if len(set(norm_axes)) != len(norm_axes):
        raise ValueError(f"[{op}] Duplicated axis received {tuple(axes)}.")
    if s is None:
        s = [a.shape[ax] for ax in norm_axes]
        if real and inverse and s:
            s[-1] = 2 * (s[-1] - 1)
    return norm_axes, [_size(op, n) for n in s]


def _fftn_impl(op, a, s, axes, norm, inverse, real, stream):
    axes, sizes = _plan(op, a, s, axes, real, inverse, norm)
    _check_norm(op, norm)
    if not axes:
        return a  # no axis to transform: MLX (and NumPy's fftn) return the input
    x = a
    if real and not inverse:
        x = _in_type(x, False, True)
        ax, n = axes[-1], sizes[-1]
        x = _transform(_resize(x, ax, n), ax, False, True, n, _scale(norm, n, False), stream)
        axes, sizes = axes[:-1], sizes[:-1]
    x = _in_type(x, inverse, False)
    complex_axes = axes[:-1] if (real and inverse) else axes
    for ax, n in zip(complex_axes, sizes):
        x = _transform(_resize(x, ax, n), ax, inverse, False, n, _scale(norm, n, inverse), stream)
    if real and inverse:
        ax, n = axes[-1], sizes[-1]
        x = _transform(_resize(x, ax, n // 2 + 1), ax, True, True, n, _scale(norm, n, True), stream)
    return x


def _one_axis(op, a, n, axis, norm, inverse, real, stream):
    s = None if n is None else [_integer(op, "n", n)]
    return _fftn_impl(op, a, s, [_integer(op, "axis", axis)], norm, inverse, real, stream)


# ------------------------------------------------------------------ public transforms
def fft(a, n=None, axis=-1, norm="backward", stream=None):
    """One dimensional discrete Fourier Transform along ``axis``, of size ``n`` (the input
    is truncated or zero-padded to it; default ``a.shape[axis]``)."""
    with _on(stream):
        return _one_axis("fft", a, n, axis, norm, False, False, stream)


def ifft(a, n=None, axis=-1, norm="backward", stream=None):
    """One dimensional inverse discrete Fourier Transform along ``axis``."""
    with _on(stream):
        return _one_axis("ifft", a, n, axis, norm, True, False, stream)


def rfft(a, n=None, axis=-1, norm="backward", stream=None):
    """Discrete Fourier Transform of a real input (complex input is cast to real): the
    ``n // 2 + 1`` non-negative frequencies along ``axis``."""
    with _on(stream):
        return _one_axis("rfft", a, n, axis, norm, False, True, stream)


def irfft(a, n=None, axis=-1, norm="backward", stream=None):
    """The inverse of :func:`rfft`: a real signal of length ``n`` (default
    ``2 * (a.shape[axis] - 1)``) from its ``n // 2 + 1`` non-negative frequencies."""
    with _on(stream):
        return _one_axis("irfft", a, n, axis, norm, True, True, stream)


def fft2(a, s=None, axes=(-2, -1), norm="backward", stream=None):
    """Two dimensional discrete Fourier Transform (over ``axes``, default the last two)."""
    with _on(stream):
        return _fftn_impl("fft2", a, s, axes, norm, False, False, stream)


def ifft2(a, s=None, axes=(-2, -1), norm="backward", stream=None):
    """Two dimensional inverse discrete Fourier Transform."""
    with _on(stream):
        return _fftn_impl("ifft2", a, s, axes, norm, True, False, stream)


def rfft2(a, s=None, axes=(-2, -1), norm="backward", stream=None):
    """Two dimensional real discrete Fourier Transform (the last of ``axes`` is halved)."""
    with _on(stream):
        return _fftn_impl("rfft2", a, s, axes, norm, False, True, stream)


def irfft2(a, s=None, axes=(-2, -1), norm="backward", stream=None):
    """The inverse of :func:`rfft2`."""
    with _on(stream):
        return _fftn_impl("irfft2", a, s, axes, norm, True, True, stream)


def fftn(a, s=None, axes=None, norm="backward", stream=None):
    """n-dimensional discrete Fourier Transform over ``axes`` (default all axes; sizes
    ``s`` need explicit ``axes``), of sizes ``s``."""
    with _on(stream):
        return _fftn_impl("fftn", a, s, axes, norm, False, False, stream)


def ifftn(a, s=None, axes=None, norm="backward", stream=None):
    """n-dimensional inverse discrete Fourier Transform."""
    with _on(stream):
        return _fftn_impl("ifftn", a, s, axes, norm, True, False, stream)


def rfftn(a, s=None, axes=None, norm="backward", stream=None):
    """n-dimensional real discrete Fourier Transform: the real transform on the last of
    ``axes`` (size ``s[-1] // 2 + 1``), then complex transforms on the others."""
    with _on(stream):
        return _fftn_impl("rfftn", a, s, axes, norm, False, True, stream)


def irfftn(a, s=None, axes=None, norm="backward", stream=None):
    """The inverse of :func:`rfftn` (the last of ``axes`` is the real axis, of size
    ``s[-1]``, default ``2 * (a.shape[axes[-1]] - 1)``)."""
    with _on(stream):
        return _fftn_impl("irfftn", a, s, axes, norm, True, True, stream)


# ------------------------------------------------------------------ frequencies and shifts
def _freq_args(op, n, d):
    n = _integer(op, "n", n)
    if isinstance(d, (str, bytes)):
        raise TypeError(f"[{op}] d must be a number, got {type(d).__name__}.")
    try:
        d = float(d)
    except (TypeError, ValueError):
        raise TypeError(f"[{op}] d must be a number, got {type(d).__name__}.") from None
    if n <= 0:
        raise ValueError(f"[{op}] `n` must be greater than 0.")
    if d == 0:
        raise ValueError(f"[{op}] `d` must be non-zero.")
    # the step in double precision, rounded once to float32 by the product (as MLX)
    return n, 1.0 / (n * d)


def fftfreq(n, d=1.0, stream=None):
    """The sample frequencies of a length-``n`` DFT with sample spacing ``d`` (float32):
    ``[0, 1, ..., (n - 1) // 2, -(n // 2), ..., -1] / (n * d)``."""
    n, step = _freq_args("fftfreq", n, d)
    with _on(stream):
        i = _mx.arange(n, dtype=_mx.int32)
        return _mx.where(i > (n - 1) // 2, i - n, i).astype(_mx.float32) * step


def rfftfreq(n, d=1.0, stream=None):
    """The sample frequencies of :func:`rfft`: ``[0, 1, ..., n // 2] / (n * d)`` (float32)."""
    n, step = _freq_args("rfftfreq", n, d)
    with _on(stream):
        return _mx.arange(n // 2 + 1, dtype=_mx.int32).astype(_mx.float32) * step


def _shift(op, a, axes, sign):
    _check_array(op, "a", a)
    if axes is None:
        axes = list(range(a.ndim))
    elif isinstance(axes, bool) or not hasattr(axes, "__iter__"):
        axes = [_integer(op, "axes", axes)]
    else:
        axes = _int_sequence(op, "axes", axes)
    axes = [_axis(op, ax, a.ndim) for ax in axes]
    if not axes:
        return a
    shifts = [sign * (a.shape[ax] // 2) for ax in axes]
    return _mx.roll(a, tuple(shifts), axis=tuple(axes))


def fftshift(a, axes=None, stream=None):
    """Shift the zero-frequency component to the center of the spectrum along ``axes``
    (an int, a sequence, or None for all axes)."""
    with _on(stream):
        return _shift("fftshift", a, axes, 1)


def ifftshift(a, axes=None, stream=None):
    """The inverse of :func:`fftshift` (they differ for odd lengths)."""
    with _on(stream):
        return _shift("ifftshift", a, axes, -1)


# ------------------------------------------------------------------ short-time transforms
def _optional_int(op, name, v):
    return None if v is None else _integer(op, name, v)


def _frame_types(op, n_fft, hop_length, win_length, window, center, norm, onesided):
    """Type checks of the arguments stft and istft share (TypeErrors come before any
    value check, as MLX's binding refuses wrong types first)."""
    n_fft = _optional_int(op, "n_fft", n_fft)
    hop = _optional_int(op, "hop_length", hop_length)
    wl = _optional_int(op, "win_length", win_length)
    if window is not None:
        _check_array(op, "window", window)
    _check_bool(op, "center", center)
    _norm_type(op, norm)
    if onesided is not None:
        _check_bool(op, "onesided", onesided)
    return n_fft, hop, wl


def _frame_values(op, n_fft, hop, wl, window, norm):
    """Checked ``(hop_length, window of length n_fft)``. A given window is used at its
    own length (``win_length`` is then ignored, as in MLX); either is centered in
    ``n_fft`` samples with zeros."""
    if n_fft <= 0:
        raise ValueError(f"[{op}] n_fft must be positive.")
    hop = n_fft // 4 if hop is None else hop
    if hop <= 0:
        raise ValueError(f"[{op}] hop_length must be positive.")
    wl = n_fft if wl is None else wl
    if window is None:
        if wl < 0:
            raise ValueError(f"[{op}] win_length must not be negative, got {wl}.")
        if wl > n_fft:
            raise ValueError(f"[{op}] window length must not exceed n_fft.")
        window = _mx.ones((wl,), dtype=_mx.float32)
    else:
        if window.ndim != 1:
            raise ValueError(f"[{op}] window must be a one-dimensional array.")
        if window.shape[0] > n_fft:
            raise ValueError(f"[{op}] window length must not exceed n_fft.")
    _check_norm(op, norm)
    left = (n_fft - window.shape[0]) // 2
    if window.shape[0] != n_fft:
        window = _mx.pad(window, [(left, n_fft - window.shape[0] - left)])
    return hop, window


def stft(x, n_fft=2048, hop_length=None, win_length=None, window=None, center=True, pad_mode="reflect",
         norm="backward", onesided=None, stream=None):
    """Short-Time Fourier Transform of the last axis of ``x``: frames of ``n_fft``
    samples every ``hop_length``, multiplied by ``window`` and transformed. Returns
    complex64 of shape ``(..., n_freq, n_frames)``."""
    with _on(stream):
        return _stft(x, n_fft, hop_length, win_length, window, center, pad_mode, norm, onesided)


def _stft(x, n_fft, hop_length, win_length, window, center, pad_mode, norm, onesided):
    op = "stft"
    _check_array(op, "x", x)
    if n_fft is None:
        raise TypeError(f"[{op}] n_fft must be an integer, got NoneType.")
    n_fft, hop, wl = _frame_types(op, n_fft, hop_length, win_length, window, center, norm, onesided)
    if not isinstance(pad_mode, str):
        raise TypeError(f"[{op}] pad_mode must be a string, got {type(pad_mode).__name__}.")
    if x.ndim == 0:
        raise ValueError(f"[{op}] Input must have at least one dimension.")
    hop, window = _frame_values(op, n_fft, hop, wl, window, norm)
    if onesided is None:
        onesided = x.dtype != _mx.complex64
    if x.shape[-1] == 0:
        raise ValueError(f"[{op}] Input signal is empty.")
    if center:
        if pad_mode not in ("reflect", "constant", "edge"):
            raise ValueError(f"[{op}] Invalid pad_mode '{pad_mode}': use 'reflect', 'constant' or 'edge'.")
        widths = [(0, 0)] * (x.ndim - 1) + [(n_fft // 2, n_fft // 2)]
        x = _mx.pad(x, widths, mode=pad_mode)
    length = x.shape[-1]
    if length < n_fft:
        raise ValueError(f"[{op}] Input is too short for the given n_fft.")
    n_frames = 1 + (length - n_fft) // hop
    idx = _mx.arange(n_frames, dtype=_mx.int32)[:, None] * hop + _mx.arange(n_fft, dtype=_mx.int32)[None, :]
    frames = _mx.take(x, idx, axis=-1) * window  # (..., n_frames, n_fft)
    spec = (rfft if onesided else fft)(frames, n=n_fft, axis=-1, norm=norm)
    return _mx.swapaxes(spec, -1, -2)


def _overlap_add(frames, hop):
    """Sum of ``frames`` (``(..., n_frames, n_fft)``) placed every ``hop`` samples."""
    *batch, n_frames, n_fft = frames.shape
    total = n_fft + hop * (n_frames - 1)
    idx = _mx.arange(n_frames, dtype=_mx.int32)[:, None] * hop + _mx.arange(n_fft, dtype=_mx.int32)[None, :]
    nb = len(batch)
    # scatter along a leading signal axis: move the frame axes to the front
    vals = _mx.transpose(frames, [nb, nb + 1] + list(range(nb)))
    out = _mx.zeros([total] + batch, dtype=frames.dtype).at[idx].add(vals)
    return _mx.transpose(out, list(range(1, nb + 1)) + [0])


def istft(stft_matrix, n_fft=None, hop_length=None, win_length=None, window=None, center=True, norm="backward",
          onesided=None, length=None, stream=None):
    """Inverse Short-Time Fourier Transform: the overlap-added, windowed inverse transform
    of each frame divided by the overlap-added squared window (``(..., n_freq,
    n_frames)`` in, ``(..., length)`` out)."""
    with _on(stream):
        return _istft(stft_matrix, n_fft, hop_length, win_length, window, center, norm, onesided, length)


def _istft(stft_matrix, n_fft, hop_length, win_length, window, center, norm, onesided, length):
    op = "istft"
    _check_array(op, "stft_matrix", stft_matrix)
    n_fft, hop, wl = _frame_types(op, n_fft, hop_length, win_length, window, center, norm, onesided)
    length = _optional_int(op, "length", length)
    if stft_matrix.ndim < 2:
        raise ValueError(f"[{op}] Input must have at least two dimensions (freq, frames).")
    onesided = True if onesided is None else onesided
    n_freq, n_frames = stft_matrix.shape[-2:]
    if n_fft is None:
        n_fft = 2 * (n_freq - 1) if onesided else n_freq
    hop, window = _frame_values(op, n_fft, hop, wl, window, norm)
    if length is not None and length < 0:
        raise ValueError(f"[{op}] length must not be negative, got {length}.")
    if n_frames == 0 or n_freq == 0:
        raise ValueError(f"[{op}] Input has no {'frames' if n_frames == 0 else 'frequency bins'}.")
    spec = _mx.swapaxes(stft_matrix, -1, -2)
    if onesided:
        frames = irfft(spec, n=n_fft, axis=-1, norm=norm)
    else:
        frames = _mx.real(ifft(spec, n=n_fft, axis=-1, norm=norm))
    y = _overlap_add(frames * window, hop)
    env = _overlap_add(_mx.broadcast_to(window * window, (n_frames, n_fft)), hop)
    y = y / _mx.maximum(env, _ENVELOPE_FLOOR)
    start = n_fft // 2 if center else 0
    total = y.shape[-1]
    end = (total - start if center else total) if length is None else start + length
    y = y[..., start:max(start, min(end, total))]
    if length is not None and y.shape[-1] < length:
        y = _mx.pad(y, [(0, 0)] * (y.ndim - 1) + [(0, length - y.shape[-1])])
    return y
