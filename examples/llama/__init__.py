"""A Llama-architecture decoder for ``examples/generate.py``, built with ``oxmx.nn``.

- ``model``: the configuration (Hugging Face ``config.json`` keys) and the network
  (RMSNorm, rotary positions, grouped-query attention with a KV cache, SwiGLU MLP).
- ``cache``: the per-layer key/value cache used while decoding.
- ``load``: reading a Hugging Face directory (safetensors, sharded or not) or a GGUF
  file, and quantizing a model (``nn.quantize``).
- ``names``: the Hugging Face <-> llama.cpp tensor names and llama.cpp's q/k row order.
- ``random_model``: named random configurations and writing a random model in both layouts.
- ``tokenizer``: the text <-> token-id conversions available without downloads.
- ``generation``: temperature/top-p sampling and the timed prefill + decode loop.
"""
