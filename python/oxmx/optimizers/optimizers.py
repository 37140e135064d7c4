"""MLX's optimizers (``mlx.optimizers``) over ``oxmx.core``.

An optimizer keeps one state tree, ``Optimizer.state``: the hyper-parameters it may put
on a schedule (``learning_rate``), the ``step`` counter, and one dict of arrays per
parameter, laid out like the parameter tree. The state is updated in place, so that
``mx.compile(..., inputs=state, outputs=state)`` can capture it, and it round-trips
through ``tree_flatten`` + ``mx.save_safetensors`` / ``mx.load`` + ``tree_unflatten``.
"""

import math
from typing import Callable, List, Optional, Tuple, Union

import oxmx.core as mx
from oxmx.optimizers import _fused
from oxmx.utils import tree_flatten, tree_map, tree_merge

__all__ = [
    "Optimizer",
    "MultiOptimizer",
    "SGD",
    "RMSprop",
    "Adagrad",
    "AdaDelta",
    "Adam",
    "AdamW",
    "Adamax",
    "Lion",
    "Adafactor",
    "Muon",
    "clip_grad_norm",
]

_Schedulable = Union[float, Callable[[mx.array], mx.array]]


def _where(path: str) -> str:
    return repr(path) if path else "the root"


def _join(path: str, key) -> str:
    return f"{path}.{key}" if path else str(key)


def _dotted(keys) -> str:
    return ".".join(map(str, keys))


def _is_empty_tree(node) -> bool:
    """An empty dict/list/tuple: a module without parameters; it holds no leaves."""
    return isinstance(node, (dict, list, tuple)) and len(node) == 0


def _check_betas(name, betas):
    if len(betas) != 2:
        raise ValueError(f"[{name}] betas must be a pair (beta1, beta2), got {len(betas)} values.")
    for label, beta in zip(("beta1", "beta2"), betas):
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"[{name}] {label} should be in [0, 1), {beta} was provided instead")


def _check_at_least(name, label, value, low, strict):
    if not (value > low if strict else value >= low):
        raise ValueError(f"[{name}] {label} should be {'>' if strict else '>='}{low}, {value} was provided instead")


