"""oxmx.nn — neural-network layers, losses and initialisers (MLX's ``mlx.nn``), written in
Python over ``oxmx.core``."""

from . import init, losses  # noqa: F401
from .layers import *  # noqa: F401,F403
from .utils import average_gradients, value_and_grad  # noqa: F401
from . import utils  # noqa: F401
