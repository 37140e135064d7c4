"""oxmx.core.cuda — the CUDA backend (issue #4: in progress)."""

from oxmx import _oxmx as _n


def is_available():
    """True when a CUDA GPU backend is registered (a GPU, its driver and NVRTC found)."""
    return bool(_n.is_available(_n.gpu))