class Optimizer:
    """The base class for all optimizers. It allows us to implement an
    optimizer on a per-parameter basis and apply it to a parameter tree.

    Subclasses implement :meth:`init_single` and :meth:`apply_single`; this class
    walks the trees, keeps ``step``, and evaluates schedules.
    """

    def __init__(self, schedulers=None):
        self._initialized = False
        # Validated against the full parameter tree on the first update after the
        # state was created or assigned (catches state restored for another model).
        self._checked = False
        self._state = {"step": mx.array(0, mx.uint64)}
        self._schedulers = dict(schedulers or {})

    def _name(self) -> str:
        return type(self).__name__

    def _error(self, kind, message):
        """``kind("[ClassName] message")``."""
        return kind(f"[{self._name()}] {message}")

    # -- public API -------------------------------------------------------

    def update(self, model, gradients: dict):
        """Apply the gradients to the parameters of the model and update the
        model with the new parameters.

        Args:
            model (oxmx.nn.Module): A module to be updated.
            gradients (dict): A Python tree of gradients, most likely computed
                via :func:`oxmx.nn.value_and_grad`.
        """
        model.update(self.apply_gradients(gradients, model))

    def init(self, parameters: dict):
        """Initialize the optimizer's state.

        Optional: the optimizer initializes itself on the first update. Calling it
        explicitly gives access to :attr:`state` before that update. Entries that
        already exist (e.g. restored from a file) are kept, after checking that they
        have the keys and shapes this optimizer would have created.

        Args:
            parameters (dict): A Python tree of parameters.
        """
        self._require_dict_root(parameters, "parameters")
        self._fill_state(parameters, self._state, "", root=True)
        self._initialized = True

    def init_single(self, parameter: mx.array, state: dict):
        """To be extended by the children classes to implement each optimizer's
        state initialization.

        Args:
            parameter (array): A single parameter that will be optimized.
            state (dict): The optimizer's state (for this parameter), filled in place.
        """
        raise NotImplementedError

    def apply_gradients(self, gradients: dict, parameters: dict):
        """Apply the gradients to the parameters and return the updated parameters.

        Can be used to update a model via
        ``model.update(opt.apply_gradients(grads, model))`` which is precisely
        how :meth:`Optimizer.update` is implemented.

        Args:
            gradients (dict): A Python tree of gradients.
            parameters (dict): A Python tree of parameters. It can be a
              superset of the gradients. In that case the returned python
              tree will be of the same structure as the gradients.
        """
        self._require_dict_root(gradients, "gradients")
        self._require_dict_root(parameters, "parameters")
        # Match everything before touching the state, so that a mismatch leaves the
        # optimizer exactly as it was.
        leaves = []
        skeleton = self._pair(gradients, parameters, (), leaves)
        if not self._initialized:
            self.init(gradients)
        if not self._checked:
            self._check_no_unknown_state(parameters)
            self._checked = True
        states = [self._state_at(keys) for keys, _, _ in leaves]

        for name, schedule in self._schedulers.items():
            self._state[name] = schedule(self.step)
        self._state["step"] = self.step + 1

        updated = [self.apply_single(g, p, s) for (_, g, p), s in zip(leaves, states)]
        return tree_map(lambda i: updated[i], skeleton)

    def apply_single(self, gradient: mx.array, parameter: mx.array, state: dict):
        """To be extended by derived classes to implement the optimizer's update.

        Args:
            gradient (array): The ``parameter`` gradient.
            parameter (array): The ``parameter`` to update.
            state (dict): The optimizer's state (for this parameter), updated in place.
        """
        raise NotImplementedError

    @property
    def state(self):
        """The optimizer's state dictionary."""
        return self._state

    @state.setter
    def state(self, state: dict):
        if not isinstance(state, dict):
            raise self._error(TypeError, f"state must be a dict, got {type(state).__name__}.")
        if "step" not in state:
            raise self._error(KeyError, "state has no 'step' entry.")
        for key, value in self._state.items():
            # Hyper-parameters (arrays at the top) must come back unless a schedule
            # recomputes them on the next update.
            if isinstance(value, mx.array) and key not in self._schedulers and key not in state:
                raise self._error(KeyError, f"state has no {key!r} entry.")
        self._initialized = False
        self._checked = False
        self._state = state

    @property
    def step(self):
        """The number of updates applied so far (a ``uint64`` array)."""
        return self.state["step"]

    @property
    def learning_rate(self):
        """The current learning rate (an array); assign a number or an array to change it."""
        try:
            return self.state["learning_rate"]
        except KeyError:
            raise self._error(KeyError, "this optimizer has no learning_rate; set one first.") from None

    @learning_rate.setter
    def learning_rate(self, learning_rate: Union[float, mx.array]):
        self.state["learning_rate"] = self._as_array("learning_rate", learning_rate)

    def _maybe_schedule(self, name: str, param: _Schedulable):
        """To be used by derived classes to optionally put a parameter on a schedule.

        A callable is evaluated at every update with the current step (before the
        update increments it); anything else is stored as a constant array.
        """
        if callable(param):
            self._schedulers[name] = param
            value = param(self.step)
        else:
            value = self._as_array(name, param)
        self.state[name] = value

    # -- helpers ----------------------------------------------------------

    def _as_array(self, name, value):
        if callable(value):
            raise TypeError(
                f"[{self._name()}] {name} must be a number or an array; pass a schedule to the constructor instead."
            )
        if value is None:
            raise self._error(TypeError, f"{name} must be a number or an array, got None.")
        try:
            return mx.array(value)
        except (TypeError, ValueError) as e:
            raise type(e)(f"[{self._name()}] invalid {name} {value!r}: {e}") from None

    def _require_dict_root(self, tree, what):
        if not isinstance(tree, dict):
            kind = type(tree).__name__
            raise self._error(TypeError, f"{what} must be a dict tree (e.g. model.parameters()), got {kind}.")

    def _fill_state(self, params, state, path, root=False):
        """Create the missing state for ``params`` inside ``state`` (in place where
        ``state`` is a dict) and check what is already there; returns the state node."""
        if isinstance(params, dict):
            state = {} if state is None else state
            if not isinstance(state, dict):
                raise self._error(ValueError, f"optimizer state at {_where(path)} is not a dict.")
            for key, child in params.items():
                if root and isinstance(state.get(key), mx.array):
                    raise self._error(ValueError, f"parameter {key!r} clashes with the optimizer's own state entry.")
                state[key] = self._fill_state(child, state.get(key), _join(path, key))
            return state
        if isinstance(params, (list, tuple)):
            state = [] if state is None else state
            if not isinstance(state, (list, tuple)) or len(state) > len(params):
                raise self._error(ValueError, f"optimizer state at {_where(path)} does not match the parameters.")
            padded = list(state) + [None] * (len(params) - len(state))
            return type(params)(
                self._fill_state(p, s, _join(path, i)) for i, (p, s) in enumerate(zip(params, padded))
            )
        if not isinstance(params, mx.array):
            kind = type(params).__name__
            raise self._error(TypeError, f"parameter {_where(path)} is a {kind}, expected an array.")
        if state is None or (isinstance(state, dict) and not state):
            state = {}
            self.init_single(params, state)
            return state
        self._check_leaf_state(params, state, path)
        return state

    def _check_leaf_state(self, parameter, state, path):
        """Existing state must have exactly the keys and shapes that init_single makes."""
        if not isinstance(state, dict):
            raise self._error(ValueError, f"optimizer state for parameter {_where(path)} is not a dict.")
        fresh = {}
        self.init_single(parameter, fresh)
        for key, value in state.items():
            where = _join(path, key)
            if key not in fresh:
                raise self._error(ValueError, f"unknown optimizer state key {where!r}.")
            want = fresh[key].shape if isinstance(fresh[key], mx.array) else None
            have = value.shape if isinstance(value, mx.array) else type(value).__name__
            if want is not None and have != want:
                raise self._error(
                    ValueError, f"optimizer state {where!r} has shape {have} but parameter {_where(path)} needs {want}."
                )
        for key in fresh:
            if key not in state:
                raise self._error(KeyError, f"optimizer state {_join(path, key)!r} is missing.")

    def _check_no_unknown_state(self, parameters):
        """Every per-parameter state entry must belong to an existing parameter and have
        the keys and shapes that parameter needs (a restore mistake otherwise)."""
        stack = [(self._state, parameters, "")]
        while stack:
            state, params, path = stack.pop()
            if state is None or _is_empty_tree(state):
                continue  # nothing stored here (a gap left by tree_unflatten)
            if isinstance(params, mx.array):
                self._check_leaf_state(params, state, path)
            elif isinstance(params, dict) and isinstance(state, dict):
                for key, child in state.items():
                    if not path and isinstance(child, mx.array):
                        continue  # step, learning_rate and other hyper-parameters
                    if key not in params:
                        raise self._error(ValueError, f"optimizer state {_join(path, key)!r} matches no parameter.")
                    stack.append((child, params[key], _join(path, key)))
            elif isinstance(params, (list, tuple)) and isinstance(state, (list, tuple)) and len(state) <= len(params):
                stack.extend((child, params[i], _join(path, i)) for i, child in enumerate(state))
            else:
                raise self._error(ValueError, f"optimizer state at {_where(path)} does not match the parameters.")

    def _pair(self, grads, params, keys, leaves):
        """Append ``(keys, gradient, parameter)`` for every gradient leaf to ``leaves``
        (``keys``: its path as a tuple); return the gradient tree with leaves replaced
        by their index in ``leaves``."""
        if _is_empty_tree(grads):
            return type(grads)()
        if isinstance(grads, dict):
            if not isinstance(params, dict):
                where = _where(_dotted(keys))
                raise self._error(ValueError, f"gradients at {where} form a dict but the parameters do not.")
            out = {}
            for key, g in grads.items():
                if key not in params:
                    raise self._error(KeyError, f"gradient {_dotted(keys + (key,))!r} has no matching parameter.")
                out[key] = self._pair(g, params[key], keys + (key,), leaves)
            return out
        if isinstance(grads, (list, tuple)):
            if not isinstance(params, (list, tuple)) or len(grads) > len(params):
                raise self._error(ValueError, f"gradients at {_where(_dotted(keys))} do not match the parameters.")
            return type(grads)(self._pair(g, params[i], keys + (i,), leaves) for i, g in enumerate(grads))
        where = _where(_dotted(keys))
        if not isinstance(grads, mx.array):
            raise self._error(TypeError, f"gradient {where} is a {type(grads).__name__}, expected an array.")
        if not isinstance(params, mx.array):
            kind = type(params).__name__
            raise self._error(ValueError, f"gradient {where} is an array but the parameter is a {kind}.")
        if grads.shape != params.shape:
            raise self._error(
                ValueError, f"gradient {where} has shape {grads.shape} but the parameter has shape {params.shape}."
            )
        leaves.append((keys, grads, params))
        return len(leaves) - 1

    def _state_at(self, keys):
        """The state dict of the parameter at ``keys``."""
        node = self._state
        for depth, key in enumerate(keys + (None,)):
            if key is None:
                found = isinstance(node, dict)  # the parameter's own state
            elif isinstance(node, (list, tuple)):
                found = key < len(node) and node[key] is not None
            else:
                found = isinstance(node, dict) and key in node
            if not found:
                missing = _dotted(keys[: depth + 1])
                raise self._error(KeyError, f"no optimizer state for {missing!r}; call init() with the new parameters.")
            if key is not None:
                node = node[key]
        return node


