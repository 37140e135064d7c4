"""``mx.compile``: trace a function once per input signature, then replay the recorded
graph for later calls (no Python runs on a cache hit).

The trace is the engine's ``Tape``: the primitives between the inputs and the outputs,
with arrays that do not depend on the inputs kept as constants. State named by
``inputs=``/``outputs=`` (for example ``mx.random.state`` or a model's parameters) is
read as extra inputs and written back as extra outputs on every call. At capture the
engine merges common subexpressions, drops unused steps and fuses chains of elementwise
ops into one kernel each (``OXMX_COMPILE_DEBUG=1`` prints the fused groups); fused
results equal uncompiled results bit for bit.
"""

import collections
import functools
import os

from oxmx import _oxmx as _native
from oxmx._oxmx import array

from ._transforms import _replace_arrays as _rebuild

_T = _native.transforms

__all__ = ["compile", "disable_compile", "enable_compile"]

_enabled = not any(os.environ.get(v, "") not in ("", "0") for v in ("OXMX_DISABLE_COMPILE", "MLX_DISABLE_COMPILE"))


def disable_compile():
    """Make every compiled function run uncompiled (as with ``OXMX_DISABLE_COMPILE=1``)."""
    global _enabled
    _enabled = False


def enable_compile():
    """Undo :func:`disable_compile`."""
    global _enabled
    _enabled = True


class _Slot:
    """A place holding an array inside a mutable container (list item, dict value or
    attribute-backed container), so captured state can be read and written back."""

    __slots__ = ("container", "key")

    def __init__(self, container, key):
        self.container = container
        self.key = key

    def get(self):
        return self.container[self.key]

    def set(self, value):
        self.container[self.key] = value


def _state_slots(tree):
    """Slots of every array in a state tree (lists, dicts, dict-like objects such as
    modules, and ``mx.random.state``)."""
    slots = []
    stack = [tree]
    seen = set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, dict):
            items = list(node.items())
        elif isinstance(node, (list, tuple)) or type(node).__name__ == "_RandomState":
            items = list(enumerate(node))
        else:
            continue
        for k, v in reversed(items):
            if isinstance(v, array):
                if isinstance(node, tuple):
                    raise ValueError("[compile] Captured state must be in mutable containers (lists or dicts), not tuples.")
                slots.append(_Slot(node, k))
            else:
                stack.append(v)
    slots.reverse()
    return slots


def _signature(tree, arrays, shapeless=False):
    """A hashable description of the argument tree: structure, array shapes (only ranks
    when ``shapeless``) and dtypes, and the values of non-array leaves (constants).
    Appends the arrays in order."""

    def walk(node):
        if isinstance(node, array):
            arrays.append(node)
            return ("A", node.ndim if shapeless else tuple(node.shape), str(node.dtype))
        if isinstance(node, (list, tuple)):
            return (type(node).__name__, tuple(walk(c) for c in node))
        if isinstance(node, dict):
            return ("dict", tuple((k, walk(v)) for k, v in node.items()))
        return ("C", type(node).__name__, node)

    return walk(tree)


# Tapes rebuilt for new input shapes that a shapeless function (or an imported shapeless
# trace) keeps; beyond this the least recently used one is dropped (and rebuilt if its
# shapes come back), so inputs of ever new sizes do not grow memory without bound.
SHAPE_CACHE_SIZE = 64


class LruTapes:
    """A bounded map from input shapes to tapes, least recently used dropped first."""

    def __init__(self, size=None):
        self.size = SHAPE_CACHE_SIZE if size is None else size
        self._d = collections.OrderedDict()

    def get(self, key):
        tape = self._d.get(key)
        if tape is not None:
            self._d.move_to_end(key)
        return tape

    def put(self, key, tape):
        self._d[key] = tape
        self._d.move_to_end(key)
        while len(self._d) > max(1, self.size):
            self._d.popitem(last=False)

    def __len__(self):
        return len(self._d)


