"""oxmx.core.cuda — the CUDA backend (planned: issue #4)."""

from oxmx import _oxmx as _n


def is_available():
    """True when a CUDA GPU backend is registered."""
    return bool(_n.is_available(_n.gpu))