class MultiOptimizer(Optimizer):
    """Wraps a list of optimizers with corresponding weight predicates/filters
    to make it easy to use different optimizers for different weights.

    The predicates take the full "path" of the weight and the weight (its gradient)
    and return True if it should be considered for this optimizer. The last
    optimizer in the list is a fallback optimizer and no predicate should be
    given for it.

    Args:
        optimizers (list[Optimizer]): A list of optimizers to delegate to
        filters (list[Callable[[str, array], bool]]): A list of predicates that
            should be one less than the provided optimizers.
    """

    def __init__(self, optimizers, filters: list = []):  # noqa: B006 - MLX's signature
        super().__init__()
        self._state = {}
        optimizers = list(optimizers)
        if not optimizers:
            raise ValueError("[MultiOptimizer] needs at least one optimizer.")
        if len(filters) != len(optimizers) - 1:
            raise ValueError(f"[MultiOptimizer] Given {len(filters)} filters but {len(optimizers) - 1} needed.")
        self.optimizers = optimizers
        self.filters = list(filters) + [lambda *args, **kwargs: True]

    def _split_dictionary(self, gradients: dict):
        """One gradient tree per optimizer: each leaf goes to the first optimizer whose
        filter accepts it. Lists keep their positions ({} fills the gaps)."""
        owner = {}
        for path, leaf in tree_flatten(gradients):
            owner[path] = next(i for i, accept in enumerate(self.filters) if accept(path, leaf))
        parts = (_select(gradients, owner, i) for i in range(len(self.optimizers)))
        return [{} if part is _NOTHING else part for part in parts]

    def init(self, parameters: dict):
        """Initialize every optimizer's state for its share of ``parameters``."""
        self._require_dict_root(parameters, "parameters")
        for optimizer, params in zip(self.optimizers, self._split_dictionary(parameters)):
            optimizer.init(params)

    def apply_gradients(self, gradients: dict, parameters: dict):
        """Let every optimizer update its share of the gradients; merge the results."""
        self._require_dict_root(gradients, "gradients")
        self._require_dict_root(parameters, "parameters")
        self._pair(gradients, parameters, (), [])  # report mismatches before any optimizer steps
        tree = {}
        for optimizer, grads in zip(self.optimizers, self._split_dictionary(gradients)):
            tree = tree_merge(tree, optimizer.apply_gradients(grads, parameters))
        return tree

    @property
    def state(self):
        """``{"states": [state of each optimizer]}``."""
        return {"states": [o.state for o in self.optimizers]}

    @state.setter
    def state(self, state: dict):
        states = state.get("states") if isinstance(state, dict) else None
        if not isinstance(states, (list, tuple)) or len(states) != len(self.optimizers):
            count = len(self.optimizers)
            raise ValueError(f"[MultiOptimizer] state must be {{'states': [...]}} with {count} entries.")
        for optimizer, sub in zip(self.optimizers, states):
            optimizer.state = sub

    @property
    def step(self):
        """The step count (every optimizer steps on every update)."""
        return self.optimizers[0].step

    @property
    def learning_rate(self):
        """The first optimizer's learning rate; assigning sets every optimizer's."""
        return self.optimizers[0].learning_rate

    @learning_rate.setter
    def learning_rate(self, learning_rate):
        for optimizer in self.optimizers:
            optimizer.learning_rate = learning_rate


_NOTHING = object()


