"""Dropout layers (MLX's ``Dropout``, ``Dropout2d``, ``Dropout3d``); random masks come
from ``mx.random`` and are drawn only in training mode."""

import oxmx.core as mx

from .base import Module

__all__ = ["Dropout", "Dropout2d", "Dropout3d"]


class _DropoutBase(Module):
    """Shared constructor, ``repr`` and masking; sub-classes choose the mask shape."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"[{type(self).__name__}] The dropout probability {p} is not in [0, 1)")
        # Kept as the keep-probability, as MLX does (so repr shows 1 - (1 - p)).
        self._p_1 = 1 - p

    def _extra_repr(self):
        return f"p={1 - self._p_1}"

    def _mask_shape(self, x):
        return x.shape

    def __call__(self, x):
        shape = self._mask_shape(x)
        if self._p_1 == 1 or not self.training:
            return x
        mask = mx.random.bernoulli(self._p_1, shape)
        return (mask * x) * (1 / self._p_1)


class Dropout(_DropoutBase):
    r"""Zero each element with probability ``p`` during training and scale the rest by
    :math:`1/(1-p)`, keeping the expected value.

    Args:
        p (float): the probability of zeroing an element. Default ``0.5``.
    """


class Dropout2d(_DropoutBase):
    r"""Zero whole channels with probability ``p`` during training (inputs ``NHWC`` or
    ``HWC``, channels last) and scale the rest by :math:`1/(1-p)`.

    Args:
        p (float): the probability of zeroing a channel. Default ``0.5``.
    """

    def _mask_shape(self, x):
        if x.ndim not in (3, 4):
            raise ValueError(f"[Dropout2d] Received input with {x.ndim} dimensions. Expected 3 or 4 dimensions.")
        # One draw per (batch, channel): the spatial axes H, W share it.
        return (*x.shape[:-3], 1, 1, x.shape[-1])


class Dropout3d(_DropoutBase):
    r"""Zero whole channels with probability ``p`` during training (inputs ``NDHWC`` or
    ``DHWC``, channels last) and scale the rest by :math:`1/(1-p)`.

    Args:
        p (float): the probability of zeroing a channel. Default ``0.5``.
    """

    def _mask_shape(self, x):
        if x.ndim not in (4, 5):
            raise ValueError(f"[Dropout3d] Received input with {x.ndim} dimensions. Expected 4 or 5 dimensions.")
        return (*x.shape[:-4], 1, 1, 1, x.shape[-1])
