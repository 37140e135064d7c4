"""The `stream` context manager."""

from oxmx import _oxmx as _n


class StreamContext:
    """A context manager for setting the current device and stream.

    See :func:`stream` for usage.

    Args:
        s: The stream or device to set as the default.
    """

    __slots__ = ("_s",)

    def __init__(self, s):
        if not isinstance(s, (_n.Stream, _n.Device, _n.DeviceType)):
            raise TypeError(f"[stream] Expected a Stream, a Device or a DeviceType, got {type(s).__name__}.")
        self._s = s

    def __enter__(self):
        _n._push_stream(self._s)

    def __exit__(self, *exc):
        _n._pop_stream()
        return False


def stream(s):
    """Run the ops created inside the block on stream (or device) ``s``."""
    return StreamContext(s)
