"""Positional encodings (MLX's ``mlx.nn`` RoPE, SinusoidalPositionalEncoding, ALiBi)."""

import math
from typing import Optional

import oxmx.core as mx

from .base import Module

__all__ = ["RoPE", "SinusoidalPositionalEncoding", "ALiBi"]


class RoPE(Module):
    """Implements the rotary positional encoding.

    The traditional implementation rotates consecutive pairs of elements in the
    feature dimension while the default implementation rotates pairs with stride
    half the feature dimensions for efficiency.

    For more details see `RoFormer: Enhanced Transformer with Rotary Position
    Embedding <https://arxiv.org/abs/2104.09864>`_.

    Args:
        dims (int): The feature dimensions to be rotated. If the input feature is
            larger than dims then the rest is left unchanged.
        traditional (bool, optional): If set to ``True`` choose the traditional
            implementation which is slightly less efficient. Default: ``False``.
        base (float, optional): The base used to compute angular frequency for each
            dimension in the positional encodings. Default: ``10000``.
        scale (float, optional): The scale used to scale the positions.
            Default: ``1.0``.
    """

    def __init__(self, dims: int, traditional: bool = False, base: float = 10000, scale: float = 1.0):
        super().__init__()
        self.dims = dims
        self.traditional = traditional
        self.base = base
        self.scale = scale

    def _extra_repr(self):
        return f"{self.dims}, traditional={self.traditional}"

    def __call__(self, x, offset: int = 0):
        # mx.fast.rope validates x (at least 3-D) and dims (positive, even, <= last axis).
        return mx.fast.rope(
            x, self.dims, traditional=self.traditional, base=self.base, scale=self.scale, offset=offset
        )


class SinusoidalPositionalEncoding(Module):
    r"""Implements sinusoidal positional encoding.

    For more details see the paper `Attention Is All You Need
    <https://arxiv.org/abs/1706.03762>`_.

    Each input value ``x`` (typically a position) becomes ``dims`` features
    ``scale * [sin(x * f); cos(x * f)]`` for ``dims // 2`` frequencies ``f`` spaced
    geometrically from ``max_freq`` down to ``min_freq``.

    Args:
        dims (int): The dimensionality of the resulting positional embeddings.
        min_freq (float, optional): The minimum frequency expected. Default: ``0.0001``.
        max_freq (float, optional): The maximum frequency expected. Default: ``1``.
        scale (float, optional): A multiplicative scale for the embeddings.
            Default: ``sqrt(2/dims)``.
        cos_first (bool, optional): If ``True`` embed using ``[cos(x); sin(x)]``
            instead of the reverse. Default: ``False``.
        full_turns (bool, optional): If ``True`` multiply the frequencies with
            :math:`2\pi`. Default: ``False``.
    """

    def __init__(
        self,
        dims: int,
        min_freq: float = 0.0001,
        max_freq: float = 1,
        scale: Optional[float] = None,
        cos_first: bool = False,
        full_turns: bool = False,
    ):
        super().__init__()
        if dims <= 0 or dims % 2 != 0:
            raise ValueError(f"[SinusoidalPositionalEncoding] dims must be positive and even but got {dims}.")
        if min_freq <= 0 or max_freq <= 0:
            raise ValueError(
                f"[SinusoidalPositionalEncoding] min_freq and max_freq must be positive but got "
                f"min_freq={min_freq} and max_freq={max_freq}."
            )
        half = dims // 2
        # Goes from 1 (max_freq) down to 0 (min_freq); a single frequency is max_freq.
        one_zero = 1 - mx.arange(0, half) / (half - 1) if half > 1 else mx.ones((1,))
        log_min, log_max = math.log(min_freq), math.log(max_freq)
        # Private (underscore) so that it is kept as state but is not a parameter.
        self._sigmas = mx.exp(one_zero * (log_max - log_min) + log_min)
        if full_turns:
            self._sigmas = self._sigmas * (2 * math.pi)
        self.scale = scale or math.sqrt(2 / dims)
        self.cos_first = cos_first

    def __call__(self, x):
        y = x[..., None] * self._sigmas
        cosy, siny = mx.cos(y), mx.sin(y)
        y = mx.concatenate([cosy, siny] if self.cos_first else [siny, cosy], axis=-1)
        return y * self.scale


