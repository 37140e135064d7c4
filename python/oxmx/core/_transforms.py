"""Function transforms with MLX's signatures: grad, value_and_grad, vjp, jvp, vmap,
stop_gradient, checkpoint, custom_function.

The engine does the work (``oxmx._oxmx.transforms``): a transform opens a trace, wraps
each input array in a leaf node of that trace, calls the function, and hands the leaves
and outputs to the engine, which walks the graph with each primitive's rule. This file
only maps Python arguments (pytrees, argnums, axes) onto that.
"""

import functools

from oxmx import _oxmx as _native
from oxmx._oxmx import array, zeros_like

_T = _native.transforms

__all__ = [
    "grad",
    "value_and_grad",
    "vjp",
    "jvp",
    "vmap",
    "stop_gradient",
    "checkpoint",
    "custom_function",
]


def stop_gradient(array_):
    """The same values, with a zero gradient."""
    return _T.stop_gradient(array_)


# ------------------------------------------------------------------ pytrees of arrays
def _flatten(tree, op, what="argument"):
    """The arrays of ``tree`` in order, and a function rebuilding ``tree`` from new ones.
    Any leaf that is not an array is an error (as MLX)."""
    leaves = []
    stack = [tree]  # iterative: the nesting depth is the caller's
    while stack:
        node = stack.pop()
        if isinstance(node, array):
            leaves.append(node)
        elif isinstance(node, (list, tuple)):
            stack.extend(reversed(node))
        elif isinstance(node, dict):
            stack.extend(reversed(list(node.values())))
        else:
            raise ValueError(f"[{op}] The {what} should contain only arrays, got {type(node).__name__}.")
    return leaves, lambda new: _replace_arrays(tree, new)


_END = object()


def _children(node):
    return list(node.values()) if isinstance(node, dict) else list(node)


def _rebuilt(node, values):
    return dict(zip(node.keys(), values)) if isinstance(node, dict) else type(node)(values)


def _replace_arrays(tree, new):
    """``tree`` with its arrays replaced, in order, by the items of ``new`` (other leaves
    are kept). Iterative (no recursion depth set by the tree) and without self-referencing
    closures, so results are freed as soon as the caller drops them (no reference cycle
    waiting for the garbage collector)."""
    it = iter(new)
    container = (list, tuple, dict)
    if not isinstance(tree, container):
        return next(it) if isinstance(tree, array) else tree
    root = []
    stack = [(tree, [], iter(_children(tree)))]
    while stack:
        node, done, children = stack[-1]
        child = next(children, _END)
        if child is _END:
            stack.pop()
            (stack[-1][1] if stack else root).append(_rebuilt(node, done))
        elif isinstance(child, container):
            stack.append((child, [], iter(_children(child))))
        else:
            done.append(next(it) if isinstance(child, array) else child)
    return root[0]


def _check_inexact(op, arrays):
    for a in arrays:
        if not (a.dtype in _INEXACT):
            raise ValueError(
                f"[{op}] Cannot differentiate with respect to an array of type {a.dtype}; "
                "only floating point and complex inputs have gradients."
            )


def _inexact():
    from oxmx._oxmx import float16, bfloat16, float32, float64, complex64

    return (float16, bfloat16, float32, float64, complex64)


_INEXACT = _inexact()


# ------------------------------------------------------------------ vjp / jvp
def _as_list(x, op, what):
    if isinstance(x, array):
        return [x], True
    if isinstance(x, (list, tuple)) and all(isinstance(v, array) for v in x):
        return list(x), False
    raise ValueError(f"[{op}] {what} must be an array or a list of arrays.")


def vjp(fun, primals, cotangents):
    """``(outputs, vjps)``: ``fun(*primals)`` and the vector-Jacobian products of
    ``cotangents`` (one per output) with respect to each primal."""
    primals, _ = _as_list(primals, "vjp", "primals")
    cotangents, _ = _as_list(cotangents, "vjp", "cotangents")
    with _T._Trace() as trace:
        leaves = [trace.leaf(p) for p in primals]
        outs, _ = _as_list(fun(*leaves), "vjp", "The function's output")
        grads = _T.vjp(leaves, outs, cotangents)
    return outs, grads