def _select(tree, owner, index, path=""):
    """The part of ``tree`` whose leaves ``owner`` assigns to ``index`` (or _NOTHING)."""
    if isinstance(tree, dict):
        out = {}
        for key, child in tree.items():
            sub = _select(child, owner, index, _join(path, key))
            if sub is not _NOTHING:
                out[key] = sub
        return out if out else _NOTHING
    if isinstance(tree, (list, tuple)):
        subs = [_select(child, owner, index, _join(path, i)) for i, child in enumerate(tree)]
        while subs and subs[-1] is _NOTHING:
            subs.pop()
        if not subs:
            return _NOTHING
        return type(tree)({} if s is _NOTHING else s for s in subs)
    return tree if owner.get(path) == index else _NOTHING


class SGD(Optimizer):
    r"""The stochastic gradient descent optimizer.

    Updates a parameter :math:`w` with a gradient :math:`g` as follows

    .. math::

        v_{t+1} &= \mu v_t + (1 - \tau) g_t \\
        w_{t+1} &= w_t - \lambda v_{t+1}

    Args:
        learning_rate (float or callable): The learning rate :math:`\lambda`.
        momentum (float, optional): The momentum strength :math:`\mu`. Default: ``0``
        weight_decay (float, optional): The weight decay (L2 penalty). Default: ``0``
        dampening (float, optional): Dampening for momentum :math:`\tau`. Default: ``0``
        nesterov (bool, optional): Enables Nesterov momentum. Default: ``False``
    """

    def __init__(
        self,
        learning_rate: _Schedulable,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        dampening: float = 0.0,
        nesterov: bool = False,
    ):
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("[SGD] Nesterov momentum requires a momentum and zero dampening.")
        super().__init__()
        self._maybe_schedule("learning_rate", learning_rate)
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.dampening = dampening
        self.nesterov = nesterov

    def init_single(self, parameter: mx.array, state: dict):
        """Initialize optimizer state"""
        state["v"] = mx.zeros_like(parameter)

    def apply_single(self, gradient: mx.array, parameter: mx.array, state: dict):
        """Performs the SGD parameter update and stores :math:`v` in the
        optimizer state."""
        lr = self.learning_rate.astype(gradient.dtype)
        if self.weight_decay != 0:
            gradient = gradient + self.weight_decay * parameter
        if self.momentum <= 0:
            return parameter - lr * gradient
        v = self.momentum * state["v"]
        v = v + ((1 - self.dampening) * gradient if self.dampening > 0 else gradient)
        state["v"] = v
        update = gradient + self.momentum * v if self.nesterov else v
        return parameter - lr * update


class RMSprop(Optimizer):
    r"""The RMSprop optimizer [1].

    [1]: Tieleman, T. and Hinton, G. 2012. Lecture 6.5-rmsprop, coursera: Neural
    networks for machine learning

    .. math::

        v_{t+1} &= \alpha v_t + (1 - \alpha) g_t^2 \\
        w_{t+1} &= w_t - \lambda \frac{g_t}{\sqrt{v_{t+1}} + \epsilon}

    Args:
        learning_rate (float or callable): The learning rate :math:`\lambda`.
        alpha (float, optional): The smoothing constant :math:`\alpha`.
          Default: ``0.99``
        eps (float, optional): The term :math:`\epsilon` added to the denominator
          to improve numerical stability. Default: ``1e-8``
    """

    def __init__(self, learning_rate: _Schedulable, alpha: float = 0.99, eps: float = 1e-8):
        super().__init__()
        _check_at_least("RMSprop", "alpha", alpha, 0, strict=False)
        _check_at_least("RMSprop", "epsilon", eps, 0, strict=True)
        self._maybe_schedule("learning_rate", learning_rate)
        self.alpha = alpha
        self.eps = eps

    def init_single(self, parameter: mx.array, state: dict):
        """Initialize optimizer state"""
        state["v"] = mx.zeros_like(parameter)

    def apply_single(self, gradient: mx.array, parameter: mx.array, state: dict):
        """Performs the RMSprop parameter update and stores :math:`v` in the
        optimizer state."""
        lr = self.learning_rate.astype(gradient.dtype)
        v = self.alpha * state["v"] + (1 - self.alpha) * mx.square(gradient)
        state["v"] = v
        return parameter - lr * gradient / (mx.sqrt(v) + self.eps)


class Adagrad(Optimizer):
    r"""The Adagrad optimizer [1].

    Our Adagrad implementation follows the original paper. In detail,

    [1]: Duchi, J., Hazan, E. and Singer, Y., 2011. Adaptive subgradient methods
    for online learning and stochastic optimization. JMLR 2011.

    .. math::

        v_{t+1} &= v_t + g_t^2 \\
        w_{t+1} &= w_t - \lambda \frac{g_t}{\sqrt{v_{t+1}} + \epsilon}

    Args:
        learning_rate (float or callable): The learning rate :math:`\lambda`.
        eps (float, optional): The term :math:`\epsilon` added to the
          denominator to improve numerical stability. Default: ``1e-8``
    """

    def __init__(self, learning_rate: _Schedulable, eps: float = 1e-8):
        super().__init__()
        _check_at_least("Adagrad", "epsilon", eps, 0, strict=True)
        self._maybe_schedule("learning_rate", learning_rate)
        self.eps = eps

    def init_single(self, parameter: mx.array, state: dict):
        """Initialize optimizer state"""
        state["v"] = mx.zeros_like(parameter)

    def apply_single(self, gradient: mx.array, parameter: mx.array, state: dict):
        """Performs the Adagrad parameter update and stores :math:`v` in the
        optimizer state."""
        lr = self.learning_rate.astype(gradient.dtype)
        v = state["v"] + mx.square(gradient)
        state["v"] = v
        return parameter - lr * gradient / (mx.sqrt(v) + self.eps)


