"""oxmx.core.fast — fused kernels for the hot spots of models (MLX's ``mlx.core.fast``).

Each function runs one fused kernel (``Primitive::Fast``, implemented by the CPU and the
CUDA backend). Its transforms come from the composite formula in ``_fast_composite``:
the kernel is wrapped in a ``custom_function`` whose vjp, jvp and vmap are those of the
composite, so gradients of any order and batching work and agree with the formula.
"""

import numbers as _numbers

from oxmx import _oxmx as _native
from oxmx._oxmx import array as _array
import oxmx.core as _mx
from . import _fast_composite as _ref
from . import _flash_bwd, _norm_bwd
from ._transforms import _INEXACT, jvp as _jvp, vjp as _vjp, vmap as _vmap

_any_traced = _native.transforms.any_traced
_custom = _native.transforms.custom
_FLOATING = (_mx.float16, _mx.bfloat16, _mx.float32, _mx.float64)

# Head sizes up to this run in the fused attention kernel on every backend; larger ones
# (rare) take the composite formula, which runs on the same device.
_SDPA_MAX_HEAD = 256

__all__ = [
    "rms_norm",
    "layer_norm",
    "rope",
    "scaled_dot_product_attention",
    "cross_entropy",
    "cuda_kernel",
    "precompiled_cuda_kernel",
    "metal_kernel",
]


class _KernelRules:
    """The transforms of one fused-kernel call, in the engine's flat custom-rules
    convention (``transforms.custom``): the vjp from ``fast_vjp`` where it applies, else
    the composite formula's; jvp and vmap always the composite's. Integer inputs get no
    gradient. One object per traced call, with no per-call closures or wrappers: under
    ``vjp`` this bookkeeping was most of a fused op's host time."""

    __slots__ = ("args", "present", "composite", "float_pos", "fast_vjp", "make_fast_vjp")

    def __init__(self, args, present, composite, float_pos, fast_vjp, make_fast_vjp):
        self.args = args
        self.present = present
        self.composite = composite
        self.float_pos = float_pos
        self.fast_vjp = fast_vjp
        self.make_fast_vjp = make_fast_vjp

    def _call(self, primals, pos=(), vals=()):
        """The composite at ``primals`` (the present arguments), with primal ``pos[i]``
        replaced by ``vals[i]``."""
        xs = list(self.args)
        present = self.present
        for i, a in zip(present, primals):
            xs[i] = a
        for k, v in zip(pos, vals):
            xs[present[k]] = v
        return self.composite(*xs)

    def vjp(self, primals, outputs, cotangents):
        if self.make_fast_vjp is not None:
            # made on the first vjp only: a jvp or vmap never needs it
            self.fast_vjp, self.make_fast_vjp = self.make_fast_vjp(), None
        if self.fast_vjp is not None:
            got = self.fast_vjp(primals, cotangents[0], outputs[0])
            if got is not None:
                return got
        fp = self.float_pos
        _, grads = _vjp(lambda *v: self._call(primals, fp, v), [primals[k] for k in fp], [cotangents[0]])
        res = [None] * len(primals)
        for k, g in zip(fp, grads):
            res[k] = g
        return res

    def jvp(self, primals, tangents):
        # only the inputs that carry a tangent move (a zero tangent times an infinite
        # input would be NaN)
        moving = [k for k in self.float_pos if tangents[k] is not None]
        _, t = _jvp(lambda *v: self._call(primals, moving, v), [primals[k] for k in moving], [tangents[k] for k in moving])
        return t

    def vmap(self, primals, axes):
        return [_vmap(lambda *xs: self._call(xs), in_axes=tuple(axes))(*primals)], [0]


