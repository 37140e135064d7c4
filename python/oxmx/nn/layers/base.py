"""``Module``: the base class of every layer (MLX's ``mlx.nn.Module``).

A module is a ``dict``: attributes whose values are arrays, dicts, lists, tuples
(and therefore sub-modules, which are dicts too) are stored as dict items, so the
module *is* its own parameter tree. Every other attribute (ints, strings, callables,
``None``) stays an ordinary Python attribute.
"""

import os
import textwrap
from typing import Any, Callable, List, Optional, Tuple, Union

import oxmx.core as mx
from oxmx.utils import tree_flatten

__all__ = ["Module"]

# Attribute values that become dict items (a Module is a dict, so it is covered).
_TREE_TYPES = (mx.array, dict, list, tuple)


def _identity(x):
    return x


def _default_is_leaf(module, key, value):
    return not isinstance(value, (dict, list))


def _unwrap(model, key, value, filter_fn, map_fn, is_leaf_fn):
    """One step of :meth:`Module.filter_and_map`: ``value`` lives at ``key`` of ``model``."""
    if is_leaf_fn(model, key, value):
        return map_fn(value)
    if isinstance(value, Module):
        return value.filter_and_map(filter_fn, map_fn, is_leaf_fn)
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            path = f"{key}.{k}"
            # A filtered-out entry keeps its place as an empty subtree, as in MLX.
            out[k] = _unwrap(model, path, v, filter_fn, map_fn, is_leaf_fn) if filter_fn(model, path, v) else {}
        return out
    if isinstance(value, list):
        out = []
        for i, v in enumerate(value):
            path = f"{key}.{i}"
            out.append(_unwrap(model, path, v, filter_fn, map_fn, is_leaf_fn) if filter_fn(model, path, v) else {})
        return out
    raise RuntimeError("Unexpected leaf found while traversing the module")


def _entries(node):
    """``(key, child)`` pairs of a dict or list node."""
    return node.items() if isinstance(node, dict) else enumerate(node)


def _is_empty_subtree(value):
    return isinstance(value, (dict, list)) and not isinstance(value, Module) and not value


def _update_parameters(dst, src, strict, path):
    """Copy the arrays of ``src`` into the matching places of ``dst`` (in place)."""
    for k, new in _entries(src):
        where = f"{path}.{k}" if path else str(k)
        if isinstance(dst, list):
            if not 0 <= k < len(dst):
                if strict:
                    raise ValueError(
                        f"[Module.update] List index {k} is out of bounds for destination of "
                        f"length {len(dst)} (parameter \"{where}\")."
                    )
                continue
        elif k not in dst:
            if strict:
                raise ValueError(f'[Module.update] Module does not have parameter named "{where}".')
            continue
        current = dst[k]
        if isinstance(new, mx.array) and not isinstance(current, (dict, list)):
            dst[k] = new
        elif isinstance(new, dict) and isinstance(current, dict) or isinstance(new, list) and isinstance(current, list):
            _update_parameters(current, new, strict, where)
        elif _is_empty_subtree(new):
            continue  # the {} that parameters() leaves for a non-parameter entry
        elif strict:
            raise ValueError(
                f"[Module.update] Received invalid type: {type(new).__name__} for parameter "
                f'"{where}", which holds a {type(current).__name__}.'
            )


def _update_modules(dst, src, strict, path):
    """Put the modules of ``src`` into the matching places of ``dst`` (in place)."""
    for k, new in _entries(src):
        where = f"{path}.{k}" if path else str(k)
        if isinstance(dst, list):
            if not 0 <= k < len(dst):
                if strict:
                    raise ValueError(
                        f"[Module.update_modules] List index {k} is out of bounds for destination "
                        f'of length {len(dst)} (sub-module "{where}").'
                    )
                continue
        elif k not in dst:
            if strict:
                raise ValueError(f'[Module.update_modules] Module does not have sub-module named "{where}".')
            continue
        current = dst[k]
        if isinstance(new, Module) and isinstance(current, Module):
            dst[k] = new
        elif (
            isinstance(new, dict) and not isinstance(new, Module) and isinstance(current, dict)
        ) or (isinstance(new, list) and isinstance(current, list)):
            _update_modules(current, new, strict, where)
        elif _is_empty_subtree(new):
            continue  # the {} that leaf_modules() leaves for a non-module entry
        elif strict:
            raise ValueError(
                f"[Module.update_modules] Received invalid type: {type(new).__name__} for "
                f'"{where}", which holds a {type(current).__name__}.'
            )