class AdaDelta(Optimizer):
    r"""The AdaDelta optimizer with a learning rate [1].

    Our AdaDelta implementation follows the original paper. In detail,

    [1]: Zeiler, M.D., 2012. ADADELTA: an adaptive learning rate method. arXiv preprint
    arXiv:1212.5701.

    .. math::

        v_{t+1} &= \rho v_t + (1 - \rho) g_t^2 \\
        \Delta w_{t+1} &= \frac{\sqrt{u_t + \epsilon}}{\sqrt{v_{t+1} + \epsilon}} g_t \\
        u_{t+1} &= \rho u_t + (1 - \rho) \Delta w_{t+1}^2 \\
        w_{t+1} &= w_t - \lambda \Delta w_{t+1}

    Args:
        learning_rate (float or callable): The learning rate :math:`\lambda`.
        rho (float, optional): The coefficient :math:`\rho` used for computing a
            running average of squared gradients. Default: ``0.9``
        eps (float, optional): The term :math:`\epsilon` added to the denominator to
          improve numerical stability. Default: ``1e-6``
    """

    def __init__(self, learning_rate: _Schedulable, rho: float = 0.9, eps: float = 1e-6):
        super().__init__()
        _check_at_least("AdaDelta", "rho", rho, 0, strict=False)
        _check_at_least("AdaDelta", "epsilon", eps, 0, strict=True)
        self._maybe_schedule("learning_rate", learning_rate)
        self.rho = rho
        self.eps = eps

    def init_single(self, parameter: mx.array, state: dict):
        """Initialize optimizer state"""
        state["v"] = mx.zeros_like(parameter)
        state["u"] = mx.zeros_like(parameter)

    def apply_single(self, gradient: mx.array, parameter: mx.array, state: dict):
        """Performs the AdaDelta parameter update and stores :math:`v` and
        :math:`u` in the optimizer state."""
        lr = self.learning_rate.astype(gradient.dtype)
        rho = self.rho
        v = rho * state["v"] + (1 - rho) * mx.square(gradient)
        d = mx.sqrt(state["u"] + self.eps) / mx.sqrt(v + self.eps) * gradient
        state["v"] = v
        state["u"] = rho * state["u"] + (1 - rho) * mx.square(d)
        return parameter - lr * d


class Adam(Optimizer):
    r"""The Adam optimizer [1]. In detail,

    [1]: Kingma, D.P. and Ba, J., 2015. Adam: A method for stochastic
    optimization. ICLR 2015.

    .. math::

        m_{t+1} &= \beta_1 m_t + (1 - \beta_1) g_t \\
        v_{t+1} &= \beta_2 v_t + (1 - \beta_2) g_t^2 \\
        w_{t+1} &= w_t - \lambda \frac{m_{t+1}}{\sqrt{v_{t+1}} + \epsilon}

    Args:
        learning_rate (float or callable): The learning rate :math:`\lambda`.
        betas (Tuple[float, float], optional): The coefficients
          :math:`(\beta_1, \beta_2)` used for computing running averages of the
          gradient and its square. Default: ``(0.9, 0.999)``
        eps (float, optional): The term :math:`\epsilon` added to the
          denominator to improve numerical stability. Default: ``1e-8``
        bias_correction (bool, optional): If set to ``True``, bias correction
          is applied (the first update then has the size of the learning rate, as
          in PyTorch). Default: ``False``
    """

    def __init__(
        self,
        learning_rate: _Schedulable,
        betas: List[float] = [0.9, 0.999],  # noqa: B006 - MLX's signature
        eps: float = 1e-8,
        bias_correction: bool = False,
    ):
        super().__init__()
        _check_betas(self._name(), betas)
        _check_at_least(self._name(), "epsilon", eps, 0, strict=False)
        self._maybe_schedule("learning_rate", learning_rate)
        self.betas = betas
        self.eps = eps
        self.bias_correction = bias_correction

    def init_single(self, parameter: mx.array, state: dict):
        """Initialize optimizer state"""
        state["m"] = mx.zeros_like(parameter)
        state["v"] = mx.zeros_like(parameter)

    def apply_single(self, gradient: mx.array, parameter: mx.array, state: dict):
        """Performs the Adam parameter update and stores :math:`v` and
        :math:`m` in the optimizer state."""
        return self._adam_update(gradient, parameter, state, None)

    def _adam_update(self, gradient, parameter, state, decay):
        """The Adam step of ``parameter * decay`` (``decay`` None: of ``parameter``)."""
        dtype = gradient.dtype
        b1, b2 = self.betas
        if self.bias_correction:
            # Corrections computed in float32 from the step, then cast like the rate.
            step = self.step
            s1 = (self.learning_rate / (1 - b1**step)).astype(dtype)
            s2 = mx.rsqrt(1 - b2**step).astype(dtype)
        else:
            s1, s2 = self.learning_rate.astype(dtype), None
        m, v = state["m"], state["v"]
        if _fused.adam_fusable(gradient, parameter, m, v, b1, b2, self.eps) and s1.ndim == 0:
            # one kernel; multiplying by an exact 1 leaves the composite's rounding as is
            one = mx.array(1, dtype=dtype)
            p, state["m"], state["v"] = _fused.adam_step(
                parameter, gradient, m, v, s1, one if s2 is None else s2, one if decay is None else decay,
                b1, b2, self.eps,
            )
            return p
        if decay is not None:
            parameter = parameter * decay
        m = b1 * m + (1 - b1) * gradient
        v = b2 * v + (1 - b2) * mx.square(gradient)
        state["m"] = m
        state["v"] = v
        if s2 is None:
            return parameter - s1 * m / (mx.sqrt(v) + self.eps)
        return parameter - s1 * m / (mx.sqrt(v) * s2 + self.eps)


