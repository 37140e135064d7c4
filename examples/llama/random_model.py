"""Random Llama models: named configurations, random weights, and writing them in the
two layouts the loader reads (a Hugging Face directory and a llama.cpp-style GGUF file).

The weights are drawn so that activations stay near unit scale (linear layers
``N(0, 1/in_dims)``, embeddings ``N(0, 1)``, norm weights ``1 + N(0, 0.1^2)``); the text
such a model writes is noise, but its speed and its numerics are a real model's.
"""

import json
from pathlib import Path

import numpy as np

import oxmx.core as mx
from oxmx.utils import tree_flatten

from .model import Llama, LlamaConfig, rope_scaling_kind, rope_wavelengths
from .names import hf_to_gguf, to_llama_cpp_rows
from .tokenizer import CHARSET, SPACE_MARK

CONFIGS = {
    # small enough for tests: every part of the architecture, in milliseconds
    "tiny": LlamaConfig(
        hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, vocab_size=97, rms_norm_eps=1e-5, rope_theta=10000.0,
        max_position_embeddings=256,
    ),
    # the shape of Llama 3.2 1B (1.24 billion parameters, tied embeddings)
    "1b": LlamaConfig(
        hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
        num_key_value_heads=8, head_dim=64, vocab_size=128256, rms_norm_eps=1e-5, rope_theta=500000.0,
        tie_word_embeddings=True, max_position_embeddings=131072,
    ),
}  # fmt: skip


def random_weights(config: LlamaConfig, seed=0, dtype=mx.float32):
    """``{Hugging Face name: array}`` of random weights for ``config`` (lazy arrays)."""
    shapes = {name: p.shape for name, p in tree_flatten(Llama(config).parameters())}
    keys = mx.random.split(mx.random.key(seed), len(shapes))
    weights = {}
    for key, (name, shape) in zip(keys, sorted(shapes.items())):
        if name.endswith("norm.weight"):
            weights[name] = (1 + mx.random.normal(shape, key=key) * 0.1).astype(dtype)
        elif "embed_tokens" in name:
            weights[name] = mx.random.normal(shape, dtype=dtype, key=key)
        elif name.endswith(".bias"):
            weights[name] = mx.random.normal(shape, dtype=dtype, scale=0.1, key=key)
        else:
            weights[name] = mx.random.normal(shape, dtype=dtype, scale=shape[-1] ** -0.5, key=key)
    return weights


def random_model(config: LlamaConfig, seed=0, dtype=mx.float32, progress=False):
    """A :class:`Llama` with :func:`random_weights`, evaluated layer by layer."""
    from tqdm import tqdm

    model = Llama(config)
    model.load_weights(list(random_weights(config, seed, dtype).items()))
    parts = [model.model.embed_tokens, *model.model.layers, model.model.norm]
    if not config.tie_word_embeddings:
        parts.append(model.lm_head)
    for part in tqdm(parts, desc="random weights", unit="part", disable=not progress):
        mx.eval(part.parameters())
    return model


def char_vocabulary(vocab_size):
    """Token strings for a random model's GGUF file: ``CHARSET`` in SentencePiece
    spelling, then ``<s>`` (the BOS token) and filler tokens up to ``vocab_size``."""
    chars = [SPACE_MARK if c == " " else c for c in CHARSET][: max(vocab_size - 1, 0)]
    rest = ["<s>"] + [f"<unused{i}>" for i in range(vocab_size - len(chars) - 1)]
    return (chars + rest)[:vocab_size]


def _numpy(weights):
    return {k: np.asarray(v.astype(mx.float32)) for k, v in weights.items()}


def save_hf(directory, config: LlamaConfig, weights, shards=1):
    """Write ``config.json`` and the weights as safetensors: ``model.safetensors``, or
    ``shards`` files ``model-0000i-of-0000n.safetensors`` with an index (Hugging Face's
    names and layout)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    names = sorted(weights)
    if shards == 1:
        mx.save_safetensors(str(directory / "model.safetensors"), {n: weights[n] for n in names}, {"format": "pt"})
        return
    groups = [names[i::shards] for i in range(shards)]  # interleaved, so every shard has layers
    weight_map, total = {}, 0
    for i, group in enumerate(groups, 1):
        file = f"model-{i:05d}-of-{shards:05d}.safetensors"
        mx.save_safetensors(str(directory / file), {n: weights[n] for n in group}, {"format": "pt"})
        for n in group:
            weight_map[n] = file
            total += weights[n].nbytes
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (directory / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")


def save_gguf(path, config: LlamaConfig, weights, quant=None, tokens=None):
    """Write a GGUF file as llama.cpp's converter would: its tensor names and metadata,
    q/k rows in its interleaved rotary order, norms in float32, and with ``quant``
    (``"Q8_0"``, ``"Q4_0"`` or ``"Q4_1"``) the matrices in that block format.
    ``tokens`` (default :func:`char_vocabulary`) becomes ``tokenizer.ggml.tokens``."""
    import gguf

    quant_type = None if quant is None else gguf.GGMLQuantizationType[quant]
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("random llama")
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_key_length(config.head_dim)
    writer.add_value_length(config.head_dim)
    writer.add_rope_dimension_count(config.head_dim)
    writer.add_rope_freq_base(config.rope_theta)
    kind = rope_scaling_kind(config)
    if kind == "linear":
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(config.rope_scaling["factor"])
    elif kind == "llama3":  # llama.cpp stores each pair's wavelength stretch as a tensor
        unscaled = config.rope_theta ** (np.arange(0, config.head_dim, 2) / config.head_dim)
        writer.add_tensor("rope_freqs.weight", (rope_wavelengths(config) / unscaled).astype(np.float32))
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_vocab_size(config.vocab_size)
    tokens = char_vocabulary(config.vocab_size) if tokens is None else tokens
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    if "<s>" in tokens:
        writer.add_bos_token_id(tokens.index("<s>"))
        writer.add_token_types([3 if t == "<s>" else 1 for t in tokens])  # 3: control

    for name, w in sorted(_numpy(weights).items()):
        if config.tie_word_embeddings and name == "lm_head.weight":
            continue
        if ".self_attn.q_proj." in name:
            w = to_llama_cpp_rows(w, config.num_attention_heads)
        elif ".self_attn.k_proj." in name:
            w = to_llama_cpp_rows(w, config.num_key_value_heads)
        target = hf_to_gguf(name)
        if quant_type is not None and w.ndim == 2 and w.shape[-1] % 32 == 0:
            writer.add_tensor(target, gguf.quants.quantize(w, quant_type), raw_dtype=quant_type)
        else:
            writer.add_tensor(target, np.ascontiguousarray(w, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def save_random(directory, config: LlamaConfig, seed=0, dtype=mx.float32, shards=1, quant=None):
    """Write a random model as ``directory/hf/`` and ``directory/model.gguf``; return the
    weights (``{Hugging Face name: array}``)."""
    directory = Path(directory)
    weights = random_weights(config, seed, dtype)
    mx.eval(weights)
    save_hf(directory / "hf", config, weights, shards)
    save_gguf(directory / "model.gguf", config, weights, quant)
    return weights