def jvp(fun, primals, tangents):
    """``(outputs, jvps)``: ``fun(*primals)`` and the Jacobian-vector products of
    ``tangents`` (one per primal)."""
    primals, _ = _as_list(primals, "jvp", "primals")
    tangents, _ = _as_list(tangents, "jvp", "tangents")
    if len(primals) != len(tangents):
        raise ValueError(f"[jvp] Got {len(primals)} primals but {len(tangents)} tangents.")
    with _T._Trace() as trace:
        leaves = [trace.leaf(p) for p in primals]
        outs, _ = _as_list(fun(*leaves), "jvp", "The function's output")
        tans = _T.jvp(leaves, tangents, outs)
    return outs, tans


# ------------------------------------------------------------------ grad
def _normalize_argnums(argnums, argnames, op):
    if isinstance(argnames, str):
        argnames = [argnames]
    argnames = list(argnames or [])
    single = False
    if argnums is None:
        argnums = [] if argnames else [0]
        single = not argnames
    elif isinstance(argnums, int):
        argnums, single = [argnums], True
    else:
        argnums = list(argnums)
        single = len(argnums) == 1
    seen = set()
    for i in argnums:
        if i < 0:
            raise ValueError(f"[{op}] Can't compute the gradient of negative argument index {i}")
        if i in seen:
            raise ValueError(f"[{op}] Duplicate argument index {i} is not allowed.")
        seen.add(i)
    if not argnums and not argnames:
        raise ValueError(f"[{op}] Gradient wrt no argument requested")
    return argnums, argnames, single


def _value_and_grad_impl(fun, argnums, argnames, op):
    argnums, argnames, single = _normalize_argnums(argnums, argnames, op)

    def run(*args, **kwargs):
        for i in argnums:
            if i < 0 or i >= len(args):
                raise ValueError(
                    f"[{op}] Can't compute the gradient of argument index {i} because the "
                    f"function is called with only {len(args)} positional arguments."
                )
        for name in argnames:
            if name not in kwargs:
                raise ValueError(f"[{op}] Can't compute the gradient of keyword argument '{name}' because it was not passed.")
        with _T._Trace() as trace:
            args = list(args)
            kwargs = dict(kwargs)
            groups = []  # (rebuild, leaves) per differentiated argument
            for i in argnums:
                arrs, rebuild = _flatten(args[i], op)
                _check_inexact(op, arrs)
                leaves = [trace.leaf(a) for a in arrs]
                args[i] = rebuild(leaves)
                groups.append((rebuild, leaves))
            for name in argnames:
                arrs, rebuild = _flatten(kwargs[name], op)
                _check_inexact(op, arrs)
                leaves = [trace.leaf(a) for a in arrs]
                kwargs[name] = rebuild(leaves)
                groups.append((rebuild, leaves))
            out = fun(*args, **kwargs)
            loss = out
            if isinstance(out, (list, tuple)) and op == "value_and_grad":
                if len(out) == 0:
                    raise ValueError(f"[{op}] The function returned an empty sequence.")
                loss = out[0]
            if not isinstance(loss, array):
                raise ValueError(
                    f"[{op}] The return value of the function whose gradient we want to compute "
                    f"should be a scalar array; but {type(loss).__name__} was returned."
                )
            if loss.ndim != 0:
                raise ValueError(
                    f"[{op}] The function must return a scalar array, but the output has shape {tuple(loss.shape)}."
                )
            all_leaves = [l for _, ls in groups for l in ls]
            from oxmx._oxmx import ones_like

            grads = _T.vjp(all_leaves, [loss], [ones_like(loss)])
        it = iter(grads)
        rebuilt = [rebuild([next(it) for _ in leaves]) for rebuild, leaves in groups]
        pos = rebuilt[: len(argnums)]
        kw = dict(zip(argnames, rebuilt[len(argnums) :]))
        if single:
            pos = pos[0]
        elif argnums:
            pos = tuple(pos)
        else:
            pos = None
        return out, (pos if not argnames else (pos, kw))

    return run


def value_and_grad(fun, argnums=None, argnames=()):
    """A function returning ``(fun(*args), gradients)``. ``fun`` returns a scalar array,
    or a list/tuple whose first element is the scalar to differentiate."""
    run = _value_and_grad_impl(fun, argnums, argnames, "value_and_grad")
    return functools.wraps(fun)(lambda *a, **k: run(*a, **k)) if callable(fun) else run


def grad(fun, argnums=None, argnames=()):
    """A function returning the gradient of scalar-valued ``fun`` with respect to the
    arguments ``argnums`` (default: the first) and keyword arguments ``argnames``."""
    run = _value_and_grad_impl(fun, argnums, argnames, "grad")

    def g(*args, **kwargs):
        return run(*args, **kwargs)[1]

    return functools.wraps(fun)(g) if callable(fun) else g


