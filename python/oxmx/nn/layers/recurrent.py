"""Recurrent layers (MLX's ``mlx.nn`` RNN, GRU, LSTM).

Each layer takes a sequence of shape ``(N, L, D)`` or ``(L, D)`` (any further leading
axes are batch axes too), an optional initial state of shape ``(N, H)`` or ``(H,)``
(broadcast against the batch), and returns the state after every step, of shape
``(N, L, H)`` or ``(L, H)``. The input projection of all the steps is one matrix
product; the loop over the sequence is a plain Python loop.
"""

import math
from typing import Callable, Optional

import oxmx.core as mx

from .activations import tanh
from .base import Module

__all__ = ["RNN", "GRU", "LSTM"]


def _uniform(scale, shape):
    return mx.random.uniform(low=-scale, high=scale, shape=shape)


def _check_input(layer, x, input_size):
    if x.ndim < 2 or x.shape[-1] != input_size:
        raise ValueError(
            f"[{layer}] expected an input of shape (N, L, {input_size}) or (L, {input_size}) "
            f"but got shape {tuple(x.shape)}."
        )


def _check_state(layer, name, state, x, hidden_size):
    """``state`` must be ``(..., hidden_size)`` with leading axes that broadcast
    against the batch axes of ``x``."""
    if state is None:
        return
    batch = tuple(x.shape[:-2])
    lead = tuple(state.shape[:-1])
    fits = state.ndim >= 1 and state.shape[-1] == hidden_size
    if fits:
        try:
            mx.broadcast_shapes(batch, lead)
        except ValueError:
            fits = False
    if not fits:
        raise ValueError(
            f"[{layer}] {name} of shape {tuple(state.shape)} does not match an input of shape "
            f"{tuple(x.shape)}: expected (..., {hidden_size}) broadcastable to the batch shape {batch}."
        )


def _project_input(x, weight, bias):
    """``x @ weight.T (+ bias)`` for every step at once."""
    if bias is None:
        return x @ weight.T
    return mx.addmm(bias, x, weight.T)


def _stack_steps(steps, projected, hidden_size, states):
    """Stack per-step states along the sequence axis (-2).

    An empty sequence has no steps: its result is empty with the shape and dtype the
    steps would have had (the projected input, broadcast with the initial states).
    """
    if steps:
        return mx.stack(steps, axis=-2)
    empty = projected[..., :hidden_size]
    for state in states:
        if state is not None:
            empty = empty + mx.expand_dims(state, -2)
    return empty


class RNN(Module):
    r"""An Elman recurrent layer.

    The input is a sequence of shape ``NLD`` or ``LD`` where:

    * ``N`` is the optional batch dimension
    * ``L`` is the sequence length
    * ``D`` is the input's feature dimension

    Concretely, for each element along the sequence length axis, this layer
    applies the function:

    .. math::

        h_{t + 1} = \text{tanh} (W_{ih}x_t + W_{hh}h_t + b)

    The hidden state :math:`h` has shape ``NH`` or ``H``, depending on whether
    the input is batched or not. Returns the hidden state at each time step, of
    shape ``NLH`` or ``LH``.

    Args:
        input_size (int): Dimension of the input, ``D``.
        hidden_size (int): Dimension of the hidden state, ``H``.
        bias (bool, optional): Whether to use a bias. Default: ``True``.
        nonlinearity (callable, optional): Non-linearity to use. If ``None``, then
            :func:`tanh` is used. Default: ``None``.
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: Optional[Callable] = None):
        super().__init__()
        if nonlinearity is not None and not callable(nonlinearity):
            raise ValueError(f"[RNN] nonlinearity must be callable but got {nonlinearity!r}.")
        self.nonlinearity = nonlinearity or tanh
        self.hidden_size = hidden_size
        scale = 1.0 / math.sqrt(hidden_size)
        self.Wxh = _uniform(scale, (hidden_size, input_size))
        self.Whh = _uniform(scale, (hidden_size, hidden_size))
        self.bias = _uniform(scale, (hidden_size,)) if bias else None

    def _extra_repr(self):
        return (
            f"input_dims={self.Wxh.shape[1]}, hidden_size={self.hidden_size}, "
            f"nonlinearity={self.nonlinearity}, bias={self.bias is not None}"
        )

    def __call__(self, x, hidden=None):
        _check_input("RNN", x, self.Wxh.shape[1])
        _check_state("RNN", "hidden", hidden, x, self.hidden_size)
        projected = _project_input(x, self.Wxh, self.bias)
        steps = []
        for t in range(x.shape[-2]):
            h = projected[..., t, :]
            if hidden is not None:
                h = mx.addmm(h, hidden, self.Whh.T)
            hidden = self.nonlinearity(h)
            steps.append(hidden)
        return _stack_steps(steps, projected, self.hidden_size, [hidden])


class GRU(Module):
    r"""A gated recurrent unit (GRU) RNN layer.

    The input has shape ``NLD`` or ``LD`` where:

    * ``N`` is the optional batch dimension
    * ``L`` is the sequence length
    * ``D`` is the input's feature dimension

    Concretely, for each element of the sequence, this layer computes:

    .. math::

        \begin{aligned}
        r_t &= \sigma (W_{xr}x_t + W_{hr}h_t + b_{r}) \\
        z_t &= \sigma (W_{xz}x_t + W_{hz}h_t + b_{z}) \\
        n_t &= \text{tanh}(W_{xn}x_t + b_{n} + r_t \odot (W_{hn}h_t + b_{hn})) \\
        h_{t + 1} &= (1 - z_t) \odot n_t + z_t \odot h_t
        \end{aligned}

    ``Wx``/``Wh`` stack the ``r``, ``z``, ``n`` rows in that order; ``b`` holds
    :math:`b_r, b_z, b_n` and ``bhn`` is :math:`b_{hn}`.

    The hidden state :math:`h` has shape ``NH`` or ``H`` depending on whether the
    input is batched or not. Returns the hidden state at each time step of shape
    ``NLH`` or ``LH``.

    Args:
        input_size (int): Dimension of the input, ``D``.
        hidden_size (int): Dimension of the hidden state, ``H``.
        bias (bool): Whether to use biases or not. Default: ``True``.
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True):
        super().__init__()
        self.hidden_size = hidden_size
        scale = 1.0 / math.sqrt(hidden_size)
        self.Wx = _uniform(scale, (3 * hidden_size, input_size))
        self.Wh = _uniform(scale, (3 * hidden_size, hidden_size))
        self.b = _uniform(scale, (3 * hidden_size,)) if bias else None
        self.bhn = _uniform(scale, (hidden_size,)) if bias else None

    def _extra_repr(self):
        return f"input_dims={self.Wx.shape[1]}, hidden_size={self.hidden_size}, bias={self.b is not None}"

    def __call__(self, x, hidden=None):
        _check_input("GRU", x, self.Wx.shape[1])
        _check_state("GRU", "hidden", hidden, x, self.hidden_size)
        H = self.hidden_size
        bhn = self.bhn
        projected = _project_input(x, self.Wx, self.b)
        steps = []
        for t in range(x.shape[-2]):
            step = projected[..., t, :]
            rz, x_n = step[..., : 2 * H], step[..., 2 * H :]
            h_n = bhn
            if hidden is not None:
                h_proj = hidden @ self.Wh.T
                rz = rz + h_proj[..., : 2 * H]
                h_n = h_proj[..., 2 * H :] if bhn is None else h_proj[..., 2 * H :] + bhn
            rz = mx.sigmoid(rz)
            r, z = rz[..., :H], rz[..., H:]
            n = mx.tanh(x_n if h_n is None else x_n + r * h_n)
            hidden = (1 - z) * n if hidden is None else (1 - z) * n + z * hidden
            steps.append(hidden)
        return _stack_steps(steps, projected, H, [hidden])


