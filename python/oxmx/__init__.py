"""oxmx: MLX's array model with a memory-safe Rust core.

``import oxmx.core as mx`` is a drop-in for ``import mlx.core as mx``.
"""

__version__ = "0.1.0"

from . import core  # noqa: F401