class AdamW(Adam):
    r"""The AdamW optimizer [1]. We update the weights with a weight_decay
    (:math:`\lambda`) value:

    [1]: Loshchilov, I. and Hutter, F., 2019. Decoupled weight decay
    regularization. ICLR 2019.

    .. math::

        m_{t+1} &= \beta_1 m_t + (1 - \beta_1) g_t \\
        v_{t+1} &= \beta_2 v_t + (1 - \beta_2) g_t^2 \\
        w_{t+1} &= w_t - \alpha (\frac{m_{t+1}}{\sqrt{v_{t+1}} + \epsilon} + \lambda
        w_t)

    Args:
        learning_rate (float or callable): The learning rate :math:`\alpha`.
        betas (Tuple[float, float], optional): The coefficients
          :math:`(\beta_1, \beta_2)` used for computing running averages of the
          gradient and its square. Default: ``(0.9, 0.999)``
        eps (float, optional): The term :math:`\epsilon` added to the
          denominator to improve numerical stability. Default: ``1e-8``
        weight_decay (float, optional): The weight decay :math:`\lambda`.
          Default: ``0.01``.
        bias_correction (bool, optional): If set to ``True``, bias correction
          is applied. Default: ``False``
    """

    def __init__(
        self,
        learning_rate: _Schedulable,
        betas: List[float] = [0.9, 0.999],  # noqa: B006 - MLX's signature
        eps: float = 1e-8,
        weight_decay: float = 0.01,
        bias_correction: bool = False,
    ):
        super().__init__(learning_rate=learning_rate, betas=betas, eps=eps, bias_correction=bias_correction)
        self.weight_decay = weight_decay

    def apply_single(self, gradient: mx.array, parameter: mx.array, state: dict):
        """Performs the AdamW parameter update by modifying the parameters
        passed into Adam."""
        lr = self.learning_rate.astype(gradient.dtype)
        return self._adam_update(gradient, parameter, state, 1 - lr * self.weight_decay)


class Adamax(Adam):
    r"""The Adamax optimizer, a variant of Adam based on the infinity norm [1].

    Our Adam implementation follows the original paper and omits the bias
    correction in the first and second moment estimates. In detail,

    [1]: Kingma, D.P. and Ba, J., 2015. Adam: A method for stochastic
    optimization. ICLR 2015.

    .. math::

        m_{t+1} &= \beta_1 m_t + (1 - \beta_1) g_t \\
        v_{t+1} &= \max(\beta_2 v_t, |g_t|) \\
        w_{t+1} &= w_t - \lambda \frac{m_{t+1}}{v_{t+1} + \epsilon}

    Args:
        learning_rate (float or callable): The learning rate :math:`\lambda`.
        betas (Tuple[float, float], optional): The coefficients
          :math:`(\beta_1, \beta_2)` used for computing the running average of
          the gradient and the exponentially weighted infinity norm.
          Default: ``(0.9, 0.999)``
        eps (float, optional): The term :math:`\epsilon` added to the
          denominator to improve numerical stability. Default: ``1e-8``
    """

    def __init__(
        self,
        learning_rate: _Schedulable,
        betas: List[float] = [0.9, 0.999],  # noqa: B006 - MLX's signature
        eps: float = 1e-8,
    ):
        super().__init__(learning_rate, betas, eps)

    def init_single(self, parameter: mx.array, state: dict):
        """Initialize optimizer state"""
        state["m"] = mx.zeros_like(parameter)
        state["v"] = mx.zeros_like(parameter)

    def apply_single(self, gradient: mx.array, parameter: mx.array, state: dict):
        """Performs the Adamax parameter update and stores :math:`v` and
        :math:`m` in the optimizer state."""
        lr = self.learning_rate.astype(gradient.dtype)
        b1, b2 = self.betas
        m = b1 * state["m"] + (1 - b1) * gradient
        v = mx.maximum(b2 * state["v"], mx.abs(gradient))
        state["m"] = m
        state["v"] = v
        return parameter - lr * m / (v + self.eps)


class Lion(Optimizer):
    r"""The Lion optimizer [1].

    Since updates are computed through the sign operation, they tend to
    have larger norm than for other optimizers such as SGD and Adam.
    We recommend a learning rate that is 3-10x smaller than AdamW and a
    weight decay 3-10x larger than AdamW to maintain the strength
    (lr * wd). Our Lion implementation follows the original paper. In
    detail,

    [1]: Chen, X. Symbolic Discovery of Optimization Algorithms. arXiv
    preprint arXiv:2302.06675.

    .. math::

        c_{t + 1} &= \beta_1 m_t + (1 - \beta_1) g_t \\
        m_{t + 1} &= \beta_2 m_t + (1 - \beta_2) g_t \\
        w_{t + 1} &= w_t - \eta (\text{sign}(c_t) + \lambda w_t)

    Args:
        learning_rate (float or callable): The learning rate :math:`\eta`.
        betas (Tuple[float, float], optional): The coefficients
          :math:`(\beta_1, \beta_2)` used for computing the gradient
          momentum and update direction. Default: ``(0.9, 0.99)``
        weight_decay (float, optional): The weight decay :math:`\lambda`. Default:
            ``0.0``
    """

    def __init__(
        self,
        learning_rate: _Schedulable,
        betas: List[float] = [0.9, 0.99],  # noqa: B006 - MLX's signature
        weight_decay: float = 0.0,
    ):
        super().__init__()
        _check_betas(self._name(), betas)
        self._maybe_schedule("learning_rate", learning_rate)
        self.betas = betas
        self.weight_decay = weight_decay

    def init_single(self, parameter: mx.array, state: dict):
        """Initialize optimizer state"""
        state["m"] = mx.zeros_like(parameter)

    def apply_single(self, gradient: mx.array, parameter: mx.array, state: dict):
        """Performs the Lion parameter update and stores :math:`m`
        in the optimizer state."""
        lr = self.learning_rate.astype(gradient.dtype)
        b1, b2 = self.betas
        c = b1 * state["m"] + (1 - b1) * gradient
        state["m"] = b2 * state["m"] + (1 - b2) * gradient
        if self.weight_decay > 0:
            parameter = (1 - lr * self.weight_decay) * parameter
        return parameter - lr * mx.sign(c)


