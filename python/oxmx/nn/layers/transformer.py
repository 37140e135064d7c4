"""Attention and transformers (MLX's ``mlx.nn`` MultiHeadAttention, Transformer and
its encoder/decoder stacks)."""

import math
from typing import Any, Callable, Optional

import oxmx.core as mx

from .activations import relu
from .base import Module
from .dropout import Dropout
from .linear import Linear
from .normalization import LayerNorm

__all__ = [
    "MultiHeadAttention",
    "TransformerEncoderLayer",
    "TransformerEncoder",
    "TransformerDecoderLayer",
    "TransformerDecoder",
    "Transformer",
]


# Explicit sizes in the reshapes below: -1 cannot be inferred for an empty batch or
# sequence.
def _split_heads(x, heads):
    """``(B, L, heads * d) -> (B, heads, L, d)``."""
    B, L, features = x.shape
    return x.reshape(B, L, heads, features // heads).transpose(0, 2, 1, 3)


def _merge_heads(x):
    """``(B, heads, L, d) -> (B, L, heads * d)``, the inverse of :func:`_split_heads`."""
    B, heads, L, d = x.shape
    return x.transpose(0, 2, 1, 3).reshape(B, L, heads * d)


class MultiHeadAttention(Module):
    """Implements the scaled dot product attention with multiple heads.

    Given inputs for queries, keys and values the ``MultiHeadAttention`` produces new
    values by aggregating information from the input values according to the
    similarities of the input queries and keys.

    All inputs as well as the output are linearly projected without biases by
    default.

    ``MultiHeadAttention`` also takes an optional additive attention mask that should
    be broadcastable with ``(batch, num_heads, # queries, # keys)``. The mask should
    have ``-inf`` or very large negative numbers at the positions that should *not*
    be attended to (a boolean mask, ``True`` where attending is allowed, and the
    string ``"causal"`` are accepted too, as by
    :func:`mx.fast.scaled_dot_product_attention`).

    Inputs are ``(batch, length, features)``; unbatched ``(length, features)`` inputs
    give an unbatched output.

    Args:
        dims (int): The model dimensions. This is also the default value for the
            queries, keys, values, and the output.
        num_heads (int): The number of attention heads to use.
        query_input_dims (int, optional): The input dimensions of the queries.
            Default: ``dims``.
        key_input_dims (int, optional): The input dimensions of the keys.
            Default: ``dims``.
        value_input_dims (int, optional): The input dimensions of the values.
            Default: ``key_input_dims``.
        value_dims (int, optional): The dimensions of the values after the
            projection. Default: ``dims``.
        value_output_dims (int, optional): The dimensions the new values will be
            projected to. Default: ``dims``.
        bias (bool, optional): Whether or not to use a bias in the projections.
            Default: ``False``.
    """

    def __init__(
        self,
        dims: int,
        num_heads: int,
        query_input_dims: Optional[int] = None,
        key_input_dims: Optional[int] = None,
        value_input_dims: Optional[int] = None,
        value_dims: Optional[int] = None,
        value_output_dims: Optional[int] = None,
        bias: bool = False,
    ):
        super().__init__()
        if num_heads <= 0:
            raise ValueError(f"[MultiHeadAttention] num_heads must be positive but got {num_heads}.")
        query_input_dims = query_input_dims or dims
        key_input_dims = key_input_dims or dims
        value_input_dims = value_input_dims or key_input_dims
        value_dims = value_dims or dims
        value_output_dims = value_output_dims or dims
        for name, size in (("dims", dims), ("value_dims", value_dims)):
            if size % num_heads != 0:
                raise ValueError(
                    f"[MultiHeadAttention] {name} ({size}) must be divisible by num_heads ({num_heads})."
                )
        self.num_heads = num_heads
        self.query_proj = Linear(query_input_dims, dims, bias=bias)
        self.key_proj = Linear(key_input_dims, dims, bias=bias)
        self.value_proj = Linear(value_input_dims, value_dims, bias=bias)
        self.out_proj = Linear(value_dims, value_output_dims, bias=bias)

    @staticmethod
    def _check_inputs(queries, keys, values):
        shapes = f"queries {tuple(queries.shape)}, keys {tuple(keys.shape)}, values {tuple(values.shape)}"
        if queries.ndim not in (2, 3) or keys.ndim != queries.ndim or values.ndim != queries.ndim:
            raise ValueError(
                f"[MultiHeadAttention] queries, keys and values must all be (batch, length, features) "
                f"or all (length, features) but got {shapes}."
            )
        if keys.shape[-2] != values.shape[-2]:
            raise ValueError(f"[MultiHeadAttention] keys and values must have the same length but got {shapes}.")
        if queries.ndim == 3 and not queries.shape[0] == keys.shape[0] == values.shape[0]:
            raise ValueError(
                f"[MultiHeadAttention] queries, keys and values must have the same batch size but got {shapes}."
            )

    def __call__(self, queries, keys, values, mask=None):
        self._check_inputs(queries, keys, values)
        unbatched = queries.ndim == 2
        if unbatched:
            queries, keys, values = queries[None], keys[None], values[None]
        # The projections check the feature sizes.
        queries = self.query_proj(queries)
        keys = self.key_proj(keys)
        values = self.value_proj(values)

        heads = self.num_heads
        queries, keys, values = _split_heads(queries, heads), _split_heads(keys, heads), _split_heads(values, heads)
        scale = math.sqrt(1 / queries.shape[-1])
        out = mx.fast.scaled_dot_product_attention(queries, keys, values, scale=scale, mask=mask)
        out = self.out_proj(_merge_heads(out))
        return out[0] if unbatched else out

    @staticmethod
    def create_additive_causal_mask(N: int, dtype: mx.Dtype = mx.float32):
        """An ``(N, N)`` mask that is ``0`` on and below the diagonal and the most
        negative finite value of ``dtype`` above it (query ``i`` sees keys ``<= i``)."""
        indices = mx.arange(N)
        mask = indices[:, None] < indices[None]
        return mask.astype(dtype) * mx.finfo(dtype).min


def _checkpointed(layer, enabled):
    """``layer``, or a version of it that recomputes its activations in the backward
    pass (gradient checkpointing) when ``enabled``."""
    if not enabled:
        return layer
    # Imported here: oxmx.nn.utils itself imports from the layers package.
    from ..utils import checkpoint

    return checkpoint(layer)


class TransformerEncoderLayer(Module):
    """One encoder block: self-attention then an MLP, each in a residual branch with
    a layer norm before it (``norm_first=True``) or after the residual sum.

    Args:
        dims (int): The number of features of the inputs and outputs.
        num_heads (int): The number of attention heads.
        mlp_dims (int, optional): The hidden size of the MLP. Default: ``4 * dims``.
        dropout (float, optional): The dropout probability after the attention and
            after the MLP's activation. Default: ``0.0``.
        activation (callable, optional): The MLP's activation. Default: :func:`relu`.
        norm_first (bool, optional): Pre-norm (``True``) or post-norm. Default: ``True``.
    """

    def __init__(
        self,
        dims: int,
        num_heads: int,
        mlp_dims: Optional[int] = None,
        dropout: float = 0.0,
        activation: Callable[[Any], Any] = relu,
        norm_first: bool = True,
    ):
        super().__init__()
        mlp_dims = mlp_dims or dims * 4
        self.attention = MultiHeadAttention(dims, num_heads)
        self.ln1 = LayerNorm(dims)
        self.ln2 = LayerNorm(dims)
        self.linear1 = Linear(dims, mlp_dims)
        self.linear2 = Linear(mlp_dims, dims)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.activation = activation
        self.norm_first = norm_first

    def _mlp(self, x):
        return self.linear2(self.dropout2(self.activation(self.linear1(x))))

    def __call__(self, x, mask):
        if self.norm_first:
            y = self.ln1(x)
            x = x + self.dropout1(self.attention(y, y, y, mask))
            return x + self._mlp(self.ln2(x))
        x = self.ln1(x + self.dropout1(self.attention(x, x, x, mask)))
        return self.ln2(x + self._mlp(x))


class TransformerEncoder(Module):
    """``num_layers`` :class:`TransformerEncoderLayer` followed by a layer norm; with
    ``checkpoint`` each layer recomputes its activations in the backward pass.
    The other arguments are those of :class:`TransformerEncoderLayer`."""

    def __init__(
        self,
        num_layers: int,
        dims: int,
        num_heads: int,
        mlp_dims: Optional[int] = None,
        dropout: float = 0.0,
        activation=relu,
        norm_first: bool = True,
        checkpoint: bool = False,
    ):
        super().__init__()
        self.layers = [
            TransformerEncoderLayer(dims, num_heads, mlp_dims, dropout, activation, norm_first)
            for _ in range(num_layers)
        ]
        self.ln = LayerNorm(dims)
        self.checkpoint = checkpoint

    def __call__(self, x, mask):
        for layer in self.layers:
            x = _checkpointed(layer, self.checkpoint)(x, mask)
        return self.ln(x)


class TransformerDecoderLayer(Module):
    """One decoder block: self-attention, cross-attention over ``memory``, then an
    MLP, each in a residual branch with a layer norm before it (``norm_first=True``)
    or after the residual sum. The arguments are those of
    :class:`TransformerEncoderLayer`."""

    def __init__(
        self,
        dims: int,
        num_heads: int,
        mlp_dims: Optional[int] = None,
        dropout: float = 0.0,
        activation: Callable[[Any], Any] = relu,
        norm_first: bool = True,
    ):
        super().__init__()
        mlp_dims = mlp_dims or dims * 4
        self.self_attention = MultiHeadAttention(dims, num_heads)
        self.cross_attention = MultiHeadAttention(dims, num_heads)
        self.ln1 = LayerNorm(dims)
        self.ln2 = LayerNorm(dims)
        self.ln3 = LayerNorm(dims)
        self.linear1 = Linear(dims, mlp_dims)
        self.linear2 = Linear(mlp_dims, dims)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.dropout3 = Dropout(dropout)
        self.activation = activation
        self.norm_first = norm_first

    def _mlp(self, x):
        return self.linear2(self.dropout3(self.activation(self.linear1(x))))

    def __call__(self, x, memory, x_mask, memory_mask):
        if self.norm_first:
            y = self.ln1(x)
            x = x + self.dropout1(self.self_attention(y, y, y, x_mask))
            y = self.ln2(x)
            x = x + self.dropout2(self.cross_attention(y, memory, memory, memory_mask))
            return x + self._mlp(self.ln3(x))
        x = self.ln1(x + self.dropout1(self.self_attention(x, x, x, x_mask)))
        x = self.ln2(x + self.dropout2(self.cross_attention(x, memory, memory, memory_mask)))
        return self.ln3(x + self._mlp(x))


class TransformerDecoder(Module):
    """``num_layers`` :class:`TransformerDecoderLayer` followed by a layer norm; with
    ``checkpoint`` each layer recomputes its activations in the backward pass.
    The other arguments are those of :class:`TransformerDecoderLayer`."""

    def __init__(
        self,
        num_layers: int,
        dims: int,
        num_heads: int,
        mlp_dims: Optional[int] = None,
        dropout: float = 0.0,
        activation=relu,
        norm_first: bool = True,
        checkpoint: bool = False,
    ):
        super().__init__()
        self.layers = [
            TransformerDecoderLayer(dims, num_heads, mlp_dims, dropout, activation, norm_first)
            for _ in range(num_layers)
        ]
        self.ln = LayerNorm(dims)
        self.checkpoint = checkpoint

    def __call__(self, x, memory, x_mask, memory_mask):
        for layer in self.layers:
            x = _checkpointed(layer, self.checkpoint)(x, memory, x_mask, memory_mask)
        return self.ln(x)


class Transformer(Module):
    """Implements a standard Transformer model.

    The implementation is based on `Attention Is All You Need
    <https://arxiv.org/abs/1706.03762>`_.

    The Transformer model contains an encoder and a decoder. The encoder processes
    the input sequence and the decoder generates the output sequence. The interaction
    between encoder and decoder happens through the attention mechanism.

    Args:
        dims (int, optional): The number of expected features in the encoder/decoder
            inputs. Default: ``512``.
        num_heads (int, optional): The number of attention heads. Default: ``8``.
        num_encoder_layers (int, optional): The number of encoder layers in the
            Transformer encoder. Default: ``6``.
        num_decoder_layers (int, optional): The number of decoder layers in the
            Transformer decoder. Default: ``6``.
        mlp_dims (int, optional): The hidden dimension of the MLP block in each
            Transformer layer. Defaults to ``4*dims`` if not provided. Default: ``None``.
        dropout (float, optional): The dropout value for the Transformer encoder and
            decoder. Dropout is used after each attention layer and the activation in
            the MLP layer. Default: ``0.0``.
        activation (function, optional): the activation function for the MLP hidden
            layer. Default: :func:`relu`.
        custom_encoder (Module, optional): A custom encoder to replace the standard
            Transformer encoder, called as ``encoder(src, src_mask)``. Default: ``None``.
        custom_decoder (Module, optional): A custom decoder to replace the standard
            Transformer decoder, called as ``decoder(tgt, memory, tgt_mask,
            memory_mask)``. Default: ``None``.
        norm_first (bool, optional): if ``True``, encoder and decoder layers will
            perform layer normalization before attention and MLP operations,
            otherwise after. Default: ``True``.
        checkpoint (bool, optional): if ``True`` perform gradient checkpointing to
            reduce the memory usage at the expense of more computation.
            Default: ``False``.
    """

    def __init__(
        self,
        dims: int = 512,
        num_heads: int = 8,
        num_encoder_layers: int = 6,
        num_decoder_layers: int = 6,
        mlp_dims: Optional[int] = None,
        dropout: float = 0.0,
        activation: Callable[[Any], Any] = relu,
        custom_encoder: Optional[Any] = None,
        custom_decoder: Optional[Any] = None,
        norm_first: bool = True,
        checkpoint: bool = False,
    ):
        super().__init__()
        # "is None", not "or": a module without parameters is an empty (falsy) dict.
        if custom_encoder is None:
            custom_encoder = TransformerEncoder(
                num_encoder_layers, dims, num_heads, mlp_dims, dropout, activation, norm_first, checkpoint
            )
        if custom_decoder is None:
            custom_decoder = TransformerDecoder(
                num_decoder_layers, dims, num_heads, mlp_dims, dropout, activation, norm_first, checkpoint
            )
        self.encoder = custom_encoder
        self.decoder = custom_decoder

    def __call__(self, src, tgt, src_mask, tgt_mask, memory_mask):
        memory = self.encoder(src, src_mask)
        return self.decoder(tgt, memory, tgt_mask, memory_mask)