def _power_of_two_slopes(n):
    # The geometric sequence of the ALiBi paper for n heads: 2^(-8/n), 2^(-16/n), ...
    return [2.0 ** (-8.0 * (i + 1) / n) for i in range(n)]


class ALiBi(Module):
    """Implements Attention with Linear Biases (ALiBi).

    ALiBi adds a static, non-learnable bias matrix to attention scores proportional
    to the distance between query and key tokens.

    For more details see `Train Short, Test Long: Attention with Linear Biases
    Enables Input Length Extrapolation <https://arxiv.org/abs/2108.12409>`_.
    """

    @staticmethod
    def create_alibi_slope(num_heads: int, dtype: mx.Dtype = mx.float32) -> mx.array:
        """Create the geometric slopes for ALiBi across attention heads.

        Args:
            num_heads (int): The number of attention heads.
            dtype (Dtype, optional): Data type of the output array. Default: ``mx.float32``.

        Returns:
            array: The slopes array expanded for head broadcasting, shape
            ``(num_heads, 1, 1)``.
        """
        if num_heads <= 0:
            raise ValueError(f"[ALiBi] num_heads must be positive but got {num_heads}.")
        # For a head count that is not a power of two, the paper takes the slopes of
        # the power of two below it plus every other slope of the one above it.
        closest = 2 ** int(math.floor(math.log2(num_heads)))
        slopes = _power_of_two_slopes(closest)
        slopes += _power_of_two_slopes(2 * closest)[0::2][: num_heads - closest]
        return mx.array(slopes, dtype=dtype).reshape(num_heads, 1, 1)

    @staticmethod
    def create_alibi_matrix(
        q_sequence_length: int,
        k_sequence_length: int,
        num_heads: int,
        offset: int = 0,
        dtype: mx.Dtype = mx.float32,
    ) -> mx.array:
        """Create the ALiBi bias matrix.

        Queries sit at positions ``offset, ..., q_sequence_length - 1`` and keys at
        ``0, ..., k_sequence_length - 1``; the bias is ``-slope * |q - k|``.

        Args:
            q_sequence_length (int): The query sequence length.
            k_sequence_length (int): The key sequence length.
            num_heads (int): The number of attention heads.
            offset (int, optional): The position offset. Default: ``0``.
            dtype (Dtype, optional): Data type of the output array. Default: ``mx.float32``.

        Returns:
            array: The ALiBi bias matrix of shape
            ``(1, num_heads, q_sequence_length - offset, k_sequence_length)``.
        """
        if q_sequence_length < 0 or k_sequence_length < 0:
            raise ValueError(
                f"[ALiBi] sequence lengths must be non-negative but got q_sequence_length="
                f"{q_sequence_length} and k_sequence_length={k_sequence_length}."
            )
        queries = mx.arange(offset, q_sequence_length)
        keys = mx.arange(k_sequence_length)
        # Integer distances so that the diagonal is +0, not -0.
        distance = -mx.abs(queries[:, None] - keys[None, :])
        slopes = ALiBi.create_alibi_slope(num_heads, dtype=dtype)
        return (distance.astype(dtype)[None] * slopes)[None]

    def __call__(self, attention_scores: mx.array, offset: int = 0, mask: Optional[mx.array] = None) -> mx.array:
        """Add the ALiBi biases (and the optional additive ``mask``) to
        ``attention_scores`` of shape ``(batch, num_heads, L_q, L_k)``; the queries
        are the ``L_q`` positions starting at ``offset``."""
        if attention_scores.ndim != 4:
            raise ValueError(
                f"[ALiBi] attention_scores must have shape (batch, num_heads, L_q, L_k) but got "
                f"shape {tuple(attention_scores.shape)}."
            )
        _, num_heads, q_len, k_len = attention_scores.shape
        alibi = ALiBi.create_alibi_matrix(q_len + offset, k_len, num_heads, offset=offset, dtype=attention_scores.dtype)
        if mask is not None:
            alibi = alibi + mask
        return attention_scores + alibi