def _fused(native, composite, *args, fast_vjp=None, make_fast_vjp=None):
    """``native(*args)`` (None entries allowed) as one kernel, differentiated and batched
    through ``composite(*args)``. Integer inputs get no gradient. ``fast_vjp(primals,
    cotangent, output)``, when given, computes the vjp itself (None: the composite's);
    ``make_fast_vjp()``, when given, makes that rule (or None) when a vjp first asks."""
    present = [i for i, a in enumerate(args) if a is not None]
    arrays = [args[i] for i in present]
    if not _any_traced(arrays):
        # no transform runs over these inputs, so none will ask for the rules: skip
        # building them (a tenth of the kernel's time for a mid-size norm on the GPU)
        return native(*args)
    float_pos = [k for k, a in enumerate(arrays) if a.dtype in _INEXACT]
    rules = _KernelRules(args, present, composite, float_pos, fast_vjp, make_fast_vjp)
    return _custom(rules, arrays, [native(*args)])[0]


class _GradRules:
    """The transforms of a first-order gradient kernel's outputs (one per primal): its
    own derivatives and batching go through ``slow_vjp(*primals, cotangent)``."""

    __slots__ = ("slow_vjp", "n")

    def __init__(self, slow_vjp, n):
        self.slow_vjp = slow_vjp
        self.n = n

    def vjp(self, primals, outputs, cotangents):
        return _vjp(self.slow_vjp, list(primals), list(cotangents))[1]

    def jvp(self, primals, tangents):
        tangents = [_mx.zeros_like(p) if t is None else t for p, t in zip(primals, tangents)]
        return _jvp(self.slow_vjp, list(primals), tangents)[1]

    def vmap(self, primals, axes):
        return list(_vmap(self.slow_vjp, in_axes=tuple(axes))(*primals)), [0] * self.n


def _first_order(kernel, slow_vjp):
    """A ``fast_vjp`` for ``_fused``: the first-order gradients from ``kernel(primals,
    cotangent, output)`` (a tuple, one per primal), while their own derivatives and
    batching go through ``slow_vjp(*primals, cotangent)``, the composite's vjp."""

    def rule(primals, cotangent, output):
        grads = kernel(primals, cotangent, output)
        return _custom(_GradRules(slow_vjp, len(primals)), [*primals, cotangent], list(grads))

    return rule


def _norm_fast_vjp(x, weight, bias, eps, layer, stream):
    """The fused norm backward as a ``fast_vjp``: on the GPU `_norm_bwd.py`'s kernel, on
    the CPU the native ``NormGrad`` node; None (the composite's vjp) where neither applies."""
    n = x.shape[-1] if x.ndim else 0
    if _norm_bwd.applies(x, n, stream):
        def kernel(primals, cotangent, output):
            x, w, b = split(primals)
            dx, dw, db = _norm_bwd.norm_vjp(x, w, b, cotangent, eps, layer, stream)
            return tuple(v for v in (dx, dw, db) if v is not None)
    elif _runs_on_cpu():
        def kernel(primals, cotangent, output):
            x, w, b = split(primals)
            flat = _native._fast_norm_grad(x, w, cotangent, eps, not layer, b is not None)
            size = x.size
            grads = [flat[:size].reshape(x.shape)]
            if w is not None:
                grads.append(flat[size:size + n])
            if b is not None:
                grads.append(flat[flat.size - n:])
            return tuple(grads)
    else:
        return None
    has_w, has_b = weight is not None, bias is not None

    def split(p):
        it = iter(p)
        return next(it), next(it) if has_w else None, next(it) if has_b else None

    def ref(x, w, b):
        return _ref.layer_norm(x, w, b, eps) if layer else _ref.rms_norm(x, w, eps)

    def slow(*a):
        *p, ct = a
        return tuple(_vjp(lambda *q: ref(*split(q)), list(p), [ct])[1])

    return _first_order(kernel, slow)


def _runs_on_cpu():
    """Whether nodes made now by a native call (which takes no stream) run on the CPU:
    the current stream's device (the innermost ``mx.stream`` block's, else the default
    device's)."""
    return _native._current_device() == _mx.cpu


def _op_device(stream):
    return _native._current_device() if stream is None else getattr(stream, "device", stream)


