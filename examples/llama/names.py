"""Hugging Face <-> llama.cpp (GGUF) tensor names, and llama.cpp's q/k row order.

llama.cpp's converter stores ``q_proj``/``k_proj`` with the rows of each head permuted
into the "interleaved" rotary layout (pairs ``(2i, 2i+1)``) that its RoPE kernel expects,
whereas Hugging Face pairs ``i`` with ``i + head_dim/2``. The loader un-permutes those rows
(``from_llama_cpp_rows``), so a GGUF model runs the same network, with the same
``traditional=False`` RoPE, as the Hugging Face model it came from. A row permutation
touches neither the input axis nor its quantization groups, so it applies unchanged to
the packed weights, scales and biases of a quantized tensor.
"""

import re

# per-layer suffixes: Hugging Face module path -> llama.cpp name
LAYER_NAMES = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
    "input_layernorm": "attn_norm",
    "post_attention_layernorm": "ffn_norm",
}
GLOBAL_NAMES = {"model.embed_tokens": "token_embd", "model.norm": "output_norm", "lm_head": "output"}
_LAYER_FROM_GGUF = {v: k for k, v in LAYER_NAMES.items()}
_GLOBAL_FROM_GGUF = {v: k for k, v in GLOBAL_NAMES.items()}


def hf_to_gguf(name):
    """``model.layers.3.mlp.up_proj.weight`` -> ``blk.3.ffn_up.weight`` (None if unknown)."""
    module, _, leaf = name.rpartition(".")
    if module in GLOBAL_NAMES:
        return f"{GLOBAL_NAMES[module]}.{leaf}"
    m = re.fullmatch(r"model\.layers\.(\d+)\.(.+)", module)
    if m and m.group(2) in LAYER_NAMES:
        return f"blk.{m.group(1)}.{LAYER_NAMES[m.group(2)]}.{leaf}"
    return None


def gguf_to_hf(name):
    """``blk.3.ffn_up.scales`` -> ``model.layers.3.mlp.up_proj.scales`` (None if unknown)."""
    module, _, leaf = name.rpartition(".")
    if module in _GLOBAL_FROM_GGUF:
        return f"{_GLOBAL_FROM_GGUF[module]}.{leaf}"
    m = re.fullmatch(r"blk\.(\d+)\.(\w+)", module)
    if m and m.group(2) in _LAYER_FROM_GGUF:
        return f"model.layers.{m.group(1)}.{_LAYER_FROM_GGUF[m.group(2)]}.{leaf}"
    return None


def to_llama_cpp_rows(w, n_heads):
    """Reorder the rows of a q/k projection (``(n_heads * head_dim, ...)``) as llama.cpp's
    converter does: row ``i`` and ``i + head_dim/2`` of each head become adjacent."""
    rest = w.shape[1:]
    half = w.shape[0] // n_heads // 2
    return w.reshape(n_heads, 2, half, *rest).swapaxes(1, 2).reshape(w.shape)


def from_llama_cpp_rows(w, n_heads):
    """The inverse of :func:`to_llama_cpp_rows` (works on NumPy and oxmx arrays)."""
    rest = w.shape[1:]
    half = w.shape[0] // n_heads // 2
    return w.reshape(n_heads, half, 2, *rest).swapaxes(1, 2).reshape(w.shape)