def _set_path(root, path, value):
    """Store ``value`` at the dotted ``path`` of ``root`` (every step must exist)."""
    *steps, last = path.split(".")
    node = root
    for step in steps:
        node = node[int(step)] if isinstance(node, list) else node[step]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


class Module(dict):
    """Base class for building neural networks (MLX's ``mlx.nn.Module``).

    Sub-classes assign arrays, sub-modules and lists/dicts of them as attributes; those
    become the module's parameters and children::

        class MLP(nn.Module):
            def __init__(self):
                super().__init__()
                self.layers = [nn.Linear(2, 8), nn.Linear(8, 1)]

            def __call__(self, x):
                return self.layers[1](nn.relu(self.layers[0](x)))
    """

    __call__: Callable

    def __init__(self):
        self._no_grad = set()
        self._training = True

    # ------------------------------------------------------------------ attributes
    @property
    def training(self):
        """Whether the module is in training mode (see :meth:`train`)."""
        return self._training

    @property
    def state(self):
        """The module's state dictionary: the module itself (it is a dict)."""
        return self

    def __getattr__(self, key: str):
        # Only reached when normal lookup fails: fall back to the dict items.
        if key in self:
            return self[key]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {key!r}")

    def __setattr__(self, key: str, val: Any):
        if isinstance(val, _TREE_TYPES):
            self.__dict__.pop(key, None)
            self[key] = val
        else:
            if key in self:
                del self[key]
            super().__setattr__(key, val)

    def __delattr__(self, key: str):
        if key in self:
            del self[key]
        else:
            super().__delattr__(key)

    def _extra_repr(self):
        """What goes between the parentheses of ``repr``; layers override it."""
        return ""

    def __repr__(self):
        children = tree_flatten(self.children(), is_leaf=self.is_module)
        text = f"{type(self).__name__}({self._extra_repr()}"
        for name, child in children:
            text += "\n" + textwrap.indent(f"({name}): {child!r}", "  ")
        if children:
            text += "\n"
        return text + ")"

    # ------------------------------------------------------------------ filters
    @staticmethod
    def is_module(value):
        """True for a :class:`Module`."""
        return isinstance(value, Module)

    @staticmethod
    def valid_child_filter(module, key, value):
        """Keep the containers that can hold child modules."""
        return isinstance(value, (dict, list))

    @staticmethod
    def valid_parameter_filter(module, key, value):
        """Keep arrays and containers whose key is not private (``_``-prefixed)."""
        return isinstance(value, (dict, list, mx.array)) and not key.startswith("_")

    @staticmethod
    def trainable_parameter_filter(module, key, value):
        """Like :meth:`valid_parameter_filter`, minus the frozen keys of ``module``."""
        return Module.valid_parameter_filter(module, key, value) and key not in module._no_grad

    def filter_and_map(
        self,
        filter_fn: Callable[["Module", str, Any], bool],
        map_fn: Optional[Callable] = None,
        is_leaf_fn: Optional[Callable[["Module", str, Any], bool]] = None,
    ):
        """Recursively select the contents for which ``filter_fn(module, key, value)``
        holds and transform the leaves with ``map_fn``.

        ``is_leaf_fn(module, key, value)`` says where to stop descending (default:
        anything that is not a dict or list). Sub-modules apply ``filter_fn`` with their
        own keys; inside a dict or list the key is the dotted path from the module, and
        a filtered-out entry becomes ``{}`` so that list positions are kept.
        """
        map_fn = map_fn or _identity
        is_leaf_fn = is_leaf_fn or _default_is_leaf
        return {
            k: _unwrap(self, k, v, filter_fn, map_fn, is_leaf_fn) for k, v in self.items() if filter_fn(self, k, v)
        }

    # ------------------------------------------------------------------ trees
    def parameters(self):
        """All the arrays of the module and its children, as a tree of dicts/lists."""
        return self.filter_and_map(self.valid_parameter_filter)

    def trainable_parameters(self):
        """The parameters that are not frozen (see :meth:`freeze`)."""
        return self.filter_and_map(self.trainable_parameter_filter)

    def children(self):
        """The direct sub-modules, in the containers that hold them."""
        return self.filter_and_map(self.valid_child_filter, is_leaf_fn=lambda m, k, v: isinstance(v, Module))

    def leaf_modules(self):
        """The sub-modules that have no sub-modules of their own."""

        def is_leaf_module(module, key, value):
            return isinstance(value, Module) and not tree_flatten(value.children(), is_leaf=Module.is_module)

        return self.filter_and_map(self.valid_child_filter, is_leaf_fn=is_leaf_module)

    def named_modules(self) -> List[Tuple[str, "Module"]]:
        """``[(dotted_name, module), ...]`` for this module (name ``""``) and every
        descendant, depth first."""
        out = []
        stack = [("", self)]
        while stack:
            prefix, module = stack.pop()
            out.append((prefix, module))
            for name, child in tree_flatten(module.children(), is_leaf=self.is_module):
                stack.append((f"{prefix}.{name}" if prefix else name, child))
        return out

    def modules(self) -> List["Module"]:
        """This module and all its descendants (the order of :meth:`named_modules`)."""
        return [m for _, m in self.named_modules()]

    # ------------------------------------------------------------------ updates
    def update(self, parameters: dict, strict: bool = True) -> "Module":
        """Replace parameters with the arrays of the (complete or partial) tree
        ``parameters``.

        With ``strict`` every key must name an existing parameter and every leaf must be
        an array; otherwise what does not fit is skipped. Shapes are not checked (use
        :meth:`load_weights` for that).
        """
        _update_parameters(self, parameters, strict, "")
        return self

    def update_modules(self, modules: dict, strict: bool = True) -> "Module":
        """Replace child modules with the modules of the (partial) tree ``modules``, the
        equivalent of :meth:`update` for sub-modules."""
        _update_modules(self, modules, strict, "")
        return self

    def apply(
        self,
        map_fn: Callable[[mx.array], mx.array],
        filter_fn: Optional[Callable[["Module", str, Any], bool]] = None,
    ) -> "Module":
        """Map every parameter selected by ``filter_fn`` (default: all of them) through
        ``map_fn`` and store the results."""
        filter_fn = filter_fn or self.valid_parameter_filter
        return self.update(self.filter_and_map(filter_fn, map_fn))

    def apply_to_modules(self, apply_fn: Callable[[str, "Module"], Any]) -> "Module":
        """Call ``apply_fn(name, module)`` on this module and every descendant."""
        for name, module in self.named_modules():
            apply_fn(name, module)
        return self

    def _own_parameter_keys(self):
        # The dotted keys of this module's arrays that do not belong to a child module.
        own = self.filter_and_map(lambda m, k, v: not isinstance(v, Module) and m.valid_parameter_filter(m, k, v))
        return [k for k, _ in tree_flatten(own)]

    def _check_keys(self, keys, strict, who):
        if keys is None:
            return None
        keys = [keys] if isinstance(keys, str) else list(keys)
        if strict:
            for k in keys:
                if k not in self:
                    raise KeyError(f"[Module.{who}] Module doesn't contain member {k}.")
        return keys

    def freeze(
        self, *, recurse: bool = True, keys: Optional[Union[str, List[str]]] = None, strict: bool = False
    ) -> "Module":
        """Stop computing gradients for some parameters (all of them by default).

        ``keys`` (a name or list of names, e.g. ``"bias"``) limits the freezing to those
        members, in this module and, with ``recurse``, in every descendant. ``strict``
        checks that this module has each of ``keys``. Idempotent.
        """
        keys = self._check_keys(keys, strict, "freeze")

        def freeze_one(_, module):
            module._no_grad.update(module._own_parameter_keys() if keys is None else keys)

        if recurse:
            self.apply_to_modules(freeze_one)
        else:
            freeze_one("", self)
        return self

    def unfreeze(
        self, *, recurse: bool = True, keys: Optional[Union[str, List[str]]] = None, strict: bool = False
    ) -> "Module":
        """Undo :meth:`freeze` for ``keys`` (all of them by default), with the same
        ``recurse``/``strict`` meaning."""
        keys = self._check_keys(keys, strict, "unfreeze")

        def unfreeze_one(_, module):
            if keys is None:
                module._no_grad.clear()
            else:
                module._no_grad.difference_update(keys)

        if recurse:
            self.apply_to_modules(unfreeze_one)
        else:
            unfreeze_one("", self)
        return self

    def _set_training_mode(self, mode: bool):
        """Switch this module alone; layers that store different state per mode
        (e.g. ``QQLinear``) override it."""
        self._training = mode

    def train(self, mode: bool = True) -> "Module":
        """Set training mode (``mode=True``) or evaluation mode on every module."""
        return self.apply_to_modules(lambda _, module: module._set_training_mode(mode))

    def eval(self) -> "Module":
        """Set evaluation mode: ``train(False)``."""
        return self.train(False)

    def set_dtype(
        self,
        dtype: mx.Dtype,
        predicate: Optional[Callable[[mx.Dtype], bool]] = lambda x: mx.issubdtype(x, mx.floating),
    ):
        """Cast the parameters whose dtype satisfies ``predicate`` (default: the floating
        ones, so integer buffers keep their type; ``None``: all) to ``dtype``."""
        if predicate is None:
            predicate = lambda _: True  # noqa: E731
        self.apply(lambda x: x.astype(dtype) if predicate(x.dtype) else x)

    # ------------------------------------------------------------------ files
    def load_weights(
        self, file_or_weights: Union[str, os.PathLike, List[Tuple[str, mx.array]], dict], strict: bool = True
    ) -> "Module":
        """Load parameters from a ``.npz``/``.safetensors`` file or a list of
        ``(dotted_name, array)`` pairs (a dict is accepted too).

        With ``strict`` the weights must match the model's parameters exactly: the same
        names and the same shapes (dtypes are taken from the weights). Otherwise only the
        names the model has are loaded and shapes are not checked.
        """
        if isinstance(file_or_weights, (str, os.PathLike)):
            loaded = mx.load(os.fspath(file_or_weights))
            if not isinstance(loaded, dict):
                raise ValueError(
                    f"[Module.load_weights] {os.fspath(file_or_weights)} holds a single array, not named weights."
                )
            weights = list(loaded.items())
        elif isinstance(file_or_weights, dict):
            weights = list(file_or_weights.items())
        else:
            weights = list(file_or_weights)
        for item in weights:
            if not (isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[0], str)):
                raise ValueError(f"[Module.load_weights] Expected (name, array) pairs but received {item!r}.")
            if not isinstance(item[1], mx.array):
                raise ValueError(
                    f"[Module.load_weights] Expected mx.array but received {type(item[1])} for parameter {item[0]}"
                )
        current = dict(tree_flatten(self.parameters()))
        new = dict(weights)
        if strict:
            extras = sorted(set(new) - set(current))
            if extras:
                raise ValueError(
                    f"[Module.load_weights] Received {len(extras)} parameters not in model: " + ", ".join(extras) + "."
                )
            missing = sorted(set(current) - set(new))
            if missing:
                raise ValueError(
                    f"[Module.load_weights] Missing {len(missing)} parameters: " + ", ".join(missing) + "."
                )
            for name, old in current.items():
                if new[name].shape != old.shape:
                    raise ValueError(
                        f"[Module.load_weights] Expected shape {tuple(old.shape)} but received shape "
                        f"{tuple(new[name].shape)} for parameter {name}"
                    )
        for name, value in new.items():
            if name in current:
                _set_path(self, name, value)
        return self

    def save_weights(self, file: Union[str, os.PathLike]):
        """Save the parameters to ``file``: ``.npz`` or ``.safetensors``, by extension."""
        path = os.fspath(file)
        params = dict(tree_flatten(self.parameters()))
        if path.endswith(".npz"):
            mx.savez(path, **params)
        elif path.endswith(".safetensors"):
            mx.save_safetensors(path, params)
        else:
            raise ValueError(
                f"[Module.save_weights] Unsupported file extension for {path}. Use '.npz' or '.safetensors'."
            )