def _number(op, name, v):
    """A Python number argument (eps, scale): a TypeError otherwise, as MLX."""
    if type(v) is float:
        return v
    if isinstance(v, bool) or not isinstance(v, _numbers.Real):
        raise TypeError(f"[{op}] {name} must be a number, got {type(v).__name__}.")
    return float(v)


def _same_vector(v, dt, n):
    """None, or a 1-D array of ``n`` elements of dtype ``dt``."""
    return v is None or (type(v) is _array and v.dtype is dt and v.ndim == 1 and v.size == n)


def _norm_inputs(op, x, weight, bias=None):
    """MLX's dtype rule for the norms: the result has x's dtype, or with a weight the
    promotion of x, weight (and bias), and must be a float type. Returns the inputs cast
    for the kernel and that result dtype: integer x is computed in float32 from its
    values (not from their rounding to a half type) and the result rounded once."""
    if type(x) is _array and x.ndim:
        # the common case (one float dtype, 1-D parameters): nothing to cast or promote;
        # dtypes are shared objects, so `is` compares them
        dt, n = x.dtype, x.shape[-1]
        if dt in _FLOATING and _same_vector(weight, dt, n) and _same_vector(bias, dt, n):
            return [x, weight, bias], dt
    for name, v in (("x", x), ("weight", weight), ("bias", bias)):
        if v is not None and not isinstance(v, _array):
            raise TypeError(f"[{op}] {name} must be an array, got {type(v).__name__}.")
    out = x.dtype if weight is None else _mx.result_type(*[v for v in (x, weight, bias) if v is not None])
    if not _mx.issubdtype(out, _mx.floating):
        raise ValueError(f"[{op}] Received unsupported type {out}.")
    if x.ndim == 0:
        raise ValueError(f"[{op}] Input must have at least 1 dimension.")
    compute = out if _mx.issubdtype(x.dtype, _mx.floating) else _mx.result_type(out, _mx.float32)
    cast = [None if v is None else v.astype(compute) for v in (x, weight, bias)]
    for name, v in (("weight", cast[1]), ("bias", cast[2])):
        if v is not None and (v.ndim != 1 or v.shape[0] != x.shape[-1]):
            raise ValueError(
                f"[{op}] {name} must have shape ({x.shape[-1]},) to match the last axis of the input, got {v.shape}."
            )
    return cast, out


def _float_check(op, name, a):
    if not isinstance(a, _array):
        raise TypeError(f"[{op}] {name} must be an array, got {type(a).__name__}.")
    if not _mx.issubdtype(a.dtype, _mx.floating):
        raise ValueError(f"[{op}] {name} must be a floating-point array, got {a.dtype}.")


def rms_norm(x, weight, eps, *, stream=None):
    """Root-mean-square normalisation over the last axis, scaled by ``weight`` if given."""
    eps = _number("rms_norm", "eps", eps)
    (x, weight, _), out = _norm_inputs("rms_norm", x, weight)
    y = _fused(lambda x, w: _native._fast_rms_norm(x, w, eps), lambda x, w: _ref.rms_norm(x, w, eps), x, weight,
               make_fast_vjp=lambda: _norm_fast_vjp(x, weight, None, eps, False, stream))
    return y if y.dtype == out else y.astype(out)


def layer_norm(x, weight, bias, eps, *, stream=None):
    """Layer normalisation over the last axis, with optional ``weight`` and ``bias``."""
    eps = _number("layer_norm", "eps", eps)
    (x, weight, bias), out = _norm_inputs("layer_norm", x, weight, bias)
    y = _fused(
        lambda x, w, b: _native._fast_layer_norm(x, w, b, eps),
        lambda x, w, b: _ref.layer_norm(x, w, b, eps),
        x,
        weight,
        bias,
        make_fast_vjp=lambda: _norm_fast_vjp(x, weight, bias, eps, True, stream),
    )
    return y if y.dtype == out else y.astype(out)


