"""The Llama decoder: configuration and network.

Parameter names follow Hugging Face's ``LlamaForCausalLM`` (``model.layers.0.self_attn.
q_proj.weight``, ...), so a Hugging Face checkpoint loads with ``load_weights`` unchanged.
The rotary embedding uses Hugging Face's "rotate half" layout (``traditional=False``):
within each head, dimension ``i`` is paired with ``i + head_dim/2``.
"""

import dataclasses
import math
import warnings
from typing import List, Optional

import numpy as np

import oxmx.core as mx
import oxmx.nn as nn

from .cache import KVCache


@dataclasses.dataclass
class LlamaConfig:
    """The architecture, with the names and defaults of Hugging Face's ``config.json``."""

    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    vocab_size: int
    num_key_value_heads: Optional[int] = None  # None: as many as the query heads
    head_dim: Optional[int] = None  # None: hidden_size / num_attention_heads
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    rope_scaling: Optional[dict] = None
    tie_word_embeddings: bool = False
    max_position_embeddings: int = 2048
    attention_bias: bool = False
    mlp_bias: bool = False

    def __post_init__(self):
        if self.num_key_value_heads is None:
            self.num_key_value_heads = self.num_attention_heads
        if self.head_dim is None:
            self.head_dim = self.hidden_size // self.num_attention_heads
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(
                f"num_attention_heads ({self.num_attention_heads}) must be a multiple of "
                f"num_key_value_heads ({self.num_key_value_heads})"
            )

    @classmethod
    def from_dict(cls, d):
        """From a parsed ``config.json``; keys this model does not use are ignored."""
        model_type = d.get("model_type", "llama")
        if model_type not in ("llama", "mistral"):
            warnings.warn(f"config.json has model_type {model_type!r}; loading it as a Llama model anyway")
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names and v is not None})

    def to_dict(self):
        """What ``config.json`` holds for this configuration."""
        d = {k: v for k, v in dataclasses.asdict(self).items() if v is not None}
        return {"architectures": ["LlamaForCausalLM"], "model_type": "llama", **d}

    def num_parameters(self):
        h, kv = self.hidden_size, self.num_key_value_heads * self.head_dim
        attn = h * self.num_attention_heads * self.head_dim * 2 + h * kv * 2
        per_layer = attn + 3 * h * self.intermediate_size + 2 * h
        head = 0 if self.tie_word_embeddings else self.vocab_size * h
        return self.vocab_size * h + self.num_hidden_layers * per_layer + h + head


def rope_scaling_kind(config):
    scaling = config.rope_scaling or {}
    return scaling.get("rope_type", scaling.get("type", "default"))


def rope_wavelengths(config):
    """Per-pair wavelengths / 2pi (``mx.fast.rope``'s ``freqs``: angle = position / freqs)
    of Llama 3.1's "llama3" RoPE scaling: long wavelengths are stretched by ``factor``,
    short ones kept, the band between interpolated."""
    scaling, d = config.rope_scaling, config.head_dim
    factor = scaling["factor"]
    low, high = scaling.get("low_freq_factor", 1.0), scaling.get("high_freq_factor", 4.0)
    old_context = scaling.get("original_max_position_embeddings", 8192)
    wavelengths = config.rope_theta ** (np.arange(0, d, 2, dtype=np.float64) / d) * 2 * math.pi
    low_wavelength, high_wavelength = old_context / low, old_context / high
    smooth = (old_context / wavelengths - low) / (high - low)
    interpolated = wavelengths / ((1 - smooth) / factor + smooth)
    out = np.where(wavelengths > low_wavelength, wavelengths * factor, wavelengths)
    out = np.where((wavelengths >= high_wavelength) & (wavelengths <= low_wavelength), interpolated, out)
    return out / (2 * math.pi)


class RotaryEmbedding(nn.Module):
    """``mx.fast.rope`` over a whole head, with the configured base and scaling
    (``rope_scaling`` types "linear" and "llama3"; others are ignored with a warning).

    ``freq_factors`` (llama.cpp's ``rope_freqs.weight``) stretch each pair's wavelength;
    GGUF files of "llama3"-scaled models carry them instead of a ``rope_scaling`` entry.
    """

    def __init__(self, config: LlamaConfig, freq_factors=None):
        super().__init__()
        self.dims, self.base, self.scale = config.head_dim, config.rope_theta, 1.0
        self._freqs = None  # "_": not a parameter
        kind = rope_scaling_kind(config)
        if freq_factors is not None:
            exponents = np.arange(0, self.dims, 2, dtype=np.float64) / self.dims
            self._freqs = mx.array((self.base**exponents * np.asarray(freq_factors)).astype(np.float32))
        elif kind == "linear":
            self.scale = 1.0 / config.rope_scaling["factor"]
        elif kind == "llama3":
            self._freqs = mx.array(rope_wavelengths(config).astype(np.float32))
        elif kind != "default":
            warnings.warn(f"rope_scaling of type {kind!r} is not supported; using unscaled RoPE")

    def __call__(self, x, offset):
        base = None if self._freqs is not None else self.base
        return mx.fast.rope(
            x, self.dims, traditional=False, base=base, scale=self.scale, offset=offset, freqs=self._freqs
        )


