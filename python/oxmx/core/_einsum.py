"""``einsum`` and ``einsum_path`` (MLX's names), composed from oxmx.core ops.

The subscripts are parsed into one tuple of labels per operand (an ellipsis becomes one
private label per broadcast dimension, counted from the right) and the output labels.
The contraction order is NumPy's greedy path, which MLX also uses: at each step contract
the pair that removes the most elements (inputs' sizes minus the result's), then the
cheaper one; outer products only when no pair shares a label; never an intermediate larger
than the largest operand or the output; and nothing costlier than the naive sum. Where
no pair qualifies, the remaining operands are contracted in one step.

Each step is lowered onto existing ops, in the order MLX applies them (so result dtypes
agree): repeated labels of one operand become a diagonal (a strided slice of the
flattened square), labels only one operand has are summed first, a pair that shares a
summed label is one (batched) ``matmul`` and any other pair a broadcast ``multiply``, and a
final transpose gives the output order. Like MLX's, the contractions therefore need
floating point or complex operands. Being a composite, grad/vjp/jvp/vmap work through it.
"""

import itertools
import math
import string

from oxmx import _oxmx as _n

from ._device import stream as _stream

__all__ = ["einsum", "einsum_path"]

_LETTERS = frozenset(string.ascii_letters)
_ELLIPSIS = "..."


class _OperandTypeError(TypeError, RuntimeError):
    """A non-array operand: a TypeError, and a RuntimeError as MLX's (``std::bad_cast``)."""


# ---------------------------------------------------------------- parsing
class _Expr:
    """A parsed equation: ``terms[i]`` the labels of operand ``i`` (one per dimension),
    ``output`` the output labels, ``sizes`` each label's broadcast size."""

    def __init__(self, terms, output, sizes):
        self.terms = terms
        self.output = output
        self.sizes = sizes


def _ell_labels(n):
    """Private labels of ``n`` ellipsis dimensions, leftmost first (no letter collides)."""
    return tuple(f"{_ELLIPSIS}{k}" for k in reversed(range(n)))


def _split_term(op, term):
    """``(before, has_ellipsis, after)`` of one subscript, its characters checked."""
    if term.count(_ELLIPSIS) > 1:
        raise ValueError(f"[{op}] Only one ellipsis per subscript is allowed but found more in '{term}'.")
    before, ell, after = term.partition(_ELLIPSIS)
    for c in before + after:
        if c not in _LETTERS:
            raise ValueError(f"[{op}] Subscripts must be letters, but got '{c}'.")
    return before, bool(ell), after


def _check_args(op, subscripts, operands):
    if not isinstance(subscripts, str):
        raise TypeError(f"[{op}] subscripts must be a string, got {type(subscripts).__name__}.")
    for i, x in enumerate(operands):
        if not isinstance(x, _n.array):
            raise _OperandTypeError(f"[{op}] Operand {i} must be an array, got {type(x).__name__}.")
    if not operands:
        raise ValueError(f"[{op}] At least one operand is required.")


def _operand_labels(op, i, before, ell, after, shape):
    nd = len(shape)
    named = len(before) + len(after)
    if not ell and named != nd:
        raise ValueError(f"[{op}] Invalid number of subscripts {named} for input {i} with {nd} dimensions.")
    if ell and nd < named:
        raise ValueError(
            f"[{op}] Operand {i} with shape {_fmt_shape(shape)} has insufficient dimensions for subscript "
            f"'{before}...{after}'. The ellipsis requires at least {named} dimensions but the operand has {nd} dimensions."
        )
    return tuple(before) + (_ell_labels(nd - named) if ell else ()) + tuple(after)


def _fmt_shape(shape):
    return "(" + ",".join(str(s) for s in shape) + ")"


def _sizes(op, terms, shapes):
    """Each label's size: equal within an operand (a diagonal), broadcast across them."""
    sizes = {}
    for i, (labels, shape) in enumerate(zip(terms, shapes)):
        own = {}
        for d, (label, n) in enumerate(zip(labels, shape)):
            if own.setdefault(label, n) != n:
                raise ValueError(f"[{op}] Dimensions of repeated subscripts do not have the same size ({own[label]} != {n}).")
            old = sizes.get(label)
            if old is None or old == 1:
                sizes[label] = n
            elif n != 1 and n != old:
                raise ValueError(
                    f"[{op}] Cannot broadcast dimension {d} of input {i} with shape {_fmt_shape(shape)} to size {old}."
                )
    return sizes