class _Shapeless:
    """The tapes of one shapeless trace: the traced one, and one per further input
    shapes (the most recent `SHAPE_CACHE_SIZE`), each rebuilt from the traced graph
    without running the function again."""

    def __init__(self, tape, shapes):
        self.traced = tape  # kept apart: the graph of new shapes is taken from it
        self.tapes = LruTapes()
        self.tapes.put(shapes, tape)
        self.graph = None

    def tape_for(self, values):
        shapes = tuple(tuple(a.shape) for a in values)
        tape = self.tapes.get(shapes)
        if tape is None:
            if self.graph is None:
                self.graph = self.traced.graph(True)
            tape = self.graph.tape(values, False)
            self.tapes.put(shapes, tape)
        return tape


def compile(fun, inputs=None, outputs=None, shapeless=False):
    """A compiled version of ``fun`` (same results; traced once per input shapes,
    dtypes and constant arguments). ``inputs``/``outputs`` name state the function reads
    or updates besides its arguments. With ``shapeless``, inputs of new sizes (same
    ranks and dtypes) reuse the trace: its graph is rebuilt for the new shapes without
    calling ``fun``; a graph whose steps depend on the traced shapes (a reshape that
    merges axes, a slice, ...) raises ``ValueError`` for new shapes."""
    cache = {}

    @functools.wraps(fun)
    def compiled(*args, **kwargs):
        if not _enabled:
            return fun(*args, **kwargs)
        arrays = []
        sig = _signature((args, kwargs), arrays, shapeless)
        in_slots = _state_slots(inputs) if inputs is not None else []
        state_in = [s.get() for s in in_slots]
        state_sig = tuple((a.ndim if shapeless else tuple(a.shape), str(a.dtype)) for a in state_in)
        key = (sig, state_sig)
        try:
            entry = cache.get(key)
        except TypeError:  # an unhashable constant: trace every call
            key, entry = None, None
        if entry is not None:
            tape, n_out, out_tree, out_slot_count = entry
            if shapeless:
                tape = tape.tape_for(arrays + state_in)
            res = tape.replay(arrays + state_in)
            # The replay runs no Python: when the outputs are the inputs' tree, the
            # containers walked a moment ago are still the ones to write.
            if outputs is inputs:
                out_slots = in_slots
            else:
                out_slots = _state_slots(outputs) if outputs is not None else []
            if len(out_slots) != out_slot_count:
                entry = None  # the state changed shape: trace again
            else:
                for s, v in zip(out_slots, res[n_out:]):
                    s.set(v)
                return _rebuild(out_tree, res[:n_out])
        with _T._Trace(False, shapeless) as trace:
            leaves = [trace.leaf(a) for a in arrays]
            state_leaves = [trace.leaf(a) for a in state_in]
            for s, l in zip(in_slots, state_leaves):
                s.set(l)
            try:
                call_args, call_kwargs = _rebuild((args, kwargs), leaves)
                out = fun(*call_args, **call_kwargs)
            except BaseException:
                for s, a in zip(in_slots, state_in):
                    s.set(a)
                raise
            outs = []
            out_tree = out
            _signature(out, outs)
            out_slots = _state_slots(outputs) if outputs is not None else []
            state_out = [s.get() for s in out_slots]
            tape = _T.capture(leaves + state_leaves, outs + state_out)
        # The first call's results come from replaying the tape too, so they are the
        # same graph later calls get (and hold no trace placeholders).
        res = tape.replay(arrays + state_in)
        for s, v in zip(out_slots, res[len(outs) :]):
            s.set(v)
        # state slots that were inputs only get their original values back
        out_ids = {(id(s.container), s.key) for s in out_slots}
        for s, a in zip(in_slots, state_in):
            if (id(s.container), s.key) not in out_ids:
                s.set(a)
        if key is not None:
            if shapeless:
                tape = _Shapeless(tape, tuple(tuple(a.shape) for a in arrays + state_in))
            cache[key] = (tape, len(outs), out_tree, len(out_slots))
        return _rebuild(out_tree, res[: len(outs)])

    return compiled