# ------------------------------------------------------------------ vmap
def _axes_for(tree, axes, op, what):
    """Per-array axes for ``tree`` from an axes prefix-tree (int/None broadcast)."""
    out = []

    def walk(node, ax):
        if isinstance(node, array):
            if isinstance(ax, (list, tuple, dict)):
                raise ValueError(f"[{op}] {what} do not match the structure of the arguments.")
            out.append(ax)
            return
        if isinstance(node, (list, tuple)):
            if isinstance(ax, (list, tuple)):
                if len(ax) != len(node):
                    raise ValueError(f"[{op}] {what} have {len(ax)} entries for {len(node)} arguments.")
                for c, a in zip(node, ax):
                    walk(c, a)
            else:
                for c in node:
                    walk(c, ax)
            return
        if isinstance(node, dict):
            for k, c in node.items():
                walk(c, ax[k] if isinstance(ax, dict) else ax)
            return
        raise ValueError(f"[{op}] Arguments must be arrays or trees of arrays, got {type(node).__name__}.")

    walk(tree, axes)
    return out


def vmap(fun, in_axes=0, out_axes=0):
    """Vectorize ``fun`` over the axes ``in_axes`` of its arguments; results are stacked
    along ``out_axes``."""

    @functools.wraps(fun)
    def wrapped(*args):
        from oxmx._oxmx import moveaxis, expand_dims, broadcast_to, take, zeros

        axes_tree = tuple(in_axes) if isinstance(in_axes, list) else in_axes
        if isinstance(axes_tree, tuple) and len(axes_tree) != len(args):
            raise ValueError(f"[vmap] in_axes has {len(axes_tree)} entries for {len(args)} arguments.")
        arrs, rebuild = _flatten(list(args), "vmap", "arguments")
        axes = _axes_for(list(args), list(axes_tree) if isinstance(axes_tree, tuple) else axes_tree, "vmap", "in_axes")
        batch = None
        norm = []
        for a, ax in zip(arrs, axes):
            if ax is None:
                norm.append(None)
                continue
            if not isinstance(ax, int):
                raise ValueError("[vmap] in_axes must be integers or None.")
            if not -a.ndim <= ax < a.ndim:
                raise ValueError(f"[vmap] Axis {ax} is out of bounds for an input with {a.ndim} dimensions.")
            ax = ax % a.ndim
            n = a.shape[ax]
            if batch is not None and n != batch:
                raise ValueError(f"[vmap] Inconsistent axis sizes: {batch} and {n}.")
            batch = n
            norm.append(ax)
        if batch is None:
            raise ValueError("[vmap] At least one input must be mapped (in_axes are all None).")
        with _T._Trace(False) as trace:
            leaves, batched, baxes, call = [], [], [], []
            for a, ax in zip(arrs, norm):
                if ax is None:
                    call.append(a)
                    continue
                if batch > 0:
                    one = take(a, 0, axis=ax)
                else:
                    shp = list(a.shape)
                    del shp[ax]
                    one = zeros(shp, dtype=a.dtype)
                leaf = trace.leaf(one)
                leaves.append(leaf)
                batched.append(a)
                baxes.append(ax)
                call.append(leaf)
            out = fun(*rebuild(call))
            outs, rebuild_out = _flatten(out, "vmap", "output")
            results = _T.vmap(leaves, batched, baxes, batch, outs)
        oaxes = _axes_for(out, out_axes, "vmap", "out_axes")
        final = []
        for (r, ax), oax in zip(results, oaxes):
            if oax is None:
                if ax is not None:
                    raise ValueError("[vmap] An output that depends on the mapped inputs cannot have out_axes None.")
                final.append(r)
                continue
            nd = r.ndim + (1 if ax is None else 0)
            if not -nd <= oax < nd:
                raise ValueError(f"[vmap] out_axes {oax} is out of bounds for an output with {nd} dimensions.")
            oax %= nd
            if ax is None:
                r = expand_dims(r, oax)
                shp = list(r.shape)
                shp[oax] = batch
                final.append(broadcast_to(r, shp))
            else:
                final.append(r if ax == oax else moveaxis(r, ax, oax))
        return rebuild_out(final)

    return wrapped


