"""Container layers (MLX's ``mlx.nn.Sequential``)."""

from .base import Module

__all__ = ["Sequential"]


class Sequential(Module):
    """Call the given callables in order, feeding each one's output to the next.

    Modules and plain callables are both accepted; only modules contribute parameters.

    Args:
        modules: the callables to call in order.
    """

    def __init__(self, *modules):
        super().__init__()
        self.layers = list(modules)

    def __call__(self, x):
        for layer in self.layers:
            x = layer(x)
        return x