def rope(a, dims, *, traditional, base, scale, offset, freqs=None, stream=None):
    """Rotary positional encoding of the first ``dims`` features of the last axis, with
    positions along the second-to-last axis starting at ``offset``."""
    _float_check("rope", "a", a)
    if a.ndim < 3:
        raise ValueError(f"[rope] Input must have at least 3 dimensions, got {a.ndim}.")
    if isinstance(dims, bool) or not isinstance(dims, _numbers.Integral):
        raise TypeError(f"[rope] dims must be an integer, got {type(dims).__name__}.")
    dims = int(dims)
    if dims <= 0 or dims % 2 or dims > a.shape[-1]:
        raise ValueError(f"[rope] dims must be a positive even number no larger than the last axis ({a.shape[-1]}), got {dims}.")
    if (base is None) == (freqs is None):
        raise ValueError("[rope] Exactly one of base and freqs must be None.")
    if freqs is not None:
        if not isinstance(freqs, _array):
            raise TypeError(f"[rope] freqs must be an array, got {type(freqs).__name__}.")
        if not _mx.issubdtype(freqs.dtype, _mx.floating):
            freqs = freqs.astype(_mx.float32)
        if freqs.shape != (dims // 2,):
            raise ValueError(f"[rope] freqs must have shape ({dims // 2},), got {freqs.shape}.")
    if isinstance(offset, _array):
        if offset.ndim > 1 or (offset.ndim == 1 and offset.shape[0] not in (1, a.shape[0])):
            raise ValueError(f"[rope] offset must be a scalar or have shape ({a.shape[0]},), got {offset.shape}.")
        if not _mx.issubdtype(offset.dtype, _mx.integer):
            raise ValueError(f"[rope] offset must be an integer array, got {offset.dtype}.")
        if offset.ndim == 1 and offset.shape[0] != a.shape[0]:
            offset = offset.reshape(())  # one offset for every example, as MLX broadcasts it
    elif isinstance(offset, bool) or not isinstance(offset, _numbers.Integral):
        raise ValueError(f"[rope] offset must be an integer or an integer array, got {type(offset).__name__}.")
    else:
        offset = _mx.array(int(offset), dtype=_mx.int64)
    traditional, scale = bool(traditional), _number("rope", "scale", scale)
    base = None if base is None else _number("rope", "base", base)
    return _fused(
        lambda a, off, fr: _native._fast_rope(a, dims, traditional, base, scale, off, fr),
        lambda a, off, fr: _ref.rope(a, dims, traditional, base, scale, off, fr),
        a,
        offset,
        freqs,
    )


def scaled_dot_product_attention(q, k, v, *, scale, mask=None, sinks=None, force_fused=False, stream=None):
    """``softmax(q @ k.T * scale + mask) @ v`` per head, with grouped-query heads, the
    ``"causal"`` mask (bottom-right aligned), boolean or additive masks and sinks."""
    op = "scaled_dot_product_attention"
    scale = _number(op, "scale", scale)
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, _array):
            raise TypeError(f"[{op}] {name} must be an array, got {type(t).__name__}.")
        if t.ndim != 4:
            raise ValueError(f"[{op}] {name} must have 4 dimensions [B, N, T, D], got shape {t.shape}.")
    out_t = q.dtype if q.dtype == k.dtype == v.dtype else _mx.result_type(q, k, v)
    if out_t not in _FLOATING:
        raise ValueError(f"[{op}] q, k and v must promote to a floating-point type, got {out_t}.")
    q, k, v = (t if t.dtype == out_t else t.astype(out_t) for t in (q, k, v))
    qs, ks, vs = q.shape, k.shape, v.shape  # each .shape builds a new tuple
    if ks[:3] != vs[:3]:
        raise ValueError(f"[{op}] k and v must agree on [B, N_kv, T_kv], got {ks} and {vs}.")
    if qs[3] != ks[3]:
        raise ValueError(f"[{op}] q and k must have the same head dimension, got {qs[3]} and {ks[3]}.")
    if qs[0] != ks[0]:
        raise ValueError(f"[{op}] q and k must have the same batch size, got {qs[0]} and {ks[0]}.")
    if ks[1] == 0 or qs[1] % ks[1]:
        raise ValueError(f"[{op}] the number of query heads ({qs[1]}) must be a multiple of the key/value heads ({ks[1]}).")
    if isinstance(mask, str):
        if mask != "causal":
            raise ValueError(f"[{op}] Invalid mask type '{mask}'; the only string mask is 'causal'.")
    elif mask is not None:
        if not isinstance(mask, _array):
            raise TypeError(f"[{op}] mask must be None, 'causal' or an array, got {type(mask).__name__}.")
        if mask.ndim > 4:
            raise ValueError(f"[{op}] mask can have at most 4 dimensions, got {mask.ndim}.")
        target = (qs[0], qs[1], qs[2], ks[2])
        try:
            _mx.broadcast_shapes(mask.shape, target)
        except ValueError:
            raise ValueError(f"[{op}] mask of shape {mask.shape} does not broadcast to {target}.") from None
        if _mx.broadcast_shapes(mask.shape, target) != target:
            raise ValueError(f"[{op}] mask of shape {mask.shape} does not broadcast to {target}.")
    if sinks is not None:
        if not isinstance(sinks, _array):
            raise TypeError(f"[{op}] sinks must be an array, got {type(sinks).__name__}.")
        if sinks.shape != (qs[1],):
            raise ValueError(f"[{op}] sinks must have shape ({qs[1]},), got {sinks.shape}.")
        if _mx.result_type(out_t, sinks) != out_t:
            raise ValueError(f"[{op}] Type of sinks must promote to output type {out_t}.")
        sinks = sinks.astype(out_t)
    if not isinstance(mask, str) and mask is not None and mask.dtype != _mx.bool_:
        if _mx.result_type(out_t, mask) != out_t:
            raise ValueError(f"[{op}] Mask type must promote to output type {out_t}.")
        mask = mask.astype(out_t)
    causal = isinstance(mask, str)
    arr_mask = None if causal else mask

    def composite(q, k, v, m, s):
        return _ref.scaled_dot_product_attention(q, k, v, scale, "causal" if causal else m, s)

    if max(qs[3], vs[3]) > _SDPA_MAX_HEAD or qs[0] * qs[1] > 65535:
        if force_fused:
            raise ValueError(f"[{op}] No fused kernel for head sizes above {_SDPA_MAX_HEAD} (force_fused=True).")
        return composite(q, k, v, arr_mask, sinks)
    def make_fast_vjp():
        # No mask or causal, no sinks: the primals are (q, k, v). On the GPU (float16/
        # bfloat16, head size 64, or 128 through cuDNN) the gradient without the score
        # matrix (_flash_bwd.py); on the CPU the native SdpaGrad node (3-5x faster than
        # the composite's vjp). Their own derivatives and batching go through the
        # composite's vjp.
        if _flash_bwd.applies(q, k, v, causal, mask is not None, sinks is not None, stream):
            grad = lambda p, ct, out: _flash_bwd.attention_vjp(*p, out, ct, scale, causal)  # noqa: E731
        elif sinks is None and (mask is None or causal) and vs == ks and _runs_on_cpu():
            grad = lambda p, ct, out: _flash_bwd.native_grad(*p, out, ct, scale, causal)  # noqa: E731
        else:
            return None

        def slow(q, k, v, ct):
            return tuple(_vjp(lambda q, k, v: composite(q, k, v, None, None), [q, k, v], [ct])[1])

        return _first_order(grad, slow)

    return _fused(
        lambda q, k, v, m, s: _native._fast_sdpa(q, k, v, scale, causal, m, s), composite, q, k, v, arr_mask, sinks,
        make_fast_vjp=make_fast_vjp,
    )


