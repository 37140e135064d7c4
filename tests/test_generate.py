"""examples/generate.py and its `llama` package: a tiny random Llama saved as a Hugging
Face directory (sharded and not) and as a llama.cpp-style GGUF file (float, Q8_0, Q4_0)
must load to the same logits as an independent NumPy implementation of the Llama
math written here, with float, 8-bit and 4-bit weights; the KV cache must reproduce
full-sequence logits; sampling must follow its distribution; the CLI must run.

The reference reads the weights with the `safetensors` and `gguf` packages, not with the
example's loader, and dequantizes with its own NumPy code."""

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tqdm")
gguf = pytest.importorskip("gguf")
safetensors_numpy = pytest.importorskip("safetensors.numpy")

import oxmx.core as mx  # noqa: E402
from oxmx.utils import tree_flatten  # noqa: E402

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
sys.path.insert(0, str(EXAMPLES))

from llama.cache import KVCache  # noqa: E402
from llama.generation import generate, make_sampler  # noqa: E402
from llama.load import load_model, quantize_model  # noqa: E402
from llama.random_model import CONFIGS, random_weights, save_gguf, save_hf  # noqa: E402

TINY = CONFIGS["tiny"]
TINY_TIED = dataclasses.replace(TINY, tie_word_embeddings=True)
# Scaled RoPE: with head_dim 16 and an original context of 64 tokens, llama3 scaling keeps
# pair 0's wavelength (6.3 < 64/4), interpolates pairs 1-2 and stretches the rest.
LLAMA3 = dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0, original_max_position_embeddings=64)
VARIANTS = (
    ("untied", TINY, 2),
    ("tied", TINY_TIED, 1),
    ("linear-rope", dataclasses.replace(TINY, rope_scaling={"rope_type": "linear", "factor": 4.0}), 1),
    ("llama3-rope", dataclasses.replace(TINY, rope_scaling=LLAMA3), 1),
)
TOKENS = np.random.default_rng(7).integers(0, TINY.vocab_size, 13)


# --- the reference: Llama in float64 NumPy, from the Hugging Face weights ---------------


