"""Every layer of ``oxmx.nn``; each file owns one family and lists it in ``__all__``."""

from .base import *  # noqa: F401,F403
from .containers import *  # noqa: F401,F403
from .activations import *  # noqa: F401,F403
from .linear import *  # noqa: F401,F403
from .embedding import *  # noqa: F401,F403
from .dropout import *  # noqa: F401,F403
from .normalization import *  # noqa: F401,F403
from .positional_encoding import *  # noqa: F401,F403
from .recurrent import *  # noqa: F401,F403
from .transformer import *  # noqa: F401,F403
from .convolution import *  # noqa: F401,F403
from .convolution_transpose import *  # noqa: F401,F403
from .pooling import *  # noqa: F401,F403
from .upsample import *  # noqa: F401,F403
from .quantized import *  # noqa: F401,F403
from .distributed import *  # noqa: F401,F403