class Attention(nn.Module):
    def __init__(self, config: LlamaConfig, rope: RotaryEmbedding):
        super().__init__()
        self.n_heads, self.n_kv_heads = config.num_attention_heads, config.num_key_value_heads
        self.head_dim = config.head_dim
        bias = config.attention_bias
        h = config.hidden_size
        self.q_proj = nn.Linear(h, self.n_heads * self.head_dim, bias=bias)
        self.k_proj = nn.Linear(h, self.n_kv_heads * self.head_dim, bias=bias)
        self.v_proj = nn.Linear(h, self.n_kv_heads * self.head_dim, bias=bias)
        self.o_proj = nn.Linear(self.n_heads * self.head_dim, h, bias=bias)
        self._rope = rope  # shared, parameter-free

    def __call__(self, x, cache: Optional[KVCache] = None):
        B, L, _ = x.shape
        # (B, L, heads * head_dim) -> (B, heads, L, head_dim)
        q = self.q_proj(x).reshape(B, L, self.n_heads, self.head_dim).transpose(0, 2, 1, 3)
        k = self.k_proj(x).reshape(B, L, self.n_kv_heads, self.head_dim).transpose(0, 2, 1, 3)
        v = self.v_proj(x).reshape(B, L, self.n_kv_heads, self.head_dim).transpose(0, 2, 1, 3)
        offset = cache.offset if cache is not None else 0
        q, k = self._rope(q, offset), self._rope(k, offset)
        if cache is not None:
            k, v = cache.update(k, v)
        # One new token sees every cached one; a block of new tokens needs the causal
        # mask, aligned to the end of the keys (what "causal" means with a cache).
        mask = "causal" if L > 1 else None
        # sdpa handles grouped-query heads: k/v keep n_kv_heads.
        out = mx.fast.scaled_dot_product_attention(q, k, v, scale=self.head_dim**-0.5, mask=mask)
        return self.o_proj(out.transpose(0, 2, 1, 3).reshape(B, L, -1))


class MLP(nn.Module):
    """SwiGLU: ``down(silu(gate(x)) * up(x))``."""

    def __init__(self, config: LlamaConfig):
        super().__init__()
        h, m, bias = config.hidden_size, config.intermediate_size, config.mlp_bias
        self.gate_proj = nn.Linear(h, m, bias=bias)
        self.up_proj = nn.Linear(h, m, bias=bias)
        self.down_proj = nn.Linear(m, h, bias=bias)

    def __call__(self, x):
        return self.down_proj(nn.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, config: LlamaConfig, rope: RotaryEmbedding):
        super().__init__()
        self.self_attn = Attention(config, rope)
        self.mlp = MLP(config)
        self.input_layernorm = nn.RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.post_attention_layernorm = nn.RMSNorm(config.hidden_size, eps=config.rms_norm_eps)

    def __call__(self, x, cache=None):
        h = x + self.self_attn(self.input_layernorm(x), cache)
        return h + self.mlp(self.post_attention_layernorm(h))


class LlamaModel(nn.Module):
    def __init__(self, config: LlamaConfig, rope: RotaryEmbedding):
        super().__init__()
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = [DecoderLayer(config, rope) for _ in range(config.num_hidden_layers)]
        self.norm = nn.RMSNorm(config.hidden_size, eps=config.rms_norm_eps)

    def __call__(self, tokens, cache=None):
        x = self.embed_tokens(tokens)
        for i, layer in enumerate(self.layers):
            x = layer(x, None if cache is None else cache[i])
        return self.norm(x)


class Llama(nn.Module):
    """``Llama(config)(tokens, cache)`` -> logits of shape ``(batch, length, vocab)``.

    ``tokens`` has shape ``(batch, length)``. With a cache (``make_cache()``) the tokens
    continue the sequence the cache holds; without one they are a whole sequence.
    """

    def __init__(self, config: LlamaConfig, rope_freq_factors=None):
        super().__init__()
        self.config = config
        self.model = LlamaModel(config, RotaryEmbedding(config, rope_freq_factors))
        if not config.tie_word_embeddings:
            self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)

    def __call__(self, tokens, cache: Optional[List[KVCache]] = None):
        x = self.model(tokens, cache)
        if self.config.tie_word_embeddings:
            return self.model.embed_tokens.as_linear(x)
        return self.lm_head(x)

    def make_cache(self):
        return [KVCache() for _ in self.model.layers]

    def shard(self, group=None):
        """Tensor parallelism over ``group`` (the global group by default), in place:
        every rank keeps ``1/size`` of each layer's attention heads and of its MLP's
        hidden units. q/k/v and gate/up become ``AllToShardedLinear`` (each rank computes
        its heads and hidden units), o and down ``ShardedToAllLinear`` (their partial
        products are summed over the group), so every rank ends each layer with the full
        activations and the logits equal the unsharded model's. The embeddings, norms and
        output projection stay whole on every rank. Returns the model."""
        group = group or mx.distributed.init()
        n = group.size()
        c = self.config
        if c.num_key_value_heads % n or c.intermediate_size % n:
            raise ValueError(
                f"[shard] {n} ranks must divide the key/value heads ({c.num_key_value_heads}) "
                f"and the MLP width ({c.intermediate_size})"
            )
        shard = nn.layers.distributed.shard_linear
        for layer in self.model.layers:
            a, m = layer.self_attn, layer.mlp
            a.q_proj, a.k_proj, a.v_proj = (shard(p, "all-to-sharded", group=group) for p in (a.q_proj, a.k_proj, a.v_proj))
            a.o_proj = shard(a.o_proj, "sharded-to-all", group=group)
            a.n_heads, a.n_kv_heads = a.n_heads // n, a.n_kv_heads // n
            m.gate_proj, m.up_proj = (shard(p, "all-to-sharded", group=group) for p in (m.gate_proj, m.up_proj))
            m.down_proj = shard(m.down_proj, "sharded-to-all", group=group)
        return self