def cross_entropy(logits, targets, *, stream=None):
    """``logsumexp(logits, -1) - logits[..., targets]`` in float32, shaped as ``targets``."""
    if not isinstance(targets, _array):
        raise TypeError(f"[cross_entropy] targets must be an array, got {type(targets).__name__}.")
    _float_check("cross_entropy", "logits", logits)
    if logits.ndim == 0:
        raise ValueError("[cross_entropy] logits must have at least 1 dimension.")
    if not isinstance(targets, _array) or not _mx.issubdtype(targets.dtype, _mx.integer):
        raise ValueError("[cross_entropy] targets must be an integer array of class indices.")
    if targets.shape != logits.shape[:-1]:
        raise ValueError(f"[cross_entropy] targets must have shape {logits.shape[:-1]}, got {targets.shape}.")
    return _fused(_native._fast_cross_entropy, _ref.cross_entropy, logits, targets, fast_vjp=_CROSS_ENTROPY_VJP)


def _cross_entropy_grad(primals, cotangent, output):
    """``d logits = softmax(logits) * g - g`` at each target, in one native kernel (a
    logsumexp and one elementwise pass per row): the composite's vjp instead
    materialises the softmax weights and scatters ``-g`` into a zero array of the
    logits' size. A row whose logsumexp is infinite or NaN is NaN (MLX's convention)."""
    logits, targets = primals
    return _native._fast_cross_entropy_grad(logits, targets, cotangent), _mx.zeros_like(targets)


