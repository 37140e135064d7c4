"""Generate text with a Llama-architecture model (Llama 1/2/3, and models of the same
layout) using oxmx.

The model comes from a local Hugging Face directory (``config.json`` + safetensors,
sharded or not), a GGUF file (float, Q8_0, Q4_0 or Q4_1 tensors), or a named random
configuration (nothing is read). ``--bits`` quantizes it (``nn.quantize``). The prompt is
processed in one forward pass, then tokens are sampled one at a time (temperature and
top-p) over a KV cache and printed as they come, followed by the speed of both phases.

    python examples/generate.py --model ~/models/Llama-3.2-1B-Instruct --prompt "The capital of France is"
    python examples/generate.py --model llama-2-7b.Q8_0.gguf --max-tokens 50 --temp 0
    python examples/generate.py --random-config 1b --bits 4 --prompt-tokens 512 --max-tokens 128
    python examples/generate.py --random-config tiny --save-random /tmp/tiny   # write a test model
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the `llama` package beside this file

import oxmx.core as mx  # noqa: E402
from llama.generation import generate, make_sampler  # noqa: E402
from llama.load import load_model, quantize_model  # noqa: E402
from llama.random_model import CONFIGS, random_model, save_random  # noqa: E402
from llama.tokenizer import tokenizer_for  # noqa: E402

DTYPES = {"float32": mx.float32, "float16": mx.float16, "bfloat16": mx.bfloat16}


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="a Hugging Face model directory or a .gguf file")
    source.add_argument("--random-config", choices=sorted(CONFIGS), help="a random model of this shape")
    p.add_argument(
        "--save-random", metavar="DIR", help="with --random-config: write DIR/hf/ and DIR/model.gguf, then exit"
    )
    p.add_argument("--shards", type=int, default=1, help="with --save-random: safetensors files (default 1)")
    p.add_argument("--gguf-quant", choices=["Q8_0", "Q4_0", "Q4_1"], help="with --save-random: GGUF matrix format")
    p.add_argument("--prompt", default="Once upon a time", help="the text to continue")
    p.add_argument("--prompt-tokens", type=int, metavar="N", help="use N random token ids as the prompt (benchmarks)")
    p.add_argument("--max-tokens", type=int, default=100, help="tokens to generate (default 100)")
    p.add_argument("--temp", type=float, default=0.7, help="sampling temperature; 0 is greedy (default 0.7)")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling probability mass (default 1: off)")
    p.add_argument("--seed", type=int, default=0, help="random seed of sampling and of random models (default 0)")
    p.add_argument("--bits", type=int, help="quantize the weights to this many bits (e.g. 4 or 8)")
    p.add_argument("--group-size", type=int, default=64, help="quantization group size (default 64)")
    p.add_argument(
        "--dtype", choices=sorted(DTYPES), help="float type of the weights (default: as stored; random models: float32)"
    )
    p.add_argument("--device", choices=["cpu", "gpu"], help="default: the GPU when one is found")
    p.add_argument(
        "--warmup", action="store_true", help="run the prompt and a few steps once untimed first (compiles GPU kernels)"
    )
    args = p.parse_args(argv)
    if args.save_random and not args.random_config:
        p.error("--save-random needs --random-config")
    if args.max_tokens < 1 or (args.prompt_tokens is not None and args.prompt_tokens < 1):
        p.error("--max-tokens and --prompt-tokens must be at least 1")
    if not 0 < args.top_p <= 1 or args.temp < 0:
        p.error("--top-p must be in (0, 1] and --temp at least 0")
    return args


def save_random_model(args):
    out = Path(args.save_random)
    dtype = DTYPES[args.dtype or "float32"]
    save_random(out, CONFIGS[args.random_config], args.seed, dtype, shards=args.shards, quant=args.gguf_quant)
    print(f"wrote {out / 'hf'} (Hugging Face layout, {args.shards} safetensors file(s)) and {out / 'model.gguf'}")
    print(f"run it: python {sys.argv[0]} --model {out / 'hf'}   (or --model {out / 'model.gguf'})")


def describe(config):
    heads = f"{config.num_attention_heads} heads ({config.num_key_value_heads} kv) of {config.head_dim}"
    return (
        f"{config.num_hidden_layers} layers, hidden {config.hidden_size}, {heads}, MLP {config.intermediate_size}, "
        f"vocab {config.vocab_size:,}{', tied embeddings' if config.tie_word_embeddings else ''}"
    )


def weight_bytes(model):
    from oxmx.utils import tree_flatten

    return sum(p.nbytes for _, p in tree_flatten(model.parameters()))


def human_bytes(n):
    for unit in ("B", "KB", "MB"):
        if n < 1000:
            return f"{n:.3g} {unit}"
        n /= 1000
    return f"{n:.3g} GB"


class StreamPrinter:
    """Print the text of the growing id list as it grows; partial UTF-8 characters
    (shown as U+FFFD until complete) wait for their next token."""

    def __init__(self, tokenizer):
        self.tokenizer, self.ids, self.printed = tokenizer, [], 0

    def __call__(self, token_id):
        self.ids.append(token_id)
        text = self.tokenizer.decode(self.ids)
        if text.endswith("\ufffd"):
            return
        print(text[self.printed :], end="", flush=True)
        self.printed = len(text)


def main(argv=None):
    args = parse_args(argv)
    if args.save_random:
        save_random_model(args)
        return
    if args.device == "gpu" or (args.device is None and mx.cuda.is_available()):
        mx.set_default_device(mx.gpu)
    elif args.device == "cpu":
        mx.set_default_device(mx.cpu)
    print(f"oxmx {mx.__version__} on {mx.default_device()}")

    start = time.perf_counter()
    gguf_metadata = {}
    if args.random_config:
        dtype = DTYPES[args.dtype or "float32"]
        model = random_model(CONFIGS[args.random_config], args.seed, dtype, progress=True)
        source = f"random {args.random_config!r} configuration (seed {args.seed}; nothing read)"
    else:
        loaded = load_model(args.model, DTYPES[args.dtype] if args.dtype else None)
        model, source, gguf_metadata = loaded.model, loaded.source, loaded.gguf_metadata
    config = model.config
    print(f"model: {source}")
    print(f"  {describe(config)}; {config.num_parameters():,} parameters [{time.perf_counter() - start:.1f} s]")
    if args.bits:
        start = time.perf_counter()
        quantized, skipped = quantize_model(model, args.bits, args.group_size)
        kept = f"; kept in floating point (input size not a multiple of {args.group_size}): {', '.join(skipped)}"
        print(f"quantized: {args.bits}-bit, group size {args.group_size}: {len(quantized)} layers"
              f"{kept if skipped else ''} [{time.perf_counter() - start:.1f} s]")  # fmt: skip
    print(f"weights: {human_bytes(weight_bytes(model))}")

    tokenizer = tokenizer_for(args.model, gguf_metadata, config.vocab_size)
    print(f"tokenizer: {tokenizer.description}")
    if args.prompt_tokens:
        prompt_ids = np.random.default_rng(args.seed).integers(0, config.vocab_size, args.prompt_tokens).tolist()
        print(f"prompt: {args.prompt_tokens} random token ids")
    else:
        prompt_ids = tokenizer.encode(args.prompt)
        print(f"prompt: {args.prompt!r} ({len(prompt_ids)} tokens)")
    if not prompt_ids:
        sys.exit("the prompt has no tokens")
    how = "greedy" if args.temp == 0 else f"temperature {args.temp}, top-p {args.top_p}"
    print(f"sampling: {how}, seed {args.seed}")

    sampler = make_sampler(args.temp, args.top_p)
    if args.warmup:
        start = time.perf_counter()
        generate(model, prompt_ids, min(args.max_tokens, 4), sampler)
        print(f"warm-up: the prompt and {min(args.max_tokens, 4)} tokens, untimed [{time.perf_counter() - start:.1f} s]")
    mx.random.seed(args.seed)
    print("-" * 60)
    if not args.prompt_tokens:
        print(args.prompt, end="", flush=True)
    stats = generate(model, prompt_ids, args.max_tokens, sampler, tokenizer.eos_ids, StreamPrinter(tokenizer))
    print("\n" + "-" * 60)
    print(
        f"prompt: {stats.prompt_tokens} tokens, {stats.prompt_tps:,.1f} tok/s; "
        f"generation: {len(stats.tokens)} tokens, {stats.generation_tps:,.1f} tok/s; "
        f"peak memory {human_bytes(stats.peak_memory)}"
    )


if __name__ == "__main__":
    sys.stdout.reconfigure(errors="replace")
    main()