def _output(op, out, terms, n_ell):
    """The output labels: as written (``out``), or NumPy's implicit order when ``out`` is
    None (the ellipsis dimensions, then the letters used exactly once, sorted)."""
    counts = {}
    for labels in terms:
        for label in labels:
            counts[label] = counts.get(label, 0) + 1
    if out is None:
        once = sorted(label for label, c in counts.items() if c == 1 and not label.startswith(_ELLIPSIS))
        return _ell_labels(n_ell) + tuple(once)
    before, ell, after = _split_term(op, out)
    labels = tuple(before) + (_ell_labels(n_ell) if ell else ()) + tuple(after)
    for label in before + after:
        if label not in counts:
            raise ValueError(f"[{op}] Output subscript '{label}' does not appear in any input subscript.")
    if len(set(labels)) != len(labels):
        raise ValueError(f"[{op}] Repeat indices not allowed in output.")
    return labels


def _parse(op, subscripts, operands):
    _check_args(op, subscripts, operands)
    eq = subscripts.replace(" ", "")
    lhs, arrow, out = eq.partition("->")
    parts = [_split_term(op, t) for t in lhs.split(",")]
    if len(parts) != len(operands):
        raise ValueError(
            f"[{op}] Number of operands, {len(operands)}, does not match number of input subscripts, {len(parts)}"
        )
    shapes = [tuple(x.shape) for x in operands]
    terms = [_operand_labels(op, i, *p, s) for i, (p, s) in enumerate(zip(parts, shapes))]
    sizes = _sizes(op, terms, shapes)
    n_ell = max(sum(1 for label in t if label.startswith(_ELLIPSIS)) for t in terms)
    return _Expr(terms, _output(op, out if arrow else None, terms, n_ell), sizes)


# ---------------------------------------------------------------- the contraction path
def _size(labels, sizes):
    return math.prod(sizes[label] for label in labels)


def _flops(labels, inner, n_terms, sizes):
    """NumPy's flop count of one contraction over ``labels`` of ``n_terms`` operands."""
    return _size(labels, sizes) * (max(1, n_terms - 1) + (1 if inner else 0))


def _contraction(positions, sets, output):
    """``(result labels, summed labels, all labels)`` of contracting ``sets[positions]``."""
    inside, keep = set(), set(output)
    for k, s in enumerate(sets):
        if k in positions:
            inside |= s
        else:
            keep |= s
    result = inside & keep
    return result, inside - result, inside


def _naive_flops(sets, output, sizes):
    _, removed, labels = _contraction(range(len(sets)), sets, output)
    return _flops(labels, bool(removed), len(sets), sizes)


class _Greedy:
    """NumPy's greedy search (``optimize='greedy'``) as MLX's ``einsum_path`` runs it: the
    one difference is that when no pair of a step shares a label, MLX looks for outer
    products among that step's pairs only (NumPy among all pairs)."""

    def __init__(self, sets, output, sizes):
        self.sets = [set(s) for s in sets]
        self.output = set(output)
        self.sizes = sizes
        # intermediates never outgrow the largest operand or the output
        self.limit = max(_size(s, sizes) for s in self.sets + [self.output])
        self.naive = _naive_flops(self.sets, self.output, sizes)
        self.cost = 0

    def candidate(self, pair):
        """``((-removed size, flops), pair, result labels)``, or None when ruled out."""
        result, removed, labels = _contraction(pair, self.sets, self.output)
        size = _size(result, self.sizes)
        if size > self.limit:
            return None
        gone = sum(_size(self.sets[p], self.sizes) for p in pair) - size
        flops = _flops(labels, bool(removed), 2, self.sizes)
        if self.cost + flops > self.naive:
            return None
        return ((-gone, flops), pair, result)

    def scan(self, pairs, outer):
        found = []
        for p in pairs:
            if outer or not self.sets[p[0]].isdisjoint(self.sets[p[1]]):
                c = self.candidate(p)
                if c is not None:
                    found.append(c)
        return found

    def path(self):
        n = len(self.sets)
        if n < 3:
            return [tuple(range(n))]
        path, known = [], []
        pairs = list(itertools.combinations(range(n), 2))
        for _ in range(n - 1):
            known += self.scan(pairs, outer=False)
            if not known:
                # no pair shares a label: outer products (of this step's pairs) then
                known = self.scan(pairs, outer=True)
                if not known:
                    path.append(tuple(range(len(self.sets))))
                    break
            best = min(known, key=lambda c: c[0])
            known = _renumber(known, best[1])
            self.sets = [s for k, s in enumerate(self.sets) if k not in best[1]] + [best[2]]
            new = len(self.sets) - 1
            pairs = [(i, new) for i in range(new)]
            path.append(best[1])
            self.cost += best[0][1]
        return path


