"""oxmx.core — the array API (MLX's `mlx.core`, name for name)."""

import math as _math

from oxmx._oxmx import *  # noqa: F401,F403
from oxmx._oxmx import array, Dtype, _array_from_state, _at_update  # noqa: F401
from oxmx import _oxmx as _native
from oxmx import __version__  # noqa: F401 - MLX users read mx.__version__
from oxmx._errors import AxisError, FormatError, IntegrityError  # noqa: F401

from ._dtypes import finfo, iinfo, result_type, _dtype_from_name  # noqa: F401
from ._printing import PrintOptions, set_printoptions, get_printoptions, printoptions  # noqa: F401
from ._creation import meshgrid, bartlett, blackman, hamming, hanning, from_dlpack  # noqa: F401
from ._device import stream, StreamContext  # noqa: F401
from ._missing import *  # noqa: F401,F403
from ._export import FunctionExporter, export_function, export_to_dot, exporter, import_function  # noqa: F401
from ._conv import conv1d, conv2d, conv3d, conv_general, conv_transpose1d, conv_transpose2d, conv_transpose3d, convolve  # noqa: F401
from ._einsum import einsum, einsum_path  # noqa: F401
from ._quantize import quantize, dequantize, quantized_matmul, gather_qmm, qqmm, gather_qqmm, to_fp8, from_fp8  # noqa: F401
from ._matmul_variants import block_masked_mm, gather_mm, segmented_mm, hadamard_transform, depends  # noqa: F401
from ._api_types import ArrayAt, ArrayLike  # noqa: F401
from ._io import load, save, savez, savez_compressed, save_safetensors, save_gguf  # noqa: F401
from ._compile import compile, disable_compile, enable_compile  # noqa: F401,A004
from ._transforms import grad, value_and_grad, vjp, jvp, vmap, stop_gradient, checkpoint, custom_function  # noqa: F401
from ._composite import diag, diagonal, diff, flip, kron, matrix_transpose, pad, repeat, roll, tile, trace, cumulative_sum, cumulative_prod  # noqa: F401
from ._composite import round, minmax, searchsorted, unique  # noqa: F401,A004

from . import linalg, fft, fast, metal, cuda, distributed  # noqa: F401
# the Python module (the star import above bound the native one, which it wraps)
import oxmx.core.random as random  # noqa: E402

matrix_norm = linalg.norm  # MLX's mlx.core.matrix_norm is its linalg.norm


e = _math.e
euler_gamma = 0.5772156649015329
inf = float("inf")
nan = float("nan")
pi = _math.pi
newaxis = None