class Adafactor(Optimizer):
    r"""The Adafactor optimizer.

    Our Adafactor implementation follows the original paper: `Adafactor:
    Adaptive Learning Rates with Sublinear Memory Cost
    <https://arxiv.org/abs/1804.04235>`_. Parameters with two or more dimensions keep
    factored second moments (one row and one column average per matrix).

    Args:
        learning_rate (float or callable, optional): The learning rate.
            Default: ``None``.
        eps (tuple(float, float), optional): The first term :math:`\epsilon_1`
            added to the square of the gradients to improve numerical
            stability and the second term :math:`\epsilon_2` is used for
            parameter scaling if ``parameter_scale`` is set to ``True``.
            Default: ``(1e-30, 1e-3)``.
        clip_threshold (float, optional): Clips the unscaled update at
            ``clip_threshold``. Default: ``1.0``.
        decay_rate (float, optional): Coefficient for the running average
            of the squared gradient. Default: ``-0.8``.
        beta_1 (float, optional): If set to a value bigger than zero
            then first moment will be used. Default: ``None``.
        weight_decay (float, optional): The weight decay :math:`\lambda`.
            Default: ``0.0``.
        scale_parameter (bool, optional): If set to ``True`` the learning rate
            will be scaled by :math:`\max(\epsilon_1, \text{RMS}(w_{t-1}))`.
            Default: ``True``.
        relative_step (bool, optional): If set to ``True`` the ``learning_rate``
            will be ignored and relative step size will be computed.
            Default: ``True``.
        warmup_init (bool, optional): If set to ``True`` then the relative
            step size will be calculated by the current step. Default:
            ``False``.
    """

    def __init__(
        self,
        learning_rate: Optional[_Schedulable] = None,
        eps: Tuple[float, float] = (1e-30, 1e-3),
        clip_threshold: float = 1.0,
        decay_rate: float = -0.8,
        beta_1: Optional[float] = None,
        weight_decay: float = 0.0,
        scale_parameter: bool = True,
        relative_step: bool = True,
        warmup_init: bool = False,
    ):
        super().__init__()
        if len(eps) != 2:
            raise ValueError(f"[Adafactor] eps must be a pair (eps_1, eps_2), got {len(eps)} values.")
        if learning_rate is not None:
            self._maybe_schedule("learning_rate", learning_rate)
        self.eps = eps
        self.clip_threshold = clip_threshold
        self.decay_rate = decay_rate
        self.beta_1 = beta_1
        self.weight_decay = weight_decay
        self.scale_parameter = scale_parameter
        self.relative_step = relative_step
        self.warmup_init = warmup_init

    def init_single(self, parameter: mx.array, state: dict):
        """Initialize optimizer state"""
        if parameter.ndim >= 2:
            shape, dtype = parameter.shape, parameter.dtype
            state["exp_avg_sq_row"] = mx.zeros(shape[:-1], dtype=dtype)
            state["exp_avg_sq_col"] = mx.zeros(shape[:-2] + shape[-1:], dtype=dtype)
        else:
            state["exp_avg_sq"] = mx.zeros_like(parameter)
        if self.beta_1 is not None:
            state["exp_avg"] = mx.zeros_like(parameter)

    def _compute_rms(self, inputs):
        return mx.sqrt(mx.mean(mx.square(inputs)))

    def _compute_learning_rate(self, step, parameter_rms):
        if self.relative_step:
            min_step = 1e-6 * step if self.warmup_init else 1e-2
            relative_step_size = mx.minimum(min_step, mx.rsqrt(step))
        else:
            relative_step_size = self.learning_rate
        relative_step_size = relative_step_size.astype(parameter_rms.dtype)
        if self.scale_parameter:
            return mx.maximum(self.eps[1], parameter_rms) * relative_step_size
        return relative_step_size

    def apply_gradients(self, gradients: dict, parameters: dict):
        """As :meth:`Optimizer.apply_gradients`, after checking a rate exists when needed."""
        if not self.relative_step and "learning_rate" not in self.state:
            raise KeyError("[Adafactor] relative_step=False needs a learning_rate; pass one or set opt.learning_rate.")
        return super().apply_gradients(gradients, parameters)

    def _approximate_exp_moving_avg(self, exp_avg_sq_row, exp_avg_sq_col):
        r_factor = mx.rsqrt(exp_avg_sq_row / mx.mean(exp_avg_sq_row, axis=-1, keepdims=True))
        c_factor = mx.rsqrt(exp_avg_sq_col)
        return mx.expand_dims(r_factor, -1) * mx.expand_dims(c_factor, -2)

    def apply_single(self, gradient: mx.array, parameter: mx.array, state: dict):
        """Performs the Adafactor parameter and state update."""
        step = self.step
        parameter_rms = self._compute_rms(parameter)
        learning_rate = self._compute_learning_rate(step, parameter_rms)
        beta_2 = (1.0 - step.astype(mx.float32) ** self.decay_rate).astype(learning_rate.dtype)
        update = mx.square(gradient) + self.eps[0]
        if gradient.ndim >= 2:
            row = beta_2 * state["exp_avg_sq_row"] + (1 - beta_2) * mx.mean(update, axis=-1)
            col = beta_2 * state["exp_avg_sq_col"] + (1 - beta_2) * mx.mean(update, axis=-2)
            state["exp_avg_sq_row"] = row
            state["exp_avg_sq_col"] = col
            update = self._approximate_exp_moving_avg(row, col) * gradient
        else:
            exp_avg_sq = beta_2 * state["exp_avg_sq"] + (1 - beta_2) * update
            state["exp_avg_sq"] = exp_avg_sq
            update = mx.rsqrt(exp_avg_sq) * gradient
        update = update / mx.maximum(1.0, self._compute_rms(update) / self.clip_threshold)
        update = learning_rate * update
        if self.beta_1 is not None:
            update = self.beta_1 * state["exp_avg"] + (1 - self.beta_1) * update
            state["exp_avg"] = update
        if self.weight_decay != 0:
            parameter = parameter + parameter * (-self.weight_decay * learning_rate)
        return parameter - update


