"""oxmx: MLX's array model with a memory-safe Rust core.

``import oxmx.core as mx`` is a drop-in for ``import mlx.core as mx``.
"""

def _package_version():
    try:
        from importlib.metadata import PackageNotFoundError, version
    except ImportError:  # pragma: no cover - Python < 3.8
        return "0.1.0"
    try:
        return version("oxmx")
    except PackageNotFoundError:  # a source checkout that was never installed
        return "0.1.0"


__version__ = _package_version()

from . import core  # noqa: F401