def _renumber(known, done):
    """The candidates that survive contracting the pair ``done``, renumbered."""
    bx, by = done
    out = []
    for key, (x, y), result in known:
        if x in done or y in done:
            continue
        out.append((key, (x - (x > bx) - (x > by), y - (y > bx) - (y > by)), result))
    return out


def _report(subscripts, expr, path):
    """MLX's summary: NumPy's, without its "+ 1" in the optimized count and its table."""
    sets = [set(t) for t in expr.terms]
    output = set(expr.output)
    naive = _naive_flops(sets, output, expr.sizes)
    n_labels = len(set().union(*sets))
    scaling, flops = 0, 0
    for step in path:
        result, removed, labels = _contraction(step, sets, output)
        scaling = max(scaling, len(labels))
        flops += _flops(labels, bool(removed), len(step), expr.sizes)
        sets = [s for k, s in enumerate(sets) if k not in step] + [result]
    return (
        f"  Complete contraction:  {subscripts}\n"
        f"         Naive scaling:  {n_labels}\n"
        f"     Optimized scaling:  {scaling}\n"
        f"      Naive FLOP count:  {naive}\n"
        f"  Optimized FLOP count:  {flops}\n"
    )


# ---------------------------------------------------------------- lowering onto ops
def _diagonals(x, labels):
    """Collapse every repeated label of one operand onto its diagonal."""
    labels = list(labels)
    while len(set(labels)) != len(labels):
        dup = next(label for label in labels if labels.count(label) > 1)
        i = labels.index(dup)
        j = labels.index(dup, i + 1)
        rest = [k for k in range(len(labels)) if k not in (i, j)]
        n = x.shape[i]
        x = _n.transpose(x, rest + [i, j])
        # the diagonal of an n x n square is every (n+1)-th element of its flattening
        x = x.reshape(tuple(x.shape[:-2]) + (n * n,))[..., :: n + 1]
        labels = [labels[k] for k in rest] + [dup]
    return x, labels


def _sum_out(x, labels, keep):
    """Sum the labels not in ``keep``."""
    axes = [k for k, label in enumerate(labels) if label not in keep]
    if not axes:
        return x, labels
    return _n.sum(x, axis=axes), [label for label in labels if label in keep]


def _reshape(x, shape):
    """``x`` in ``shape``; ``x`` itself when it has that shape already (no graph node)."""
    return x if tuple(x.shape) == tuple(shape) else x.reshape(shape)


def _transpose(x, labels, order):
    perm = [labels.index(label) for label in order]
    return x if perm == list(range(len(perm))) else _n.transpose(x, perm)


def _aligned(x, labels, order):
    """``x`` with its labels in ``order``, a size-1 dimension for each one it lacks."""
    mine = [label for label in order if label in labels]
    x = _transpose(x, labels, mine)
    shape = iter(x.shape)
    return x.reshape(tuple(next(shape) if label in labels else 1 for label in order))


def _check_matmul_dtype(x, y, inner):
    # MLX's matmul wants an inexact result type: one inexact operand is enough
    if not (_n.issubdtype(x.dtype, _n.inexact) or _n.issubdtype(y.dtype, _n.inexact)):
        raise ValueError(
            f"[einsum] Summing index '{inner[0]}' over two operands is a matmul, which supports only floating point "
            f"and complex types, but the operands are {_dt(x.dtype)} and {_dt(y.dtype)}."
        )


def _dt(dtype):
    return str(dtype).rsplit(".", 1)[-1]


