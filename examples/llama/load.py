"""Build a :class:`Llama` from a Hugging Face directory or a GGUF file, and quantize it.

Hugging Face directory: ``config.json`` plus ``model.safetensors``, or the shards named by
``model.safetensors.index.json``. A directory written by MLX's quantizer (``config.json``
has ``"quantization"`` and the weights carry ``.scales``/``.biases``) loads quantized.

GGUF: the architecture comes from the ``llama.*`` metadata, the tensors have llama.cpp's
names (see ``names``), q/k rows are put back into Hugging Face order, and Q4_0/Q4_1/Q8_0
tensors (which ``mx.load`` returns as MLX's ``weight``/``scales``/``biases`` triplets with
groups of 32) become ``nn.QuantizedLinear``/``nn.QuantizedEmbedding`` layers.
"""

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import oxmx.core as mx
import oxmx.nn as nn

from .model import Llama, LlamaConfig
from .names import from_llama_cpp_rows, gguf_to_hf


@dataclass
class Loaded:
    model: Llama
    source: str  # what was read, for the log
    gguf_metadata: dict = field(default_factory=dict)  # empty for a Hugging Face directory


def load_model(path, dtype=None, progress=True):
    """A model from a Hugging Face directory or a ``.gguf`` file; floating-point weights
    are cast to ``dtype`` when given."""
    path = Path(path)
    if path.is_dir():
        loaded = load_hf(path, progress)
    elif path.suffix == ".gguf":
        loaded = load_gguf(path)
    else:
        raise ValueError(f"{path}: expected a Hugging Face model directory or a .gguf file")
    if dtype is not None:
        loaded.model.set_dtype(dtype)
    mx.eval(loaded.model.parameters())
    return loaded


def _safetensors_files(directory):
    index = directory / "model.safetensors.index.json"
    if index.exists():
        weight_map = json.loads(index.read_text())["weight_map"]
        return [directory / f for f in sorted(set(weight_map.values()))]
    single = directory / "model.safetensors"
    if single.exists():
        return [single]
    files = sorted(directory.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"{directory}: no model.safetensors, index or *.safetensors files")
    return files


def load_hf(directory, progress=True):
    from tqdm import tqdm

    directory = Path(directory)
    config_json = json.loads((directory / "config.json").read_text())
    config = LlamaConfig.from_dict(config_json)
    files = _safetensors_files(directory)
    weights = {}
    for f in tqdm(files, desc="loading shards", unit="file", disable=not progress or len(files) == 1):
        weights.update(mx.load(str(f)))
    # Old checkpoints store RoPE's inverse frequencies; the model computes them.
    weights = {k: v for k, v in weights.items() if not k.endswith("rotary_emb.inv_freq")}
    if config.tie_word_embeddings:
        weights.pop("lm_head.weight", None)
    model = Llama(config)
    _quantize_as_stored(model, weights)
    model.load_weights(list(weights.items()))
    names = ", ".join(f.name for f in files)
    return Loaded(model, f"Hugging Face directory {directory} (config.json; {names})")


def _metadata_number(metadata, key, default=None):
    value = metadata.get(key)
    if value is None:
        return default
    return value.item() if isinstance(value, mx.array) else value


def config_from_gguf(metadata, arrays):
    arch = metadata.get("general.architecture", "llama")
    if arch != "llama":
        warnings.warn(f"GGUF architecture is {arch!r}; loading it as a Llama model anyway")

    def num(key, default=None):
        return _metadata_number(metadata, f"{arch}.{key}", default)

    embed = arrays["token_embd.weight"]
    scaling = None  # llama3-style scaling comes as the rope_freqs.weight tensor instead
    if metadata.get(f"{arch}.rope.scaling.type") == "linear":
        scaling = {"rope_type": "linear", "factor": num("rope.scaling.factor")}
    return LlamaConfig(
        hidden_size=num("embedding_length"),
        intermediate_size=num("feed_forward_length"),
        num_hidden_layers=num("block_count"),
        num_attention_heads=num("attention.head_count"),
        num_key_value_heads=num("attention.head_count_kv"),
        head_dim=num("attention.key_length"),
        rms_norm_eps=num("attention.layer_norm_rms_epsilon", 1e-5),
        rope_theta=num("rope.freq_base", 10000.0),
        rope_scaling=scaling,
        vocab_size=embed.shape[0],
        tie_word_embeddings="output.weight" not in arrays,
        max_position_embeddings=num("context_length", 2048),
    )


def load_gguf(path):
    path = Path(path)
    arrays, metadata = mx.load(str(path), return_metadata=True)
    config = config_from_gguf(metadata, arrays)
    rope_freqs = arrays.pop("rope_freqs.weight", None)
    weights, unknown = {}, []
    for name, value in arrays.items():
        hf_name = gguf_to_hf(name)
        if hf_name is None:
            unknown.append(name)
            continue
        if ".self_attn.q_proj." in hf_name:
            value = from_llama_cpp_rows(value, config.num_attention_heads)
        elif ".self_attn.k_proj." in hf_name:
            value = from_llama_cpp_rows(value, config.num_key_value_heads)
        weights[hf_name] = value
    # Scales and biases are float16 in the file; give them the dtype of its float tensors
    # (float32 in llama.cpp's files) so the model computes in one dtype.
    float_dtype = weights["model.norm.weight"].dtype
    for name, value in weights.items():
        if name.endswith((".scales", ".biases")):
            weights[name] = value.astype(float_dtype)
    if unknown:
        warnings.warn(f"{path}: ignoring {len(unknown)} tensors this model does not use: {', '.join(unknown[:5])}")
    freq_factors = None if rope_freqs is None else rope_freqs.astype(mx.float32).tolist()
    model = Llama(config, rope_freq_factors=freq_factors)
    quantized = _quantize_as_stored(model, weights)
    model.load_weights(list(weights.items()))
    tensors = sum(not n.endswith((".scales", ".biases")) for n in arrays)
    kinds = f", {len(quantized)} of them quantized (groups of 32)" if quantized else ""
    return Loaded(model, f"GGUF file {path} ({tensors} tensors{kinds})", metadata)


def _quantize_as_stored(model, weights):
    """Turn the layers whose stored weight is quantized (a ``.scales`` entry beside it)
    into quantized layers of the stored group size and bits; return their paths."""
    found = []

    def predicate(path, module):
        scales = weights.get(f"{path}.scales")
        if scales is None:
            return False
        in_dims = module.weight.shape[-1]
        found.append(path)
        return {"group_size": in_dims // scales.shape[-1], "bits": weights[f"{path}.weight"].shape[-1] * 32 // in_dims}

    nn.quantize(model, class_predicate=predicate)
    return found


def quantize_model(model, bits, group_size):
    """``nn.quantize`` the float ``Linear``/``Embedding`` layers whose input size is a
    multiple of ``group_size``; return ``(quantized, skipped)``: their paths, and those
    of the float layers left as they are."""
    quantized, skipped = [], []

    def predicate(path, module):
        if not isinstance(module, (nn.Linear, nn.Embedding)):
            return False
        (skipped if module.weight.shape[-1] % group_size else quantized).append(path)
        return path in quantized

    nn.quantize(model, group_size=group_size, bits=bits, class_predicate=predicate)
    mx.eval(model.parameters())
    return quantized, skipped
