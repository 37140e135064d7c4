"""Sampling and the timed generation loop: one forward pass over the prompt (prefill),
then one pass per new token over the KV cache (decode)."""

import math
import time
from dataclasses import dataclass, field

import oxmx.core as mx


def nucleus(logits, top_p):
    """Top-p filtering in sorted order: ``(kept, order)`` where ``order`` sorts each row
    of ``logits`` (``(batch, vocab)``) from most to least probable and ``kept`` is the
    sorted logits with every token outside the smallest most-probable set whose
    probability reaches ``top_p`` set to -inf (the most probable token always stays)."""
    order = mx.argsort(-logits, axis=-1)
    ranked = mx.take_along_axis(logits, order, axis=-1)
    probs = mx.softmax(ranked, axis=-1)
    before = mx.cumsum(probs, axis=-1) - probs  # mass of the strictly more probable tokens
    return mx.where(before < top_p, ranked, -math.inf), order


def make_sampler(temp, top_p=1.0):
    """``sample(logits (batch, vocab)) -> token ids (batch,)``: greedy for ``temp == 0``,
    else softmax(logits / temp) restricted to the top-p nucleus."""

    def sample(logits):
        if temp == 0:
            return mx.argmax(logits, axis=-1)
        logits = logits.astype(mx.float32) / temp
        if top_p >= 1:
            return mx.random.categorical(logits)
        kept, order = nucleus(logits, top_p)
        choice = mx.random.categorical(kept)
        return mx.take_along_axis(order, choice[:, None], axis=-1)[:, 0]

    return sample


@dataclass
class Stats:
    prompt_tokens: int = 0
    prompt_seconds: float = 0.0
    tokens: list = field(default_factory=list)  # the generated ids
    decode_seconds: float = 0.0  # after the first new token (which the prefill yields)
    peak_memory: int = 0

    @property
    def prompt_tps(self):
        return self.prompt_tokens / self.prompt_seconds

    @property
    def generation_tps(self):
        steps = len(self.tokens) - 1
        return steps / self.decode_seconds if steps > 0 and self.decode_seconds > 0 else float("nan")


def generate(model, prompt_ids, max_tokens, sampler, eos_ids=(), on_token=None):
    """Generate up to ``max_tokens`` ids after ``prompt_ids`` (stopping after an id in
    ``eos_ids``); ``on_token(id)`` sees each one as it comes. Returns :class:`Stats`."""
    stats = Stats(prompt_tokens=len(prompt_ids))
    cache = model.make_cache()
    mx.reset_peak_memory()
    start = time.perf_counter()
    token = sampler(model(mx.array([prompt_ids]), cache)[:, -1, :])
    mx.eval(token)
    stats.prompt_seconds = time.perf_counter() - start

    start = time.perf_counter()
    for n in range(max_tokens):
        current = token
        if n + 1 < max_tokens:
            # Queue the next step before reading this token, so the device keeps busy
            # while Python prints.
            token = sampler(model(current[:, None], cache)[:, -1, :])
            mx.async_eval(token)
        token_id = current.item()
        stats.tokens.append(token_id)
        if on_token is not None:
            on_token(token_id)
        if token_id in eos_ids:
            break
    stats.decode_seconds = time.perf_counter() - start
    stats.peak_memory = mx.get_peak_memory()
    return stats