def _pair(x, xl, y, yl, keep):
    """Contract two operands; labels not in ``keep`` and held by both are summed."""
    shared = [label for label in xl if label in yl]
    batch = [label for label in shared if label in keep]
    inner = [label for label in shared if label not in keep]
    x_own = [label for label in xl if label not in yl]
    y_own = [label for label in yl if label not in xl]
    if not inner:
        order = batch + x_own + y_own
        return _n.multiply(_aligned(x, xl, order), _aligned(y, yl, order)), order
    _check_matmul_dtype(x, y, inner)
    x = _transpose(x, xl, batch + x_own + inner)
    y = _transpose(y, yl, batch + inner + y_own)
    nb, nx, ni = len(batch), len(x_own), len(inner)
    # a summed label of size 1 on one side only: sum the other side over it first
    for k in range(ni):
        if x.shape[nb + nx + k] != y.shape[nb + k]:
            if x.shape[nb + nx + k] == 1:
                y = _n.sum(y, axis=nb + k, keepdims=True)
            else:
                x = _n.sum(x, axis=nb + nx + k, keepdims=True)
    x_sizes = tuple(x.shape[nb:nb + nx])
    y_sizes = tuple(y.shape[nb + ni:])
    k = math.prod(x.shape[nb + nx:])
    x = _reshape(x, tuple(x.shape[:nb]) + (math.prod(x_sizes), k))
    y = _reshape(y, tuple(y.shape[:nb]) + (k, math.prod(y_sizes)))
    r = _n.matmul(x, y)
    return _reshape(r, tuple(r.shape[:nb]) + x_sizes + y_sizes), batch + x_own + y_own


def _evaluate(expr, operands, path):
    output = set(expr.output)
    ops = []
    for i, x in enumerate(operands):
        x, labels = _diagonals(x, expr.terms[i])
        others = set(output)
        for j, t in enumerate(expr.terms):
            if j != i:
                others.update(t)
        ops.append(_sum_out(x, labels, others))
    for step in path:
        group = [ops[k] for k in step]
        rest = [o for k, o in enumerate(ops) if k not in step]
        outside = set(output)
        for _, labels in rest:
            outside.update(labels)
        x, xl = group[0]
        for m in range(1, len(group)):
            keep = set(outside)
            for _, labels in group[m + 1:]:
                keep.update(labels)
            x, xl = _sum_out(*_pair(x, xl, *group[m], keep), keep)
        x, xl = _sum_out(x, xl, outside)
        ops = rest + [(x, xl)]
    x, labels = ops[0]
    # always a node of its own: the result is a new array even for einsum("ij", a)
    x = _n.transpose(x, [labels.index(label) for label in expr.output])
    shape = tuple(expr.sizes[label] for label in expr.output)
    return x if tuple(x.shape) == shape else _n.broadcast_to(x, shape)


# ---------------------------------------------------------------- public API
_PLANS = {}
_MAX_PLANS = 256


def _plan(subscripts, operands):
    """The parsed expression and greedy path of an einsum call, kept per (subscripts,
    shapes): a repeated call (a training step) pays only for the contractions."""
    _check_args("einsum", subscripts, operands)
    key = (subscripts, tuple(tuple(x.shape) for x in operands))
    hit = _PLANS.get(key)
    if hit is None:
        expr = _parse("einsum", subscripts, operands)
        hit = (expr, _Greedy(expr.terms, expr.output, expr.sizes).path())
        if len(_PLANS) >= _MAX_PLANS:
            _PLANS.clear()
        _PLANS[key] = hit
    return hit


def einsum_path(subscripts, *operands):
    """Compute the contraction order for the given Einstein summation.

    Returns ``(path, report)``: the list of contracted operand positions per step (each
    step's result goes last, as in NumPy) and a printable summary of its cost.
    """
    expr = _parse("einsum_path", subscripts, operands)
    path = _Greedy(expr.terms, expr.output, expr.sizes).path()
    return path, _report(subscripts, expr, path)


def einsum(subscripts, *operands, stream=None):
    """Perform the Einstein summation convention on the operands.

    Contractions are implemented with :func:`matmul` and have the same requirements.
    """
    expr, path = _plan(subscripts, operands)
    if stream is None:
        return _evaluate(expr, operands, path)
    with _stream(stream):
        return _evaluate(expr, operands, path)
