"""Helper classes MLX names in ``mlx.core``: ``ArrayAt`` and ``ArrayLike``."""

import abc

from ._indexing import _AtIndexer, _AtUpdate


class ArrayAt(abc.ABC):
    """A helper object to apply updates at specific indices (``x.at[idx].add(v)``).

    ``x.at`` and ``x.at[idx]`` are instances; it has no public constructor.
    """

    def __new__(cls, *args, **kwargs):
        raise TypeError("oxmx.core.ArrayAt: no constructor defined!")


ArrayAt.register(_AtIndexer)
ArrayAt.register(_AtUpdate)


class ArrayLike:
    """Any Python object which has an ``__mlx_array__`` method that returns an :obj:`array`."""

    __slots__ = ("_obj",)

    def __init__(self, arg, /):
        self._obj = arg