class Muon(Optimizer):
    r"""The Muon optimizer.

    Our Muon (MomentUm Orthogonalized by Newton-schulz) optimizer follows the
    original implementation: `Muon: An optimizer for hidden layers in neural
    networks <https://kellerjordan.github.io/posts/muon/>`_

    Note:
        - Muon may be sub-optimal for the embedding layer, the final fully
          connected layer, or any 0D/1D parameters. Those should be optimized
          by a different method (e.g., :class:`AdamW`).
        - For 4D convolutional filters, it works by flattening their last
          dimensions.

    Args:
        learning_rate (float or callable): The learning rate.
        momentum (float, optional): The momentum strength. Default: ``0.95``
        weight_decay (float, optional): The weight decay (L2 penalty).
            Default: ``0.01``
        nesterov (bool, optional): Enables Nesterov momentum. Recommended for
            better performance.  Default: ``True``
        ns_steps (int, optional): Number of Newton-Schulz iteration steps for
            orthogonalization.  Default: ``5``
    """

    def __init__(
        self,
        learning_rate: _Schedulable,
        momentum: float = 0.95,
        weight_decay: float = 0.01,
        nesterov: bool = True,
        ns_steps: int = 5,
    ):
        super().__init__()
        if int(ns_steps) != ns_steps or ns_steps < 0:
            raise ValueError(f"[Muon] ns_steps must be a non-negative integer, got {ns_steps!r}.")
        self._maybe_schedule("learning_rate", learning_rate)
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.nesterov = nesterov
        self.ns_steps = ns_steps

    def init_single(self, parameter: mx.array, state: dict):
        """Initialize optimizer state"""
        state["v"] = mx.zeros_like(parameter)

    def _zeropower_via_newtonschulz5(self, X, steps: int):
        """Approximately orthogonalise the matrix ``X`` (push its singular values
        towards 1) with a quintic Newton-Schulz iteration."""
        a, b, c = 3.4445, -4.7750, 2.0315
        transpose = X.shape[-2] > X.shape[-1]
        if transpose:
            X = X.T
        # Frobenius normalisation bounds the spectral norm by 1 so the iteration converges.
        X = X / (mx.sqrt(mx.sum(mx.square(X))) + 1e-7)
        for _ in range(steps):
            A = X @ X.T
            B = mx.addmm(b * A, A, A, alpha=c, beta=1.0)
            X = mx.addmm(a * X, B, X, alpha=1.0, beta=1.0)
        return X.T if transpose else X

    def apply_single(self, gradient: mx.array, parameter: mx.array, state: dict):
        """Performs the Muon parameter update"""
        lr = self.learning_rate.astype(gradient.dtype)
        if self.weight_decay != 0:
            gradient = gradient + self.weight_decay * parameter
        v = self.momentum * state["v"] + (1 - self.momentum) * gradient
        state["v"] = v
        update = gradient * (1 - self.momentum) + v * self.momentum if self.nesterov else v
        if update.ndim >= 2 and update.size > 0:
            shape = update.shape
            matrix = update.reshape(shape[0], update.size // shape[0])
            matrix = self._zeropower_via_newtonschulz5(matrix, self.ns_steps)
            update = matrix.reshape(shape)
            # Tall matrices get a larger step so every shape moves at a similar RMS.
            lr = lr * math.sqrt(max(1.0, matrix.shape[0] / matrix.shape[1]))
        return parameter - lr * update.astype(gradient.dtype)


def clip_grad_norm(grads, max_norm):
    """Clips the global norm of the gradients.

    This function ensures that the global norm of the gradients does not exceed
    ``max_norm``. It scales down the gradients proportionally if their norm is
    greater than ``max_norm``.

    Example:
        >>> grads = {"w1": mx.array([2, 3]), "w2": mx.array([1])}
        >>> clipped_grads, total_norm = clip_grad_norm(grads, max_norm=2.0)

    Args:
        grads (dict): A dictionary containing the gradient arrays.
        max_norm (float): The maximum allowed global norm of the gradients.

    Returns:
        (dict, array): The possibly rescaled gradients and the original
        gradient norm.
    """
    if not isinstance(max_norm, mx.array) and not max_norm >= 0:
        raise ValueError(f"[clip_grad_norm] max_norm should be >=0, {max_norm} was provided instead")
    leaves = tree_flatten(grads)
    for path, g in leaves:
        if not isinstance(g, mx.array):
            raise TypeError(f"[clip_grad_norm] gradient {_where(path)} is a {type(g).__name__}, expected an array.")
    # Squares are summed in at least float32 so float16 gradients cannot overflow.
    acc_dtype = mx.float64 if any(g.dtype == mx.float64 for _, g in leaves) else mx.float32
    total = mx.array(0.0, acc_dtype)
    for _, g in leaves:
        if mx.issubdtype(g.dtype, mx.complexfloating):
            g = mx.abs(g)
        total = total + mx.sum(mx.square(g.astype(acc_dtype)))
    total_norm = mx.sqrt(total)
    scale = mx.minimum(max_norm / (total_norm + 1e-6), 1.0)

    def rescale(g):
        out_dtype = g.dtype if mx.issubdtype(g.dtype, mx.inexact) else mx.float32
        return g.astype(out_dtype) * scale.astype(out_dtype)

    return tree_map(rescale, grads), total_norm