def _cross_entropy_slow(logits, targets, cotangent):
    _, (g,) = _vjp(lambda lf: _ref.cross_entropy(lf, targets), [logits], [cotangent])
    return g, _mx.zeros_like(targets)


_CROSS_ENTROPY_VJP = _first_order(_cross_entropy_grad, _cross_entropy_slow)


# ------------------------------------------------------------------ custom CUDA kernels
_CTYPES = {
    "bool": "bool", "uint8": "unsigned char", "uint16": "unsigned short", "uint32": "unsigned int",
    "uint64": "unsigned long long", "int8": "signed char", "int16": "short", "int32": "int",
    "int64": "long long", "float16": "__half", "bfloat16": "__nv_bfloat16", "float32": "float",
    "float64": "double",
}
# each output's offset in the packed buffer the native node returns (ops/user_kernel.rs)
_OUTPUT_ALIGN = 256


def _ctype(op, dtype):
    name = str(dtype).rsplit(".", 1)[-1]
    if name not in _CTYPES:
        raise ValueError(f"[{op}] A custom kernel cannot take {dtype} arrays.")
    return _CTYPES[name]


def _grid3(op, what, v):
    v = tuple(v)
    if len(v) != 3 or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in v):
        raise ValueError(f"[{op}] {what} must be three positive integers, got {v}.")
    return v


def _need_gpu(op):
    if not _mx.cuda.is_available():
        raise RuntimeError(f"[{op}] needs a CUDA GPU, and none is available on this machine.")


def _scalar_param(op, v):
    if isinstance(v, bool):
        return ("bool", v), "bool"
    if isinstance(v, int):
        return ("i32", v), "int"
    if isinstance(v, float):
        return ("f32", v), "float"
    raise TypeError(f"[{op}] A kernel input must be an array, bool, int or float, got {type(v).__name__}.")


