"""``Embedding``: a lookup table of vectors (MLX's ``mlx.nn.Embedding``)."""

import math
from typing import Optional

import oxmx.core as mx

from .base import Module
from .quantized import QuantizedEmbedding

__all__ = ["Embedding"]


class Embedding(Module):
    r"""Map each integer of the input to a ``dims``-sized vector.

    ``weight`` has shape ``(num_embeddings, dims)`` and starts from
    :math:`\mathcal{N}(0, 1/\text{dims})`.

    Args:
        num_embeddings (int): how many distinct tokens can be embedded (vocabulary size).
        dims (int): the size of each embedding vector.
    """

    def __init__(self, num_embeddings: int, dims: int):
        super().__init__()
        for name, value in (("num_embeddings", num_embeddings), ("dims", dims)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"[Embedding] {name} must be a non-negative integer, got {value!r}.")
        if dims == 0:
            raise ValueError("[Embedding] dims must be positive to initialise the weights, got 0.")
        self.weight = mx.random.normal(shape=(num_embeddings, dims), scale=math.sqrt(1 / dims))

    def _extra_repr(self):
        return f"{self.weight.shape[0]}, {self.weight.shape[1]}"

    def __call__(self, x):
        if not isinstance(x, mx.array) or not mx.issubdtype(x.dtype, mx.integer):
            what = x.dtype if isinstance(x, mx.array) else type(x).__name__
            raise ValueError(f"[Embedding] indices must be an integer array, got {what}.")
        return self["weight"][x]

    def to_quantized(
        self,
        group_size: Optional[int] = None,
        bits: Optional[int] = None,
        mode: str = "affine",
        quantize_input: bool = False,
    ):
        """A :class:`QuantizedEmbedding` copy of this layer (inputs are indices, so
        ``quantize_input`` is not supported)."""
        if quantize_input:
            raise ValueError("[Embedding.to_quantized] Quantized input is not supported.")
        return QuantizedEmbedding.from_embedding(self, group_size, bits, mode)

    def as_linear(self, x):
        """Use the table as a linear layer ``x @ weight.T``: a tied output projection
        from ``dims`` to ``num_embeddings``."""
        dims = self["weight"].shape[1]
        if not isinstance(x, mx.array) or x.ndim == 0 or x.shape[-1] != dims:
            shape = tuple(x.shape) if isinstance(x, mx.array) else type(x).__name__
            raise ValueError(f"[Embedding.as_linear] input of shape {shape} does not match dims={dims}.")
        return x @ self["weight"].T
