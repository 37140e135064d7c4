"""The `stream` context manager."""

import contextlib

from oxmx import _oxmx as _n


@contextlib.contextmanager
def stream(s):
    """Run the ops created inside the block on stream (or device) ``s``."""
    _n._push_stream(s)
    try:
        yield s
    finally:
        _n._pop_stream()