# ------------------------------------------------------------------ custom_function
class _Rules:
    """Adapts the user's overrides to the engine's flat calling convention."""

    def __init__(self, cf, args, rebuild_args, out, rebuild_out):
        self.cf = cf
        self.args = args
        self.rebuild_args = rebuild_args
        self.out = out
        self.rebuild_out = rebuild_out

    def _primals(self, flat):
        return tuple(self.rebuild_args(list(flat)))

    def vjp(self, primals, outputs, cotangents):
        if self.cf._vjp is None:
            return None
        g = self.cf._vjp(self._primals(primals), self.rebuild_out(list(cotangents)), self.rebuild_out(list(outputs)))
        if isinstance(g, array):
            g = (g,)
        flat, _ = _flatten(list(g), "custom_function", "custom vjp's result")
        return flat

    def jvp(self, primals, tangents):
        if self.cf._jvp is None:
            return None
        # a primal without a tangent (None) is held fixed; a user's rule sees zeros there,
        # as in MLX; internal rules that set _jvp_takes_none see None
        if not getattr(self.cf, "_jvp_takes_none", False):
            tangents = [zeros_like(p) if t is None else t for p, t in zip(primals, tangents)]
        t = self.cf._jvp(self._primals(primals), self._primals(tangents))
        flat, _ = _flatten(t, "custom_function", "custom jvp's result")
        return flat

    def vmap(self, primals, axes):
        if self.cf._vmap is None:
            return None
        outs, oaxes = self.cf._vmap(self._primals(primals), self._primals_axes(axes))
        flat, _ = _flatten(outs, "custom_function", "custom vmap's outputs")
        if not isinstance(oaxes, (list, tuple)):
            oaxes = [oaxes] * len(flat)
        return flat, list(oaxes)

    def _primals_axes(self, axes):
        return tuple(_replace_arrays(list(self.args), axes))


class custom_function:
    """Decorate a function to give it custom ``vjp``, ``jvp`` and ``vmap`` rules::

        @mx.custom_function
        def f(x, y):
            return mx.sin(x) * y

        @f.vjp
        def f_vjp(primals, cotangent, output):
            x, y = primals
            return cotangent * mx.cos(x) * y, cotangent * mx.sin(x)

    Transforms without an override differentiate (or batch) the function itself.
    """

    def __init__(self, fun):
        functools.update_wrapper(self, fun)
        self.fun = fun
        self._vjp = None
        self._jvp = None
        self._vmap = None

    def vjp(self, f):
        self._vjp = f
        return self

    def jvp(self, f):
        self._jvp = f
        return self

    def vmap(self, f):
        self._vmap = f
        return self

    def __call__(self, *args):
        flat, rebuild = _flatten(list(args), "custom_function", "arguments")
        out = self.fun(*args)
        outs, rebuild_out = _flatten(out, "custom_function", "output")
        rules = _Rules(self, args, lambda new: rebuild(new), out, rebuild_out)
        return rebuild_out(_T.custom(rules, flat, outs))


def _arrays_in(tree):
    """The arrays among the leaves of ``tree`` (lists, tuples and dicts are walked; any
    other leaf is a constant), in the order in which :func:`_replace_arrays` fills them."""
    found, stack = [], [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, array):
            found.append(node)
        elif isinstance(node, (list, tuple)):
            stack.extend(reversed(node))
        elif isinstance(node, dict):
            stack.extend(reversed(list(node.values())))
    return found


def checkpoint(fun):
    """``fun`` whose intermediate values are recomputed in the backward pass instead of
    kept from the forward pass. As MLX, its arguments (positional and keyword) and its
    output may be trees of arrays and other values; every array in the arguments gets
    a gradient, other leaves are constants."""
    if not callable(fun):
        raise TypeError(f"[checkpoint] fun must be callable, got {type(fun).__name__}.")

    @functools.wraps(fun)
    def wrapped(*args, **kwargs):
        inputs = (args, kwargs)
        out_tree = []  # the output's structure, recorded by the forward call

        def flat_fun(*arrays):
            # custom_function sees flat arrays in and out; the trees are rebuilt here
            new_args, new_kwargs = _replace_arrays(inputs, arrays)
            out = fun(*new_args, **new_kwargs)
            out_tree[:] = [out]
            return _arrays_in(out)

        cf = custom_function(flat_fun)

        @cf.vjp
        def _vjp(primals, cotangents, outputs):
            return vjp(flat_fun, list(primals), list(cotangents))[1]

        outs = cf(*_arrays_in(inputs))
        return _replace_arrays(out_tree[0], outs)

    return wrapped