class LSTM(Module):
    r"""An LSTM recurrent layer.

    The input has shape ``NLD`` or ``LD`` where:

    * ``N`` is the optional batch dimension
    * ``L`` is the sequence length
    * ``D`` is the input's feature dimension

    Concretely, for each element of the sequence, this layer computes:

    .. math::
        \begin{aligned}
        i_t &= \sigma (W_{xi}x_t + W_{hi}h_t + b_{i}) \\
        f_t &= \sigma (W_{xf}x_t + W_{hf}h_t + b_{f}) \\
        g_t &= \text{tanh} (W_{xg}x_t + W_{hg}h_t + b_{g}) \\
        o_t &= \sigma (W_{xo}x_t + W_{ho}h_t + b_{o}) \\
        c_{t + 1} &= f_t \odot c_t + i_t \odot g_t \\
        h_{t + 1} &= o_t \text{tanh}(c_{t + 1})
        \end{aligned}

    ``Wx``/``Wh``/``bias`` stack the ``i``, ``f``, ``g``, ``o`` rows in that order.

    The hidden state :math:`h` and cell state :math:`c` have shape ``NH`` or ``H``,
    depending on whether the input is batched or not.

    The layer returns two arrays, the hidden state and the cell state at each time
    step, both of shape ``NLH`` or ``LH``.

    Args:
        input_size (int): Dimension of the input, ``D``.
        hidden_size (int): Dimension of the hidden state, ``H``.
        bias (bool): Whether to use biases or not. Default: ``True``.
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True):
        super().__init__()
        self.hidden_size = hidden_size
        scale = 1.0 / math.sqrt(hidden_size)
        self.Wx = _uniform(scale, (4 * hidden_size, input_size))
        self.Wh = _uniform(scale, (4 * hidden_size, hidden_size))
        self.bias = _uniform(scale, (4 * hidden_size,)) if bias else None

    def _extra_repr(self):
        return f"input_dims={self.Wx.shape[1]}, hidden_size={self.hidden_size}, bias={self.bias is not None}"

    def __call__(self, x, hidden=None, cell=None):
        _check_input("LSTM", x, self.Wx.shape[1])
        _check_state("LSTM", "hidden", hidden, x, self.hidden_size)
        _check_state("LSTM", "cell", cell, x, self.hidden_size)
        H = self.hidden_size
        projected = _project_input(x, self.Wx, self.bias)
        all_hidden, all_cell = [], []
        initial = [hidden, cell]
        for t in range(x.shape[-2]):
            gates = projected[..., t, :]
            if hidden is not None:
                gates = mx.addmm(gates, hidden, self.Wh.T)
            i = mx.sigmoid(gates[..., :H])
            f = mx.sigmoid(gates[..., H : 2 * H])
            g = mx.tanh(gates[..., 2 * H : 3 * H])
            o = mx.sigmoid(gates[..., 3 * H :])
            cell = i * g if cell is None else f * cell + i * g
            hidden = o * mx.tanh(cell)
            all_hidden.append(hidden)
            all_cell.append(cell)
        return (
            _stack_steps(all_hidden, projected, H, initial),
            _stack_steps(all_cell, projected, H, initial),
        )