def _outputs(op, packed, shapes, dtypes):
    """Cut each output out of the packed byte buffer as a view."""
    outs, off = [], 0
    for shape, dt in zip(shapes, dtypes):
        off = -(-off // _OUTPUT_ALIGN) * _OUTPUT_ALIGN
        n = 1
        for d in shape:
            n *= d
        nbytes = n * _mx.array(0, dtype=dt).itemsize
        outs.append(packed[off : off + nbytes].view(dt).reshape(tuple(shape)))
        off += nbytes
    return outs


class _RefuseRules:
    """Transform rules that refuse: a custom kernel has no derivative or batching."""

    __slots__ = ("op",)

    def __init__(self, op):
        self.op = op

    def refuse(self, *_):
        raise ValueError(
            f"[{self.op}] A custom CUDA kernel has no derivative or batching rule; wrap it in mx.custom_function to give it one."
        )

    vjp = jvp = vmap = refuse


def _without_derivative(op, arrays, outs):
    """The outputs, tied to the inputs by a rule that refuses to differentiate or batch
    (the packed buffer is uint8, so without it a gradient would silently be zero).
    Outside every transform nothing could ask, so nothing is tied."""
    if not arrays or not _any_traced(arrays):
        return outs
    return _custom(_RefuseRules(op), list(arrays), list(outs))


def _check_outputs(op, shapes, dtypes, n_names=None):
    shapes, dtypes = [tuple(int(d) for d in s) for s in shapes], list(dtypes)
    if len(shapes) != len(dtypes) or (n_names is not None and len(shapes) != n_names):
        raise ValueError(f"[{op}] Expected one output shape and dtype per output.")
    for s in shapes:
        if any(d < 0 for d in s):
            raise ValueError(f"[{op}] Output shapes must be non-negative, got {s}.")
    return shapes, dtypes


class _CudaKernel:
    """A kernel from CUDA source, compiled with NVRTC on first call (see cuda_kernel)."""

    def __init__(self, name, input_names, output_names, source, header, ensure_row_contiguous, shared_memory):
        op = "cuda_kernel"
        if not isinstance(name, str) or not name.replace("_", "a").isalnum():
            raise ValueError(f"[{op}] name must be a C identifier, got {name!r}.")
        self.name = name
        self.input_names = list(input_names)
        self.output_names = list(output_names)
        for n in self.input_names + self.output_names:
            if not isinstance(n, str) or not n.replace("_", "a").isalnum() or n[:1].isdigit():
                raise ValueError(f"[{op}] Parameter names must be C identifiers, got {n!r}.")
        if len(set(self.input_names + self.output_names)) != len(self.input_names) + len(self.output_names):
            raise ValueError(f"[{op}] Input and output names must be distinct.")
        self.source = source
        self.header = header
        self.contiguous = bool(ensure_row_contiguous)
        self.shared_memory = int(shared_memory)
        self._layout_names = None

    def _uses(self, name):
        """Whether the source names ``name`` (e.g. ``x_shape``): the source is scanned
        once, not on every call (a long kernel took milliseconds per call)."""
        if self._layout_names is None:
            import re

            self._layout_names = set(re.findall(r"\b(\w+_(?:shape|strides|ndim))\b", self.source))
        return name in self._layout_names

    def _signature(self, inputs, output_dtypes):
        params, args, arrays = [], [], []
        for name, v in zip(self.input_names, inputs):
            if isinstance(v, _array):
                i = len(arrays)
                arrays.append(v)
                params.append(f"const {_ctype('cuda_kernel', v.dtype)}* __restrict__ {name}")
                args.append(("in", i))
                for suffix, kind, ctype in (("shape", "shape", "const int*"), ("strides", "strides", "const long long*"), ("ndim", "ndim", "int")):
                    if self._uses(f"{name}_{suffix}"):
                        params.append(f"{ctype} {name}_{suffix}")
                        args.append((kind, i))
            else:
                arg, ctype = _scalar_param("cuda_kernel", v)
                params.append(f"{ctype} {name}")
                args.append(arg)
        for i, (name, dt) in enumerate(zip(self.output_names, output_dtypes)):
            params.append(f"{_ctype('cuda_kernel', dt)}* __restrict__ {name}")
            args.append(("out", i))
        return params, args, arrays

    def __call__(self, *, inputs, output_shapes, output_dtypes, grid, threadgroup, template=None, init_value=None, verbose=False, stream=None):
        op = "cuda_kernel"
        inputs = list(inputs)
        if len(inputs) != len(self.input_names):
            raise ValueError(f"[{op}] Expected {len(self.input_names)} inputs, got {len(inputs)}.")
        shapes, dtypes = _check_outputs(op, output_shapes, output_dtypes, len(self.output_names))
        grid, threadgroup = _grid3(op, "grid", grid), _grid3(op, "threadgroup", threadgroup)
        defs = []
        for tname, tval in template or []:
            if isinstance(tval, _mx.Dtype):
                defs.append(f"typedef {_ctype(op, tval)} {tname};")
            elif isinstance(tval, bool):
                defs.append(f"constexpr bool {tname} = {'true' if tval else 'false'};")
            elif isinstance(tval, int):
                defs.append(f"constexpr int {tname} = {tval};")
            else:
                raise ValueError(f"[{op}] Template argument {tname} must be a dtype, int or bool.")
        params, args, arrays = self._signature(inputs, dtypes)
        fn = f"custom_kernel_{self.name}"
        src = (
            "#include <cuda_fp16.h>\n#include <cuda_bf16.h>\n#include <cooperative_groups.h>\n"
            f"{self.header}\n" + "\n".join(defs) + f'\nextern "C" __global__ void {fn}(' + ", ".join(params) + ") {\n"
            f"{self.source}\n}}\n"
        )
        if verbose:
            print(src)
        _need_gpu(op)
        packed = _native._cuda_kernel(
            arrays, fn, "source", src, args, grid, threadgroup, self.shared_memory,
            list(zip(shapes, dtypes)), None if init_value is None else float(init_value), self.contiguous,
            stream=_mx.gpu if stream is None else stream,
        )
        return _without_derivative(op, arrays, _outputs(op, packed, shapes, dtypes))


def cuda_kernel(name, input_names, output_names, source, header="", ensure_row_contiguous=True, shared_memory=0):
    """A custom CUDA kernel from the body ``source``: oxmx writes the signature (each input
    ``const T* name`` — plus ``name_shape``/``name_strides``/``name_ndim`` when the source uses
    them — scalars by value, then each output ``T* name``), compiles it with NVRTC on first
    call and launches it on the GPU stream. ``grid`` counts threads (MLX's convention);
    outputs start zeroed, or at ``init_value``. A compile error raises ValueError with the
    NVRTC log. The kernel has no gradient; wrap it in ``mx.custom_function`` to give one."""
    return _CudaKernel(name, input_names, output_names, source, header, ensure_row_contiguous, shared_memory)


def precompiled_cuda_kernel(*, name, compiled_source, inputs, output_shapes, output_dtypes, scalars, grid, threadgroup,
                            shared_memory=0, init_value=None, ensure_row_contiguous=False, stream=None):
    """Launch the function ``name`` of a PTX text or cubin image: parameters are the inputs
    (arrays as device pointers, Python scalars by value), the outputs, then ``scalars``."""
    op = "precompiled_cuda_kernel"
    if not isinstance(compiled_source, (bytes, bytearray)):
        raise TypeError(f"[{op}] compiled_source must be bytes (PTX text or a cubin image).")
    shapes, dtypes = _check_outputs(op, output_shapes, output_dtypes)
    grid, threadgroup = _grid3(op, "grid", grid), _grid3(op, "threadgroup", threadgroup)
    args, arrays = [], []
    for v in list(inputs):
        if isinstance(v, _array):
            args.append(("in", len(arrays)))
            arrays.append(v)
        else:
            args.append(_scalar_param(op, v)[0])
    args += [("out", i) for i in range(len(shapes))]
    args += [_scalar_param(op, v)[0] for v in scalars]
    code = bytes(compiled_source)
    if code.startswith(b"\x7fELF"):
        kind = "cubin"
    else:
        kind, code = "ptx", code.rstrip(b"\0").decode("utf-8", errors="strict")
    _need_gpu(op)
    packed = _native._cuda_kernel(
        arrays, name, kind, code, args, grid, threadgroup, int(shared_memory), list(zip(shapes, dtypes)),
        None if init_value is None else float(init_value), bool(ensure_row_contiguous),
        stream=_mx.gpu if stream is None else stream,
    )
    return _without_derivative(op, arrays, _outputs(op, packed, shapes, dtypes))


def metal_kernel(*args, **kwargs):
    raise RuntimeError("[metal_kernel] Metal is not available in oxmx (Linux, CPU and CUDA); use mx.fast.cuda_kernel.")