def rms_norm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def rotate_half_rope(x, inv_freq):
    """Hugging Face's RoPE on (heads, length, head_dim): dim i pairs with i + head_dim/2,
    rotated by position * inv_freq[i]."""
    d = x.shape[-1]
    angles = np.arange(x.shape[1])[:, None] * inv_freq[None, :]
    cos, sin = np.cos(np.concatenate([angles, angles], -1)), np.sin(np.concatenate([angles, angles], -1))
    rotated = np.concatenate([-x[..., d // 2 :], x[..., : d // 2]], -1)
    return x * cos + rotated * sin


def inverse_frequencies(config_json):
    """RoPE's per-pair inverse frequencies, with Hugging Face's "linear" and "llama3"
    scalings (written here in the inverse-frequency form of HF's implementation)."""
    d, base = config_json["head_dim"], config_json["rope_theta"]
    inv = base ** (-np.arange(0, d, 2) / d)
    scaling = config_json.get("rope_scaling") or {"rope_type": "default"}
    if scaling["rope_type"] == "linear":
        return inv / scaling["factor"]
    if scaling["rope_type"] == "llama3":
        factor, low, high = scaling["factor"], scaling["low_freq_factor"], scaling["high_freq_factor"]
        old = scaling["original_max_position_embeddings"]
        wavelength = 2 * np.pi / inv
        scaled = np.where(wavelength > old / low, inv / factor, inv)
        smooth = (old / wavelength - low) / (high - low)
        medium = (wavelength >= old / high) & (wavelength <= old / low)
        return np.where(medium, (1 - smooth) * inv / factor + smooth * inv, scaled)
    return inv


def reference_logits(w, cfg, tokens):
    """Logits (length, vocab) of the Llama ``cfg`` with weights ``w`` (HF names, NumPy)."""
    w = {k: v.astype(np.float64) for k, v in w.items()}
    H, KV, D = cfg["heads"], cfg["kv_heads"], cfg["head_dim"]
    L = len(tokens)
    x = w["model.embed_tokens.weight"][tokens]
    causal = np.triu(np.full((L, L), -np.inf), 1)
    for i in range(cfg["layers"]):
        p = f"model.layers.{i}."
        h = rms_norm(x, w[p + "input_layernorm.weight"], cfg["eps"])
        q = (h @ w[p + "self_attn.q_proj.weight"].T).reshape(L, H, D).transpose(1, 0, 2)
        k = (h @ w[p + "self_attn.k_proj.weight"].T).reshape(L, KV, D).transpose(1, 0, 2)
        v = (h @ w[p + "self_attn.v_proj.weight"].T).reshape(L, KV, D).transpose(1, 0, 2)
        q, k = rotate_half_rope(q, cfg["inv_freq"]), rotate_half_rope(k, cfg["inv_freq"])
        k, v = np.repeat(k, H // KV, axis=0), np.repeat(v, H // KV, axis=0)  # query head j uses kv head j // (H/KV)
        scores = q @ k.transpose(0, 2, 1) / np.sqrt(D) + causal
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        attn = (probs @ v).transpose(1, 0, 2).reshape(L, H * D)
        x = x + attn @ w[p + "self_attn.o_proj.weight"].T
        h = rms_norm(x, w[p + "post_attention_layernorm.weight"], cfg["eps"])
        gate, up = h @ w[p + "mlp.gate_proj.weight"].T, h @ w[p + "mlp.up_proj.weight"].T
        x = x + (gate / (1 + np.exp(-gate)) * up) @ w[p + "mlp.down_proj.weight"].T
    x = rms_norm(x, w["model.norm.weight"], cfg["eps"])
    head = w.get("lm_head.weight", w["model.embed_tokens.weight"])
    return x @ head.T


def reference_config(config_json):
    c = config_json
    return dict(
        heads=c["num_attention_heads"], kv_heads=c["num_key_value_heads"], head_dim=c["head_dim"],
        layers=c["num_hidden_layers"], eps=c["rms_norm_eps"], inv_freq=inverse_frequencies(c),
    )  # fmt: skip


def read_hf(directory):
    """The Hugging Face directory's weights (NumPy) and its config, read without oxmx."""
    import json

    weights = {}
    for f in sorted(Path(directory).glob("*.safetensors")):
        weights.update(safetensors_numpy.load_file(str(f)))
    return weights, reference_config(json.loads((Path(directory) / "config.json").read_text()))


def llama_cpp_permute(w, n_heads):
    """llama.cpp's convert_hf_to_gguf q/k permutation (HF rotate-half -> interleaved)."""
    return w.reshape(n_heads, 2, w.shape[0] // n_heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def read_gguf_dequantized(path, cfg):
    """A GGUF file's tensors as float64 with HF names, dequantized by the gguf package and
    with the q/k permutation undone (by inverting ``llama_cpp_permute`` numerically)."""
    names = {"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
             "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
             "ffn_down": "mlp.down_proj", "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm"}  # fmt: skip
    out = {}
    for t in gguf.GGUFReader(str(path)).tensors:
        w = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float64).reshape(tuple(reversed(t.shape.tolist())))
        m = re.fullmatch(r"blk\.(\d+)\.(\w+)\.weight", t.name)
        if m:
            name = f"model.layers.{m.group(1)}.{names[m.group(2)]}.weight"
            heads = {"attn_q": cfg["heads"], "attn_k": cfg["kv_heads"]}.get(m.group(2))
            if heads:
                index = llama_cpp_permute(np.arange(w.shape[0]), heads)  # row r of the file is HF row index[r]
                w = w[np.argsort(index)]
        else:
            name = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight",
                    "output.weight": "lm_head.weight"}[t.name]  # fmt: skip
        out[name] = w
    return out


def np_dequantize(wq, scales, biases, group_size, bits):
    """MLX's affine dequantization, w = scale * q + bias per group, for bits dividing 32:
    word j of a row holds elements 32/bits*j ... in increasing bit positions."""
    per_word = 32 // bits
    shifts = np.arange(per_word, dtype=np.uint32) * bits
    q = (wq[..., None] >> shifts) & np.uint32((1 << bits) - 1)
    q = q.reshape(*wq.shape[:-1], -1).astype(np.float64)
    scales, biases = (np.repeat(a.astype(np.float64), group_size, -1) for a in (scales, biases))
    return q * scales + biases


def quantization_of(model, prefix):
    """(group_size, bits) of the quantized layer at ``prefix`` (a dotted path)."""
    module = model
    for part in prefix.split("."):
        module = module[int(part)] if isinstance(module, list) else module[part]
    return module.group_size, module.bits


def dequantized_parameters(model):
    """The model's own parameters with every quantized layer dequantized by NumPy."""
    params = {k: np.array(v) for k, v in tree_flatten(model.parameters())}
    out = {}
    for name, value in params.items():
        prefix = name[: -len(".weight")]
        if name.endswith(".weight") and f"{prefix}.scales" in params:
            group_size, bits = quantization_of(model, prefix)
            out[name] = np_dequantize(value, params[f"{prefix}.scales"], params[f"{prefix}.biases"], group_size, bits)
        elif not name.endswith((".scales", ".biases")):
            out[name] = value
    return out


def oxmx_logits(model, tokens):
    return np.array(model(mx.array(tokens)[None]).astype(mx.float32))[0]


def assert_logits_close(actual, expected, tol=1e-4):
    scale = np.abs(expected).max()
    np.testing.assert_allclose(actual, expected, rtol=0, atol=tol * scale)


# --- fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """The tiny model (HF sharded in 2 files; GGUF float, Q8_0 and Q4_0), its tied twin
    and twins with scaled RoPE (one HF file, float GGUF)."""
    root = tmp_path_factory.mktemp("llama")
    out = {}
    for name, config, shards in VARIANTS:
        weights = random_weights(config, seed=3)
        mx.eval(weights)
        save_hf(root / name / "hf", config, weights, shards=shards)
        for quant in (None, "Q8_0", "Q4_0") if name == "untied" else (None,):
            save_gguf(root / name / f"{quant or 'F32'}.gguf", config, weights, quant=quant)
        out[name] = root / name
    return out


# --- float --------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", [v[0] for v in VARIANTS])
def test_hf_load_matches_numpy_reference(saved, variant):
    directory = saved[variant] / "hf"
    if variant == "untied":
        assert len(list(directory.glob("model-0000?-of-00002.safetensors"))) == 2
        assert (directory / "model.safetensors.index.json").exists()
    weights, cfg = read_hf(directory)
    assert ("lm_head.weight" in weights) == (variant != "tied")
    model = load_model(directory).model
    assert_logits_close(oxmx_logits(model, TOKENS), reference_logits(weights, cfg, TOKENS))


@pytest.mark.parametrize("variant", [v[0] for v in VARIANTS])
def test_gguf_is_written_like_llama_cpp_and_loads_to_the_same_logits(saved, variant):
    weights, cfg = read_hf(saved[variant] / "hf")
    path = saved[variant] / "F32.gguf"
    reader = gguf.GGUFReader(str(path))
    tensors = {t.name: t for t in reader.tensors}
    expected = {"token_embd.weight", "output_norm.weight"} | {
        f"blk.{i}.{n}.weight"
        for i in range(cfg["layers"])
        for n in ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")
        + ("attn_norm", "ffn_norm")
    }
    expected |= {"output.weight"} if variant != "tied" else set()
    expected |= {"rope_freqs.weight"} if variant == "llama3-rope" else set()
    assert set(tensors) == expected
    for name, key, heads in (("attn_q", "q_proj", cfg["heads"]), ("attn_k", "k_proj", cfg["kv_heads"])):
        stored = np.array(tensors[f"blk.1.{name}.weight"].data)
        hf = weights[f"model.layers.1.self_attn.{key}.weight"]
        np.testing.assert_array_equal(stored, llama_cpp_permute(hf, heads))
        assert not np.array_equal(stored, hf)  # the permutation is not the identity here
    field = reader.fields["llama.attention.head_count_kv"]
    assert int(field.parts[field.data[0]][0]) == cfg["kv_heads"]

    from_gguf = oxmx_logits(load_model(path).model, TOKENS)
    from_hf = oxmx_logits(load_model(saved[variant] / "hf").model, TOKENS)
    assert_logits_close(from_gguf, from_hf, tol=1e-5)
    assert_logits_close(from_gguf, reference_logits(weights, cfg, TOKENS))


def test_kv_cache_decoding_matches_the_full_sequence(saved, monkeypatch):
    monkeypatch.setattr(KVCache, "STEP", 4)  # make the cache grow several times
    model = load_model(saved["untied"] / "hf").model
    full = oxmx_logits(model, TOKENS)
    cache = model.make_cache()
    pieces = [TOKENS[:5], TOKENS[5:8], *([t] for t in TOKENS[8:])]  # prefill, a block, then single tokens
    got = [np.array(model(mx.array(piece)[None], cache))[0] for piece in map(np.asarray, pieces)]
    assert cache[0].offset == len(TOKENS) and cache[0].keys.shape[2] == 16
    assert_logits_close(np.concatenate(got), full, tol=1e-5)


def test_greedy_generation_follows_the_argmax_of_full_forward_passes(saved):
    model = load_model(saved["untied"] / "hf").model
    prompt = TOKENS[:6].tolist()
    stats = generate(model, prompt, 6, make_sampler(0.0))
    sequence = list(prompt)
    for _ in range(6):
        sequence.append(int(np.argmax(oxmx_logits(model, np.array(sequence))[-1])))
    assert stats.tokens == sequence[len(prompt) :]
    assert stats.prompt_tokens == 6 and stats.prompt_seconds > 0 and stats.decode_seconds > 0

    eos = stats.tokens[2]
    stopped = generate(model, prompt, 6, make_sampler(0.0), eos_ids={eos})
    assert stopped.tokens == stats.tokens[: stats.tokens.index(eos) + 1]


def test_sampling_follows_temperature_and_top_p():
    logits = np.log(np.array([0.05, 0.5, 0.15, 0.3]))  # ranked: 1 (0.5), 3 (0.3), 2 (0.15), 0 (0.05)
    rows = mx.array(np.tile(logits, (4000, 1)).astype(np.float32))
    mx.random.seed(1)

    def frequencies(temp, top_p):
        ids = np.array(make_sampler(temp, top_p)(rows))
        return np.bincount(ids, minlength=4) / len(ids)

    def softmax(z):
        e = np.exp(z - z.max())
        return e / e.sum()

    # 4000 draws: a frequency's standard error is at most 0.008.
    np.testing.assert_allclose(frequencies(1.0, 1.0), softmax(logits), atol=0.03)
    np.testing.assert_allclose(frequencies(0.5, 1.0), softmax(logits / 0.5), atol=0.03)
    # top-p 0.7: token 1 (0.5) has not reached 0.7, token 3 takes it to 0.8; the rest go.
    np.testing.assert_allclose(frequencies(1.0, 0.7), [0, 0.5 / 0.8, 0, 0.3 / 0.8], atol=0.03)
    assert frequencies(1.0, 0.3).tolist() == [0, 1, 0, 0]  # only the most probable token
    assert frequencies(0.0, 1.0).tolist() == [0, 1, 0, 0]  # greedy


# --- quantized ----------------------------------------------------------------------------


@pytest.mark.parametrize("bits", [8, 4])
def test_quantized_model_matches_reference_with_its_dequantized_weights(saved, bits):
    float_model = load_model(saved["untied"] / "hf").model
    float_logits = oxmx_logits(float_model, TOKENS)
    float_weights = {k: np.array(v) for k, v in tree_flatten(float_model.parameters())}

    model = load_model(saved["untied"] / "hf").model
    quantized, skipped = quantize_model(model, bits=bits, group_size=64)
    assert len(quantized) == 2 * 7 + 2 and skipped == []  # every input size here is a multiple of 64
    params = dict(tree_flatten(model.parameters()))
    assert params["model.layers.0.self_attn.q_proj.weight"].dtype == mx.uint32
    assert params["model.embed_tokens.weight"].dtype == mx.uint32 and "lm_head.scales" in params

    dequantized = dequantized_parameters(model)
    for name, w in dequantized.items():  # each weight within one step of its group's scale
        if f"{name[: -len('.weight')]}.scales" in params:
            scales = np.repeat(np.abs(np.array(params[f"{name[: -len('.weight')]}.scales"])), 64, -1)
            assert np.all(np.abs(w - float_weights[name]) <= scales * 1.001 + 1e-7), name
    _, cfg = read_hf(saved["untied"] / "hf")
    logits = oxmx_logits(model, TOKENS)
    assert_logits_close(logits, reference_logits(dequantized, cfg, TOKENS))

    # and close to the float model. Rounding noise grows ~16x from 8 to 4 bits: on this
    # model the logits' relative RMS error is ~0.013 at 8 bits and ~0.22 at 4 bits.
    error = np.linalg.norm(logits - float_logits) / np.linalg.norm(float_logits)
    correlation = np.corrcoef(logits.ravel(), float_logits.ravel())[0, 1]
    agree = np.mean(logits.argmax(-1) == float_logits.argmax(-1))
    if bits == 8:
        assert error < 0.03 and agree == 1, (error, agree)
    else:
        assert 0.03 < error < 0.35 and correlation > 0.93 and agree > 0.5, (error, correlation, agree)


def test_quantized_hf_directory_loads_quantized(saved, tmp_path):
    """A directory holding a quantized model's own parameters (as MLX's quantizer writes
    them: weight/scales/biases per layer) loads with the same layers and logits."""
    import shutil

    model = load_model(saved["untied"] / "hf").model
    quantize_model(model, bits=4, group_size=32)
    shutil.copy(saved["untied"] / "hf" / "config.json", tmp_path / "config.json")
    mx.save_safetensors(str(tmp_path / "model.safetensors"), dict(tree_flatten(model.parameters())))
    loaded = load_model(tmp_path).model
    layer = loaded.model.layers[1].mlp.down_proj
    assert (layer.bits, layer.group_size, layer["weight"].dtype) == (4, 32, mx.uint32)
    np.testing.assert_array_equal(oxmx_logits(loaded, TOKENS), oxmx_logits(model, TOKENS))


def test_gguf_quantized_triplets_are_the_gguf_dequantization(saved):
    """Without any quantization op: the Q8_0/Q4_0 triplets mx.load returns, dequantized
    by ``np_dequantize`` (bits from the packed width), equal the gguf package's own
    dequantization, so the reference used below is the same math."""
    for quant, bits in (("Q8_0", 8), ("Q4_0", 4)):
        path = saved["untied"] / f"{quant}.gguf"
        arrays = mx.load(str(path))
        raw = {t.name: t for t in gguf.GGUFReader(str(path)).tensors}
        quantized = [n for n in arrays if n.endswith(".scales")]
        assert len(quantized) == 2 * 7 + 2  # every matrix: 7 per layer, embedding, output
        for scales_name in quantized:
            prefix = scales_name[: -len(".scales")]
            wq = np.array(arrays[f"{prefix}.weight"])
            assert wq.dtype == np.uint32 and wq.shape[-1] * 32 // bits == arrays[scales_name].shape[-1] * 32
            mine = np_dequantize(wq, np.array(arrays[scales_name]), np.array(arrays[f"{prefix}.biases"]), 32, bits)
            t = raw[f"{prefix}.weight"]
            theirs = gguf.quants.dequantize(t.data, t.tensor_type).reshape(mine.shape)
            np.testing.assert_allclose(mine, theirs, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("quant", ["Q8_0", "Q4_0"])
def test_quantized_gguf_matches_its_dequantized_float_reference(saved, quant):
    _, cfg = read_hf(saved["untied"] / "hf")
    path = saved["untied"] / f"{quant}.gguf"
    model = load_model(path).model
    params = dict(tree_flatten(model.parameters()))
    assert params["model.layers.0.mlp.up_proj.weight"].dtype == mx.uint32
    assert model.model.layers[0].mlp.up_proj.group_size == 32
    assert model.model.layers[0].mlp.up_proj.bits == (8 if quant == "Q8_0" else 4)
    reference = reference_logits(read_gguf_dequantized(path, cfg), cfg, TOKENS)
    assert_logits_close(oxmx_logits(model, TOKENS), reference)


# --- the command line ---------------------------------------------------------------------

REPORT = re.compile(r"prompt: (\d+) tokens, [\d,.]+ tok/s; generation: (\d+) tokens, [\d,.]+ tok/s; peak memory")


def run_cli(*args):
    cmd = [sys.executable, str(EXAMPLES / "generate.py"), *map(str, args)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{args} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.mark.parametrize("source", ["hf", "F32.gguf"])
def test_cli_generates_from_a_saved_model_and_reports_speed(saved, source):
    out = run_cli("--model", saved["untied"] / source, "--max-tokens", 5, "--prompt", "Hello there", "--temp", 0)
    m = REPORT.search(out)
    assert m and m.group(2) == "5", out
    # character vocabulary: 11 characters (+ BOS and the leading "▁" in the GGUF file)
    assert m.group(1) == ("11" if source == "hf" else "13"), out
    assert "Hello there" in out and ("GGUF file" in out) == (source != "hf")


def test_cli_random_config_and_save_random(tmp_path):
    out = run_cli("--random-config", "tiny", "--prompt-tokens", 7, "--max-tokens", 3, "--top-p", 0.9, "--warmup")
    m = REPORT.search(out)
    assert m and m.groups() == ("7", "3") and "warm-up: the prompt and 3 tokens" in out, out
    out = run_cli("--random-config", "tiny", "--save-random", tmp_path, "--shards", 2)
    assert (tmp_path / "hf" / "model.safetensors.index.json").exists() and (tmp_path / "model.gguf").exists()


@pytest.mark.parametrize("bits, group_size, layers", [(8, 128, 2), (4, 32, 15)])
def test_cli_quantizes(saved, bits, group_size, layers):
    # tied model: 7 matrices per layer and the embedding; with groups of 128 only the two
    # down_proj layers (input 128) qualify, the others (input 64) stay in floating point
    args = ("--model", saved["tied"] / "hf", "--bits", bits, "--group-size", group_size, "--max-tokens", 5)
    out = run_cli(*args)
    assert f"quantized: {bits}-bit, group size {group_size}: {layers} layers" in out and REPORT.search(out), out
    assert ("kept in floating point" in out) == (layers == 2), out


# --- tokenizers ---------------------------------------------------------------------------


def write_tokenizer_json(path, tokens, special, bos, byte_level):
    import json

    vocab = {t: i for i, t in enumerate(tokens) if i not in special}
    data = {
        "added_tokens": [{"id": i, "content": tokens[i], "special": True} for i in special],
        "pre_tokenizer": {"type": "ByteLevel"} if byte_level else None,
        "decoder": {"type": "ByteLevel"} if byte_level else {"type": "Sequence"},
        "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": tokens[bos]}}]},
        "model": {"type": "BPE", "vocab": vocab, "merges": []},
    }
    path.write_text(json.dumps(data))


def test_vocabulary_tokenizers_without_the_tokenizers_package(tmp_path):
    from llama.tokenizer import CharTokenizer, VocabTokenizer

    # SentencePiece spelling: "▁" for spaces, <0xHH> byte tokens for what is missing
    tokens = ["<unk>", "<s>", "</s>", "<0x0A>", "<0xC3>", "<0xA9>", "▁", "▁Hello", "▁wor", "ld", "l", "d", "o"]
    write_tokenizer_json(tmp_path / "spm.json", tokens, {0, 1, 2}, 1, byte_level=False)
    spm = VocabTokenizer.from_tokenizer_json(tmp_path / "spm.json", {"bos_token_id": 1, "eos_token_id": 2})
    ids = spm.encode("Hello world\né")
    assert [tokens[i] for i in ids] == ["<s>", "▁Hello", "▁wor", "ld", "<0x0A>", "<0xC3>", "<0xA9>"]
    assert spm.decode(ids) == " Hello world\né" and spm.eos_ids == {2}

    # byte-level BPE spelling (Llama 3): "Ġ" is a space, "Ċ" a newline, "Ã©" is "é"
    tokens = ["<|begin_of_text|>", "<|end_of_text|>", "Hello", "Ġworld", "Ċ", "Ã©", "Ġ"]
    write_tokenizer_json(tmp_path / "bpe.json", tokens, {0, 1}, 0, byte_level=True)
    bpe = VocabTokenizer.from_tokenizer_json(tmp_path / "bpe.json", {"bos_token_id": 0, "eos_token_id": [1]})
    ids = bpe.encode("Hello world\né é")
    assert [tokens[i] for i in ids] == ["<|begin_of_text|>", "Hello", "Ġworld", "Ċ", "Ã©", "Ġ", "Ã©"]
    assert bpe.decode(ids) == "Hello world\né é" and bpe.eos_ids == {1}

    chars = CharTokenizer(97)
    assert chars.decode(chars.encode("Hi there!\n")) == "Hi there!\n" and max(chars.encode("~")) < 97
    assert CharTokenizer(300).encode("é") == [0xC3, 0xA9] and CharTokenizer(300).decode([0xC3, 0xA9]) == "é"


def test_gguf_vocabulary_tokenizer(saved):
    from llama.tokenizer import tokenizer_for

    _, metadata = mx.load(str(saved["untied"] / "F32.gguf"), return_metadata=True)
    tokenizer = tokenizer_for(saved["untied"] / "F32.gguf", metadata, TINY.vocab_size)
    ids = tokenizer.encode("Hi there")
    assert ids[0] == 96 and len(ids) == 2 + len("Hi there")  # BOS, the leading "▁", one id per character
    assert tokenizer.decode(ids) == " Hi there"  # BOS is a control token: not printed


def test_tokenizer_json_through_the_tokenizers_package(saved, tmp_path):
    """Where `tokenizers` is installed (not in the CPU CI image), a model directory's
    tokenizer.json goes through it: here a character-level one, checked against the ids
    of the character vocabulary."""
    tokenizers = pytest.importorskip("tokenizers")
    import shutil

    from llama.tokenizer import CHARSET, CharTokenizer, HFTokenizer, tokenizer_for

    directory = tmp_path / "hf"
    shutil.copytree(saved["untied"] / "hf", directory)
    vocab = {c: i for i, c in enumerate(CHARSET)}
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="?"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Split(tokenizers.Regex(r"[\s\S]"), behavior="isolated")
    tok.decoder = tokenizers.decoders.Fuse()
    tok.save(str(directory / "tokenizer.json"))

    tokenizer = tokenizer_for(directory, {}, TINY.vocab_size)
    assert isinstance(tokenizer, HFTokenizer)
    text = "Hello, world!\n"
    assert tokenizer.encode(text) == CharTokenizer(TINY.vocab_size).encode(text)
    assert tokenizer.decode(tokenizer.encode(text)) == text
    out = run_cli("--model", directory, "--max-tokens", 3, "--prompt", text)
    assert "(tokenizers package)" in out and REPORT.search(out).group(1) == str(len(text)), out
