"""oxmx.optimizers — MLX's optimizers and learning-rate schedules."""

from .optimizers import *  # noqa: F401,F403
from .schedulers import *  # noqa: F401,F403
