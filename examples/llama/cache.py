"""The key/value cache of one attention layer.

Keys and values live in buffers of shape ``(batch, kv_heads, capacity, head_dim)`` that
grow ``STEP`` positions at a time; new positions are written into the free slots, so a
decode step does not concatenate the whole history.
"""

import oxmx.core as mx


class KVCache:
    STEP = 256

    def __init__(self):
        self.keys = self.values = None
        self.offset = 0  # positions filled so far

    def update(self, keys, values):
        """Append ``keys``/``values`` (``(batch, kv_heads, new, head_dim)``) and return
        every cached position's keys and values."""
        new = keys.shape[2]
        end = self.offset + new
        if self.keys is None or end > self.keys.shape[2]:
            self._grow(keys, values, end)
        self.keys[..., self.offset : end, :] = keys
        self.values[..., self.offset : end, :] = values
        self.offset = end
        return self.keys[..., :end, :], self.values[..., :end, :]

    def _grow(self, keys, values, needed):
        capacity = -(-needed // self.STEP) * self.STEP
        old = 0 if self.keys is None else self.keys.shape[2]

        def extended(buffer, new):
            B, H, _, D = new.shape
            free = mx.zeros((B, H, capacity - old, D), dtype=new.dtype)
            return free if buffer is None else mx.concatenate([buffer, free], axis=2)

        self.keys, self.values = extended(self.keys, keys), extended(self.values, values)
